//! The labs of this track, one file per lab, and the table that registers them.

mod attention;
mod embeddings;
pub mod forward_pass;
pub mod generation;
pub mod kv_cache;
pub mod quantization;
mod tokenization;
mod transformer_block;

use lav_lab::{Catalogue, TrackOpener};
use lav_model::Loader;
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (for its data files) and the
/// loader for real models.
pub type Context = lav_lab::Context<dyn Loader>;

/// This track's labs: `labs/index.toml` lists each under its track.
pub const LABS: &[(&str, TrackOpener<dyn Loader>)] = &[
    ("tokenization", tokenization::open),
    ("embeddings", embeddings::open),
    ("attention", attention::open),
    ("transformer-block", transformer_block::open),
    ("generation", generation::open),
    ("kv-cache", kv_cache::open),
    ("quantization", quantization::open),
    ("forward-pass", forward_pass::open),
];

/// Adds this track's labs to `catalogue`, each opened over `loader`'s models.
pub fn register(catalogue: &mut Catalogue, loader: Arc<dyn Loader>) {
    catalogue.add_track(LABS, loader);
}
