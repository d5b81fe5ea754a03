//! The GPU & CUDA labs on the real model: the curriculum's facts read back from the
//! scenes the labs build (the simulators' own unit tests check the same facts one
//! level down), and the labs' computations against independent references.

use lav_scene::{Primitive, Scene, Table};
use lav_testkit::{scene_at, table, text};

fn session(id: &str) -> lav_lab::Session {
    lav_testkit::session_in(&[lav_labs_gpu::register], id)
}

fn cell<'a>(t: &'a Table, row: &str, col: &str) -> &'a str {
    t.lookup(row, col)
        .unwrap_or_else(|| panic!("no {row}/{col} in {t:?}"))
}

fn num(s: &str) -> f64 {
    s.split_whitespace()
        .next()
        .map(|x| x.trim_end_matches(['%', '×']).replace(',', ""))
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {s}"))
}

/// The measured-on-your-GPU panel: every kernel's output within `tol` of the CPU's,
/// and the panel labelled with the adapter (CI has lavapipe, so there is one).
fn gpu_panel(s: &Scene, id: &str, kernels: usize, tol: f64) {
    let t = table(s, id);
    assert_eq!(t.rows.len(), kernels, "{t:?}");
    for r in &t.rows {
        assert!(num(&r[4]) <= tol, "{r:?}");
    }
    let prov = s.item(id).unwrap().provenance.label();
    assert!(
        prov.contains("measured on") && prov.contains("timed with"),
        "{prov}"
    );
    if prov.contains("a CPU emulating a GPU") {
        assert!(s.item(&format!("{id}-software")).is_some());
    }
}

fn title<'a>(s: &'a Scene, id: &str) -> &'a str {
    &s.item(id).unwrap_or_else(|| panic!("no {id}")).title
}

#[test]
fn coalescing_and_bank_conflicts_match_the_curriculum() {
    let mut s = session("memory-access-patterns");
    let sc = scene_at(&mut s, "coalescing", &["layout=strided", "stride=1"]);
    let t = table(&sc, "cost");
    assert_eq!(cell(t, "transactions (128 B lines)", "value"), "1");
    assert_eq!(cell(t, "utilisation", "value"), "100.0%");
    let sc = scene_at(&mut s, "coalescing", &["layout=scattered"]);
    let t = table(&sc, "cost");
    assert_eq!(cell(t, "transactions (128 B lines)", "value"), "32");
    assert_eq!(cell(t, "bytes fetched", "value"), "4,096 B");
    assert_eq!(cell(t, "utilisation", "value"), "3.1%");
    for (set, ways) in [
        (&["layout=strided", "stride=2"][..], "2"),
        (&["layout=column of float[32][32]"][..], "32"),
        (&["layout=column of float[32][33]"][..], "1"),
        (&["layout=broadcast"][..], "1"),
    ] {
        let sc = scene_at(&mut s, "banks", set);
        assert_eq!(
            cell(table(&sc, "conflict"), "passes (ways)", "value"),
            ways,
            "{set:?}"
        );
    }
    assert_eq!(
        cell(
            table(&sc_broadcast(&mut s), "conflict"),
            "broadcast",
            "value"
        ),
        "yes"
    );
    // The CPU sweep: one row per stride, stride 1 the fastest to within noise.
    let sc = scene_at(&mut s, "measured", &[]);
    let t = table(&sc, "cpu-table");
    assert_eq!(t.rows.len(), 7);
    let gbs: Vec<f64> = t.rows.iter().map(|r| num(&r[1])).collect();
    assert!(
        gbs[0] > gbs[4],
        "stride 1 {} vs stride 16 {}",
        gbs[0],
        gbs[4]
    );
    gpu_panel(&sc, "gpu", 6, 0.0);
}

fn sc_broadcast(s: &mut lav_lab::Session) -> Scene {
    scene_at(s, "banks", &["layout=broadcast"])
}

