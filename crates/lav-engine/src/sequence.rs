//! One request's life in the engine: its tokens, how it samples, and where it is.
//!
//! ```text
//! WAITING ──schedule──▶ RUNNING ──stop token / max_tokens / abort──▶ FINISHED
//!    ▲                     │
//!    └──────preempt────────┘  (blocks given back; its K/V are recomputed later)
//! ```
//!
//! A preempted sequence keeps every token it generated: when it runs again, its
//! prompt and output so far are prefilled as one (recompute), and it continues as if
//! nothing happened. `computed` counts the positions whose K/V are in the cache; the
//! rest are what the next step must prefill.

use crate::block_manager::SeqId;

/// How a sequence picks its tokens and when it stops.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SamplingParams {
    /// 0 is greedy (argmax); above 0, sampling at this temperature.
    pub temperature: f32,
    pub top_p: f32,
    /// Seeds the sampler, so a sampled request is reproducible.
    pub seed: u64,
    /// Tokens to generate at most.
    pub max_tokens: usize,
    /// Token ids that end the sequence (the chat template's end of turn).
    pub stop_tokens: Vec<u32>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            max_tokens: 64,
            stop_tokens: Vec::new(),
        }
    }
}

/// Why a sequence finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// It produced one of its stop tokens.
    Stop,
    /// It produced `max_tokens`.
    Length,
    /// The client went away or the request was cancelled.
    Aborted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Waiting,
    Running,
    /// Was running, gave its blocks back, waits to be recomputed.
    Preempted,
    Finished(Finish),
}

/// A move the state diagram above does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sequence {id}: cannot {action} while {status:?}")]
pub struct TransitionError {
    pub id: SeqId,
    pub action: &'static str,
    pub status: Status,
}

#[derive(Debug, Clone)]
pub struct Sequence {
    id: SeqId,
    status: Status,
    tokens: Vec<u32>,
    prompt_len: usize,
    computed: usize,
    params: SamplingParams,
    preemptions: u32,
    /// Leading prompt positions the prefix cache held when it first started.
    prefix_hit: Option<usize>,
}

impl Sequence {
    /// A waiting request. The prompt must hold at least one token (there is nothing
    /// to predict from otherwise).
    pub fn new(id: SeqId, prompt: Vec<u32>, params: SamplingParams) -> Self {
        assert!(!prompt.is_empty(), "a prompt holds at least one token");
        Self {
            id,
            status: Status::Waiting,
            prompt_len: prompt.len(),
            tokens: prompt,
            computed: 0,
            params,
            preemptions: 0,
            prefix_hit: None,
        }
    }

    pub fn id(&self) -> SeqId {
        self.id
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Prompt and output so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn prompt(&self) -> &[u32] {
        &self.tokens[..self.prompt_len]
    }

    pub fn output(&self) -> &[u32] {
        &self.tokens[self.prompt_len..]
    }

    /// Prompt positions found in the prefix cache when it first started (what an
    /// OpenAI-style server reports as `cached_tokens`); None before it starts.
    pub fn prefix_hit(&self) -> Option<usize> {
        self.prefix_hit
    }

    /// Positions whose K/V are in the cache.
    pub fn computed(&self) -> usize {
        self.computed
    }

    /// Positions still to prefill before the sequence can decode: all of them when
    /// it was just scheduled or preempted, one while it decodes.
    pub fn uncomputed(&self) -> usize {
        self.tokens.len() - self.computed
    }

    pub fn preemptions(&self) -> u32 {
        self.preemptions
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.status, Status::Finished(_))
    }

    fn refuse<T>(&self, action: &'static str) -> Result<T, TransitionError> {
        Err(TransitionError {
            id: self.id,
            action,
            status: self.status,
        })
    }

    /// The scheduler gave it blocks; `cached` leading positions were found in the
    /// prefix cache and need no prefill.
    pub fn start(&mut self, cached: usize) -> Result<(), TransitionError> {
        match self.status {
            Status::Waiting | Status::Preempted => {
                self.status = Status::Running;
                self.computed = cached.min(self.tokens.len() - 1);
                self.prefix_hit
                    .get_or_insert(self.computed.min(self.prompt_len));
                Ok(())
            }
            _ => self.refuse("start"),
        }
    }

    /// The runner computed K/V for `n` more positions (a prefill chunk, or the one
    /// position of a decode step).
    pub fn computed_more(&mut self, n: usize) -> Result<(), TransitionError> {
        if self.status != Status::Running || self.computed + n > self.tokens.len() {
            return self.refuse("record computed positions");
        }
        self.computed += n;
        Ok(())
    }

    /// Appends a sampled token and finishes the sequence if it stops here. Returns
    /// the new status.
    pub fn push(&mut self, token: u32) -> Result<Status, TransitionError> {
        if self.status != Status::Running {
            return self.refuse("append a token");
        }
        self.tokens.push(token);
        if self.params.stop_tokens.contains(&token) {
            self.status = Status::Finished(Finish::Stop);
        } else if self.output().len() >= self.params.max_tokens {
            self.status = Status::Finished(Finish::Length);
        }
        Ok(self.status)
    }

    /// Gives up its place (its blocks go back to the pool); it will be recomputed.
    pub fn preempt(&mut self) -> Result<(), TransitionError> {
        if self.status != Status::Running {
            return self.refuse("preempt");
        }
        self.status = Status::Preempted;
        self.computed = 0;
        self.preemptions += 1;
        Ok(())
    }

    /// Ends it wherever it is (a finished sequence stays as it finished).
    pub fn abort(&mut self) {
        if !self.is_finished() {
            self.status = Status::Finished(Finish::Aborted);
        }
    }
}
