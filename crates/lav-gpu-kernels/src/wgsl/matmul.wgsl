// C = A · B for n × n row-major f32 matrices, one invocation per C cell.
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const T: u32 = 16u;

// Naive: every invocation reads its row of A and column of B from global memory.
@compute @workgroup_size(16, 16)
fn naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    if (row >= p.n || col >= p.n) { return; }
    var acc = 0.0;
    for (var k = 0u; k < p.n; k++) {
        acc += a[row * p.n + k] * b[k * p.n + col];
    }
    c[row * p.n + col] = acc;
}

var<workgroup> ta: array<f32, 256>;
var<workgroup> tb: array<f32, 256>;

// Tiled: per phase the workgroup loads a 16 × 16 tile of A and of B into workgroup
// (shared) memory, waits at a barrier, then every invocation does 16 multiply-adds
// from the tiles. n must be a multiple of 16.
@compute @workgroup_size(16, 16)
fn tiled(@builtin(global_invocation_id) gid: vec3<u32>,
         @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = gid.y;
    let col = gid.x;
    var acc = 0.0;
    for (var ph = 0u; ph < p.n / T; ph++) {
        ta[lid.y * T + lid.x] = a[row * p.n + ph * T + lid.x];
        tb[lid.y * T + lid.x] = b[(ph * T + lid.y) * p.n + col];
        workgroupBarrier();
        for (var k = 0u; k < T; k++) {
            acc += ta[lid.y * T + k] * tb[k * T + lid.x];
        }
        workgroupBarrier();
    }
    c[row * p.n + col] = acc;
}
