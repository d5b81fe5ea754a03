//! The generation, kv-cache and quantization labs on the real model: the facts each
//! must get right, checked against independent computations.

use super::session;
use lav_lab::Session;
use lav_scene::{Primitive, Table};
use lav_testkit::{bars, model, scene_at, table, text, tokenizer};

const PROMPT: &str = "Once upon a time, there was a";

/// The prompt's next-token probabilities after temperature `t`, most likely first,
/// computed here in f64 from the model's logits (independent of the sampler).
fn reference_probs(t: f64) -> Vec<(u32, f64)> {
    let ids = tokenizer().encode(PROMPT).unwrap();
    let mut cache = model().new_cache();
    let l = model().next_logits(&ids, &mut cache).unwrap();
    let max = l.iter().cloned().fold(f32::MIN, f32::max) as f64;
    let e: Vec<f64> = l.iter().map(|&z| ((z as f64 - max) / t).exp()).collect();
    let s: f64 = e.iter().sum();
    let mut p: Vec<(u32, f64)> = e
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u32, v / s))
        .collect();
    p.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    p
}

fn kept(t: &Table, stage: usize) -> usize {
    t.rows[stage][1].split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn generation_low_temperature_is_argmax() {
    let mut s = session("generation");
    let top = reference_probs(1.0)[0].0;
    let piece = lav_labs_llm::bpe::show_bytes(&tokenizer().token_bytes(top));
    {
        let t = "0";
        let sc = scene_at(
            &mut s,
            "loop",
            &[&format!("temperature={t}"), "top_k=0", "top_p=1"],
        );
        let d = bars(&sc, "distribution");
        // The drawn token is highlighted and is the argmax of the real logits.
        let picked: Vec<&str> = d
            .bars
            .iter()
            .filter(|b| b.role == lav_scene::Role::Highlight)
            .map(|b| b.label.as_str())
            .collect();
        assert_eq!(picked, [piece.as_str()], "T = {t}");
        assert!(d.bars[0].value > 0.99, "T = {t}: {}", d.bars[0].value);
    }
    // A whole continuation at T → 0 is greedy decoding.
    let ids = tokenizer().encode(PROMPT).unwrap();
    let cold = lav_labs_llm::labs::generation::continuation(
        model(),
        tokenizer(),
        &ids,
        lav_model::SamplerConfig {
            temperature: 0.001,
            ..Default::default()
        },
        |_| true,
    )
    .unwrap();
    assert_eq!(
        cold.tokens,
        lav_testkit::lav_greedy(&ids, cold.tokens.len())
    );
}

#[test]
fn generation_entropy_has_its_unit_and_two_computations_agree() {
    let mut s = session("generation");
    let sc = scene_at(&mut s, "temperature", &["temperature=0.8"]);
    let t = table(&sc, "entropy");
    assert_eq!(t.columns[1..3], ["H (nats)", "H (bits)"]);
    let nats: f64 = t.rows[1][1].parse().unwrap();
    let bits: f64 = t.rows[1][2].parse().unwrap();
    assert!((nats / std::f64::consts::LN_2 - bits).abs() < 1e-3);
    // Independent: −Σ p ln p from the f64 reference probabilities at T = 0.8.
    let h: f64 = reference_probs(0.8)
        .iter()
        .filter(|x| x.1 > 0.0)
        .map(|x| -x.1 * x.1.ln())
        .sum();
    assert!((h - nats).abs() < 1e-3, "{h} vs {nats}");
    // The curve (computed without sorting) passes through the same point.
    let curve = match &sc.item("entropy_curve").unwrap().primitive {
        Primitive::Plot(p) => p.series[0].points.clone(),
        _ => unreachable!(),
    };
    let at = curve.iter().find(|p| (p.0 - 0.8).abs() < 1e-9).unwrap();
    assert!((at.1 - bits).abs() < 1e-3, "{at:?} vs {bits}");
}

#[test]
fn generation_top_p_keeps_the_smallest_nucleus_after_top_k_and_temperature() {
    let mut s = session("generation");
    for (t, k, p) in [(0.8, 40, 0.9), (1.5, 0, 0.5), (0.5, 5, 0.95), (1.0, 0, 0.3)] {
        let sc = scene_at(
            &mut s,
            "filters",
            &[
                &format!("temperature={t}"),
                &format!("top_k={k}"),
                &format!("top_p={p}"),
                "min_p=0",
            ],
        );
        let chain = table(&sc, "chain");
        // The order on screen is the order applied.
        let names: Vec<&str> = chain
            .rows
            .iter()
            .map(|r| r[0].split(' ').nth(1).unwrap())
            .collect();
        assert_eq!(names, ["temperature", "top-k,", "top-p,", "min-p"]);
        let probs = reference_probs(t);
        let after_k = if k == 0 { probs.len() } else { k };
        assert_eq!(kept(chain, 1), after_k);
        let mass: f64 = probs[..after_k].iter().map(|x| x.1).sum();
        let n = kept(chain, 2);
        let cum = |m: usize| probs[..m].iter().map(|x| x.1).sum::<f64>() / mass;
        assert!(
            cum(n) >= p - 1e-5,
            "T {t} k {k} p {p}: {} tokens reach only {}",
            n,
            cum(n)
        );
        assert!(
            n == 1 || cum(n - 1) < p + 1e-5,
            "T {t} k {k} p {p}: {} is not the smallest",
            n
        );
    }
}

#[test]
fn generation_same_seed_same_text_and_compare_finds_the_divergence() {
    let mut s = session("generation");
    let a = scene_at(&mut s, "sample", &["seed=7", "temperature=1.0"]);
    let b = scene_at(&mut s, "sample", &["reroll=1"]);
    assert_eq!(text(&a, "text"), text(&b, "text"));
    let check = table(&b, "roll")
        .lookup("re-roll check", "value")
        .unwrap()
        .to_string();
    assert!(
        check.contains("identical to roll #1 with seed 7: yes"),
        "{check}"
    );
    let c = scene_at(&mut s, "sample", &["seed=8", "reroll=2"]);
    assert_ne!(
        text(&a, "text"),
        text(&c, "text"),
        "another seed, another story"
    );

    let sc = scene_at(&mut s, "compare", &["t_a=0.2", "t_b=1.2", "seed=7"]);
    let body = text(&sc, "divergence");
    assert!(body.contains("first differ at generated token"), "{body}");
    let strip = |id: &str| match &sc.item(id).unwrap().primitive {
        Primitive::TokenStrip(t) => t.tokens.clone(),
        _ => unreachable!(),
    };
    let (x, y) = (strip("a"), strip("b"));
    let d = x
        .iter()
        .position(|c| c.highlight)
        .expect("divergence highlighted");
    assert_eq!(y.iter().position(|c| c.highlight), Some(d));
    assert_eq!(x[..d], y[..d]);
    assert_ne!(x[d].id, y[d].id);
}

#[test]
fn kv_cache_counts_projections_and_cached_logits_equal_uncached() {
    let mut s = session("kv-cache");
    let sc = scene_at(
        &mut s,
        "recompute",
        &["tokens=8", "prompt=The cat sat on the mat."],
    );
    let p = tokenizer().encode("The cat sat on the mat.").unwrap().len();
    let n = 8;
    let t = table(&sc, "counter");
    let counted = |col: &str| -> usize {
        t.lookup("K/V projections per layer (counted)", col)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(counted("with the cache"), p + n - 1);
    assert_eq!(counted("recomputing"), n * p + n * (n - 1) / 2);
    assert_eq!(
        t.lookup("from a 1-token prompt", "recomputing").unwrap(),
        format!("n(n+1)/2 = {}", n * (n + 1) / 2)
    );
    let check = text(&sc, "check");
    assert!(
        check.contains("cached logits = uncached logits: yes, bit for bit"),
        "{check}"
    );
    // The toggle changes what is highlighted, not the measurement.
    let off = scene_at(&mut s, "recompute", &["cache=off"]);
    let b = bars(&off, "projections");
    assert_eq!(b.bars[1].role, lav_scene::Role::Highlight);
    assert_eq!(b.bars[1].value as usize, n * p + n * (n - 1) / 2);
}

#[test]
fn kv_cache_shows_the_models_real_keys_and_values() {
    let prompt = "Paris is the capital of France.";
    let ids = tokenizer().encode(prompt).unwrap();
    let m = model();
    let mut cache = m.new_cache();
    let mut cap = lav_model::Capture::new();
    m.forward(&ids, &mut cache, lav_model::Logits::All, Some(&mut cap))
        .unwrap();
    let mut s = session("kv-cache");
    for (layer, head, which) in [(0, 0, "K"), (17, 2, "K"), (29, 1, "V")] {
        let sc = scene_at(
            &mut s,
            "tensors",
            &[
                &format!("prompt={prompt}"),
                &format!("layer={layer}"),
                &format!("kv_head={head}"),
                &format!("which={which}"),
            ],
        );
        let h = match &sc.item("kv").unwrap().primitive {
            Primitive::Heatmap(h) => h,
            _ => unreachable!(),
        };
        let lc = &cap.layers[layer];
        let t = if which == "K" { &lc.k } else { &lc.v };
        // Capture: (1, kv_heads, L, head_dim).
        let want: Vec<f32> = t
            .get(0)
            .unwrap()
            .get(head)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(h.values, want, "layer {layer} head {head} {which}");
        assert_eq!((h.rows.len(), h.cols.len()), (ids.len(), 64));
        let size = table(&sc, "size");
        assert!(
            size.lookup("values per token", "value")
                .unwrap()
                .ends_with("= 11520")
        );
        assert_eq!(
            size.lookup("bytes per token at 16-bit", "value").unwrap(),
            "23040 B = 22.5 KiB"
        );
    }
}

#[test]
fn kv_cache_memory_calculator_matches_the_published_worked_values() {
    let mut s = session("kv-cache");
    let per_token = |s: &mut Session, set: &[&str]| {
        let sc = scene_at(s, "memory", set);
        let t = table(&sc, "calculator");
        (
            t.lookup("per token", "value").unwrap().to_string(),
            t.lookup("total", "value").unwrap().to_string(),
            sc,
        )
    };
    assert_eq!(per_token(&mut s, &["dtype=fp16/bf16"]).0, "22.5 KiB");
    assert_eq!(per_token(&mut s, &["dtype=fp32"]).0, "45.0 KiB");
    assert_eq!(
        per_token(&mut s, &["dtype=fp16/bf16", "preset=Llama-2-7B"]).0,
        "512.0 KiB"
    );
    assert_eq!(per_token(&mut s, &["preset=Llama-3-8B"]).0, "128.0 KiB");
    let (pt, total, sc) = per_token(&mut s, &["preset=Llama-3-70B", "context=131072", "batch=1"]);
    assert_eq!(pt, "320.0 KiB");
    assert!(total.starts_with("40.00 GiB"), "{total}");
    // 40 GiB of an 80 GB H100: the share comes from the hardware table.
    let g = bars(&sc, "gpu");
    let h100 = 100.0 * 40.0 * 1024f64.powi(3) / 80e9;
    assert!((g.bars[0].value - h100).abs() < 1e-9, "{}", g.bars[0].value);
    // MHA → GQA → MQA: 64 → 8 → 1 KV heads, each a factor heads/n_kv smaller.
    let sh = bars(&sc, "sharing");
    let v: Vec<f64> = sh.bars.iter().map(|b| b.value).collect();
    assert_eq!(v, [2560.0, 320.0, 40.0]);
    // The slider moves along it; impossible values are adjusted with a visible note.
    let (pt, _, _) = per_token(&mut s, &["kv_heads=1"]);
    assert_eq!(pt, "40.0 KiB");
    let (_, _, sc) = per_token(&mut s, &["kv_heads=100"]);
    assert!(text(&sc, "notes").contains("clamped to 64"));
    let e = s.set_raw("kv_heads=500").unwrap_err().to_string();
    assert!(e.contains("0 to 128") && !e.contains('\n'), "{e}");
}

#[test]
fn kv_cache_roofline_puts_prefill_n_times_further_right_than_decode() {
    let mut s = session("kv-cache");
    let sc = scene_at(&mut s, "roofline", &["prefill=32"]);
    let t = table(&sc, "numbers");
    let ai = |col: &str| -> f64 {
        t.lookup("FLOP per weight byte (stored Q4_1 weights)", col)
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!((ai("prefill") / ai("decode") - 32.0).abs() < 0.01 * 32.0);
    assert!(matches!(
        sc.item("gpu_roofline").unwrap().provenance,
        lav_scene::Provenance::Simulated { .. }
    ));
    // The ridge is this machine's measured peak over its measured bandwidth, and each
    // phase is bound by whichever side of it its intensity falls: whatever the CPU.
    let m = table(&sc, "machine");
    let best = |row: usize| -> f64 { m.rows[row][1].parse().unwrap() };
    let ridge = best(2) / best(0);
    let label = &t.rows[2][0];
    let shown: f64 = label
        .trim_start_matches("on this CPU (ridge ")
        .trim_end_matches(" FLOP/B)")
        .parse()
        .unwrap_or_else(|_| panic!("{label}"));
    assert!(
        (shown - ridge).abs() <= 0.05 * ridge + 0.05,
        "{shown} vs {ridge}"
    );
    for (col, phase) in [(1, "prefill"), (2, "decode")] {
        let want = if ai(phase) < ridge {
            "memory-bound"
        } else {
            "compute-bound"
        };
        assert_eq!(t.rows[2][col], want, "{phase}: {} FLOP/B", ai(phase));
    }
}
