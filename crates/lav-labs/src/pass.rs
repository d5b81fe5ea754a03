//! One instrumented forward pass over a prompt, kept by the labs that show it and
//! recomputed only when the prompt changes.

use crate::error::{LabError, Result};
use lav_model::{Capture, Llama, Logits, Tokenizer};

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
        model.forward(&tokens, &mut cache, Logits::All, Some(&mut capture))?;
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
    let tokens = tok.encode(prompt)?;
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
    Ok(t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(lav_model::ModelError::from)?)
}

/// Keeps the last pass and reruns only for a new prompt.
#[derive(Default)]
pub struct PassCache {
    pass: Option<Pass>,
}

impl PassCache {
    pub fn get(&mut self, model: &Llama, tok: &Tokenizer, prompt: &str) -> Result<&Pass> {
        if self.pass.as_ref().is_none_or(|p| p.prompt != prompt) {
            self.pass = Some(Pass::run(model, tok, prompt)?);
        }
        Ok(self.pass.as_ref().expect("just set"))
    }
}
