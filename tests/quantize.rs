//! Re-quantizing SmolLM2: candle's GGML quantizers on the real weights, the
//! quantization lab, and what the whole model loses, measured.

use lav_labs::open_session;
use lav_model::Quant;
use lav_model::model::round_trip;
use lav_model::score::{all_logits, perplexity};
use lav_scene::{Primitive, Table};
use lav_tests::{lab_context, labs_dir, model, scene_at as scene, table, tokenizer};

fn heldout() -> Vec<u32> {
    let text = std::fs::read_to_string(labs_dir().join("data/heldout.txt")).unwrap();
    tokenizer().encode(&text).unwrap()
}

fn rmse(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    (s / a.len() as f64).sqrt()
}

#[test]
fn bits_per_weight_are_ggmls_block_sizes() {
    // ggml's block layouts: bytes per block × 8 / weights per block.
    let want = [
        (Quant::F16, 16.0),
        (Quant::Q8_0, 34.0 * 8.0 / 32.0),
        (Quant::Q6K, 210.0 * 8.0 / 256.0),
        (Quant::Q5K, 176.0 * 8.0 / 256.0),
        (Quant::Q4_1, 20.0 * 8.0 / 32.0),
        (Quant::Q4K, 144.0 * 8.0 / 256.0),
        (Quant::Q4_0, 18.0 * 8.0 / 32.0),
        (Quant::Q3K, 110.0 * 8.0 / 256.0),
        (Quant::Q2K, 84.0 * 8.0 / 256.0),
    ];
    for (q, bits) in want {
        assert_eq!(q.bits_per_weight(), bits, "{}", q.name());
    }
    assert_eq!(Quant::Q4_1.bits_per_weight(), 5.0);
    assert_eq!(Quant::parse("q4_k"), Some(Quant::Q4K));
    assert_eq!(Quant::parse("Q4K"), Some(Quant::Q4K));
    assert_eq!(Quant::parse("q9"), None);
}

#[test]
fn q4_1_reproduces_the_stored_weights_exactly_and_error_falls_as_bits_rise() {
    let m = model();
    for layer in [0, 13, 29] {
        let l = &m.layers[layer];
        for lin in [&l.wqkv, &l.w_down] {
            let (rows, cols, w) = lin.to_f32().unwrap();
            assert_eq!(
                round_trip(&w, rows, cols, Quant::Q4_1).unwrap(),
                w,
                "layer {layer}"
            );
            let e = |q| rmse(&w, &round_trip(&w, rows, cols, q).unwrap());
            let (q8, q4, q2) = (e(Quant::Q8_0), e(Quant::Q4K), e(Quant::Q2K));
            assert!(
                q8 < q4 && q4 < q2,
                "layer {layer} {cols} cols: {q8} {q4} {q2}"
            );
        }
    }
}

#[test]
fn whole_model_perplexity_rises_from_q8_0_to_q2_k() {
    let m = model();
    let toks = heldout();
    let v = m.config.vocab_size;
    let stored = perplexity(&all_logits(m, &toks).unwrap(), &toks, v);
    let mut last = 0.0;
    let mut seen = Vec::new();
    for q in [
        Quant::Q8_0,
        Quant::Q6K,
        Quant::Q5K,
        Quant::Q4K,
        Quant::Q3K,
        Quant::Q2K,
    ] {
        let r = m.requantized(q, |_, _| true).unwrap();
        let ppl = perplexity(&all_logits(&r, &toks).unwrap(), &toks, v);
        seen.push(format!("{} {ppl:.2}", q.name()));
        assert!(ppl > last, "perplexity must rise: {seen:?}");
        last = ppl;
    }
    // Eight bits on top of four-bit weights costs almost nothing.
    let q8: f64 = seen[0].split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        (q8 / stored - 1.0).abs() < 0.02,
        "stored {stored}, {seen:?}"
    );
}