#[test]
fn tiled_matmul_reads_are_counted_to_the_formulas() {
    let mut s = session("tiling-matmul");
    let sc = scene_at(&mut s, "naive", &["n=64", "row=3", "col=5"]);
    let t = table(&sc, "reads");
    assert_eq!(num(cell(t, "reads counted", "value")), 2.0 * 64f64.powi(3));
    assert_eq!(cell(t, "times A[3][0] was read", "value"), "64");
    for tile in ["4", "16"] {
        let sc = scene_at(&mut s, "tiled", &["n=64", &format!("tile={tile}")]);
        let t = table(&sc, "reads");
        let tv: f64 = tile.parse().unwrap();
        assert_eq!(
            num(cell(t, &format!("tiled, T = {tile}"), "reads counted")),
            2.0 * 64f64.powi(3) / tv
        );
    }
    let sc = scene_at(&mut s, "tiled", &["n=64", "tile=16"]);
    let f = table(&sc, "tile");
    assert_eq!(cell(f, "threads per block", "value"), "256");
    assert_eq!(cell(f, "floats loaded per phase", "value"), "512");
    // Timed on this CPU: the tiled results equal the naive ones to rounding.
    let sc = scene_at(&mut s, "measured", &[]);
    for r in &table(&sc, "cpu").rows {
        assert!(num(&r[4]) < 1e-2, "{r:?}");
    }
    gpu_panel(&sc, "gpu", 2, 1e-2);
}

#[test]
fn execution_model_runs_the_grid_and_the_worked_occupancy_example() {
    let mut s = session("execution-model");
    let sc = scene_at(&mut s, "hierarchy", &["n=1000", "block=256"]);
    let t = table(&sc, "launch");
    assert_eq!(cell(t, "grid = ⌈N / blockDim.x⌉", "value"), "4 blocks");
    assert_eq!(cell(t, "threads stopped by idx < N", "value"), "24");
    assert_eq!(
        cell(t, "c equals a plain loop", "value"),
        "yes, every element"
    );
    // The names' tooltips follow the toggle and carry this launch's values.
    let terms = table(&sc, "terms");
    assert_eq!(
        cell(terms, "blockIdx.x", "means"),
        "which block this thread is in: 0 … 3"
    );
    assert!(terms.lookup("__global__", "means").is_none());
    let sc = scene_at(&mut s, "hierarchy", &["cuda=true"]);
    let terms = table(&sc, "terms");
    assert!(cell(terms, "__global__", "means").contains("runs on the GPU"));
    assert!(cell(terms, "<<<grid, block>>>", "means").contains("4 blocks of 256"));
    assert!(text(&sc, "code").contains("__global__"));
    let sc = scene_at(
        &mut s,
        "occupancy",
        &["gpu=H100 SXM 80GB", "threads=256", "regs=64", "shared=0"],
    );
    let t = table(&sc, "occupancy");
    assert_eq!(cell(t, "occupancy", "value"), "50.0%");
    assert_eq!(cell(t, "registers per block", "value"), "16,384");
    assert_eq!(cell(t, "blocks per SM", "value"), "4");
    assert_eq!(cell(t, "limited by", "value"), "registers");
    let sc = scene_at(
        &mut s,
        "occupancy",
        &["regs=255", "threads=1024", "shared=0"],
    );
    assert!(
        text(&sc, "refused").contains("more registers than an SM has"),
        "{sc:?}"
    );
    // Divergence: alternating signs split every warp in two; all positive does not.
    let sc = scene_at(
        &mut s,
        "divergence",
        &["kernel=branchy (x > 0 ? 2x : −x/2)", "data=alternating"],
    );
    let busy: Vec<f64> = table(&sc, "warps")
        .rows
        .iter()
        .map(|r| num(&r[3]))
        .collect();
    assert!(busy.iter().all(|&b| b < 100.0), "{busy:?}");
    assert!(
        text(&sc, "check").contains("0.0e0"),
        "{}",
        text(&sc, "check")
    );
    let sc = scene_at(&mut s, "divergence", &["data=all positive"]);
    let busy: Vec<f64> = table(&sc, "warps")
        .rows
        .iter()
        .map(|r| num(&r[3]))
        .collect();
    assert!(busy.iter().all(|&b| b == 100.0), "{busy:?}");
    for k in [
        "block sum (shared-memory tree)",
        "softmax, a thread per row",
        "vector add",
    ] {
        let sc = scene_at(
            &mut s,
            "divergence",
            &[&format!("kernel={k}"), "data=seeded random"],
        );
        let err: f64 = text(&sc, "check")
            .split_whitespace()
            .nth(2)
            .unwrap()
            .trim_end_matches(',')
            .parse()
            .unwrap();
        assert!(err < 1e-4, "{k}: {}", text(&sc, "check"));
    }
}

