//! The lab implementations, one file per lab, and the table that opens them.

pub mod agent_loop_state;
mod attention;
mod embeddings;
pub mod forward_pass;
pub mod generation;
pub mod kv_cache;
pub mod quantization;
pub mod retrieval_rag;
pub mod security_trifecta;
mod tokenization;
pub mod tool_use;
mod transformer_block;

use crate::error::Result;
use crate::lab::{Lab, Loader};
use std::path::PathBuf;
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (for its data files) and the
/// loader for real models.
#[derive(Clone)]
pub struct Context {
    pub dir: PathBuf,
    pub loader: Arc<dyn Loader + Send + Sync>,
}

type Opener = fn(&Context) -> Result<Box<dyn Lab>>;

const LABS: &[(&str, Opener)] = &[
    ("tokenization", tokenization::open),
    ("embeddings", embeddings::open),
    ("attention", attention::open),
    ("transformer-block", transformer_block::open),
    ("generation", generation::open),
    ("kv-cache", kv_cache::open),
    ("quantization", quantization::open),
    ("forward-pass", forward_pass::open),
    ("security-trifecta", security_trifecta::open),
    ("agent-loop-state", agent_loop_state::open),
    ("retrieval-rag", retrieval_rag::open),
    ("tool-use", tool_use::open),
];

/// Whether this build has an implementation of `id`.
pub fn is_available(id: &str) -> bool {
    LABS.iter().any(|(l, _)| *l == id)
}

/// Opens lab `id` (the caller has checked it is available).
pub fn open(id: &str, ctx: &Context) -> Option<Result<Box<dyn Lab>>> {
    LABS.iter().find(|(l, _)| *l == id).map(|(_, f)| f(ctx))
}
