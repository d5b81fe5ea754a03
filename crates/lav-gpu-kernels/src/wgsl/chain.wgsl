// bias → ReLU → ×2 → GELU over x in place. Unfused: four kernels, each reading and
// writing the whole buffer. Fused: one kernel, each value read once and written once.
struct Params { n: u32, cols: u32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

fn gelu(v: f32) -> f32 {
    let c = 0.7978845608; // sqrt(2 / pi)
    return 0.5 * v * (1.0 + tanh(c * (v + 0.044715 * v * v * v)));
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * 256u + gid.x;
}

@compute @workgroup_size(256)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { x[i] = x[i] + bias[i % p.cols]; }
}

@compute @workgroup_size(256)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { x[i] = max(x[i], 0.0); }
}

@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { x[i] = x[i] * 2.0; }
}

@compute @workgroup_size(256)
fn act(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { x[i] = gelu(x[i]); }
}

@compute @workgroup_size(256)
fn fused(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) { x[i] = gelu(max(x[i] + bias[i % p.cols], 0.0) * 2.0); }
}