#[test]
fn the_lab_shows_grids_outliers_formats_and_the_names() {
    let mut s = open_session("quantization", &lab_context()).unwrap();
    let num = |t: &Table, row: &str| -> f64 { t.lookup(row, "value").unwrap().parse().unwrap() };
    // An outlier stretches a per-tensor grid over everything; groups contain it.
    let rest = |s: &mut lav_labs::Session, gran: &str| {
        let sc = scene(
            s,
            "weights",
            &[
                "format=INT4 sym",
                &format!("granularity={gran}"),
                "group=32",
                "outlier=on",
            ],
        );
        num(table(&sc, "numbers"), "RMSE on the other weights")
    };
    let (tensor, group) = (rest(&mut s, "per-tensor"), rest(&mut s, "group"));
    assert!(
        tensor > 5.0 * group,
        "per-tensor {tensor} vs groups {group}"
    );
    let sc = scene(&mut s, "weights", &["outlier=off", "format=Q8_0"]);
    assert_eq!(
        num(table(&sc, "numbers"), "bits per weight, scales included"),
        8.5
    );

    let sc = scene(&mut s, "formats", &["layer=3", "matrix=down"]);
    let f = table(&sc, "formats");
    let e = |name: &str| -> f64 { f.lookup(name, "RMSE").unwrap().parse().unwrap() };
    assert_eq!(
        e("Q4_1"),
        0.0,
        "the stored format reproduces the stored weights"
    );
    assert!(e("Q8_0") < e("Q4_K") && e("Q4_K") < e("Q2_K"));

    let sc = scene(&mut s, "background", &["gguf=Q4_K_M"]);
    let d = table(&sc, "decoder");
    assert!(
        d.lookup("K", "meaning")
            .unwrap()
            .contains("super-blocks of 256")
    );
    assert!(
        d.lookup("base type size", "meaning")
            .unwrap()
            .starts_with("4.5000 bits/weight")
    );
    assert!(matches!(
        sc.item("methods").unwrap().provenance,
        lav_scene::Provenance::Published { .. }
    ));
    s.set_raw("gguf=Z9").unwrap();
    let err = s.scene().unwrap_err().to_string();
    assert!(
        err.contains("not a GGUF type name") && !err.contains('\n'),
        "{err}"
    );
}

#[test]
fn the_lab_measures_the_requantized_model_against_the_stored_one() {
    let mut s = open_session("quantization", &lab_context()).unwrap();
    s.go_to("model").unwrap();
    s.set_raw("model_format=Q8_0").unwrap();
    // The first answer comes at once, with progress; the result follows.
    let first = s.scene().unwrap();
    assert!(matches!(first.items[0].primitive, Primitive::Progress(_)));
    let sc = s.scene_settled(|_| {}).unwrap();
    let t = table(&sc, "consequences");
    let cell = |row: &str, col: &str| -> f64 { t.lookup(row, col).unwrap().parse().unwrap() };
    let toks = heldout();
    let want = perplexity(
        &all_logits(model(), &toks).unwrap(),
        &toks,
        model().config.vocab_size,
    );
    assert!(
        (cell("perplexity on the held text", "stored (Q4_1 + Q8_0 head)") - want).abs()
            < 1e-3 * want
    );
    let kl = cell("KL(stored ‖ this), mean over the held text (nats)", "Q8_0");
    assert!(kl > 0.0 && kl < 0.05, "{kl}");
    assert!(sc.item("greedy_quant").unwrap().provenance.is_what_if());

    // The project's own schemes apply to the whole model too (computed in f32, with
    // the bits the format would store): INT8 groups of 128 stay close, INT4 per
    // tensor does not.
    let run = |s: &mut lav_labs::Session, set: &[&str]| {
        let sc = scene(s, "model", set);
        let t = table(&sc, "consequences").clone();
        let col = t.columns[2].clone();
        let get = |row: &str| -> f64 { t.lookup(row, &col).unwrap().parse().unwrap() };
        (
            get("bits per weight (matrices, scales included)"),
            get("KL(stored ‖ this), mean over the held text (nats)"),
        )
    };
    let (bits8, kl8) = run(
        &mut s,
        &["model_format=INT8 sym", "granularity=group", "group=128"],
    );
    // 8 bits + one FP16 scale per group of 128; a 576-wide row has 5 groups (the
    // last one short), a 1536-wide row 12.
    let c = &model().config;
    let (h, i, v) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let shapes = [(960, h), (h, 576), (2 * i, h), (h, i)];
    let (mut bits, mut n) = (0.0, 0.0);
    for (rows, cols) in shapes
        .iter()
        .cycle()
        .take(4 * c.num_layers)
        .chain([&(v, h)])
    {
        let w = (rows * cols) as f64;
        bits += w * (8.0 + 16.0 * cols.div_ceil(128) as f64 / *cols as f64);
        n += w;
    }
    assert!((bits8 - bits / n).abs() < 1e-4, "{bits8} vs {}", bits / n);
    assert!(kl8 < 0.05, "{kl8}");
    let (bits4, kl4) = run(&mut s, &["model_format=INT4 sym", "granularity=per-tensor"]);
    assert!(bits4 < 4.01 && kl4 > 10.0 * kl8, "{bits4} {kl4} vs {kl8}");
}
