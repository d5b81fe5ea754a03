//! Re-quantizing SmolLM2: candle's GGML quantizers on the real weights, and what the
//! whole model loses, measured. (The quantization lab's tests are in `lav-labs-llm`.)

use lav_model::Quant;
use lav_model::model::round_trip;
use lav_model::score::{all_logits, perplexity};
use lav_tests::{labs_dir, model, tokenizer};

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
