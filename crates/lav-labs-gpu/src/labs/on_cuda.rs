//! candle's CUDA matmul and the driver's own description of the device, for why-gpus's
//! race. Built only with `--features cuda` (it needs the CUDA toolkit); without it,
//! or without a device, the lab shows one line saying why.

use super::on_gpu::Kept;
use lav_gpusim::hardware::Gpu;
use lav_lab::items::table;
use lav_scene::{Item, Provenance};

/// What the CUDA driver reports about device 0.
#[derive(Clone, Debug)]
pub struct Device {
    pub name: String,
    pub sms: u32,
    pub memory_bytes: u64,
    /// Compute capability (major, minor).
    pub capability: (i32, i32),
}

/// The matmul on the CUDA device: best-of-3 time and the largest difference from
/// the scalar CPU result.
#[derive(Clone, Debug)]
pub struct Run {
    pub device: Device,
    pub seconds: f64,
    pub max_diff: f32,
}

/// Multiplies the two `n × n` matrices on CUDA device 0 through candle, checked
/// against `reference`.
#[cfg(feature = "cuda")]
pub fn matmul(a: &[f32], b: &[f32], n: usize, reference: &[f32]) -> Kept<Run> {
    use candle_core::cuda_backend::cudarc::driver::{CudaContext, result, sys::CUdevice_attribute};
    use candle_core::{Device as Dev, Tensor};
    use std::time::Instant;
    let driver = |e: candle_core::cuda_backend::cudarc::driver::DriverError| {
        format!("the CUDA driver says: {e}")
    };
    let ctx = CudaContext::new(0).map_err(|e| format!("no CUDA device: {e}"))?;
    let sms = ctx
        .attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)
        .map_err(driver)?;
    ctx.bind_to_thread().map_err(driver)?;
    let (_, total) = result::mem_get_info().map_err(driver)?;
    let device = Device {
        name: ctx.name().map_err(driver)?,
        sms: sms as u32,
        memory_bytes: total as u64,
        capability: ctx.compute_capability().map_err(driver)?,
    };
    let candle = |e: candle_core::Error| format!("candle on CUDA: {e}");
    let dev = Dev::new_cuda(0).map_err(candle)?;
    let ta = Tensor::from_slice(a, (n, n), &dev).map_err(candle)?;
    let tb = Tensor::from_slice(b, (n, n), &dev).map_err(candle)?;
    // The first call loads cuBLAS and picks its kernel: a warm-up, not timed.
    ta.matmul(&tb).map_err(candle)?;
    dev.synchronize().map_err(candle)?;
    let mut seconds = f64::INFINITY;
    let mut out = None;
    for _ in 0..3 {
        let t0 = Instant::now();
        let c = ta.matmul(&tb).map_err(candle)?;
        // Launches are asynchronous: the clock stops when the device has finished.
        dev.synchronize().map_err(candle)?;
        seconds = seconds.min(t0.elapsed().as_secs_f64());
        out = Some(c);
    }
    let out = out
        .expect("three runs")
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(candle)?;
    let max_diff = out
        .iter()
        .zip(reference)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    Ok(Run {
        device,
        seconds,
        max_diff,
    })
}

/// Without the feature there is nothing to run: say how to get it.
#[cfg(not(feature = "cuda"))]
pub fn matmul(_: &[f32], _: &[f32], _: usize, _: &[f32]) -> Kept<Run> {
    Err("this lav was built without CUDA; on a machine with an NVIDIA driver and the CUDA toolkit, \
         `cargo run --release --features cuda -- lab why-gpus` adds candle's CUDA matmul to the race"
        .into())
}

/// The device as the driver reports it, beside the table row of the same chip (or
/// the nearest row's name, where the table has no such chip).
pub fn device_table(id: &str, d: &Device, row: Option<&Gpu>) -> Item {
    let (row_name, row_sms, row_mem) = match row {
        Some(g) => (g.label(), g.sms.to_string(), format!("{:.0} GB", g.hbm_gb)),
        None => ("no row for this chip".into(), "—".into(), "—".into()),
    };
    let same = |a: &str, b: &str| if a == b { "same" } else { "differs" };
    let mem = format!("{:.1} GB", d.memory_bytes as f64 / 1e9);
    table(
        id,
        "Your CUDA device, from the driver, beside the table",
        Provenance::engine(format!(
            "measured on this machine: read from the CUDA driver (compute capability {}.{}); the table row is labs/data/hardware.toml's",
            d.capability.0, d.capability.1
        )),
        &["", "driver", "table row", ""],
        vec![
            vec!["name".into(), d.name.clone(), row_name, String::new()],
            vec![
                "SMs".into(),
                d.sms.to_string(),
                row_sms.clone(),
                if row.is_some() {
                    same(&d.sms.to_string(), &row_sms).into()
                } else {
                    String::new()
                },
            ],
            // The driver counts every byte; vendors round the marketed size.
            vec!["memory".into(), mem, row_mem, String::new()],
        ],
    )
}
