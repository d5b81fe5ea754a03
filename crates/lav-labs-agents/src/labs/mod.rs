//! The labs of this track, one file per lab, and the table that registers them.

pub mod agent_loop_state;
pub mod retrieval_rag;
pub mod security_trifecta;
pub mod tool_use;

use lav_lab::{Catalogue, TrackOpener};
use lav_model::Loader;
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (for its data files) and the
/// loader for real models.
pub type Context = lav_lab::Context<dyn Loader>;

/// This track's labs: `labs/index.toml` lists each under its track.
pub const LABS: &[(&str, TrackOpener<dyn Loader>)] = &[
    ("security-trifecta", security_trifecta::open),
    ("agent-loop-state", agent_loop_state::open),
    ("retrieval-rag", retrieval_rag::open),
    ("tool-use", tool_use::open),
];

/// Adds this track's labs to `catalogue`, each opened over `loader`'s models.
pub fn register(catalogue: &mut Catalogue, loader: Arc<dyn Loader>) {
    catalogue.add_track(LABS, loader);
}
