//! Every WGSL kernel against its CPU reference on the adapter this machine has (in
//! CI, Mesa's lavapipe: a CPU emulating a GPU, so only correctness is checked here;
//! speed ratios are benchmarks, recorded in docs/benchmarks.md).

use lav_gpu_kernels::{Gpu, Method, chain, matmul, softmax, strided_read};

fn gpu() -> &'static Gpu {
    Gpu::shared().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_adapter_is_described() {
    let a = &gpu().adapter;
    assert!(!a.name.is_empty() && !a.backend.is_empty());
    assert!(a.label().contains(&a.name));
    // Mesa's software Vulkan is a CPU: the label must say so.
    if a.name.to_lowercase().contains("llvmpipe") {
        assert!(a.software && a.label().contains("a CPU emulating a GPU"));
    }
}

#[test]
fn strided_reads_copy_the_right_floats() {
    for stride in [1, 2, 32] {
        let m = strided_read(gpu(), 1 << 14, stride, 1).unwrap();
        assert_eq!(m.max_abs_err, 0.0, "stride {stride}");
        assert!(m.seconds > 0.0);
        assert!(m.method == Method::Timestamps || m.method == Method::WallClock);
    }
}

#[test]
fn naive_and_tiled_matmul_equal_the_cpu_product() {
    for tiled in [false, true] {
        let m = matmul(gpu(), 64, tiled, 1).unwrap();
        assert!(m.max_abs_err < 1e-3, "tiled {tiled}: {}", m.max_abs_err);
    }
    assert!(matmul(gpu(), 60, true, 1).is_err());
}

#[test]
fn fused_and_unfused_chains_equal_the_cpu_chain() {
    for fused in [false, true] {
        let m = chain(gpu(), 100_003, fused, 1).unwrap();
        assert!(m.max_abs_err < 1e-5, "fused {fused}: {}", m.max_abs_err);
    }
}

#[test]
fn both_softmaxes_equal_an_f64_softmax() {
    // A vocabulary-long row, as the labs run on the model's logits.
    let (rows, cols) = (5, 49152);
    let x: Vec<f32> = (0..rows * cols)
        .map(|i| ((i as f32) * 0.013).sin() * 9.0)
        .collect();
    let (a, ya) = softmax(gpu(), &x, rows, cols, false, 1).unwrap();
    let (b, yb) = softmax(gpu(), &x, rows, cols, true, 1).unwrap();
    assert!(
        a.max_abs_err < 1e-6 && b.max_abs_err < 1e-6,
        "{} {}",
        a.max_abs_err,
        b.max_abs_err
    );
    let sum: f32 = yb[..cols].iter().sum();
    assert!((sum - 1.0).abs() < 1e-4);
    assert_eq!(ya.len(), yb.len());
    assert!(softmax(gpu(), &x, rows + 1, cols, true, 1).is_err());
}
