//! Which sequences run in the next forward pass, and how many of their positions.
//!
//! Each call to [`Scheduler::schedule`] plans one step: a [`Batch`] of chunks, each a
//! run of positions of one sequence whose K/V the runner computes (a whole prompt, a
//! piece of one under chunked prefill, or the single newest token of a decoding
//! sequence). The runner executes it and hands back the sampled tokens through
//! [`Scheduler::update`]. The scheduler never sees a number of the model: the same
//! code runs against the real model (measured clock) and a step-cost model of a GPU
//! (simulated clock).
//!
//! Two policies:
//! - **continuous** (iteration-level) batching: every step, running sequences go
//!   first (a token each, or their next prefill chunk); waiting ones join as soon as
//!   there are slots, token budget and KV blocks; a finished one leaves at once.
//! - **static** batching: a batch is admitted only when the previous one has wholly
//!   finished, so early finishers hold their slot idle until the longest is done.
//!
//! When the KV pool cannot hold the running sequences' next tokens, the most recently
//! admitted one is **preempted by recompute**: its blocks go back to the pool and it
//! waits at the head of the queue, to be prefilled again from its prompt and output.

use crate::block_manager::{BlockManager, CopyBlock, SeqId};
use crate::sequence::{Sequence, Status};
use std::collections::VecDeque;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    Continuous,
    Static,
}

/// The knobs vLLM exposes under the same names.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SchedulerConfig {
    pub policy: Policy,
    /// Sequences in one step at most (batch slots).
    pub max_num_seqs: usize,
    /// Positions computed in one step at most (prefill and decode together).
    pub max_num_batched_tokens: usize,
    /// KV blocks in the pool, and positions per block.
    pub num_blocks: usize,
    pub block_size: usize,
    /// Whether a prompt longer than the step's remaining budget may be prefilled in
    /// pieces over several steps (else it waits for a step with room for all of it).
    pub chunked_prefill: bool,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            policy: Policy::Continuous,
            max_num_seqs: 8,
            max_num_batched_tokens: 512,
            num_blocks: 256,
            block_size: crate::block_manager::BLOCK_SIZE,
            chunked_prefill: true,
        }
    }
}

/// Positions `start..start + len` of sequence `seq`, computed in this step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chunk {
    pub seq: SeqId,
    pub start: usize,
    pub len: usize,
    /// The chunk reaches the sequence's newest token: the runner samples the next one
    /// from its last position.
    pub samples: bool,
}

/// One step's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Batch {
    pub chunks: Vec<Chunk>,
    /// K/V block copies to make before computing (copy-on-write).
    pub copies: Vec<(SeqId, CopyBlock)>,
    /// Sequences preempted while planning this step.
    pub preempted: Vec<SeqId>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Positions computed in this step.
    pub fn num_tokens(&self) -> usize {
        self.chunks.iter().map(|c| c.len).sum()
    }
}

/// KV positions in use against what paging allocated and what a contiguous
/// allocator would have reserved; see [`Scheduler::kv_usage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KvUsage {
    pub used: usize,
    pub allocated: usize,
    pub reserved: usize,
}

impl KvUsage {
    /// Fraction of the paged allocation holding no token (only the last block of each
    /// sequence can be partly empty, plus shared blocks counted once).
    pub fn paged_waste(&self) -> f64 {
        waste(self.used, self.allocated)
    }

    /// Fraction of a prompt-plus-max_tokens reservation holding no token yet.
    pub fn reserved_waste(&self) -> f64 {
        waste(self.used, self.reserved)
    }
}

fn waste(used: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        1.0 - used.min(of) as f64 / of as f64
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "a prompt of {tokens} tokens needs {blocks} KV blocks, more than the pool's {pool}: raise the block count or shorten the prompt"
    )]
    NeverFits {
        tokens: usize,
        blocks: usize,
        pool: usize,
    },
    #[error(
        "a request of {tokens} tokens (prompt and max_tokens) is longer than one step's {budget}: without chunked prefill a preempted request is recomputed in one step; turn on chunked prefill or raise max_num_batched_tokens"
    )]
    LongerThanAStep { tokens: usize, budget: usize },
    #[error("sequence {0} is already queued")]
    Duplicate(SeqId),
}

