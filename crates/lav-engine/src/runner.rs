//! The scheduler's plans run on the real model: each step makes the block copies
//! the plan asks for, runs every chunk in one [`Llama::forward_batch`] over the paged
//! [`KvPool`], samples a token for each sequence that reached its newest position,
//! and hands the tokens back to the scheduler. Timestamps are taken on this machine's
//! clock (the measured clock), for [`crate::metrics`].
//!
//! Because the batched forward is batch-invariant, a greedy request's output here is
//! token for token what it produces alone.

use crate::block_manager::SeqId;
use crate::metrics::RequestTimes;
use crate::scheduler::{Batch, ScheduleError, Scheduler, SchedulerConfig};
use crate::sequence::Sequence;
use lav_model::sampler::{Sampler, SamplerConfig};
use lav_model::{BatchSeq, KvPool, Llama, ModelError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// What one step did.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    /// The token each sampling sequence got, in batch order.
    pub tokens: Vec<(SeqId, u32)>,
    /// Sequences that finished in this step.
    pub finished: Vec<Sequence>,
    /// The plan that ran.
    pub batch: Batch,
    pub seconds: f64,
}

pub struct Runner {
    model: Arc<Llama>,
    pool: KvPool,
    sched: Scheduler,
    samplers: HashMap<SeqId, Sampler>,
    times: HashMap<SeqId, RequestTimes>,
    epoch: Instant,
}

impl Runner {
    /// An engine on `model` with a K/V pool of `cfg.num_blocks` blocks (allocated now:
    /// `KvPool::bytes` tells how much).
    pub fn new(model: Arc<Llama>, cfg: SchedulerConfig) -> Self {
        let pool = KvPool::new(&model.config, cfg.num_blocks, cfg.block_size);
        Self {
            model,
            pool,
            sched: Scheduler::new(cfg),
            samplers: HashMap::new(),
            times: HashMap::new(),
            epoch: Instant::now(),
        }
    }

    pub fn scheduler(&self) -> &Scheduler {
        &self.sched
    }

    pub fn pool(&self) -> &KvPool {
        &self.pool
    }

    /// Seconds since the runner was made (the measured clock).
    pub fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Queues a request; its sampling settings are checked now.
    pub fn add(&mut self, seq: Sequence) -> Result<(), RunError> {
        let p = seq.params();
        let sampler = Sampler::new(SamplerConfig {
            temperature: p.temperature,
            top_p: p.top_p,
            seed: p.seed,
            ..SamplerConfig::greedy()
        })?;
        let (id, prompt_tokens) = (seq.id(), seq.prompt().len());
        self.sched.add(seq)?;
        self.samplers.insert(id, sampler);
        self.times.insert(
            id,
            RequestTimes {
                arrival: self.now(),
                prompt_tokens,
                ..Default::default()
            },
        );
        Ok(())
    }

    /// Cancels a request; its blocks go back to the pool at once.
    pub fn abort(&mut self, id: SeqId) -> bool {
        self.samplers.remove(&id);
        let found = self.sched.abort(id);
        if let Some(t) = self.times.get_mut(&id) {
            t.finish.get_or_insert(self.epoch.elapsed().as_secs_f64());
        }
        found
    }

    pub fn is_idle(&self) -> bool {
        self.sched.is_idle()
    }

    /// Runs one step. An idle engine returns an empty report.
    pub fn step(&mut self) -> Result<StepReport, RunError> {
        let t0 = Instant::now();
        let batch = self.sched.schedule();
        if batch.is_empty() {
            return Ok(StepReport::default());
        }
        for (_, c) in &batch.copies {
            self.pool.copy_block(c.from, c.to);
        }
        let now = self.now();
        let running = self.sched.running();
        let seq_of = |id: SeqId| running.iter().find(|s| s.id() == id).expect("planned");
        let seqs: Vec<BatchSeq<'_>> = batch
            .chunks
            .iter()
            .map(|c| BatchSeq {
                tokens: &seq_of(c.seq).tokens()[c.start..c.start + c.len],
                start: c.start,
                block_table: self.sched.blocks().table(c.seq).expect("planned"),
                logits: c.samples,
            })
            .collect();
        let logits = self.model.forward_batch(&seqs, &mut self.pool)?;
        let mut tokens = Vec::new();
        for (c, l) in batch.chunks.iter().filter(|c| c.samples).zip(&logits) {
            let sampler = self
                .samplers
                .get_mut(&c.seq)
                .expect("a sampler per request");
            tokens.push((c.seq, sampler.next_token(l, seq_of(c.seq).tokens())));
        }
        for c in &batch.chunks {
            if let Some(t) = self.times.get_mut(&c.seq) {
                t.scheduled.get_or_insert(now);
            }
        }
        let sampled: HashMap<SeqId, u32> = tokens.iter().copied().collect();
        self.sched.update(&batch, &|id| sampled[&id]);
        let done = self.now();
        for (id, _) in &tokens {
            if let Some(t) = self.times.get_mut(id) {
                t.tokens.push(done);
            }
        }
        let finished = self.sched.take_finished();
        for s in &finished {
            self.samplers.remove(&s.id());
            if let Some(t) = self.times.get_mut(&s.id()) {
                t.finish.get_or_insert(done);
            }
        }
        Ok(StepReport {
            tokens,
            finished,
            batch,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Steps until every queued request has finished; returns them in finishing
    /// order.
    pub fn run(&mut self) -> Result<Vec<Sequence>, RunError> {
        let mut done = Vec::new();
        while !self.is_idle() {
            done.extend(self.step()?.finished);
        }
        Ok(done)
    }

    /// The timestamps of every request seen so far (and not forgotten), by id.
    pub fn times(&self) -> &HashMap<SeqId, RequestTimes> {
        &self.times
    }

    /// Hands over a request's timestamps and stops keeping them (a long-running
    /// server keeps a window of finished requests itself).
    pub fn forget(&mut self, id: SeqId) -> Option<RequestTimes> {
        self.times.remove(&id)
    }
}
