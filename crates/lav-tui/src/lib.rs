//! `lav-tui`: the terminal renderer. An [`App`] holds a lab session and the UI state;
//! [`draw`] is a pure function of it; [`run`] is the event loop that maps keys to
//! state changes (ratatui's "state apart from drawing").
//!
//! **Architecture invariant:** draws [`lav_scene::Scene`]s and lesson text, nothing
//! else; never calls the model (labs do, through `lav-labs`). May depend on
//! `lav-labs`, `lav-scene` and ratatui.

mod app;
mod scene;

pub use app::{App, draw, run, view};
