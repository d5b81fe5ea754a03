//! The KV cache: per layer, the keys and values of every position seen so far.
//!
//! Each layer keeps two growing `f32` buffers laid out position-major,
//! `[position][kv_head][head_dim]`, so appending a token's keys is one contiguous copy
//! and nothing already stored ever moves except when a buffer grows (amortised
//! doubling). The labs read them as tensors through [`KvCache::keys`] and
//! [`KvCache::values`], in the usual `(1, kv_heads, len, head_dim)` shape.

use crate::error::Result;
use crate::model::LlamaConfig;
use candle_core::{Device, Tensor};

/// Positions reserved on first use, so short chats never reallocate.
const INITIAL_CAPACITY: usize = 256;

#[derive(Clone, Debug)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
    max_len: usize,
    kv_heads: usize,
    head_dim: usize,
    /// K/V projections computed into this cache: one per (token, layer), counted as
    /// they are appended. Survives `clear` so a lab can count a whole run.
    projected: usize,
}

impl KvCache {
    pub fn new(cfg: &LlamaConfig) -> Self {
        Self {
            k: vec![Vec::new(); cfg.num_layers],
            v: vec![Vec::new(); cfg.num_layers],
            len: 0,
            max_len: cfg.context_length,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            projected: 0,
        }
    }

    /// Positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most positions the model accepts.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// K/V projections computed into this cache so far, per layer: how many token
    /// positions had their keys and values computed (what a cache saves).
    pub fn projections_per_layer(&self) -> usize {
        self.projected / self.k.len().max(1)
    }

    pub fn num_layers(&self) -> usize {
        self.k.len()
    }

    /// Bytes the stored positions occupy (f32 K and V, all layers).
    pub fn bytes_used(&self) -> usize {
        self.len * self.bytes_per_token()
    }

    pub fn bytes_per_token(&self) -> usize {
        2 * self.k.len() * self.width() * 4
    }

    /// Forgets every position (a new conversation).
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    /// Drops positions after `len` (rewinding a sequence).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
        let keep = self.len * self.width();
        for b in self.k.iter_mut().chain(self.v.iter_mut()) {
            b.truncate(keep);
        }
    }

    /// Layer `i`'s keys for the stored positions: `(1, kv_heads, len, head_dim)` (a copy).
    pub fn keys(&self, layer: usize) -> Result<Tensor> {
        self.tensor(&self.k[layer])
    }

    /// Layer `i`'s values for the stored positions: `(1, kv_heads, len, head_dim)` (a copy).
    pub fn values(&self, layer: usize) -> Result<Tensor> {
        self.tensor(&self.v[layer])
    }

    /// Layer `i`'s raw keys and values, position-major `len × kv_heads × head_dim`.
    pub fn raw(&self, layer: usize) -> (&[f32], &[f32]) {
        let n = self.len * self.width();
        (&self.k[layer][..n], &self.v[layer][..n])
    }

    fn width(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    fn tensor(&self, buf: &[f32]) -> Result<Tensor> {
        let n = self.len * self.width();
        let t = Tensor::from_slice(
            &buf[..n],
            (self.len, self.kv_heads, self.head_dim),
            &Device::Cpu,
        )?;
        Ok(t.transpose(0, 1)?.contiguous()?.unsqueeze(0)?)
    }

    /// Appends new positions' keys and values (`n × kv_heads × head_dim`) to layer `i`.
    /// They become visible to [`KvCache::len`] after [`KvCache::advance`].
    pub(crate) fn append(&mut self, layer: usize, k: &[f32], v: &[f32]) {
        let start = self.len * self.width();
        self.projected += k.len() / self.width();
        for (buf, new) in [(&mut self.k[layer], k), (&mut self.v[layer], v)] {
            // A failed earlier call may have left rows past `len`: drop them.
            buf.truncate(start);
            if buf.capacity() == 0 {
                buf.reserve_exact(
                    INITIAL_CAPACITY.min(self.max_len) * self.kv_heads * self.head_dim,
                );
            }
            buf.extend_from_slice(new);
        }
    }

    /// Keys and values of positions `0..total` of layer `i`, including appended ones.
    pub(crate) fn layer(&self, layer: usize, total: usize) -> (&[f32], &[f32]) {
        let n = total * self.width();
        (&self.k[layer][..n], &self.v[layer][..n])
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
