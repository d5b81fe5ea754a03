//! The quantization lab on the real model: grids, outliers, formats, and the
//! re-quantized model measured against the stored one.

use lav_model::score::{all_logits, perplexity};
use lav_scene::{Primitive, Table};
use lav_testkit::{model, scene_at as scene, table, tokenizer};

fn heldout() -> Vec<u32> {
    let text = std::fs::read_to_string(lav_testkit::labs_dir().join("data/heldout.txt")).unwrap();
    tokenizer().encode(&text).unwrap()
}

fn session() -> lav_lab::Session {
    super::session("quantization")
}

#[test]
fn the_lab_shows_grids_outliers_formats_and_the_names() {
    let mut s = session();
    let num = |t: &Table, row: &str| -> f64 { t.lookup(row, "value").unwrap().parse().unwrap() };
    // An outlier stretches a per-tensor grid over everything; groups contain it.
    let rest = |s: &mut lav_lab::Session, gran: &str| {
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
    let mut s = session();
    s.go_to("model").unwrap();
    s.set_raw("model_format=Q8_0").unwrap();
    // The first answer comes at once, with progress; the result follows.
    let first = s.scene().unwrap();
    assert!(matches!(first.items[0].primitive, Primitive::Progress(_)));
    let sc = s.scene_settled(|_| {}).unwrap();
    let t = table(&sc, "consequences");
    let cell = |row: &str, col: &str| -> f64 { t.lookup(row, col).unwrap().parse().unwrap() };
    let toks = heldout();
    let vocab = model().config.vocab_size;
    let stored = all_logits(model(), &toks).unwrap();
    let want = perplexity(&stored, &toks, vocab);
    assert!(
        (cell(
            "perplexity on the held text",
            "stored (Q4_1 + Q8_0 embeddings)"
        ) - want)
            .abs()
            < 1e-3 * want
    );
    // KL(stored ‖ Q8_0) per position, recomputed here in f64 from both models' logits.
    let kl = cell("KL(stored ‖ this), mean over the held text (nats)", "Q8_0");
    let q8 = model()
        .requantized(lav_model::Quant::Q8_0, |_, _| true)
        .unwrap();
    let requant = all_logits(&q8, &toks).unwrap();
    let log_softmax = |l: &[f32]| -> Vec<f64> {
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z = l.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln();
        l.iter().map(|&x| x as f64 - max - z).collect()
    };
    let rows = stored.len() / vocab;
    let mean: f64 = (0..rows)
        .map(|r| {
            let (p, q) = (
                log_softmax(&stored[r * vocab..(r + 1) * vocab]),
                log_softmax(&requant[r * vocab..(r + 1) * vocab]),
            );
            p.iter()
                .zip(&q)
                .map(|(a, b)| a.exp() * (a - b))
                .sum::<f64>()
        })
        .sum::<f64>()
        / rows as f64;
    assert!((kl - mean).abs() <= 5e-3 * mean, "the lab's {kl} vs {mean}");
    assert!(sc.item("greedy_quant").unwrap().provenance.is_what_if());

    // The project's own schemes apply to the whole model too (computed in f32, with
    // the bits the format would store): INT8 groups of 128 stay close, INT4 per
    // tensor does not.
    let run = |s: &mut lav_lab::Session, set: &[&str]| {
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
