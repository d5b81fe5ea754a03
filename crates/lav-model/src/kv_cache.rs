//! The KV cache: per layer, the keys and values of every position seen so far.
//!
//! Each layer holds `K` and `V` buffers of shape `(1, kv_heads, capacity, head_dim)`.
//! New positions are written in place; attention reads a narrowed view of the first
//! `len` positions, so a decode step copies only its own new row. Capacity grows by
//! doubling (one copy per doubling) up to the model's context length.
//!
//! Views returned by [`KvCache::keys`] stay valid while positions are only appended;
//! after [`KvCache::truncate`] a later write can overwrite what an old view shows.

use crate::error::Result;
use crate::model::LlamaConfig;
use candle_core::{DType, Device, Tensor};

const INITIAL_CAPACITY: usize = 256;

#[derive(Clone)]
pub struct LayerKv {
    pub k: Tensor,
    pub v: Tensor,
}

/// Not `Clone`: buffers are written in place, so a shallow copy would alias.
pub struct KvCache {
    layers: Vec<LayerKv>,
    len: usize,
    capacity: usize,
    max_len: usize,
    kv_heads: usize,
    head_dim: usize,
    device: Device,
}

impl KvCache {
    pub fn new(cfg: &LlamaConfig, device: &Device) -> Self {
        Self {
            layers: Vec::new(),
            len: 0,
            capacity: 0,
            max_len: cfg.context_length,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
            device: device.clone(),
        }
        .with_layers(cfg.num_layers)
    }

    fn with_layers(mut self, n: usize) -> Self {
        self.layers = (0..n)
            .map(|_| LayerKv {
                k: Tensor::zeros((1, self.kv_heads, 0, self.head_dim), DType::F32, &self.device)
                    .expect("empty tensor"),
                v: Tensor::zeros((1, self.kv_heads, 0, self.head_dim), DType::F32, &self.device)
                    .expect("empty tensor"),
            })
            .collect();
        self
    }

    /// Positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Bytes the stored positions occupy (f32 K and V, all layers).
    pub fn bytes_used(&self) -> usize {
        self.len * self.bytes_per_token()
    }

    pub fn bytes_per_token(&self) -> usize {
        2 * self.layers.len() * self.kv_heads * self.head_dim * 4
    }

    /// Forgets every position (a new conversation).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Drops positions after `len` (rewinding a sequence).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Layer `i`'s keys for the stored positions: `(1, kv_heads, len, head_dim)`.
    pub fn keys(&self, layer: usize) -> Result<Tensor> {
        Ok(self.layers[layer].k.narrow(2, 0, self.len)?)
    }

    /// Layer `i`'s values for the stored positions: `(1, kv_heads, len, head_dim)`.
    pub fn values(&self, layer: usize) -> Result<Tensor> {
        Ok(self.layers[layer].v.narrow(2, 0, self.len)?)
    }

    /// Makes room for `total` positions, copying once per doubling.
    pub(crate) fn reserve(&mut self, total: usize) -> Result<()> {
        if total <= self.capacity {
            return Ok(());
        }
        let new_cap = total
            .max(self.capacity * 2)
            .max(INITIAL_CAPACITY)
            .min(self.max_len.max(total));
        for layer in &mut self.layers {
            let shape = (1, self.kv_heads, new_cap, self.head_dim);
            let k = Tensor::zeros(shape, DType::F32, &self.device)?;
            let v = Tensor::zeros(shape, DType::F32, &self.device)?;
            if self.len > 0 {
                k.slice_set(&layer.k.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                v.slice_set(&layer.v.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
            }
            layer.k = k;
            layer.v = v;
        }
        self.capacity = new_cap;
        Ok(())
    }

    /// Writes new keys/values `(1, kv_heads, n, head_dim)` at `pos` in layer `i`.
    pub(crate) fn write(&mut self, layer: usize, pos: usize, k: &Tensor, v: &Tensor) -> Result<()> {
        let l = &self.layers[layer];
        l.k.slice_set(k, 2, pos)?;
        l.v.slice_set(v, 2, pos)?;
        Ok(())
    }

    /// Keys and values of positions `0..total` of layer `i`, as views (no copy).
    pub(crate) fn view(&self, layer: usize, total: usize) -> Result<(Tensor, Tensor)> {
        let l = &self.layers[layer];
        Ok((l.k.narrow(2, 0, total)?, l.v.narrow(2, 0, total)?))
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
