//! `lav-engine`: the inference engine on `lav-model`. Today: generation (prefill then
//! decode, with timing) and the measurements the kv-cache lab shows (a greedy decode
//! with and without the cache, prefill and decode throughput, matmul work per token).
//! The serving engine (sequences, a paged block manager, a scheduler, a batched
//! runner) grows here, one concept per file.
//!
//! May depend on `lav-model` and serde; never on a lab, a renderer or the network.

pub mod generate;
pub mod timing;

pub use generate::{GenerationStats, generate};
pub use timing::{
    Decode, EngineError, Progress, Speeds, decode_both, measure_speeds, per_token_cost,
};
