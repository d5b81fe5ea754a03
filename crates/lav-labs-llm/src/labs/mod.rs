//! The labs of this track, one file per lab, and the table that registers them.

mod attention;
mod embeddings;
pub mod forward_pass;
pub mod generation;
pub mod kv_cache;
pub mod quantization;
mod tokenization;
mod transformer_block;

use lav_lab::{Catalogue, Lab, Result};
use lav_model::Loader;
use std::path::PathBuf;
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (for its data files) and the
/// loader for real models.
#[derive(Clone)]
pub struct Context {
    pub dir: PathBuf,
    pub loader: Arc<dyn Loader>,
}

type Opener = fn(&Context) -> Result<Box<dyn Lab>>;

/// This track's labs: `labs/index.toml` lists each under its track.
pub const LABS: &[(&str, Opener)] = &[
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
    for &(id, open) in LABS {
        let loader = loader.clone();
        catalogue.add(id, move |dir| {
            open(&Context {
                dir: dir.to_path_buf(),
                loader: loader.clone(),
            })
        });
    }
}