#[test]
fn number_formats_mma_and_alignment_on_the_real_weights() {
    let mut s = session("tensor-cores");
    let sc = scene_at(&mut s, "formats", &["format=FP8 E4M3"]);
    let t = table(&sc, "formats");
    for (f, max) in [
        ("FP16", "65,504"),
        ("FP8 E4M3", "448"),
        ("FP8 E5M2", "57,344"),
        ("FP4 E2M1", "6"),
    ] {
        assert_eq!(cell(t, f, "largest value"), max);
    }
    // Narrower formats lose more of the real weights.
    let rel = |f: &str| num(cell(t, f, "mean relative error"));
    assert!(
        rel("FP32") == 0.0 && rel("BF16") < rel("FP8 E4M3") && rel("FP8 E4M3") < rel("FP4 E2M1")
    );
    let Primitive::TokenStrip(bits) = &sc.item("bits").unwrap().primitive else {
        panic!()
    };
    assert_eq!(bits.tokens.len(), 8);
    let sc = scene_at(&mut s, "mma", &["input=FP16", "acc=FP32"]);
    let d = table(&sc, "dots");
    assert!(
        num(&d.rows[0][1]) <= num(&d.rows[1][1]),
        "FP32 accumulation is no worse: {d:?}"
    );
    let sc = scene_at(
        &mut s,
        "alignment",
        &["dim=50257 (GPT-2 vocab)", "dtype=FP16"],
    );
    let t = table(&sc, "align");
    assert_eq!(cell(t, "multiple of 64", "padded size"), "50,304");
    assert_eq!(cell(t, "multiple of 8", "holds"), "no");
    assert!(
        text(&sc, "model").contains("49,152 = 768 × 64: no padding needed"),
        "{}",
        text(&sc, "model")
    );
    scene_at(&mut s, "generations", &[]);
}

#[test]
fn fusion_counts_and_flash_attention_on_real_qkv() {
    let mut s = session("operator-fusion");
    let sc = scene_at(&mut s, "chain", &["chain=matmul → bias → ReLU"]);
    let t = table(&sc, "counters");
    assert_eq!(cell(t, "HBM accesses", "unfused"), "6");
    assert_eq!(cell(t, "HBM accesses", "fused"), "2");
    assert_eq!(cell(t, "outputs equal", "unfused"), "yes, bit for bit");
    let cpu = table(&sc, "cpu");
    assert_eq!(cell(cpu, "fused (1 pass)", "outputs equal"), "yes");
    gpu_panel(&sc, "gpu-chain", 2, 1e-5);
    for (layer, head, tile) in [("0", "0", "8"), ("17", "8", "4"), ("29", "4", "16")] {
        let sc = scene_at(
            &mut s,
            "flash",
            &[
                &format!("layer={layer}"),
                &format!("head={head}"),
                &format!("tile={tile}"),
            ],
        );
        let t = table(&sc, "check");
        let vs_std = num(cell(
            t,
            "standard attention (S and P in full)",
            "largest |difference|",
        ));
        let vs_model = num(cell(
            t,
            "the model's own attention output",
            "largest |difference|",
        ));
        assert!(vs_std <= 1e-5, "layer {layer}: {vs_std}");
        assert!(vs_model <= 1e-3, "layer {layer}: {vs_model}");
        let tr = table(&sc, "traffic");
        // Counted here: standard attention moves 4Nd + 4N² elements.
        let n = num(tr.rows[0][0].split("N = ").nth(1).unwrap());
        assert_eq!(num(&tr.rows[0][1]), 4.0 * n * 64.0 + 4.0 * n * n, "{tr:?}");
        // At N = 4096 with the GPU's shared memory, FlashAttention moves far less.
        assert!(num(&tr.rows[1][3]) > 10.0, "{tr:?}");
    }
}

