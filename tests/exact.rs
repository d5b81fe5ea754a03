//! The stored model's own numbers: lav's forward pass against an independent float64
//! pass over the same GGUF (`tests/reference/f64_forward.py`, golden data in
//! `tests/golden/f64_forward.json`). The default path computes the stored Q4_1 blocks
//! against f32 activations, so it must sit within f32 rounding of the reference;
//! the llama.cpp-style 8-bit path is a labelled option and is only reported.

use lav_model::sampler::argmax;
use lav_model::{Activations, Capture, Llama, Logits, WeightFormat};
use lav_tests::{default_gguf, golden, ids, model};
use serde_json::Value;

/// Mean |Δ log p| over the reference's top tokens, the distance the issue states.
const MAX_NATS: f64 = 0.01;

fn cases() -> Vec<Value> {
    let g = golden("f64_forward.json");
    // The golden data belongs to one file: the stored model, by its hash.
    let m = lav_store::manifest("smollm2-135m-instruct").unwrap();
    let main = m.files.iter().find(|f| f.name == m.main_file).unwrap();
    assert_eq!(g["model_sha256"].as_str(), Some(main.sha256.as_str()));
    g["cases"].as_array().unwrap().clone()
}

fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    logits.iter().map(|&x| x as f64 - max - z.ln()).collect()
}

/// Mean |Δ log p| of `m`'s last-position distribution from the reference's top 20.
fn distance(m: &Llama, case: &Value) -> f64 {
    let prompt = ids(&case["ids"]);
    let logits = m
        .forward(&prompt, &mut m.new_cache(), Logits::Last, None)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let lp = log_softmax(&logits);
    let top = case["top"].as_array().unwrap();
    top.iter()
        .map(|p| {
            let (id, want) = (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap());
            (lp[id] - want).abs()
        })
        .sum::<f64>()
        / top.len() as f64
}

#[test]
fn the_default_path_is_within_a_hundredth_of_a_nat_of_the_f64_reference() {
    let cases = cases();
    assert!(cases.len() >= 6);
    assert!(
        cases
            .iter()
            .any(|c| c["ids"].as_array().unwrap().len() >= 200)
    );
    let m = model();
    assert_eq!(
        m.activations,
        Activations::F32,
        "f32 activations are the default"
    );
    let q8 = Llama::load(&default_gguf(), WeightFormat::Stored)
        .unwrap()
        .with_activations(Activations::Q8);
    for c in &cases {
        let (exact, int8) = (distance(m, c), distance(&q8, c));
        let n = c["ids"].as_array().unwrap().len();
        println!("{n:4} tokens: default {exact:.5} nats, 8-bit activations {int8:.5} nats");
        assert!(
            exact <= MAX_NATS,
            "{n}-token prompt: {exact} nats from the f64 reference"
        );
        assert!(
            exact < int8,
            "the default is closer to the model than the 8-bit path"
        );
    }
}

/// Relative L2 distance of lav's last-position residual stream after each layer from
/// the reference's.
const MAX_LAYER_REL: f64 = 1e-3;

#[test]
fn every_layers_activations_are_the_reference_pass_to_f32_rounding() {
    let m = model();
    for c in cases().iter().take(2) {
        let prompt = ids(&c["ids"]);
        let mut cap = Capture::new();
        m.forward(&prompt, &mut m.new_cache(), Logits::Last, Some(&mut cap))
            .unwrap();
        let layers = c["layers"].as_array().unwrap();
        assert_eq!(layers.len(), cap.layers.len());
        for (l, (want, got)) in layers.iter().zip(&cap.layers).enumerate() {
            let got = got
                .resid_out
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let h = m.config.hidden_size;
            let got = &got[got.len() - h..];
            let (mut d2, mut w2) = (0f64, 0f64);
            for (g, w) in got.iter().zip(want.as_array().unwrap()) {
                let w = w.as_f64().unwrap();
                d2 += (*g as f64 - w).powi(2);
                w2 += w * w;
            }
            let rel = (d2 / w2).sqrt();
            assert!(rel <= MAX_LAYER_REL, "layer {l}: relative distance {rel}");
        }
    }
}

/// Greedy ids and, at each step, the top-2 logit margin.
fn greedy(m: &Llama, prompt: &[u32], n: usize) -> Vec<(u32, f32)> {
    let mut cache = m.new_cache();
    let mut logits = m.next_logits(prompt, &mut cache).unwrap();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (t, best) = argmax(&logits);
        let second = logits
            .iter()
            .enumerate()
            .filter(|&(i, _)| i as u32 != t)
            .map(|(_, &v)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        out.push((t, best - second));
        logits = m.next_logits(&[t], &mut cache).unwrap();
    }
    out
}

#[test]
fn the_default_path_writes_what_the_f32_weights_write() {
    // `--weights f32` dequantizes the blocks and multiplies in candle's f32 GEMM: the
    // same model through other code. Greedy text may only part where the f32 path
    // itself nearly ties.
    let f32w = Llama::load(&default_gguf(), WeightFormat::F32).unwrap();
    let m = model();
    for c in cases().iter().take(4) {
        let prompt = ids(&c["ids"]);
        let (a, b) = (greedy(m, &prompt, 64), greedy(&f32w, &prompt, 64));
        if let Some(i) = (0..64).find(|&i| a[i].0 != b[i].0) {
            assert!(
                b[i].1 < 0.01,
                "step {i}: {} vs {} where the f32 path's top-2 margin is {}",
                a[i].0,
                b[i].0,
                b[i].1
            );
            println!("parted at step {i} (f32 margin {:.4})", b[i].1);
        }
    }
}
