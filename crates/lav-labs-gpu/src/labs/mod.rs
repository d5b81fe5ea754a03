//! The labs of this crate, one file per lab, the table that registers them, and the
//! few helpers they share (the GPU selector, number formatting).

mod execution_model;
mod memory_access_patterns;
mod memory_hierarchy;
pub mod on_cuda;
mod on_gpu;
mod operator_fusion;
mod roofline_model;
mod tensor_cores;
mod tiling_matmul;
mod triton_torch_compile;
mod why_gpus;

use lav_gpusim::{Gpu, Table};
use lav_lab::{Catalogue, Control, TrackOpener, Values};
use lav_model::Loader;
use lav_scene::Provenance;
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (for its data files) and the
/// loader for real models.
pub type Context = lav_lab::Context<dyn Loader>;

/// This crate's labs: `labs/index.toml` lists each under its track.
pub const LABS: &[(&str, TrackOpener<dyn Loader>)] = &[
    ("why-gpus", why_gpus::open),
    ("execution-model", execution_model::open),
    ("memory-hierarchy", memory_hierarchy::open),
    ("roofline-model", roofline_model::open),
    ("memory-access-patterns", memory_access_patterns::open),
    ("tiling-matmul", tiling_matmul::open),
    ("tensor-cores", tensor_cores::open),
    ("operator-fusion", operator_fusion::open),
    ("triton-torch-compile", triton_torch_compile::open),
];

/// Adds this crate's labs to `catalogue`, each opened over `loader`'s models.
pub fn register(catalogue: &mut Catalogue, loader: Arc<dyn Loader>) {
    catalogue.add_track(LABS, loader);
}

/// The GPU selector: every row of the table, by name.
fn gpu_control(t: &Table, default: &str) -> Control {
    let names: Vec<&str> = t.gpu.iter().map(|g| g.name.as_str()).collect();
    Control::choice("gpu", "GPU", &names, default)
}

/// The row the selector names.
fn selected<'a>(t: &'a Table, c: &Control, v: &Values) -> &'a Gpu {
    let name = v.text(c);
    t.gpu.iter().find(|g| g.name == name).unwrap_or(&t.gpu[0])
}

/// Provenance of a figure simulated from `g`'s row of the table.
fn sim(g: &Gpu, what: &str) -> Provenance {
    Provenance::simulated(format!("{what}, {} row of the hardware table", g.label()))
}

/// Provenance of a figure measured here.
fn measured(what: &str) -> Provenance {
    Provenance::engine(format!("measured on this machine: {what}"))
}

/// An integer with thousands separators: 2,147,483,648.
fn commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes in binary units (KiB, MiB, GiB), as on-chip sizes are quoted.
fn bytes(b: f64) -> String {
    const K: f64 = 1024.0;
    if b >= K * K * K {
        format!("{:.1} GiB", b / (K * K * K))
    } else if b >= K * K {
        format!("{:.1} MiB", b / (K * K))
    } else if b >= K {
        format!("{:.1} KiB", b / K)
    } else {
        format!("{b:.0} B")
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Seconds with a unit that keeps three digits.
fn secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.2} µs", s * 1e6)
    } else {
        format!("{:.1} ns", s * 1e9)
    }
}

/// FLOP/s with an SI prefix.
fn flops(f: f64) -> String {
    if f >= 1e12 {
        format!("{:.1} TFLOP/s", f / 1e12)
    } else if f >= 1e9 {
        format!("{:.1} GFLOP/s", f / 1e9)
    } else {
        format!("{:.1} MFLOP/s", f / 1e6)
    }
}
