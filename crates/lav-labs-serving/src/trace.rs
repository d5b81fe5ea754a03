//! One run of lav's engine serving the real model, recorded step by step: what every
//! serving lab shows. Requests join the engine when their arrival time comes on this
//! machine's clock (the measured clock); each step's plan, queues, block tables and
//! KV use are kept, with every request's timestamps and output.

use lav_engine::block_manager::{BlockId, SeqId};
use lav_engine::metrics::RequestTimes;
use lav_engine::runner::Runner;
use lav_engine::scheduler::{Batch, KvUsage, SchedulerConfig};
use lav_engine::sequence::{SamplingParams, Sequence, Status};
use lav_engine::workload::{self, Lengths, WorkloadSpec};
use lav_lab::job::Progress;
use lav_lab::{Result, ResultExt};
use lav_model::{Llama, Tokenizer};
use std::sync::Arc;
use std::time::Duration;

/// A request of the run: when it arrives (seconds from the start), its prompt, and
/// how many tokens it generates (no stop token, so every policy does the same work).
#[derive(Clone, Debug, PartialEq)]
pub struct Arrival {
    pub at: f64,
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
}

/// A sequence as the engine held it after a step.
#[derive(Clone, Debug, PartialEq)]
pub struct SeqView {
    pub id: SeqId,
    pub prompt: usize,
    /// Positions whose K/V the pool holds.
    pub held: usize,
    pub max_tokens: usize,
    pub blocks: Vec<BlockId>,
}

/// One engine step: the plan that ran and the state it left.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub start: f64,
    pub seconds: f64,
    pub batch: Batch,
    pub waiting: Vec<SeqId>,
    pub running: Vec<SeqView>,
    /// Every request's state after the step, by id; `None` before it arrived.
    pub states: Vec<Option<Status>>,
    pub usage: KvUsage,
    pub free_blocks: usize,
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct Trace {
    pub cfg: SchedulerConfig,
    pub steps: Vec<Snapshot>,
    /// Every request's timestamps, by id (arrival as scheduled by the trace).
    pub times: Vec<RequestTimes>,
    pub outputs: Vec<Vec<u32>>,
    pub seconds: f64,
}

impl Trace {
    pub fn output_tokens(&self) -> usize {
        self.outputs.iter().map(Vec::len).sum()
    }

    /// Output tokens per second from the first arrival to the last finish.
    pub fn tok_s(&self) -> f64 {
        self.output_tokens() as f64 / self.seconds.max(1e-9)
    }

    pub fn preemptions(&self) -> usize {
        self.steps.iter().map(|s| s.batch.preempted.len()).sum()
    }

    /// Mean over steps of the sequences computed per step, as a share of the slots.
    pub fn slot_use(&self) -> f64 {
        let n = self.steps.len().max(1) as f64;
        self.steps
            .iter()
            .map(|s| s.batch.chunks.len() as f64 / self.cfg.max_num_seqs as f64)
            .sum::<f64>()
            / n
    }

    /// Step-averaged KV waste: (paged, reserved up front).
    pub fn waste(&self) -> (f64, f64) {
        let busy: Vec<&KvUsage> = self
            .steps
            .iter()
            .map(|s| &s.usage)
            .filter(|u| u.allocated > 0)
            .collect();
        let n = busy.len().max(1) as f64;
        (
            busy.iter().map(|u| u.paged_waste()).sum::<f64>() / n,
            busy.iter().map(|u| u.reserved_waste()).sum::<f64>() / n,
        )
    }
}

/// Prompts cut from `text`'s tokens: request `i` starts at its own offset (so no two
/// share a prefix by chance) and wraps around the text when it needs more.
pub fn prompts(tok: &Tokenizer, text: &str, lens: &[usize]) -> Result<Vec<Vec<u32>>> {
    let ids = tok.encode(text).lab()?;
    if ids.is_empty() {
        return Err(lav_lab::LabError::Input("the prompt text is empty".into()));
    }
    Ok(lens
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            let from = i * 37 % ids.len();
            (0..n.max(1)).map(|k| ids[(from + k) % ids.len()]).collect()
        })
        .collect())
}

