//! The labs of this track, one file per lab, and the table that registers them.

pub mod agent_loop_state;
pub mod context_engineering;
pub mod retrieval_rag;
pub mod security_trifecta;
pub mod tool_use;
pub mod workflow_patterns;

use lav_lab::{Catalogue, TrackOpener};
use lav_model::Loader;
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (for its data files) and the
/// loader for real models.
pub type Context = lav_lab::Context<dyn Loader>;

/// An OpenAI-compatible endpoint the learner configured (`lav lab … --llm-url`): the
/// labs that run a model offer it as a driver.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    pub model: String,
}

/// This track's labs: `labs/index.toml` lists each under its track.
pub const LABS: &[(&str, TrackOpener<dyn Loader>)] = &[
    ("security-trifecta", security_trifecta::open),
    ("agent-loop-state", agent_loop_state::open),
    ("retrieval-rag", retrieval_rag::open),
    ("tool-use", tool_use::open),
    ("workflow-patterns", workflow_patterns::open),
    ("context-engineering", context_engineering::open),
];

/// Adds this track's labs to `catalogue`, each opened over `loader`'s models.
pub fn register(catalogue: &mut Catalogue, loader: Arc<dyn Loader>) {
    catalogue.add_track(LABS, loader);
}

/// As [`register`], with an OpenAI-compatible endpoint the labs that run a model
/// offer as a driver beside the local model and the recording.
pub fn register_with_endpoint(
    catalogue: &mut Catalogue,
    loader: Arc<dyn Loader>,
    endpoint: Endpoint,
) {
    register(catalogue, loader.clone());
    catalogue.add("workflow-patterns", move |dir| {
        workflow_patterns::open_with(
            &Context {
                dir: dir.to_path_buf(),
                loader: loader.clone(),
            },
            Some(endpoint.clone()),
        )
    });
}
