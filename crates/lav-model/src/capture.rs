//! The capture recorder: every intermediate of a forward pass, for the labs.
//!
//! Off by default. `Llama::forward` takes `Option<&mut Capture>`; with `None` the
//! pass keeps nothing extra and copies nothing. With `Some`, each layer pushes a
//! [`LayerCapture`]: copies of the buffers it computed anyway, as candle tensors.

use candle_core::Tensor;

/// One transformer block's intermediates for the tokens of one forward call.
/// Shapes use `L` = tokens in the call, `T` = positions attended (cache + L).
#[derive(Clone, Debug)]
pub struct LayerCapture {
    /// Residual stream entering the block `(1, L, hidden)`.
    pub resid_in: Tensor,
    /// RMSNorm output before attention `(1, L, hidden)`.
    pub attn_norm: Tensor,
    /// Queries after RoPE `(1, heads, L, head_dim)`.
    pub q: Tensor,
    /// Keys after RoPE for the new positions `(1, kv_heads, L, head_dim)`.
    pub k: Tensor,
    /// Values for the new positions `(1, kv_heads, L, head_dim)`.
    pub v: Tensor,
    /// Scaled, masked scores `(1, heads, L, T)`; -inf above the diagonal.
    pub scores: Tensor,
    /// Attention probabilities `(1, heads, L, T)`.
    pub probs: Tensor,
    /// Heads' weighted values, concatenated, before the output projection `(1, L, hidden)`.
    pub attn: Tensor,
    /// Attention output after the output projection `(1, L, hidden)`.
    pub attn_out: Tensor,
    /// Residual stream after attention `(1, L, hidden)`.
    pub resid_mid: Tensor,
    /// RMSNorm output before the MLP `(1, L, hidden)`.
    pub ffn_norm: Tensor,
    /// MLP gate projection `(1, L, intermediate)`.
    pub gate: Tensor,
    /// MLP up projection `(1, L, intermediate)`.
    pub up: Tensor,
    /// `silu(gate) * up` `(1, L, intermediate)`.
    pub act: Tensor,
    /// MLP output after the down projection `(1, L, hidden)`.
    pub mlp_out: Tensor,
    /// Residual stream leaving the block `(1, L, hidden)`.
    pub resid_out: Tensor,
}

#[derive(Clone, Debug, Default)]
pub struct Capture {
    /// Token ids of the call.
    pub tokens: Vec<u32>,
    /// Position of the first token.
    pub start_pos: usize,
    /// Embedding rows `(1, L, hidden)`.
    pub embeddings: Option<Tensor>,
    pub layers: Vec<LayerCapture>,
    /// Final RMSNorm output `(1, L, hidden)`.
    pub final_norm: Option<Tensor>,
    /// Logits for the positions the call asked for `(n, vocab)`.
    pub logits: Option<Tensor>,
}

impl Capture {
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn begin(&mut self, tokens: &[u32], pos: usize, embeddings: Tensor) {
        *self = Self {
            tokens: tokens.to_vec(),
            start_pos: pos,
            embeddings: Some(embeddings),
            ..Self::default()
        };
    }
}
