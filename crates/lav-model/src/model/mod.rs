//! lav's own llama forward pass on candle tensors, one concept per file: the config
//! (`config.rs`), the weight formats and re-quantization (`weights.rs`), one weight
//! matrix (`linear.rs`), loading a GGUF (`load.rs`) and the forward pass itself
//! (`forward.rs`).
//!
//! RMSNorm → attention (RoPE, grouped-query, causal softmax) → residual → RMSNorm →
//! SwiGLU MLP → residual, 30 times, then a final RMSNorm and the tied embedding as the
//! output head. Matrix products on the default path run lav's block kernels on the
//! stored quantized weights ([`crate::matmul`]); everything else is candle ops.

mod config;
mod forward;
mod linear;
mod load;
mod weights;

pub use config::LlamaConfig;
pub use linear::Linear;
pub use weights::{Quant, WeightFormat, quantize_matrix, round_trip};

use crate::matmul::QMatrix;
use candle_core::Device;

pub struct Layer {
    pub attn_norm: Vec<f32>,
    /// Q, K and V projections stacked into one matrix (rows `[q | k | v]`), so one
    /// threaded pass reads the normed input once. Row values are the stored ones.
    pub wqkv: Linear,
    pub wo: Linear,
    pub ffn_norm: Vec<f32>,
    /// MLP gate and up projections stacked (rows `[gate | up]`).
    pub w_gate_up: Linear,
    pub w_down: Linear,
}

/// The model: weights plus the RoPE tables. Immutable once loaded; per-sequence state
/// lives in a [`KvCache`].
pub struct Llama {
    pub config: LlamaConfig,
    pub format: WeightFormat,
    /// Token embeddings in their stored format; rows are dequantized on lookup.
    pub embeddings: QMatrix,
    pub layers: Vec<Layer>,
    pub final_norm: Vec<f32>,
    pub lm_head: Linear,
    /// Raw GGUF tensor facts for the model card: (name, ggml type, elements, bytes).
    pub tensors: Vec<(String, &'static str, usize, usize)>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    device: Device,
}

/// Which positions get logits from a forward call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position (generation).
    Last,
    /// Every position of the call (scoring, labs).
    All,
}

/// Where the RMSNorms sit in a block (see [`Llama::residual_stream`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormPlacement {
    /// Before each sub-layer, inside the residual branch: what this model does.
    Pre,
    /// After each residual add (the original Transformer): a what-if.
    Post,
}

impl Llama {
    pub fn device(&self) -> &Device {
        &self.device
    }
}