#[test]
fn roofline_ridges_and_the_decode_floor() {
    let mut s = session("roofline-model");
    for (gpu, ridge) in [
        ("A100 SXM 80GB", "153"),
        ("H100 SXM 80GB", "295"),
        ("H200 SXM 141GB", "206"),
    ] {
        let sc = scene_at(&mut s, "roofline", &[&format!("on={gpu}"), "n=1024"]);
        assert!(
            title(&sc, "plot").contains(&format!("ridge at {ridge} FLOP/B")),
            "{}",
            title(&sc, "plot")
        );
        let t = table(&sc, "kernels");
        assert_eq!(
            num(cell(t, "matmul 1024×1024×1024, FP32", "AI (FLOP/B)")).round(),
            171.0
        );
        assert_eq!(cell(t, "vector add, 1M FP32", "AI (FLOP/B)"), "0.083");
    }
    let sc = scene_at(
        &mut s,
        "decode",
        &["gpu=H100 SXM 80GB", "model=Llama-3-8B", "batch=1"],
    );
    let t = table(&sc, "floor");
    assert_eq!(
        cell(t, "decode floor per step = weights / BW", "value"),
        "4.79 ms"
    );
    assert_eq!(cell(t, "best tok/s per sequence", "value"), "209");
    assert_eq!(cell(t, "bound", "value"), "memory-bound");
    let sc = scene_at(&mut s, "decode", &["batch=512"]);
    assert_eq!(cell(table(&sc, "floor"), "bound", "value"), "compute-bound");
    let sc = scene_at(
        &mut s,
        "smollm2",
        &["on=H100 SXM 80GB", "phase=decode", "batch=1"],
    );
    assert_eq!(table(&sc, "ops").rows.len(), 15);
    let sc = scene_at(&mut s, "smollm2", &["on=this CPU (measured)"]);
    let t = table(&sc, "decode-here");
    assert!(num(cell(t, "measured decode", "value")) > 0.0);
}

#[test]
fn block_and_thread_softmax_equal_candles_on_real_logits() {
    let mut s = session("triton-torch-compile");
    let sc = scene_at(&mut s, "softmax", &["pid=1"]);
    let t = table(&sc, "check");
    let thread = &t.rows[0];
    let block = &t.rows[1];
    // The block program's tree sums land within 1e-5 of candle; the thread's running
    // sum over 49,152 terms drifts more, and is the further from an f64 softmax.
    assert!(num(&block[2]) <= 1e-5, "{t:?}");
    assert!(num(&thread[2]) <= 2e-4, "{t:?}");
    assert!(num(&block[3]) <= num(&thread[3]), "{t:?}");
    let p = table(&sc, "program");
    assert_eq!(
        cell(p, "BLOCK (next power of two ≥ cols)", "value"),
        "65,536"
    );
    assert_eq!(
        cell(p, "offsets masked past the row end", "value"),
        "16,384"
    );
    // The thread-per-row kernel sums 49,152 terms in order: the same drift as above.
    gpu_panel(&sc, "gpu", 2, 2e-4);
    let with = scene_at(&mut s, "pipeline", &["break=true"]);
    let without = scene_at(&mut s, "pipeline", &["break=false"]);
    assert!(title(&with, "program").contains("2 compiled region"));
    assert!(title(&without, "program").contains("1 compiled region"));
}

