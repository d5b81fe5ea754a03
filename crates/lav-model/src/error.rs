//! The runtime's errors. Each message is one line that says what went wrong and,
//! where the user can act, what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot open {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("{path} is corrupt or truncated: {reason}; delete it and run `lav models fetch`")]
    Corrupt { path: PathBuf, reason: String },
    #[error("unsupported model in {path}: {reason} (lav runs llama-architecture GGUF files)")]
    Unsupported { path: PathBuf, reason: String },
    #[error(
        "the prompt is {tokens} tokens but the model's context holds {context}; shorten it or lower --max-tokens"
    )]
    ContextOverflow { tokens: usize, context: usize },
    #[error("invalid sampling setting: {0}")]
    Sampling(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A batched step the engine described wrongly (a block table too short, a
    /// block outside the pool): a bug in the caller, reported rather than a panic.
    #[error("invalid batch: {0}")]
    Batch(String),
    /// A model could not be had (fetched, resolved): the loader's one-line reason.
    #[error("{0}")]
    Load(String),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, ModelError>;
