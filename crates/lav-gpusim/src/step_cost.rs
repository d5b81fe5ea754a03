//! What one forward step of a batch costs on a GPU from the table: the simulated
//! clock of the serving engine. A step's time is the slower of its arithmetic at the
//! chip's peak and its memory traffic at the chip's bandwidth, plus a fixed launch
//! overhead (the roofline, applied to a whole step):
//!
//! - **FLOPs**: 2 per parameter per new position (the matmuls), plus attention's
//!   QKᵀ and PV, 4 · layers · heads · head_dim per (new position, attended position).
//! - **Bytes**: every weight read once per step (batching shares that read), each
//!   sequence's cached K/V read once per layer, and the new positions' K/V written.
//!
//! It is a model: it ignores kernel efficiency, overlap and communication, so it gives
//! a lower bound on step time, and what it shows is labelled simulated with the
//! hardware row it used.

use crate::hardware::{Gpu, ModelConfig};

/// One sequence's share of a step: `new` positions computed, ending at position
/// `context` (so it attends over up to `context` positions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqWork {
    pub new: usize,
    pub context: usize,
}

/// The model and chip a step is costed on, and the assumptions stated.
#[derive(Debug, Clone)]
pub struct StepModel {
    pub model: ModelConfig,
    pub gpu: Gpu,
    /// Bytes per weight: 2 for BF16, 1 for FP8.
    pub weight_bytes: f64,
    /// Bytes per cached K or V value.
    pub kv_bytes: f64,
    /// Fixed cost per step: kernel launches and scheduling (an assumption, shown as
    /// such).
    pub overhead_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCost {
    pub flops: f64,
    pub bytes: f64,
    /// FLOPs at the BF16 peak.
    pub compute_s: f64,
    /// Bytes at the HBM bandwidth.
    pub memory_s: f64,
    /// max(compute, memory) + overhead.
    pub seconds: f64,
}

impl StepCost {
    /// Which roof binds this step.
    pub fn bound(&self) -> &'static str {
        if self.compute_s >= self.memory_s {
            "compute-bound"
        } else {
            "memory-bound"
        }
    }
}

impl StepModel {
    /// BF16 weights and KV, and 5 µs of overhead per layer (a few kernel launches
    /// each, without CUDA graphs).
    pub fn bf16(model: ModelConfig, gpu: Gpu) -> Self {
        let overhead_s = 5e-6 * model.layers as f64;
        Self {
            model,
            gpu,
            weight_bytes: 2.0,
            kv_bytes: 2.0,
            overhead_s,
        }
    }

    /// K and V bytes of one position across all layers.
    pub fn kv_per_position(&self) -> f64 {
        let m = &self.model;
        2.0 * (m.layers * m.kv_heads * m.head_dim) as f64 * self.kv_bytes
    }

    pub fn cost(&self, batch: &[SeqWork]) -> StepCost {
        let m = &self.model;
        let new: usize = batch.iter().map(|w| w.new).sum();
        if new == 0 {
            return StepCost {
                flops: 0.0,
                bytes: 0.0,
                compute_s: 0.0,
                memory_s: 0.0,
                seconds: 0.0,
            };
        }
        // Position i of a chunk of n ending at c attends over c - n + i + 1 positions.
        let attended: f64 = batch
            .iter()
            .map(|w| {
                let (n, c) = (w.new as f64, w.context as f64);
                n * c - n * (n - 1.0) / 2.0
            })
            .sum();
        let flops = 2.0 * m.params as f64 * new as f64
            + 4.0 * (m.layers * m.heads * m.head_dim) as f64 * attended;
        let cached: usize = batch.iter().map(|w| w.context - w.new).sum();
        let bytes =
            m.params as f64 * self.weight_bytes + self.kv_per_position() * (cached + new) as f64;
        let (compute_s, memory_s) = (flops / self.gpu.bf16(), bytes / self.gpu.bandwidth());
        StepCost {
            flops,
            bytes,
            compute_s,
            memory_s,
            seconds: compute_s.max(memory_s) + self.overhead_s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn step(model: &str, gpu: &str) -> StepModel {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs");
        let m = crate::model_configs(&dir)
            .unwrap()
            .into_iter()
            .find(|m| m.id == model)
            .unwrap();
        StepModel::bf16(m, crate::gpu(&dir, gpu).unwrap())
    }

    #[test]
    fn decode_is_memory_bound_and_reads_the_weights_once_per_step() {
        let s = step("llama-3-8b", "h100");
        // Batch 1 at position 1,000: the weights (2 bytes × 8.03 B) and 1,000
        // positions of K/V (2 · 32 layers · 8 heads · 128 dims · 2 bytes = 128 KiB
        // each) over the H100's 3.35 TB/s.
        let one = s.cost(&[SeqWork {
            new: 1,
            context: 1000,
        }]);
        assert_eq!(s.kv_per_position(), 131_072.0);
        let bytes = 2.0 * 8_030_261_248.0 + 131_072.0 * 1000.0;
        assert!((one.bytes - bytes).abs() < 1.0);
        assert!((one.memory_s - bytes / 3.35e12).abs() < 1e-12);
        assert_eq!(one.bound(), "memory-bound");
        // Eight sequences share the weight read: far less than 8× the time.
        let eight = s.cost(
            &[SeqWork {
                new: 1,
                context: 1000,
            }; 8],
        );
        assert!(eight.seconds < 1.5 * one.seconds, "{eight:?} vs {one:?}");
    }

    #[test]
    fn a_long_prefill_is_compute_bound_with_causal_attention_counted() {
        let s = step("llama-3-8b", "h100");
        let c = s.cost(&[SeqWork {
            new: 2048,
            context: 2048,
        }]);
        // 2·P per position, plus 4·L·H·d per (query, key) pair of a causal 2048².
        let pairs = 2048.0 * 2049.0 / 2.0;
        let flops = 2.0 * 8_030_261_248.0 * 2048.0 + 4.0 * (32.0 * 32.0 * 128.0) * pairs;
        assert!((c.flops - flops).abs() / flops < 1e-12);
        assert_eq!(c.bound(), "compute-bound");
        assert!((c.seconds - (flops / s.gpu.bf16() + s.overhead_s)).abs() < 1e-12);
        // The same positions in two chunks cost the same FLOPs.
        let halves = s
            .cost(&[SeqWork {
                new: 1024,
                context: 1024,
            }])
            .flops
            + s.cost(&[SeqWork {
                new: 1024,
                context: 2048,
            }])
            .flops;
        assert!((halves - flops).abs() / flops < 1e-12);
    }
}
