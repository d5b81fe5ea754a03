//! The GPU table (`labs/data/hardware.toml`) and published model configurations
//! (`labs/data/model-configs.toml`): read from their one data file, with every
//! derived figure (ridge points) computed here rather than typed in.

use crate::{DataError, Result};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Debug, Deserialize)]
pub struct Gpu {
    pub id: String,
    pub name: String,
    pub arch: String,
    pub hbm_gb: f64,
    pub hbm: String,
    pub bandwidth_tb_s: f64,
    pub bf16_tflops: f64,
    pub fp8_tflops: Option<f64>,
    pub tf32_tflops: f64,
    pub fp32_tflops: f64,
    pub int8_tops: Option<f64>,
    #[serde(default)]
    pub fp4_tflops: Option<f64>,
    pub sms: u32,
    pub l2_mb: f64,
    pub fp32_lanes_per_sm: u32,
    /// Shared memory an SM can give its blocks, KiB (the carve-out maximum).
    pub shared_kb_per_sm: u32,
    /// The most one block may ask for, KiB.
    pub shared_kb_per_block: u32,
    pub l1_shared_kb_per_sm: u32,
    /// 32-bit registers per SM.
    pub registers_per_sm: u32,
    pub max_threads_per_sm: u32,
    pub max_blocks_per_sm: u32,
    pub pcie: String,
    pub pcie_gb_s_per_direction: f64,
    pub nvlink: String,
    /// Summed over all links and both directions.
    pub nvlink_gb_s_total: f64,
    pub approx: bool,
    pub source: String,
}

/// What every GPU in the table shares, and the occupancy calculator's allocation
/// rules (`[common]` in the table).
#[derive(Clone, Debug, Deserialize)]
pub struct Common {
    pub warp_size: u32,
    pub max_threads_per_block: u32,
    pub max_registers_per_thread: u32,
    pub tensor_cores_per_sm: u32,
    pub shared_banks: u32,
    pub bank_bytes: u32,
    pub line_bytes: u32,
    pub sector_bytes: u32,
    /// Registers are given to a warp in units of this many.
    pub register_alloc_unit: u32,
    /// Shared memory is given to a block in units of this many bytes.
    pub shared_alloc_unit_bytes: u32,
    /// Shared memory the system keeps for itself in every block, KiB.
    pub reserved_shared_kb_per_block: u32,
}

/// One level of the memory hierarchy's latency table.
#[derive(Clone, Debug, Deserialize)]
pub struct Level {
    pub name: String,
    /// The illustrative teaching value, cycles: always shown labelled as such.
    pub teaching_cycles: f64,
    /// The range published microbenchmarks measured, as text ("~20–30").
    pub measured: String,
}

/// The whole hardware table, read once.
#[derive(Clone, Debug, Deserialize)]
pub struct Table {
    pub common: Common,
    pub gpu: Vec<Gpu>,
    pub level: Vec<Level>,
    pub latency_source: LatencySource,
}

#[derive(Clone, Debug, Deserialize)]
pub struct LatencySource {
    pub measured: String,
}

impl Table {
    pub fn load(labs_dir: &Path) -> Result<Table> {
        read(labs_dir, "hardware.toml")
    }

    pub fn gpu(&self, id: &str) -> Result<&Gpu> {
        self.gpu
            .iter()
            .find(|g| g.id == id)
            .ok_or_else(|| DataError(format!("GPU `{id}` is not in labs/data/hardware.toml")))
    }

    /// The row for the chip a driver names ("NVIDIA H100 80GB HBM3",
    /// "NVIDIA A100-SXM4-80GB"): the row whose model word (the first word of its
    /// name) is a word of the driver's name. `None` for a chip the table lacks.
    pub fn row_for_device(&self, device_name: &str) -> Option<&Gpu> {
        let words: Vec<String> = device_name
            .split(|c: char| !c.is_ascii_alphanumeric())
            .map(str::to_ascii_uppercase)
            .collect();
        self.gpu.iter().find(|g| {
            g.name
                .split_whitespace()
                .next()
                .is_some_and(|m| words.iter().any(|w| *w == m.to_ascii_uppercase()))
        })
    }
}

