//! `lav-model`: the model runtime. No UI, no downloads.
//!
//! Loads a llama-architecture GGUF, rebuilds its tokenizer, and runs lav's own
//! forward pass on candle with an explicit KV cache and an optional capture recorder.
//! Matrix products on the default path use lav's block kernels on the stored
//! quantized weights, with llama.cpp's arithmetic. Also: the sampler, the model card
//! and the MiniLM sentence embedder.
//!
//! May depend on candle, tokenizers and small utility crates; never on a renderer,
//! a terminal crate, or the network.

pub mod capture;
pub mod card;
pub mod embedder;
pub mod error;
pub mod fused;
pub mod gguf;
pub mod kv_cache;
pub mod kv_pool;
pub mod loader;
pub mod matmul;
pub mod model;
pub mod ops;
pub mod quant;
pub mod sampler;
pub mod score;
pub mod tokenizer;
pub mod tool_format;

pub use capture::{Capture, LayerCapture};
pub use card::ModelCard;
pub use embedder::Embedder;
pub use error::{ModelError, Result};
pub use kv_cache::KvCache;
pub use kv_pool::KvPool;
pub use loader::Loader;
pub use matmul::Activations;
pub use model::{BatchSeq, Llama, LlamaConfig, Logits, NormPlacement, Quant, WeightFormat};
pub use sampler::{Filtered, Sampled, Sampler, SamplerConfig};
pub use tokenizer::{ChatMessage, TextStream, Tokenizer, chat_prompt};

/// Sets the number of compute threads (lav's kernels and candle's) once per process.
/// Later calls keep the first setting.
/// candle's CPU ops and lav's kernels share rayon's global pool.
pub fn set_threads(n: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .build_global();
}

/// Threads in the compute pool.
pub fn threads() -> usize {
    rayon::current_num_threads()
}
