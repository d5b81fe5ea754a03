//! `lav-labs-llm`: the LLM Internals track and the forward-pass walkthrough. Every
//! number these labs show comes from SmolLM2's own computation (`lav-model`), the
//! engine's measurements (`lav-engine`) or the hardware table (`lav-gpusim`).
//!
//! May depend on `lav-lab`, `lav-scene`, `lav-model`, `lav-engine`, `lav-gpusim` and
//! candle-core (to read captured tensors); never on a renderer or another track.

pub mod bpe;
pub mod labs;
pub mod layout;
pub mod linalg;
pub mod pass;
pub mod quantize;

pub use labs::{Context, LABS, register};
