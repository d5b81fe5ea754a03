//! The paged KV cache's bookkeeping: which physical blocks hold which sequence's
//! keys and values. The pool holds a fixed number of blocks of `block_size` token
//! positions each; a sequence owns a *block table*, the list of its blocks in order,
//! so position `p` lives in block `table[p / block_size]` at slot `p % block_size`.
//! Nothing here touches the K/V numbers: the runner copies and reads them by the
//! block ids this returns.
//!
//! Three ideas from vLLM, each small:
//! - **Prefix sharing.** A full block is named by a chained hash of its tokens and
//!   its predecessor's hash, so two prompts with the same first 32 tokens share their
//!   first two blocks. A hit is confirmed on the tokens themselves (a hash collision
//!   must never hand one prompt another's keys).
//! - **Copy-on-write.** Forking a sequence (parallel sampling, `n > 1`) shares every
//!   block. A sequence about to write into a partly filled block that someone else
//!   also holds gets a private copy first, and the caller is told to copy the K/V.
//! - **LRU eviction.** A block nobody holds keeps its contents and its hash, so a
//!   later prompt may still reuse it; when the pool runs dry, the block freed longest
//!   ago is the first to be reused.
//!
//! Invariants (checked by [`BlockManager::check`], and by the property tests in
//! `tests/block_manager.rs`):
//! - every block's reference count equals the number of block-table entries naming it;
//! - a block is on the free list exactly when its count is zero;
//! - the cache index names only full blocks, each under its own hash;
//! - a sequence holding `n` tokens has exactly `ceil(n / block_size)` blocks.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};

/// Positions per block: vLLM's default, and nano-vllm's is 256. Sixteen keeps the
/// lab's block tables short enough to read.
pub const BLOCK_SIZE: usize = 16;

pub type BlockId = u32;
pub type SeqId = u64;

/// Why a request for blocks was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("the KV pool is full: {needed} blocks needed, {free} free")]
    OutOfBlocks { needed: usize, free: usize },
    #[error("sequence {0} has no blocks here")]
    UnknownSequence(SeqId),
    #[error("sequence {0} already has blocks")]
    AlreadyAllocated(SeqId),
}

/// A copy the runner must make before the next write: the K/V of every position in
/// block `from` into block `to` (the writer's private copy of a shared block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CopyBlock {
    pub from: BlockId,
    pub to: BlockId,
}

#[derive(Debug, Clone, Default)]
struct Block {
    refs: u32,
    /// The tokens whose K/V the block holds (up to `block_size`).
    tokens: Vec<u32>,
    /// Set once the block is full: the chained hash it is cached under, and its
    /// predecessor's, to confirm a hit.
    hash: Option<u64>,
    parent: u64,
    /// When its count last fell to zero (a logical clock), for LRU eviction.
    freed_at: u64,
}

/// A sequence's blocks and how many positions it has filled.
#[derive(Debug, Clone, Default)]
struct Table {
    blocks: Vec<BlockId>,
    len: usize,
}

/// What [`BlockManager::allocate`] did for a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    /// Leading prompt positions whose K/V were found in the cache: the runner skips
    /// computing them.
    pub cached_tokens: usize,
    pub blocks: usize,
}

/// The pool of KV blocks and every sequence's block table.
#[derive(Debug, Clone)]
pub struct BlockManager {
    block_size: usize,
    blocks: Vec<Block>,
    /// Blocks with no holder, by the clock value at which they were freed (the
    /// oldest is reused first); an unhashed block is freed at 0 so it goes first.
    free: BTreeSet<(u64, BlockId)>,
    /// Full blocks by chained hash, whether held or free.
    cached: HashMap<u64, BlockId>,
    tables: HashMap<SeqId, Table>,
    clock: u64,
}

/// The hash a full block is cached under: its tokens chained to its predecessor's.
pub fn block_hash(parent: u64, tokens: &[u32]) -> u64 {
    // DefaultHasher::new() has fixed keys: the same tokens hash the same in every
    // run, so the lab's block ids and hashes are reproducible.
    let mut h = std::hash::DefaultHasher::new();
    parent.hash(&mut h);
    tokens.hash(&mut h);
    h.finish()
}