impl Gpu {
    /// HBM capacity in bytes (decimal GB, as the vendor states it).
    pub fn hbm_bytes(&self) -> f64 {
        self.hbm_gb * 1e9
    }
    pub fn bandwidth(&self) -> f64 {
        self.bandwidth_tb_s * 1e12
    }
    /// Dense BF16 tensor-core peak, FLOP/s.
    pub fn bf16(&self) -> f64 {
        self.bf16_tflops * 1e12
    }
    /// FLOPs per byte above which a BF16 kernel is compute-bound.
    pub fn ridge_bf16(&self) -> f64 {
        self.bf16() / self.bandwidth()
    }
    pub fn ridge_fp8(&self) -> Option<f64> {
        self.fp8_tflops.map(|f| f * 1e12 / self.bandwidth())
    }
    /// Every FP32 lane on the chip: SMs × lanes per SM.
    pub fn fp32_lanes(&self) -> u32 {
        self.sms * self.fp32_lanes_per_sm
    }
    pub fn tensor_cores(&self, common: &Common) -> u32 {
        self.sms * common.tensor_cores_per_sm
    }
    /// Its name, marked "≈" where the table says approximate.
    pub fn label(&self) -> String {
        if self.approx {
            format!("{} (≈)", self.name)
        } else {
            self.name.clone()
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct ModelConfig {
    pub id: String,
    pub name: String,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub params: u64,
    pub context: usize,
    pub source: String,
}

fn read<T: for<'de> Deserialize<'de>>(dir: &Path, file: &str) -> Result<T> {
    let path = dir.join("data").join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| DataError(format!("cannot read {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| DataError(format!("{}: {}", path.display(), e.message())))
}

/// Every GPU in the table, in file order.
pub fn gpus(labs_dir: &Path) -> Result<Vec<Gpu>> {
    Ok(Table::load(labs_dir)?.gpu)
}

/// One GPU by id (`h100`, `h200`, …).
pub fn gpu(labs_dir: &Path, id: &str) -> Result<Gpu> {
    Table::load(labs_dir)?.gpu(id).cloned()
}

/// The published model configurations, in file order.
pub fn model_configs(labs_dir: &Path) -> Result<Vec<ModelConfig>> {
    #[derive(Deserialize)]
    struct F {
        model: Vec<ModelConfig>,
    }
    Ok(read::<F>(labs_dir, "model-configs.toml")?.model)
}

/// KV-cache bytes: 2 (K and V) · layers · KV heads · head dim · bytes per value ·
/// tokens · batch.
pub fn kv_bytes(
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    bytes_per_value: f64,
    tokens: usize,
    batch: usize,
) -> f64 {
    2.0 * layers as f64
        * kv_heads as f64
        * head_dim as f64
        * bytes_per_value
        * tokens as f64
        * batch as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs")
    }

    #[test]
    fn ridge_points_match_the_table() {
        // hardware.md section 3: A100 153, H100 295, H200 206, B200 ≈281 FLOP/B.
        for (id, ridge) in [
            ("a100", 153.0),
            ("h100", 295.0),
            ("h200", 206.0),
            ("b200", 281.0),
        ] {
            let g = gpu(&dir(), id).unwrap();
            assert!(
                (g.ridge_bf16() - ridge).abs() < 1.0,
                "{id}: {}",
                g.ridge_bf16()
            );
        }
        let h = gpu(&dir(), "h100").unwrap();
        assert!((h.ridge_fp8().unwrap() - 591.0).abs() < 1.0);
        assert!(gpu(&dir(), "b200").unwrap().label().contains('≈'));
        assert!(gpu(&dir(), "nope").is_err());
    }

    #[test]
    fn derived_counts_match_hardware_md() {
        // hardware.md section 2: H100 132 × 128 = 16,896 lanes, 528 Tensor Cores;
        // A100 108 × 64 = 6,912 and 432.
        let t = Table::load(&dir()).unwrap();
        let h = t.gpu("h100").unwrap();
        assert_eq!(h.fp32_lanes(), 16_896);
        assert_eq!(h.tensor_cores(&t.common), 528);
        let a = t.gpu("a100").unwrap();
        assert_eq!((a.fp32_lanes(), a.tensor_cores(&t.common)), (6_912, 432));
        assert_eq!(t.level.len(), 4);
        let hbm = t.level.iter().find(|l| l.name == "HBM").unwrap();
        let reg = t.level.iter().find(|l| l.name == "Registers").unwrap();
        assert_eq!(hbm.teaching_cycles, 400.0);
        assert_eq!(reg.teaching_cycles, 0.0);
    }

    #[test]
    fn driver_names_find_their_row() {
        // Names as nvidia-smi and cuDeviceGetName print them.
        let t = Table::load(&dir()).unwrap();
        let row = |n: &str| t.row_for_device(n).map(|g| g.id.as_str());
        assert_eq!(row("NVIDIA H100 80GB HBM3"), Some("h100"));
        assert_eq!(row("NVIDIA H100 PCIe"), Some("h100"));
        assert_eq!(row("NVIDIA A100-SXM4-80GB"), Some("a100"));
        assert_eq!(row("NVIDIA H200"), Some("h200"));
        assert_eq!(row("NVIDIA B200"), Some("b200"));
        assert_eq!(row("NVIDIA GeForce RTX 4090"), None);
        // A word that only contains a model name is not that model.
        assert_eq!(row("NVIDIA GH100X"), None);
    }

    #[test]
    fn kv_bytes_per_token_match_the_curriculum() {
        const KIB: f64 = 1024.0;
        let cfgs = model_configs(&dir()).unwrap();
        let per_token = |id: &str| {
            let c = cfgs.iter().find(|c| c.id == id).unwrap();
            kv_bytes(c.layers, c.kv_heads, c.head_dim, 2.0, 1, 1)
        };
        assert_eq!(per_token("llama-2-7b") / KIB, 512.0);
        assert_eq!(per_token("llama-3-8b") / KIB, 128.0);
        assert_eq!(per_token("llama-3-70b") / KIB, 320.0);
        let c = cfgs.iter().find(|c| c.id == "llama-3-70b").unwrap();
        let at_128k = kv_bytes(c.layers, c.kv_heads, c.head_dim, 2.0, 128 * 1024, 1);
        assert_eq!(at_128k / (KIB * KIB * KIB), 40.0);
        // SmolLM2-135M: 30 layers, 3 KV heads, head dim 64 → 22.5 KiB at 16-bit.
        assert_eq!(kv_bytes(30, 3, 64, 2.0, 1, 1) / KIB, 22.5);
    }
}
