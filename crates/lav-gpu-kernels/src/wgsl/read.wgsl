// Each invocation copies one float, read from index i * stride: stride 1 is
// coalesced (neighbouring invocations read neighbouring words), a larger stride
// scatters a workgroup's reads over many cache lines for the same useful bytes.
struct Params { n: u32, stride: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < p.n) {
        dst[i] = src[i * p.stride] * 2.0;
    }
}