/// The next positions of `s` this step can compute within `budget` (taken from
/// it): as many as fit under chunked prefill, else all or none.
fn next_chunk(s: &Sequence, budget: &mut usize, chunked: bool) -> Option<Chunk> {
    let len = s.uncomputed().min(*budget);
    if len == 0 || (len < s.uncomputed() && !chunked) {
        return None;
    }
    *budget -= len;
    Some(Chunk {
        seq: s.id(),
        start: s.computed(),
        len,
        samples: s.computed() + len == s.tokens().len(),
    })
}

pub struct Scheduler {
    cfg: SchedulerConfig,
    bm: BlockManager,
    waiting: VecDeque<Sequence>,
    running: Vec<Sequence>,
    finished: Vec<Sequence>,
}

impl Scheduler {
    pub fn new(cfg: SchedulerConfig) -> Self {
        assert!(cfg.max_num_seqs > 0 && cfg.max_num_batched_tokens > 0);
        Self {
            bm: BlockManager::new(cfg.num_blocks, cfg.block_size),
            cfg,
            waiting: VecDeque::new(),
            running: Vec::new(),
            finished: Vec::new(),
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    pub fn blocks(&self) -> &BlockManager {
        &self.bm
    }

    pub fn waiting(&self) -> impl Iterator<Item = &Sequence> {
        self.waiting.iter()
    }

    pub fn running(&self) -> &[Sequence] {
        &self.running
    }

    pub fn finished(&self) -> &[Sequence] {
        &self.finished
    }

    /// How the pool is used right now, for waste: positions the running sequences
    /// hold, positions their blocks could hold, and what contiguous allocators would
    /// have reserved (each sequence's prompt plus `max_tokens`, up front).
    pub fn kv_usage(&self) -> KvUsage {
        let held = |q: &Sequence| self.bm.seq_len(q.id()).unwrap_or(0);
        KvUsage {
            used: self.running.iter().map(held).sum(),
            allocated: self.bm.num_used() * self.cfg.block_size,
            reserved: self
                .running
                .iter()
                .map(|q| q.prompt().len() + q.params().max_tokens)
                .sum(),
        }
    }

    /// Takes the finished sequences out (a server answers them and forgets them).
    pub fn take_finished(&mut self) -> Vec<Sequence> {
        std::mem::take(&mut self.finished)
    }

    pub fn is_idle(&self) -> bool {
        self.waiting.is_empty() && self.running.is_empty()
    }

    /// Queues a request. Refused if it could never fit in the pool, even alone.
    pub fn add(&mut self, seq: Sequence) -> Result<(), ScheduleError> {
        let id = seq.id();
        if self
            .waiting
            .iter()
            .chain(&self.running)
            .any(|s| s.id() == id)
        {
            return Err(ScheduleError::Duplicate(id));
        }
        // The prompt plus every token it may generate must fit the pool on its own.
        let most = seq.tokens().len() + seq.params().max_tokens.saturating_sub(seq.output().len());
        let blocks = most.div_ceil(self.cfg.block_size);
        if blocks > self.cfg.num_blocks {
            return Err(ScheduleError::NeverFits {
                tokens: most,
                blocks,
                pool: self.cfg.num_blocks,
            });
        }
        // Without chunked prefill, a request preempted late must be recomputed (prompt
        // and output so far) in one step, so all of it must fit one (vLLM asks the
        // same: max_num_batched_tokens >= max_model_len).
        if !self.cfg.chunked_prefill && most > self.cfg.max_num_batched_tokens {
            return Err(ScheduleError::LongerThanAStep {
                tokens: most,
                budget: self.cfg.max_num_batched_tokens,
            });
        }
        self.waiting.push_back(seq);
        Ok(())
    }

    /// Cancels a request wherever it is; its blocks go back to the pool at once.
    pub fn abort(&mut self, id: SeqId) -> bool {
        if let Some(i) = self.waiting.iter().position(|s| s.id() == id) {
            let mut s = self.waiting.remove(i).expect("found");
            s.abort();
            self.finished.push(s);
            return true;
        }
        if let Some(i) = self.running.iter().position(|s| s.id() == id) {
            let mut s = self.running.remove(i);
            self.bm.free(id).expect("a running sequence holds blocks");
            s.abort();
            self.finished.push(s);
            return true;
        }
        false
    }

    /// Plans the next step. An empty batch means there is nothing to run.
    pub fn schedule(&mut self) -> Batch {
        let mut batch = Batch::default();
        let mut budget = self.cfg.max_num_batched_tokens;

        // 1. Running sequences keep their place: slots for their new tokens first,
        //    preempting the most recently admitted ones when the pool is short.
        let mut i = 0;
        while i < self.running.len() {
            if !self.make_room(i, &mut batch) {
                continue; // running[i] itself was preempted
            }
            i += 1;
        }
        for s in &self.running {
            if budget == 0 {
                break;
            }
            batch
                .chunks
                .extend(next_chunk(s, &mut budget, self.cfg.chunked_prefill));
        }

        // 2. Waiting sequences join, first come first served, while there are slots,
        //    budget and blocks; never in a step that had to preempt.
        let admit = match self.cfg.policy {
            Policy::Continuous => batch.preempted.is_empty(),
            // The whole batch must have finished: early finishers' slots stay idle.
            Policy::Static => self.running.is_empty(),
        };
        if admit {
            // A static batch is formed by its slots: it takes as many requests as fit
            // the slots and the pool, and prefills them over the next steps if one
            // step's budget cannot hold them all. Continuous batching admits only
            // what this step can start on.
            let by_slots = self.cfg.policy == Policy::Static;
            while let Some(s) = self.waiting.front() {
                if self.running.len() >= self.cfg.max_num_seqs || (budget == 0 && !by_slots) {
                    break;
                }
                if !self.bm.can_allocate(s.tokens()) {
                    break;
                }
                // Without chunking a prompt needs the whole budget it would use; the
                // cache's share is not known until allocation, so count it all.
                if !by_slots && !self.cfg.chunked_prefill && s.tokens().len() > budget {
                    break;
                }
                let mut s = self.waiting.pop_front().expect("front exists");
                let a = self
                    .bm
                    .allocate(s.id(), s.tokens())
                    .expect("checked by can_allocate");
                s.start(a.cached_tokens).expect("waiting or preempted");
                batch
                    .chunks
                    .extend(next_chunk(&s, &mut budget, self.cfg.chunked_prefill));
                self.running.push(s);
            }
        }
        batch
    }

    /// Gives `running[i]` a slot for each token it has but the pool does not yet
    /// hold, preempting from the back of the running list while blocks are short.
    /// Returns false when `running[i]` itself had to go.
    fn make_room(&mut self, i: usize, batch: &mut Batch) -> bool {
        loop {
            let id = self.running[i].id();
            let held = self
                .bm
                .seq_len(id)
                .expect("a running sequence holds blocks");
            let Some(&token) = self.running[i].tokens().get(held) else {
                return true;
            };
            if self.bm.can_append(id) {
                if let Some(c) = self.bm.append(id, token).expect("checked") {
                    batch.copies.push((id, c));
                }
                continue;
            }
            let victim = self.running.len() - 1;
            let mut s = self.running.remove(victim);
            self.bm
                .free(s.id())
                .expect("a running sequence holds blocks");
            s.preempt().expect("running");
            batch.preempted.push(s.id());
            self.waiting.push_front(s);
            if victim == i {
                return false;
            }
        }
    }

    /// Records a step's results: every chunk's positions are now computed, and each
    /// sampling chunk's sequence gets its token (from `sampled`, by sequence id). A
    /// sequence that finishes leaves the running set and gives its blocks back.
    pub fn update(&mut self, batch: &Batch, sampled: &dyn Fn(SeqId) -> u32) {
        for c in &batch.chunks {
            let Some(s) = self.running.iter_mut().find(|s| s.id() == c.seq) else {
                continue; // aborted meanwhile
            };
            s.computed_more(c.len).expect("planned by schedule");
            if c.samples {
                s.push(sampled(c.seq)).expect("running");
            }
        }
        let mut i = 0;
        while i < self.running.len() {
            if matches!(self.running[i].status(), Status::Finished(_)) {
                let s = self.running.remove(i);
                self.bm
                    .free(s.id())
                    .expect("a running sequence holds blocks");
                self.finished.push(s);
            } else {
                i += 1;
            }
        }
    }
}
