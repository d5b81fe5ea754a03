//! `lav-lab`: the lab framework. A lab is a table of steps ([`Step`]), each a pure
//! function from the lab's state and the learner's control values to a renderer-neutral
//! [`lav_scene::Scene`]. A [`Session`] joins a lab to its lesson (`labs/<track>/<id>.md`)
//! and owns every rule about control values, so renderers only draw and report.
//!
//! **Architecture invariant:** depends on `lav-scene`, serde, toml and thiserror only:
//! no model, no agent runtime, no renderer. The labs live in track crates
//! (`lav-labs-llm`, `lav-labs-agents`, …) and reach the framework through a
//! [`Catalogue`] that the composition root (`lav-cli`) assembles; renderers
//! (`lav-tui`, `lav-viz`) depend on this crate and `lav-scene` alone.

pub mod catalogue;
pub mod control;
pub mod error;
pub mod items;
pub mod job;
pub mod lab;
pub mod lesson;
pub mod published;
pub mod registry;
pub mod session;

pub use catalogue::{Catalogue, Context, TrackOpener};
pub use control::{Control, ControlKind, Value, Values};
pub use error::{LabError, Result, ResultExt};
pub use lab::{Lab, LabState, Step, StepSpec, Steps};
pub use lesson::{Lesson, LessonStep, labs_dir};
pub use registry::{LabEntry, Registry, Status, Track};
pub use session::Session;

/// Opens lab `id` from `catalogue` with its lesson from the labs folder `dir`: the one
/// entry point renderers and commands use.
pub fn open_session(id: &str, dir: &std::path::Path, catalogue: &Catalogue) -> Result<Session> {
    let registry = Registry::load(dir, catalogue)?;
    let entry = registry.find(id)?.clone();
    let lesson = Lesson::load(&registry.lesson_path(&entry))?;
    let lab = catalogue.open(id, dir)?;
    Session::new(entry, lesson, lab)
}
