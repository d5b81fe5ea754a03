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

use crate::matmul::{Activations, QMatrix};
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
    /// How activations meet the stored blocks in lav's kernels (f32 by default).
    pub activations: Activations,
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

/// One sequence's part of a batched step ([`Llama::forward_batch`]): its new
/// `tokens` at positions `start..`, where its K/V live (`block_table`, blocks of the
/// pool), and whether to return logits for its last position.
#[derive(Clone, Copy, Debug)]
pub struct BatchSeq<'a> {
    pub tokens: &'a [u32],
    pub start: usize,
    pub block_table: &'a [u32],
    pub logits: bool,
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

    /// This model computing with `act` (see [`Activations`]).
    pub fn with_activations(mut self, act: Activations) -> Self {
        self.activations = act;
        self
    }

    /// How the GGUF stores the model, as a learner reads it: the matrices' types (most
    /// elements first), then the embeddings' when it differs. "Q4_1 + Q8_0
    /// embeddings" for the default SmolLM2 file.
    pub fn stored_formats(&self) -> String {
        stored_formats(&self.tensors)
    }
}

/// See [`Llama::stored_formats`]; norms and other f32 vectors are left out.
pub fn stored_formats(tensors: &[(String, &'static str, usize, usize)]) -> String {
    let mut by_type: Vec<(&str, usize)> = Vec::new();
    let mut emb = None;
    for (name, ty, elems, _) in tensors {
        if name == "token_embd.weight" {
            emb = Some(*ty);
        } else if *ty != "F32" {
            match by_type.iter_mut().find(|(t, _)| t == ty) {
                Some((_, n)) => *n += elems,
                None => by_type.push((ty, *elems)),
            }
        }
    }
    by_type.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut s = by_type
        .iter()
        .map(|(t, _)| *t)
        .collect::<Vec<_>>()
        .join("/");
    match emb {
        Some(e) if s.is_empty() => s = e.to_string(),
        Some(e) if by_type.len() > 1 || by_type[0].0 != e => s += &format!(" + {e} embeddings"),
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::stored_formats;

    #[test]
    fn stored_formats_name_the_matrices_then_a_different_embedding() {
        let t = |n: &str, ty: &'static str, e: usize| (n.to_string(), ty, e, 0);
        let smol = [
            t("token_embd.weight", "Q8_0", 100),
            t("blk.0.attn_norm.weight", "F32", 5),
            t("blk.0.attn_q.weight", "Q4_1", 50),
            t("blk.0.ffn_up.weight", "Q4_1", 80),
        ];
        assert_eq!(stored_formats(&smol), "Q4_1 + Q8_0 embeddings");
        let same = [
            t("token_embd.weight", "Q4_1", 9),
            t("blk.0.attn_q.weight", "Q4_1", 9),
        ];
        assert_eq!(stored_formats(&same), "Q4_1");
        let mixed = [
            t("token_embd.weight", "Q6_K", 9),
            t("blk.0.attn_q.weight", "Q4_K", 90),
            t("blk.0.ffn_down.weight", "Q6_K", 30),
        ];
        assert_eq!(stored_formats(&mixed), "Q4_K/Q6_K + Q6_K embeddings");
    }
}
