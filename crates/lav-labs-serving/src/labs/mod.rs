//! The labs of this crate, one file per lab, and the table that registers them.

mod batching;
mod inference_engine;
mod paged_attention;
mod serving_metrics;

use lav_engine::metrics::RequestTimes;
use lav_lab::{Catalogue, TrackOpener};
use lav_model::Loader;
use lav_scene::{Role, Span};
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (for its data files) and the
/// loader for real models.
pub type Context = lav_lab::Context<dyn Loader>;

/// This crate's labs: `labs/index.toml` lists each under its track.
pub const LABS: &[(&str, TrackOpener<dyn Loader>)] = &[
    ("batching", batching::open),
    ("paged-attention", paged_attention::open),
    ("inference-engine", inference_engine::open),
    ("serving-metrics", serving_metrics::open),
];

/// Adds this crate's labs to `catalogue`, each opened over `loader`'s models.
pub fn register(catalogue: &mut Catalogue, loader: Arc<dyn Loader>) {
    catalogue.add_track(LABS, loader);
}

/// The text the labs' prompts are cut from (`labs/data/heldout.txt`).
fn prompt_text(dir: &std::path::Path) -> lav_lab::Result<String> {
    let p = dir.join("data/heldout.txt");
    std::fs::read_to_string(&p)
        .map_err(|e| lav_lab::LabError::Lesson(format!("cannot read {}: {e}", p.display())))
}

/// A request's life as timeline spans on lane `lane`, in milliseconds: queued
/// (arrival → first scheduled), prefill (→ first token), decode (→ finish).
fn lifecycle(lane: usize, t: &RequestTimes) -> Vec<Span> {
    let ms = |x: f64| x * 1e3;
    let (Some(s), Some(f), Some(fin)) = (t.scheduled, t.tokens.first(), t.finish) else {
        return Vec::new();
    };
    let span = |a: f64, b: f64, label: &str, role| Span {
        lane,
        start: ms(a),
        end: ms(b),
        label: label.into(),
        role,
    };
    vec![
        span(t.arrival, s, "queue", Role::Muted),
        span(s, *f, "prefill", Role::Attention),
        span(*f, fin, "decode", Role::Highlight),
    ]
}

/// Milliseconds with sensible digits.
fn ms(s: f64) -> String {
    let m = s * 1e3;
    if m >= 100.0 {
        format!("{m:.0} ms")
    } else {
        format!("{m:.1} ms")
    }
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}
