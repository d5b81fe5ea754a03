//! The generation loop: prefill the prompt, then sample and decode one token at a
//! time against the KV cache, reporting each token as it comes.

use lav_model::sampler::{Sampled, Sampler};
use lav_model::{KvCache, Llama, ModelError, Result, Tokenizer};
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct GenerationStats {
    pub prompt_tokens: usize,
    pub generated: Vec<u32>,
    /// Why generation ended: "stop_token", "max_tokens", "context" or "caller".
    pub finish: &'static str,
    pub prefill_seconds: f64,
    pub decode_seconds: f64,
}

impl GenerationStats {
    pub fn prefill_tok_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill_seconds.max(1e-9)
    }
    /// Decode rate over the tokens that ran a forward pass (the first comes from prefill).
    pub fn decode_tok_s(&self) -> f64 {
        let steps = self.generated.len().saturating_sub(1);
        steps as f64 / self.decode_seconds.max(1e-9)
    }
}

/// Generates up to `max_tokens` after `prompt`. `on_token` sees each token, how it was
/// sampled and the logits it was sampled from, before it is fed back; returning
/// `false` stops. Stop tokens end generation and are not fed.
pub fn generate(
    model: &Llama,
    tok: &Tokenizer,
    prompt: &[u32],
    sampler: &mut Sampler,
    max_tokens: usize,
    cache: &mut KvCache,
    mut on_token: impl FnMut(u32, &Sampled, &[f32]) -> bool,
) -> Result<GenerationStats> {
    let ctx = model.config.context_length;
    if cache.len() + prompt.len() > ctx {
        return Err(ModelError::ContextOverflow {
            tokens: cache.len() + prompt.len(),
            context: ctx,
        });
    }
    let mut history: Vec<u32> = prompt.to_vec();
    let t0 = Instant::now();
    let mut logits = model.next_logits(prompt, cache)?;
    let prefill_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut generated = Vec::new();
    let mut finish = "max_tokens";
    while generated.len() < max_tokens {
        let s = sampler.sample(&logits, &history);
        if tok.is_stop(s.token) {
            finish = "stop_token";
            break;
        }
        generated.push(s.token);
        history.push(s.token);
        if !on_token(s.token, &s, &logits) {
            finish = "caller";
            break;
        }
        if generated.len() == max_tokens {
            break;
        }
        if cache.len() + 1 > ctx {
            finish = "context";
            break;
        }
        logits = model.next_logits(&[s.token], cache)?;
    }
    Ok(GenerationStats {
        prompt_tokens: prompt.len(),
        generated,
        finish,
        prefill_seconds,
        decode_seconds: t1.elapsed().as_secs_f64(),
    })
}
