//! `lav-engine`: the inference engine on `lav-model`. Today: generation (prefill then
//! decode, with timing) and the measurements the kv-cache lab shows (a greedy decode
//! with and without the cache, prefill and decode throughput, matmul work per token).
//! The serving engine grows here, one concept per file: so far [`sequence`] (a
//! request's states) and [`block_manager`] (the paged KV cache's block tables, prefix
//! sharing, copy-on-write) and [`scheduler`] (continuous and static batching, chunked
//! prefill, preemption by recompute), [`metrics`] (TTFT, TPOT, ITL, E2E, goodput,
//! Prometheus text), [`workload`] (seeded Poisson arrivals, JSONL replay) and [`sim`]
//! (the scheduler on a GPU's simulated clock) and [`runner`] (its batches on the real
//! model through a paged K/V pool, on the measured clock).
//!
//! May depend on `lav-model`, `lav-gpusim` (the simulated clock), serde, thiserror and
//! rand; never on a lab, a renderer or the network.

pub mod block_manager;
pub mod generate;
pub mod metrics;
pub mod runner;
pub mod scheduler;
pub mod sequence;
pub mod sim;
pub mod timing;
pub mod workload;

pub use generate::{GenerationStats, generate};
pub use timing::{
    Decode, EngineError, Progress, Speeds, decode_both, measure_speeds, per_token_cost,
};
