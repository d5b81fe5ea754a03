//! `lav-labs`: every lab as pure, deterministic Rust. From a state, a step and the
//! learner's control values a lab produces a [`lav_scene::Scene`]; lesson text comes
//! from `labs/` at run time.
//!
//! **Architecture invariant:** no Bevy, no terminal code. May depend on `lav-model`
//! (for real computation), `lav-scene` and small utility crates. Renderers depend on
//! this crate, never the other way round.

pub mod agent_trace;
pub mod bpe;
pub mod control;
pub mod error;
pub mod hardware;
pub mod items;
pub mod job;
pub mod lab;
pub mod labs;
pub mod lesson;
pub mod linalg;
pub mod pass;
pub mod published;
pub mod quantize;
pub mod registry;

pub use control::{Control, ControlKind, Value, Values};
pub use error::{LabError, Result};
pub use lab::{Lab, Loader, Session, StepSpec};
pub use labs::Context;
pub use lesson::{Lesson, labs_dir};
pub use registry::{LabEntry, Registry, Status};

/// Opens lab `id` with its lesson: the one entry point renderers use.
pub fn open_session(id: &str, ctx: &Context) -> Result<Session> {
    let registry = Registry::load(&ctx.dir)?;
    let entry = registry.find(id)?.clone();
    let lesson = Lesson::load(&registry.lesson_path(&entry))?;
    let lab = labs::open(id, ctx).expect("registry said available")?;
    Session::new(entry, lesson, lab)
}
