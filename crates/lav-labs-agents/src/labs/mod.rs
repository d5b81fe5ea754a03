//! The labs of this track, one file per lab, and the table that registers them.

pub mod agent_loop_state;
pub mod retrieval_rag;
pub mod security_trifecta;
pub mod tool_use;

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
    ("security-trifecta", security_trifecta::open),
    ("agent-loop-state", agent_loop_state::open),
    ("retrieval-rag", retrieval_rag::open),
    ("tool-use", tool_use::open),
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