#[test]
fn memory_levels_and_why_gpus_read_the_table() {
    let mut s = session("memory-hierarchy");
    let sc = scene_at(&mut s, "levels", &["gpu=H100 SXM 80GB"]);
    let t = table(&sc, "levels");
    assert_eq!(t.rows.len(), 4);
    assert!(cell(t, "HBM", "teaching latency (cycles)").contains("illustrative"));
    assert_eq!(cell(t, "L2", "measured latency (cycles)"), "~200");
    let sc = scene_at(&mut s, "where", &["what=KV cache"]);
    assert!(
        sc.item("sizes")
            .unwrap()
            .provenance
            .label()
            .contains("22.5 KiB")
    );
    let sc = scene_at(&mut s, "this-cpu", &[]);
    let lad = table(&sc, "ladder-table");
    let first = num(&lad.rows[0][1]);
    let last = num(&lad.rows.last().unwrap()[1]);
    assert!(last > first, "DRAM slower than L1: {first} vs {last}");
    let mut s = session("why-gpus");
    let sc = scene_at(&mut s, "design", &["gpu=H100 SXM 80GB"]);
    let t = table(&sc, "compare");
    assert_eq!(cell(t, "f32 lanes in all", "H100 SXM 80GB"), "16896");
    assert_eq!(cell(t, "Tensor Cores", "H100 SXM 80GB"), "528");
    let sc = scene_at(&mut s, "race", &["work=2"]);
    let Primitive::Timeline(cpu) = &sc.item("cpu").unwrap().primitive else {
        panic!()
    };
    assert_eq!(cpu.spans.len(), 32);
    let sc = scene_at(&mut s, "matmul", &[]);
    let t = table(&sc, "race");
    assert!(t.rows.iter().take(3).all(|r| num(&r[4]) < 1e-2), "{t:?}");
    gpu_panel(&sc, "gpu", 2, 1e-2);
    // Built without `--features cuda`, the CUDA panel is one line saying how to get it.
    #[cfg(not(feature = "cuda"))]
    assert!(text(&sc, "cuda").contains("--features cuda"));
    scene_at(&mut s, "stack", &[]);
}

/// The CUDA device as the driver describes it, set beside its table row: the row is
/// found from the driver's name and the SM counts compared (an H100 PCIe has fewer
/// SMs than the SXM row).
#[test]
fn a_cuda_device_is_shown_beside_its_table_row() {
    use lav_labs_gpu::labs::on_cuda::{Device, device_table};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs");
    let t = lav_gpusim::Table::load(&dir).unwrap();
    let pcie = Device {
        name: "NVIDIA H100 PCIe".into(),
        sms: 114,
        memory_bytes: 85_520_809_984,
        capability: (9, 0),
    };
    let item = device_table("cuda", &pcie, t.row_for_device(&pcie.name));
    let Primitive::Table(tb) = &item.primitive else {
        panic!()
    };
    assert_eq!(cell(tb, "name", "table row"), "H100 SXM 80GB");
    assert_eq!(cell(tb, "SMs", "driver"), "114");
    assert_eq!(cell(tb, "SMs", "table row"), "132");
    assert_eq!(tb.rows[1][3], "differs");
    assert_eq!(cell(tb, "memory", "driver"), "85.5 GB");
    assert!(item.provenance.label().contains("capability 9.0"));
    let rtx = Device {
        name: "NVIDIA GeForce RTX 4090".into(),
        sms: 128,
        memory_bytes: 25_757_220_864,
        capability: (8, 9),
    };
    let item = device_table("cuda", &rtx, t.row_for_device(&rtx.name));
    let Primitive::Table(tb) = &item.primitive else {
        panic!()
    };
    assert_eq!(cell(tb, "name", "table row"), "no row for this chip");
    assert_eq!(cell(tb, "SMs", "table row"), "—");
}
