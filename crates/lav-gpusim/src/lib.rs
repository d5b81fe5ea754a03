//! `lav-gpusim`: hardware as data, and simulators that compute. The GPU table
//! (`labs/data/hardware.toml`, the one copy of `shared/hardware.md`) and published
//! model shapes, loaded as data; the roofline (attainable throughput, ridge points,
//! every op of a transformer step placed by its FLOPs and bytes); this machine
//! measured (`machine`: cores, SIMD, caches, bandwidth, f32 peak, a latency ladder);
//! what a batched forward step costs on a GPU (`step_cost`: the serving engine's
//! simulated clock); and the GPU track's simulators, each computing from exact
//! inputs rather than animating: a SIMT executor (`simt`), the occupancy calculator
//! (`occupancy`), coalescing and bank conflicts (`access`), naive vs tiled matmul
//! reads (`tiling`), number formats bit by bit (`formats`), tensor-core MMA
//! (`mma`), fusion's HBM traffic (`fusion`), FlashAttention (`flash`) and
//! Triton-style block programs (`block_program`).
//!
//! May depend on candle-core (the f32 peak probe), rayon, serde, thiserror and toml;
//! never on the model, a lab or a renderer.

pub mod access;
pub mod block_program;
pub mod flash;
pub mod formats;
pub mod fusion;
pub mod hardware;
pub mod machine;
pub mod mma;
pub mod occupancy;
pub mod roofline;
pub mod simt;
pub mod step_cost;
pub mod tiling;

pub use hardware::{Gpu, ModelConfig, Table, gpu, gpus, kv_bytes, model_configs};

/// A data file that is missing or malformed: one line naming it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

pub type Result<T> = std::result::Result<T, DataError>;
