//! The measured panels from the learner's own GPU (`lav-gpu-kernels`): each probe runs
//! once per process in a lab's background job and is kept, and a lab without an
//! adapter shows one line saying why its measured panel is empty.

use super::secs;
use lav_gpu_kernels::{Gpu, KernelError, Measured};
use lav_lab::items::{table, text};
use lav_scene::{Item, Provenance};
use std::sync::OnceLock;

/// A probe's result, or why there is none, kept for the process.
pub type Kept<T> = std::result::Result<T, String>;

/// Runs `f` on the shared GPU the first time and returns the kept result after.
pub fn once<T: Clone>(
    cell: &'static OnceLock<Kept<T>>,
    f: impl FnOnce(&Gpu) -> Result<T, KernelError>,
) -> Kept<T> {
    cell.get_or_init(|| Gpu::shared().and_then(f).map_err(|e| e.to_string()))
        .clone()
}

/// The adapter the probes ran on, if one opened.
pub fn adapter_label() -> Option<String> {
    Gpu::shared().ok().map(|g| g.adapter.label())
}

/// The measured kernels as a table: time, rate, ratio to the first row, and the
/// largest difference from the CPU reference; labelled with the adapter and method.
/// With no adapter, one line saying why.
pub fn panel(id: &str, title: &str, runs: &Kept<Vec<Measured>>, rate: Rate) -> Vec<Item> {
    let rows = match runs {
        Err(e) => {
            return vec![text(
                id,
                "Measured on your GPU: nothing to show",
                Provenance::computed("no GPU measurement on this machine"),
                format!("No GPU measurement: {e}. The simulated figures above still hold."),
            )];
        }
        Ok(r) => r,
    };
    let label = adapter_label().unwrap_or_default();
    let method = rows.first().map_or("", |m| m.method.name());
    let base = rows.first().map_or(1.0, |m| m.seconds);
    let mut items = vec![table(
        id,
        title,
        Provenance::engine(format!(
            "measured on {label}: WGSL kernels through wgpu, best of {}, timed with {method}",
            rows.first().map_or(0, |m| m.runs)
        )),
        &[
            "kernel",
            "time",
            rate.column(),
            "time vs the first",
            "largest |difference| from the CPU",
        ],
        rows.iter()
            .map(|m| {
                vec![
                    m.kernel.clone(),
                    secs(m.seconds),
                    rate.of(m),
                    format!("{:.2}×", m.seconds / base),
                    format!("{:.1e}", m.max_abs_err),
                ]
            })
            .collect(),
    )];
    if Gpu::shared().is_ok_and(|g| g.adapter.software) {
        items.push(text(
            &format!("{id}-software"),
            "This \"GPU\" is a CPU",
            Provenance::computed("the adapter's own description"),
            format!("{label}: a software renderer runs these kernels on the CPU, so the times show this CPU's caches, not GPU memory. The outputs are still checked."),
        ));
    }
    items
}

/// What a measured row's rate column shows.
#[derive(Clone, Copy)]
pub enum Rate {
    Bytes,
    Flops,
}

impl Rate {
    fn column(self) -> &'static str {
        match self {
            Rate::Bytes => "useful GB/s",
            Rate::Flops => "GFLOP/s",
        }
    }
    fn of(self, m: &Measured) -> String {
        match self {
            Rate::Bytes => format!("{:.2}", m.bytes / m.seconds / 1e9),
            Rate::Flops => format!("{:.2}", m.flops / m.seconds / 1e9),
        }
    }
}
