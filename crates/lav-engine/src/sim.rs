//! The engine on the simulated clock: the real scheduler and block manager serve a
//! workload, and each step takes the time [`lav_gpusim::step_cost`] gives for its
//! batch on a chosen GPU and model config, instead of running the model. No tokens
//! are computed; every request generates exactly its `max_tokens`. What comes out is
//! the timestamps [`crate::metrics`] summarises, and the scheduler's own in-flight
//! count over time (to check Little's law against).

use crate::metrics::RequestTimes;
use crate::scheduler::{ScheduleError, Scheduler, SchedulerConfig};
use crate::sequence::{SamplingParams, Sequence};
use crate::workload::Request;
use lav_gpusim::step_cost::{SeqWork, StepModel};

/// One simulated step, for timelines.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    pub start: f64,
    pub seconds: f64,
    pub sequences: usize,
    pub tokens: usize,
    /// Requests waiting plus running during the step.
    pub in_flight: usize,
    pub blocks_used: usize,
    pub bound: &'static str,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimRun {
    pub requests: Vec<RequestTimes>,
    pub steps: Vec<Step>,
    pub preemptions: usize,
}

impl SimRun {
    /// The time-average of the scheduler's in-flight count (waiting + running),
    /// counted at each step and held for its duration, over `[from, to)`; idle gaps
    /// between steps count as zero.
    pub fn mean_in_flight_counted(&self, from: f64, to: f64) -> f64 {
        let area: f64 = self
            .steps
            .iter()
            .map(|s| {
                let (a, b) = (s.start.max(from), (s.start + s.seconds).min(to));
                (b - a).max(0.0) * s.in_flight as f64
            })
            .sum();
        area / (to - from)
    }
}

/// Serves `workload` (in arrival order) on the simulated clock.
pub fn simulate(
    workload: &[Request],
    cfg: SchedulerConfig,
    cost: &StepModel,
) -> Result<SimRun, ScheduleError> {
    let mut s = Scheduler::new(cfg);
    let mut run = SimRun {
        requests: workload
            .iter()
            .map(|r| RequestTimes {
                arrival: r.arrival,
                prompt_tokens: r.prompt_tokens,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    let (mut t, mut next) = (0.0f64, 0usize);
    loop {
        // Everything that has arrived by now joins the queue.
        while next < workload.len() && workload[next].arrival <= t {
            let r = &workload[next];
            // Filler prompts: distinct per request, so no prefix is shared by chance.
            let prompt = (0..r.prompt_tokens.max(1) as u32)
                .map(|i| i.wrapping_mul(2_654_435_761).wrapping_add(next as u32) % 50_000 + 10)
                .collect();
            let params = SamplingParams {
                max_tokens: r.max_tokens,
                ..Default::default()
            };
            s.add(Sequence::new(next as u64, prompt, params))?;
            next += 1;
        }
        if s.is_idle() {
            match workload.get(next) {
                Some(r) => {
                    t = r.arrival;
                    continue;
                }
                None => break,
            }
        }
        let in_flight = s.waiting().count() + s.running().len();
        let batch = s.schedule();
        run.preemptions += batch.preempted.len();
        let work: Vec<SeqWork> = batch
            .chunks
            .iter()
            .map(|c| SeqWork {
                new: c.len,
                context: c.start + c.len,
            })
            .collect();
        let c = cost.cost(&work);
        for ch in &batch.chunks {
            let r = &mut run.requests[ch.seq as usize];
            r.scheduled.get_or_insert(t);
        }
        run.steps.push(Step {
            start: t,
            seconds: c.seconds,
            sequences: batch.chunks.len(),
            tokens: batch.num_tokens(),
            in_flight,
            blocks_used: s.blocks().num_used(),
            bound: c.bound(),
        });
        t += c.seconds;
        for ch in batch.chunks.iter().filter(|c| c.samples) {
            run.requests[ch.seq as usize].tokens.push(t);
        }
        s.update(&batch, &|_| 0);
        for q in s.take_finished() {
            run.requests[q.id() as usize].finish = Some(t);
        }
    }
    Ok(run)
}