impl BlockManager {
    /// A pool of `num_blocks` blocks of `block_size` positions, all free.
    pub fn new(num_blocks: usize, block_size: usize) -> Self {
        assert!(block_size > 0, "a block holds at least one position");
        let ids = u32::try_from(num_blocks).expect("fewer than 2^32 blocks");
        Self {
            block_size,
            blocks: vec![Block::default(); num_blocks],
            free: (0..ids).map(|b| (0, b)).collect(),
            cached: HashMap::new(),
            tables: HashMap::new(),
            clock: 0,
        }
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks no sequence holds (some may still hold a cached prefix).
    pub fn num_free(&self) -> usize {
        self.free.len()
    }

    /// Blocks some sequence holds.
    pub fn num_used(&self) -> usize {
        self.blocks.len() - self.free.len()
    }

    /// A sequence's block table, in position order.
    pub fn table(&self, seq: SeqId) -> Option<&[BlockId]> {
        self.tables.get(&seq).map(|t| t.blocks.as_slice())
    }

    /// Positions a sequence has filled.
    pub fn seq_len(&self, seq: SeqId) -> Option<usize> {
        self.tables.get(&seq).map(|t| t.len)
    }

    /// How many block-table entries name `block`.
    pub fn ref_count(&self, block: BlockId) -> u32 {
        self.blocks[block as usize].refs
    }

    /// The tokens block `block` holds K/V for.
    pub fn block_tokens(&self, block: BlockId) -> &[u32] {
        &self.blocks[block as usize].tokens
    }

    /// The hash a full block is cached under (`None` while it is filling).
    pub fn cached_hash(&self, block: BlockId) -> Option<u64> {
        self.blocks[block as usize].hash
    }

    /// Sequences holding blocks, in id order.
    pub fn sequences(&self) -> Vec<SeqId> {
        let mut ids: Vec<SeqId> = self.tables.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn blocks_for(&self, positions: usize) -> usize {
        positions.div_ceil(self.block_size)
    }

    /// Looks up the prompt's leading full blocks in the cache: their ids, in order,
    /// as long as every one matches. The last prompt position is never taken from
    /// the cache, so the runner always has one position to compute logits from.
    fn cache_hits(&self, tokens: &[u32]) -> Vec<BlockId> {
        let mut hits = Vec::new();
        let mut parent = 0;
        let usable = tokens.len().saturating_sub(1) / self.block_size;
        for chunk in tokens.chunks(self.block_size).take(usable) {
            let h = block_hash(parent, chunk);
            match self.cached.get(&h) {
                Some(&b)
                    if self.blocks[b as usize].parent == parent
                        && self.blocks[b as usize].tokens == chunk =>
                {
                    hits.push(b)
                }
                _ => break,
            }
            parent = h;
        }
        hits
    }

    /// Whether [`BlockManager::allocate`] would succeed for this prompt now.
    pub fn can_allocate(&self, tokens: &[u32]) -> bool {
        self.allocate_need(tokens) <= self.free.len()
    }

    /// Free blocks a prompt would take: its blocks, less cached ones nobody holds
    /// counted as taken off the free list too (a hit on a free block uses it up).
    fn allocate_need(&self, tokens: &[u32]) -> usize {
        let hits = self.cache_hits(tokens);
        let held = hits
            .iter()
            .filter(|&&b| self.blocks[b as usize].refs > 0)
            .count();
        self.blocks_for(tokens.len()) - held
    }

    /// Blocks for a new sequence's prompt: cached prefix blocks are shared, the rest
    /// are fresh. All or nothing: on `Err` nothing changed.
    pub fn allocate(&mut self, seq: SeqId, tokens: &[u32]) -> Result<Allocation, BlockError> {
        if self.tables.contains_key(&seq) {
            return Err(BlockError::AlreadyAllocated(seq));
        }
        let needed = self.allocate_need(tokens);
        if needed > self.free.len() {
            return Err(BlockError::OutOfBlocks {
                needed,
                free: self.free.len(),
            });
        }
        let hits = self.cache_hits(tokens);
        let mut table = Table::default();
        for &b in &hits {
            self.hold(b);
            table.blocks.push(b);
        }
        table.len = hits.len() * self.block_size;
        let cached_tokens = table.len;
        self.tables.insert(seq, table);
        for &t in &tokens[cached_tokens..] {
            self.push_token(seq, t).expect("blocks were counted");
        }
        Ok(Allocation {
            cached_tokens,
            blocks: self.tables[&seq].blocks.len(),
        })
    }

    /// Whether `seq` can take one more token now (a new block when its last is full,
    /// or a private copy when its last is shared).
    pub fn can_append(&self, seq: SeqId) -> bool {
        match self.tables.get(&seq) {
            Some(t) => self.append_need(t) <= self.free.len(),
            None => false,
        }
    }

    fn append_need(&self, t: &Table) -> usize {
        if t.len.is_multiple_of(self.block_size) {
            return 1;
        }
        let last = *t.blocks.last().expect("a partly filled block");
        usize::from(self.blocks[last as usize].refs > 1)
    }

    /// Records one more token of `seq`, whose K/V the runner is about to write at
    /// position `len`. Returns the copy to make first when the last block was shared.
    pub fn append(&mut self, seq: SeqId, token: u32) -> Result<Option<CopyBlock>, BlockError> {
        let t = self
            .tables
            .get(&seq)
            .ok_or(BlockError::UnknownSequence(seq))?;
        let needed = self.append_need(t);
        if needed > self.free.len() {
            return Err(BlockError::OutOfBlocks {
                needed,
                free: self.free.len(),
            });
        }
        self.push_token(seq, token)
    }

    fn push_token(&mut self, seq: SeqId, token: u32) -> Result<Option<CopyBlock>, BlockError> {
        let bs = self.block_size;
        let t = self.tables.get(&seq).expect("checked by the caller");
        let (len, last) = (t.len, t.blocks.last().copied());
        let mut copy = None;
        let block = if len.is_multiple_of(bs) {
            let b = self.take_free()?;
            self.tables.get_mut(&seq).unwrap().blocks.push(b);
            b
        } else {
            let last = last.expect("a partly filled block");
            if self.blocks[last as usize].refs > 1 {
                // Copy-on-write: the other holders keep the original.
                let b = self.take_free()?;
                self.blocks[b as usize].tokens = self.blocks[last as usize].tokens.clone();
                self.blocks[b as usize].parent = self.blocks[last as usize].parent;
                self.release(last);
                *self
                    .tables
                    .get_mut(&seq)
                    .unwrap()
                    .blocks
                    .last_mut()
                    .unwrap() = b;
                copy = Some(CopyBlock { from: last, to: b });
                b
            } else {
                last
            }
        };
        let t = self.tables.get_mut(&seq).unwrap();
        t.len += 1;
        let n = t.blocks.len();
        let parent = if n >= 2 {
            self.blocks[t.blocks[n - 2] as usize]
                .hash
                .expect("every block before the last is full")
        } else {
            0
        };
        let blk = &mut self.blocks[block as usize];
        if blk.tokens.is_empty() {
            blk.parent = parent;
        }
        blk.tokens.push(token);
        if blk.tokens.len() == bs {
            let h = block_hash(blk.parent, &blk.tokens);
            blk.hash = Some(h);
            // The first block to hold a prefix stays its cached copy.
            self.cached.entry(h).or_insert(block);
        }
        Ok(copy)
    }

    /// A new sequence `child` that shares every block of `parent` (parallel
    /// sampling): nothing is copied until one of them writes.
    pub fn fork(&mut self, parent: SeqId, child: SeqId) -> Result<(), BlockError> {
        if self.tables.contains_key(&child) {
            return Err(BlockError::AlreadyAllocated(child));
        }
        let t = self
            .tables
            .get(&parent)
            .ok_or(BlockError::UnknownSequence(parent))?
            .clone();
        for &b in &t.blocks {
            self.hold(b);
        }
        self.tables.insert(child, t);
        Ok(())
    }

    /// Gives back every block of `seq` (finished, cancelled or preempted). Full blocks
    /// keep their contents and hash for a later prompt until they are reused.
    pub fn free(&mut self, seq: SeqId) -> Result<(), BlockError> {
        let t = self
            .tables
            .remove(&seq)
            .ok_or(BlockError::UnknownSequence(seq))?;
        // Last block first, so a prefix's head outlives its tail in the LRU order.
        for &b in t.blocks.iter().rev() {
            self.release(b);
        }
        Ok(())
    }

    fn hold(&mut self, b: BlockId) {
        let blk = &mut self.blocks[b as usize];
        if blk.refs == 0 {
            self.free.remove(&(blk.freed_at, b));
        }
        blk.refs += 1;
    }

    fn release(&mut self, b: BlockId) {
        let blk = &mut self.blocks[b as usize];
        blk.refs -= 1;
        if blk.refs == 0 {
            // An unfinished block holds nothing reusable: forget it now and reuse it first.
            if blk.hash.is_none() {
                blk.tokens.clear();
                blk.freed_at = 0;
            } else {
                self.clock += 1;
                blk.freed_at = self.clock;
            }
            self.free.insert((blk.freed_at, b));
        }
    }

    /// The least recently freed block, its cached prefix (if any) forgotten.
    fn take_free(&mut self) -> Result<BlockId, BlockError> {
        let Some(&(at, b)) = self.free.iter().next() else {
            return Err(BlockError::OutOfBlocks { needed: 1, free: 0 });
        };
        self.free.remove(&(at, b));
        let blk = &mut self.blocks[b as usize];
        if let Some(h) = blk.hash.take()
            && self.cached.get(&h) == Some(&b)
        {
            self.cached.remove(&h);
        }
        blk.tokens.clear();
        blk.parent = 0;
        blk.refs = 1;
        Ok(b)
    }

    /// Checks every invariant in the module doc; `Err` names the first one broken.
    pub fn check(&self) -> Result<(), String> {
        let mut refs = vec![0u32; self.blocks.len()];
        for (seq, t) in &self.tables {
            if t.blocks.len() != self.blocks_for(t.len) {
                return Err(format!(
                    "sequence {seq}: {} positions in {} blocks",
                    t.len,
                    t.blocks.len()
                ));
            }
            for &b in &t.blocks {
                refs[b as usize] += 1;
            }
            for (i, &b) in t.blocks.iter().enumerate() {
                let want = (t.len - i * self.block_size).min(self.block_size);
                let have = self.blocks[b as usize].tokens.len();
                if have != want {
                    return Err(format!(
                        "sequence {seq}: block {b} holds {have} positions, {want} expected"
                    ));
                }
            }
        }
        for (b, blk) in self.blocks.iter().enumerate() {
            if blk.refs != refs[b] {
                return Err(format!(
                    "block {b}: count {} but {} table entries",
                    blk.refs, refs[b]
                ));
            }
            let on_free = self.free.contains(&(blk.freed_at, b as BlockId));
            if on_free != (blk.refs == 0) {
                return Err(format!(
                    "block {b}: count {} but on the free list: {on_free}",
                    blk.refs
                ));
            }
        }
        if self.free.len() != refs.iter().filter(|&&r| r == 0).count() {
            return Err("the free list holds a block twice".into());
        }
        for (&h, &b) in &self.cached {
            let blk = &self.blocks[b as usize];
            if blk.hash != Some(h) || blk.tokens.len() != self.block_size {
                return Err(format!(
                    "cache entry {h:x} names block {b}, not full under it"
                ));
            }
        }
        Ok(())
    }
}
