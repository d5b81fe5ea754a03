//! `lav-gpusim`: hardware as data and arithmetic. The GPU table (`labs/data/hardware.toml`,
//! the one copy of `shared/hardware.md`) and published model shapes, loaded as data;
//! the roofline (attainable throughput, ridge points, which roof binds); and this
//! machine measured (`machine`: cores, SIMD, bandwidth, f32 peak); and what a batched
//! forward step costs on a GPU from the table (`step_cost`: the serving engine's
//! simulated clock). The GPU simulators grow here.
//!
//! May depend on candle-core (the f32 peak probe), rayon, serde and toml; never on the
//! model, a lab or a renderer.

pub mod hardware;
pub mod machine;
pub mod roofline;
pub mod step_cost;

pub use hardware::{Gpu, ModelConfig, gpu, gpus, kv_bytes, model_configs};

/// A data file that is missing or malformed: one line naming it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

pub type Result<T> = std::result::Result<T, DataError>;
