//! The scheduler on a GPU's simulated clock: Little's law holds between the
//! scheduler's own in-flight count and the requests' timestamps, and the step times
//! are the roofline's.

use lav_engine::metrics::{Slo, summarize};
use lav_engine::scheduler::{Policy, SchedulerConfig};
use lav_engine::sim::simulate;
use lav_engine::workload::{Lengths, WorkloadSpec, generate};
use lav_gpusim::step_cost::StepModel;
use std::path::Path;

fn h100_llama3_8b() -> StepModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs");
    let m = lav_gpusim::model_configs(&dir)
        .unwrap()
        .into_iter()
        .find(|m| m.id == "llama-3-8b")
        .unwrap();
    StepModel::bf16(m, lav_gpusim::gpu(&dir, "h100").unwrap())
}

fn workload(rate: f64) -> Vec<lav_engine::workload::Request> {
    generate(&WorkloadSpec {
        rate,
        count: 600,
        prompt: Lengths::Uniform { min: 64, max: 1024 },
        output: Lengths::Uniform { min: 16, max: 256 },
        seed: 5,
    })
}

fn cfg(policy: Policy) -> SchedulerConfig {
    SchedulerConfig {
        policy,
        max_num_seqs: 64,
        max_num_batched_tokens: 2048,
        num_blocks: 8192,
        block_size: 16,
        chunked_prefill: true,
    }
}

#[test]
fn littles_law_holds_between_the_queue_count_and_the_timestamps() {
    let run = simulate(&workload(20.0), cfg(Policy::Continuous), &h100_llama3_8b()).unwrap();
    let s = summarize(
        &run.requests,
        Slo {
            ttft: 1.0,
            tpot: 0.1,
        },
    );
    assert_eq!(s.finished, 600);
    let start = run.requests[0].arrival;
    let end = start + s.duration;
    // L: the scheduler's waiting + running, held over each step.
    let l = run.mean_in_flight_counted(start, end);
    // λW: arrivals per second times the mean time in the system.
    let lw = (600.0 / s.duration) * s.e2e.mean;
    assert!((l - lw).abs() < 0.05 * lw, "L = {l:.2}, λW = {lw:.2}");
    // Every request waited at least its own prefill step before its first token.
    assert!(run.requests.iter().all(|r| r.ttft().unwrap() > 0.0));
}

#[test]
fn continuous_batching_beats_static_on_the_simulated_clock() {
    let cost = h100_llama3_8b();
    let slo = Slo {
        ttft: 1.0,
        tpot: 0.1,
    };
    let tput = |p| {
        let run = simulate(&workload(f64::INFINITY), cfg(p), &cost).unwrap();
        summarize(&run.requests, slo).throughput_tok_s
    };
    let (st, co) = (tput(Policy::Static), tput(Policy::Continuous));
    assert!(co > 1.3 * st, "continuous {co:.0} tok/s vs static {st:.0}");
}
