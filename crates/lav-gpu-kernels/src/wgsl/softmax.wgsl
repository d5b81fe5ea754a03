// Row softmax of a rows × cols matrix, two ways.
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

// x[base + c], or a value whose exp is 0 past the row's end.
fn at(base: u32, c: u32) -> f32 {
    if (c < p.cols) { return x[base + c]; }
    return -3.4e38;
}

// Thread per row (CUDA-style thread-level program): one invocation walks its whole
// row three times, four columns per iteration. (Mesa's software renderer stops a
// shader after 65,535 loop iterations in all; three passes over a 49,152-wide row
// one column at a time would pass that.)
@compute @workgroup_size(64)
fn per_thread(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) { return; }
    let base = r * p.cols;
    var m = -3.4e38;
    for (var c = 0u; c < p.cols; c += 4u) {
        m = max(max(m, at(base, c)), max(max(at(base, c + 1u), at(base, c + 2u)), at(base, c + 3u)));
    }
    var s = 0.0;
    for (var c = 0u; c < p.cols; c += 4u) {
        s += exp(at(base, c) - m);
        s += exp(at(base, c + 1u) - m);
        s += exp(at(base, c + 2u) - m);
        s += exp(at(base, c + 3u) - m);
    }
    for (var c = 0u; c < p.cols; c += 4u) {
        if (c < p.cols) { y[base + c] = exp(x[base + c] - m) / s; }
        if (c + 1u < p.cols) { y[base + c + 1u] = exp(x[base + c + 1u] - m) / s; }
        if (c + 2u < p.cols) { y[base + c + 2u] = exp(x[base + c + 2u] - m) / s; }
        if (c + 3u < p.cols) { y[base + c + 3u] = exp(x[base + c + 3u] - m) / s; }
    }
}

// Workgroup per row (Triton-style block program): 256 invocations share the row,
// each striding over it, and reduce max and sum in workgroup memory as a tree.
const W: u32 = 256u;
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn per_workgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wg.x;
    let base = r * p.cols;
    let t = lid.x;
    var m = -3.4e38;
    for (var c = t; c < p.cols; c += W) { m = max(m, x[base + c]); }
    red[t] = m;
    workgroupBarrier();
    for (var h = W / 2u; h > 0u; h /= 2u) {
        if (t < h) { red[t] = max(red[t], red[t + h]); }
        workgroupBarrier();
    }
    let row_max = red[0];
    workgroupBarrier();
    var s = 0.0;
    for (var c = t; c < p.cols; c += W) { s += exp(x[base + c] - row_max); }
    red[t] = s;
    workgroupBarrier();
    for (var h = W / 2u; h > 0u; h /= 2u) {
        if (t < h) { red[t] = red[t] + red[t + h]; }
        workgroupBarrier();
    }
    let row_sum = red[0];
    for (var c = t; c < p.cols; c += W) { y[base + c] = exp(x[base + c] - row_max) / row_sum; }
}
