//! The model's hyper-parameters, read from the GGUF metadata.

use serde::Serialize;

/// Hyper-parameters read from the GGUF metadata.
#[derive(Clone, Debug, Serialize)]
pub struct LlamaConfig {
    pub name: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f32,
    pub tied_embeddings: bool,
}
