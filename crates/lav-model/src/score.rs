//! Scoring a model on text: perplexity, and the distance between two next-token
//! distributions. Used to measure what re-quantizing the weights costs.

use crate::error::{ModelError, Result};
use crate::model::{Llama, Logits};

/// Log-softmax of one logit row, in f64.
fn log_softmax(l: &[f32]) -> Vec<f64> {
    let max = l.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let lse = l.iter().map(|&x| (x as f64 - max).exp()).sum::<f64>().ln() + max;
    l.iter().map(|&x| x as f64 - lse).collect()
}

/// Every position's logits for `tokens` in one forward pass: `L × vocab`.
pub fn all_logits(model: &Llama, tokens: &[u32]) -> Result<Vec<f32>> {
    if tokens.len() < 2 {
        return Err(ModelError::Tokenizer(
            "scoring needs at least two tokens".into(),
        ));
    }
    let mut cache = model.new_cache();
    let t = model.forward(tokens, &mut cache, Logits::All, None)?;
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Perplexity `exp(−mean ln p(token_i | tokens_<i))` over positions 1.., from the
/// logits of [`all_logits`].
pub fn perplexity(logits: &[f32], tokens: &[u32], vocab: usize) -> f64 {
    let n = tokens.len() - 1;
    let nll: f64 = (0..n)
        .map(|i| -log_softmax(&logits[i * vocab..(i + 1) * vocab])[tokens[i + 1] as usize])
        .sum();
    (nll / n as f64).exp()
}

/// KL(p ‖ q) in nats between the softmax distributions of two logit rows: how much
/// `q` (a re-quantized model) misjudges the reference `p`.
pub fn kl_divergence(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let (lp, lq) = (log_softmax(p_logits), log_softmax(q_logits));
    lp.iter()
        .zip(&lq)
        .map(|(a, b)| a.exp() * (a - b))
        .sum::<f64>()
        .max(0.0)
}

/// Mean KL over every position of two `L × vocab` logit blocks.
pub fn mean_kl(p: &[f32], q: &[f32], vocab: usize) -> f64 {
    let rows = p.len() / vocab;
    (0..rows)
        .map(|r| {
            kl_divergence(
                &p[r * vocab..(r + 1) * vocab],
                &q[r * vocab..(r + 1) * vocab],
            )
        })
        .sum::<f64>()
        / rows as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexity_of_a_uniform_model_is_the_vocabulary() {
        let vocab = 8;
        let logits = vec![0.5f32; 3 * vocab];
        let p = perplexity(&logits, &[1, 2, 3], vocab);
        assert!((p - 8.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn kl_is_zero_for_equal_and_matches_the_formula() {
        assert_eq!(kl_divergence(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        // p = (0.5, 0.5), q = (0.8, 0.2): 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2).
        let q = [0.8f32.ln(), 0.2f32.ln()];
        let want = 0.5 * (0.5f64 / 0.8).ln() + 0.5 * (0.5f64 / 0.2).ln();
        assert!((kl_divergence(&[0.0, 0.0], &q) - want).abs() < 1e-6);
    }
}