/// A seeded trace: `count` requests at `rate` per second (Poisson; infinite: all at
/// once), prompts of `prompt` tokens and outputs of `output`, cut from `text`.
pub fn arrivals(
    tok: &Tokenizer,
    text: &str,
    rate: f64,
    count: usize,
    prompt: Lengths,
    output: Lengths,
    seed: u64,
) -> Result<Vec<Arrival>> {
    let reqs = workload::generate(&WorkloadSpec {
        rate,
        count,
        prompt,
        output,
        seed,
    });
    let lens: Vec<usize> = reqs.iter().map(|r| r.prompt_tokens).collect();
    let ps = prompts(tok, text, &lens)?;
    Ok(reqs
        .iter()
        .zip(ps)
        .map(|(r, prompt)| Arrival {
            at: r.arrival,
            prompt,
            max_tokens: r.max_tokens.max(1),
        })
        .collect())
}

/// Serves `reqs` (in arrival order) on `model` with `cfg`, greedily, and records it.
pub fn serve(
    model: &Arc<Llama>,
    reqs: &[Arrival],
    cfg: SchedulerConfig,
    p: &Progress,
) -> Result<Trace> {
    let mut r = Runner::new(model.clone(), cfg.clone());
    let total: usize = reqs.iter().map(|q| q.max_tokens).sum();
    let mut states: Vec<Option<Status>> = vec![None; reqs.len()];
    let (mut next, mut produced, mut steps) = (0, 0, Vec::new());
    let mut outputs = vec![Vec::new(); reqs.len()];
    loop {
        while next < reqs.len() && reqs[next].at <= r.now() {
            let q = &reqs[next];
            let params = SamplingParams {
                max_tokens: q.max_tokens,
                ..Default::default()
            };
            r.add(Sequence::new(next as SeqId, q.prompt.clone(), params))
                .lab()?;
            states[next] = Some(Status::Waiting);
            next += 1;
        }
        if r.is_idle() {
            let Some(q) = reqs.get(next) else { break };
            // Nothing to do until the next arrival: wait for it, a little at a time
            // so a cancelled run stops promptly.
            let wait = (q.at - r.now()).clamp(0.0, 0.05);
            std::thread::sleep(Duration::from_secs_f64(wait));
            p.check()?;
            continue;
        }
        p.check()?;
        let start = r.now();
        let rep = r.step().lab()?;
        for (id, t) in &rep.tokens {
            outputs[*id as usize].push(*t);
        }
        produced += rep.tokens.len();
        let s = r.scheduler();
        for q in s.waiting() {
            states[q.id() as usize] = Some(q.status());
        }
        for q in s.running() {
            states[q.id() as usize] = Some(q.status());
        }
        for q in &rep.finished {
            states[q.id() as usize] = Some(q.status());
        }
        let running = s
            .running()
            .iter()
            .map(|q| SeqView {
                id: q.id(),
                prompt: q.prompt().len(),
                held: s.blocks().seq_len(q.id()).unwrap_or(0),
                max_tokens: q.params().max_tokens,
                blocks: s.blocks().table(q.id()).unwrap_or(&[]).to_vec(),
            })
            .collect();
        p.set(
            produced as u64,
            total as u64,
            format!(
                "engine step {}: {} sequences, {} positions",
                steps.len() + 1,
                rep.batch.chunks.len(),
                rep.batch.num_tokens()
            ),
        );
        steps.push(Snapshot {
            start,
            seconds: rep.seconds,
            waiting: s.waiting().map(|q| q.id()).collect(),
            running,
            states: states.clone(),
            usage: s.kv_usage(),
            free_blocks: s.blocks().num_free(),
            batch: rep.batch,
        });
    }
    let seconds = r.now();
    let times = (0..reqs.len())
        .map(|i| {
            let mut t = r.times().get(&(i as SeqId)).cloned().unwrap_or_default();
            // The request arrived when the trace says; it waited for the engine's loop
            // from then on, as it would at a server's socket.
            t.arrival = reqs[i].at;
            t
        })
        .collect();
    Ok(Trace {
        cfg,
        steps,
        times,
        outputs,
        seconds,
    })
}

/// The engine's progress reports, passed on to a lab's job.
pub struct JobProgress<'a>(pub &'a Progress);

impl lav_engine::Progress for JobProgress<'_> {
    fn set(&self, d: u64, t: u64, l: &str) {
        self.0.set(d, t, l)
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}
