//! The paged KV store: the serving engine's counterpart of [`crate::kv_cache::KvCache`].
//! Instead of one growing buffer per sequence, every layer holds a fixed pool of
//! blocks of `block_size` positions, and a sequence's positions live wherever its
//! *block table* says: position `p` is slot `p % block_size` of block
//! `table[p / block_size]`. Which block belongs to whom is `lav-engine`'s block
//! manager's business; this only stores and reads numbers.
//!
//! Within a slot the layout is the cache's, `[kv_head][head_dim]`, so reading a
//! sequence's positions in order through its table gives exactly the rows the
//! contiguous cache would hold, and attention over them (read in place, never
//! copied) computes the same numbers bit for bit.

use crate::error::{ModelError, Result};
use crate::model::LlamaConfig;

#[derive(Clone, Debug)]
pub struct KvPool {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    num_blocks: usize,
    block_size: usize,
    /// Floats per position per layer: kv_heads · head_dim.
    width: usize,
}

impl KvPool {
    /// A pool of `num_blocks` blocks of `block_size` positions for every layer,
    /// allocated (zeroed) now: its memory is the engine's KV budget.
    pub fn new(cfg: &LlamaConfig, num_blocks: usize, block_size: usize) -> Self {
        let width = cfg.num_kv_heads * cfg.head_dim;
        let n = num_blocks * block_size * width;
        Self {
            k: vec![vec![0.0; n]; cfg.num_layers],
            v: vec![vec![0.0; n]; cfg.num_layers],
            num_blocks,
            block_size,
            width,
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Bytes the pool holds (K and V, every layer).
    pub fn bytes(&self) -> usize {
        2 * self.k.len() * self.num_blocks * self.block_size * self.width * 4
    }

    /// Bytes one position takes across every layer.
    pub fn bytes_per_position(&self) -> usize {
        2 * self.k.len() * self.width * 4
    }

    /// Refuses a table that cannot hold `len` positions or names a block outside the
    /// pool.
    pub(crate) fn check_table(&self, table: &[u32], len: usize) -> Result<()> {
        if table.len() * self.block_size < len {
            return Err(ModelError::Batch(format!(
                "a block table of {} blocks cannot hold {len} positions",
                table.len()
            )));
        }
        if let Some(b) = table.iter().find(|&&b| b as usize >= self.num_blocks) {
            return Err(ModelError::Batch(format!(
                "block {b} is outside the pool of {}",
                self.num_blocks
            )));
        }
        Ok(())
    }

    fn offset(&self, table: &[u32], pos: usize) -> usize {
        (table[pos / self.block_size] as usize * self.block_size + pos % self.block_size)
            * self.width
    }

    /// Stores the K and V rows of positions `start..` of one sequence in `layer`.
    pub(crate) fn write(
        &mut self,
        layer: usize,
        table: &[u32],
        start: usize,
        k: &[f32],
        v: &[f32],
    ) {
        let w = self.width;
        for (i, (kr, vr)) in k.chunks_exact(w).zip(v.chunks_exact(w)).enumerate() {
            let o = self.offset(table, start + i);
            self.k[layer][o..o + w].copy_from_slice(kr);
            self.v[layer][o..o + w].copy_from_slice(vr);
        }
    }

    /// One sequence's K and V rows in `layer`, read in place through its table.
    pub(crate) fn rows<'a>(
        &'a self,
        layer: usize,
        table: &'a [u32],
    ) -> (crate::ops::KvRows<'a>, crate::ops::KvRows<'a>) {
        let view = |data: &'a [f32]| crate::ops::KvRows::Paged {
            data,
            table,
            block_size: self.block_size,
            width: self.width,
        };
        (view(&self.k[layer]), view(&self.v[layer]))
    }

    /// Copies block `from` into block `to` in every layer (copy-on-write).
    pub fn copy_block(&mut self, from: u32, to: u32) {
        let n = self.block_size * self.width;
        let (f, t) = (from as usize * n, to as usize * n);
        for buf in self.k.iter_mut().chain(self.v.iter_mut()) {
            buf.copy_within(f..f + n, t);
        }
    }
}
