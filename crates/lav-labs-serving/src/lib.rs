//! `lav-labs-serving`: the labs that teach serving with lav's own engine
//! (`lav-engine`) serving the real model: batching, paged-attention (listed under LLM
//! Internals in the curriculum), inference-engine and serving-metrics. They live
//! together because they drive the same thing, a [`trace::serve`] run of the engine's
//! scheduler, block manager and runner on a seeded arrival trace, recorded step by
//! step; the LLM Internals crate teaches one forward pass and never runs the engine.
//!
//! May depend on `lav-lab`, `lav-scene`, `lav-model`, `lav-engine` and `lav-gpusim`;
//! never on a renderer, the network or another track.

pub mod labs;
pub mod trace;

pub use labs::{Context, LABS, register};
