//! `lav-tui`: the terminal renderer. An [`App`] holds a lab session and the UI state;
//! [`draw`] is a pure function of it; [`run`] is the event loop that maps keys to
//! state changes (ratatui's "state apart from drawing").
//!
//! **Architecture invariant:** draws [`lav_scene::Scene`]s and lesson text, nothing
//! else; never calls the model (labs do, in their track crates). May depend on
//! `lav-lab` (the framework: sessions, controls), `lav-scene` and ratatui only, so a
//! lab change never rebuilds it.

mod app;
mod scene;

pub use app::{App, draw, run, view};
