//! Measurements of the model as the engine runs it: a greedy decode with the KV cache
//! and again recomputing every position (time per token, K/V projections, the largest
//! logit difference), prefill and decode throughput, and the matmul work per token.

use lav_model::sampler::argmax;
use lav_model::{Llama, Logits, ModelCard, ModelError, Tokenizer};
use std::time::Instant;

/// How long-running engine work reports how far it got, and learns that it is no
/// longer wanted (a lab's inputs changed): it checks between units of work.
pub trait Progress: Sync {
    fn set(&self, done: u64, total: u64, label: &str);
    fn cancelled(&self) -> bool;
}

/// Progress nobody watches: for benchmarks and tests.
pub struct Quiet;

impl Progress for Quiet {
    fn set(&self, _: u64, _: u64, _: &str) {}
    fn cancelled(&self) -> bool {
        false
    }
}

#[derive(Debug)]
pub enum EngineError {
    Model(ModelError),
    /// The caller cancelled through [`Progress::cancelled`].
    Cancelled,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Model(e) => e.fmt(f),
            EngineError::Cancelled => f.write_str("cancelled: the inputs changed"),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<ModelError> for EngineError {
    fn from(e: ModelError) -> Self {
        EngineError::Model(e)
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;

fn check(p: &dyn Progress) -> Result<()> {
    if p.cancelled() {
        Err(EngineError::Cancelled)
    } else {
        Ok(())
    }
}

/// A greedy decode run twice: with the cache, and recomputing every position.
pub struct Decode {
    pub prompt_len: usize,
    pub tokens: Vec<u32>,
    /// Milliseconds per generated token (the first includes the prompt's prefill).
    pub cached_ms: Vec<f64>,
    pub uncached_ms: Vec<f64>,
    /// K/V projections per layer, counted by the cache as they were computed.
    pub cached_projections: usize,
    pub uncached_projections: usize,
    /// Largest |cached − uncached| over every logit of every step.
    pub max_logit_diff: f32,
}

/// Greedy-decodes `n` tokens after `prompt` with the cache, then again recomputing
/// the whole sequence for every token, counting projections and comparing logits.
pub fn decode_both(model: &Llama, prompt: &[u32], n: usize, p: &dyn Progress) -> Result<Decode> {
    let mut cache = model.new_cache();
    let (mut tokens, mut cached_ms, mut logits_cached) = (Vec::new(), Vec::new(), Vec::new());
    let mut feed = prompt.to_vec();
    for i in 0..n {
        check(p)?;
        p.set(
            i as u64,
            2 * n as u64,
            &format!("with the cache: token {} of {n}", i + 1),
        );
        let t = Instant::now();
        let l = model.next_logits(&feed, &mut cache)?;
        cached_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let next = argmax(&l).0;
        tokens.push(next);
        logits_cached.push(l);
        feed = vec![next];
    }
    let cached_projections = cache.projections_per_layer();
    let mut fresh = model.new_cache();
    let (mut uncached_ms, mut max_diff) = (Vec::new(), 0f32);
    for i in 0..n {
        check(p)?;
        p.set(
            (n + i) as u64,
            2 * n as u64,
            &format!("recomputing: token {} of {n}", i + 1),
        );
        fresh.clear();
        let mut seq = prompt.to_vec();
        seq.extend(&tokens[..i]);
        let t = Instant::now();
        let l = model.next_logits(&seq, &mut fresh)?;
        uncached_ms.push(t.elapsed().as_secs_f64() * 1e3);
        for (a, b) in l.iter().zip(&logits_cached[i]) {
            max_diff = max_diff.max((a - b).abs());
        }
    }
    Ok(Decode {
        prompt_len: prompt.len(),
        tokens,
        cached_ms,
        uncached_ms,
        cached_projections,
        uncached_projections: fresh.projections_per_layer(),
        max_logit_diff: max_diff,
    })
}

/// Prefill and decode throughput measured on this machine.
pub struct Speeds {
    pub prefill_tokens: usize,
    pub prefill_s: f64,
    pub decode_tokens: usize,
    pub decode_s: f64,
}

/// Tokens decoded one at a time after the prefill in [`measure_speeds`].
pub const DECODE_STEPS: usize = 16;

/// Times a prefill of `n` tokens of real text, then [`DECODE_STEPS`] greedy decode
/// steps on its cache.
pub fn measure_speeds(
    model: &Llama,
    tok: &Tokenizer,
    n: usize,
    p: &dyn Progress,
) -> Result<Speeds> {
    check(p)?;
    p.set(1, 3, &format!("prefill of {n} tokens"));
    // Any real text will do: the cost depends on the count, not the words.
    let base =
        tok.encode("Each generation of hardware changed which programs were practical to write. ")?;
    let prompt: Vec<u32> = base.iter().cycle().take(n).copied().collect();
    let mut cache = model.new_cache();
    let t = Instant::now();
    model.forward(&prompt, &mut cache, Logits::Last, None)?;
    let prefill_s = t.elapsed().as_secs_f64();
    p.set(2, 3, &format!("decoding {DECODE_STEPS} tokens"));
    let t = Instant::now();
    let mut next = prompt[n - 1];
    for _ in 0..DECODE_STEPS {
        check(p)?;
        next = argmax(&model.next_logits(&[next], &mut cache)?).0;
    }
    Ok(Speeds {
        prefill_tokens: n,
        prefill_s,
        decode_tokens: DECODE_STEPS,
        decode_s: t.elapsed().as_secs_f64(),
    })
}

/// The model's matmul work per token: (FLOPs, weight bytes read), from the tensors it
/// computes with (attention, MLP and the output head; attention scores excluded).
pub fn per_token_cost(model: &Llama) -> (f64, f64) {
    let card = ModelCard::of(model);
    let p = &card.parameters;
    let head = if p.output_head == 0 {
        p.embeddings
    } else {
        p.output_head
    };
    let flops = 2.0 * (p.attention + p.mlp + head) as f64;
    let bytes: usize = card.compute_bytes_by_type.values().sum();
    (flops, bytes as f64)
}
