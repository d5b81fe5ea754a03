//! One instrumented forward pass over a prompt, kept by the labs that show it and
//! recomputed only when the prompt changes.

use lav_lab::{LabError, Result, ResultExt};
use lav_model::{Capture, Llama, Logits, Tokenizer};
use std::sync::Arc;

/// Tokens a lab pass may hold: enough for a sentence or two, small enough that every
/// heatmap stays readable and the pass takes well under a second.
pub const MAX_TOKENS: usize = 48;

pub struct Pass {
    pub prompt: String,
    pub tokens: Vec<u32>,
    /// Each token as text, whitespace made visible.
    pub pieces: Vec<String>,
    pub capture: Capture,
}

impl Pass {
    pub fn run(model: &Llama, tok: &Tokenizer, prompt: &str) -> Result<Pass> {
        let tokens = prompt_tokens(tok, prompt)?;
        let mut cache = model.new_cache();
        let mut capture = Capture::new();
        model
            .forward(&tokens, &mut cache, Logits::All, Some(&mut capture))
            .lab()?;
        let pieces = tokens
            .iter()
            .map(|&t| crate::bpe::show_bytes(&tok.token_bytes(t)))
            .collect();
        Ok(Pass {
            prompt: prompt.to_string(),
            tokens,
            pieces,
            capture,
        })
    }
}

/// The learner's prompt as tokens: not empty, at most [`MAX_TOKENS`], or a one-line
/// error that says what to do.
pub fn prompt_tokens(tok: &Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    let tokens = tok.encode(prompt).lab()?;
    if tokens.is_empty() {
        return Err(LabError::Input(
            "the prompt is empty: type a few words".into(),
        ));
    }
    if tokens.len() > MAX_TOKENS {
        return Err(LabError::Input(format!(
            "the prompt is {} tokens; this lab takes at most {MAX_TOKENS}: shorten it",
            tokens.len()
        )));
    }
    Ok(tokens)
}

/// A captured tensor's values, flattened in row-major order.
pub fn values(t: &candle_core::Tensor) -> Result<Vec<f32>> {
    t.flatten_all().and_then(|t| t.to_vec1::<f32>()).lab()
}

/// Keeps the last pass and reruns only for a new prompt. The pass is shared, so a
/// step can hold it while it reads the lab's other fields.
#[derive(Default)]
pub struct PassCache {
    pass: Option<Arc<Pass>>,
}

impl PassCache {
    pub fn get(&mut self, model: &Llama, tok: &Tokenizer, prompt: &str) -> Result<Arc<Pass>> {
        match &self.pass {
            Some(p) if p.prompt == prompt => Ok(p.clone()),
            _ => {
                let p = Arc::new(Pass::run(model, tok, prompt)?);
                self.pass = Some(p.clone());
                Ok(p)
            }
        }
    }
}
