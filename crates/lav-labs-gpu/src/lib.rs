//! `lav-labs-gpu`: the GPU & CUDA track. Every GPU figure comes from a simulator in
//! `lav-gpusim` driven by a row of the hardware table (a SIMT executor, the occupancy
//! calculator, coalescing and bank conflicts, tiled matmul read counts, number
//! formats, MMA, fusion traffic, FlashAttention, the roofline), fed with the real
//! model's weights, activations and logits wherever a lab needs data; and wherever an
//! effect exists on a CPU it is also measured on this machine beside the simulation.
//!
//! Measured panels on the learner's own GPU come from `lav-gpu-kernels` (WGSL through
//! wgpu).
//!
//! May depend on `lav-lab`, `lav-scene`, `lav-model`, `lav-gpusim`, `lav-gpu-kernels`
//! and candle (the reference softmax); never on a renderer, the network or another track.

pub mod labs;

pub use labs::{Context, LABS, register};
