//! Renderer-neutral scenes: what a lab step shows, as data.
//!
//! A lab produces a [`Scene`], a list of [`Item`]s, each one primitive (token strip,
//! heatmap, tensor block, point cloud, bars, timeline, block grid, tree, graph, plot,
//! table, text) plus a [`Provenance`] saying where its numbers come from. Renderers
//! (the terminal UI, JSON and text export, later the 3D app) draw scenes and nothing
//! else: they never call the model.
//!
//! The colour scheme lives here, once ([`palette`]), so every renderer paints the same
//! meaning with the same colour.
//!
//! **Architecture invariant:** this crate depends only on `serde`. Renderers may depend
//! on it; it knows nothing about any of them, nor about the model.

pub mod palette;
mod primitive;
pub mod text;

pub use palette::{ColorScale, Rgb, Role};
pub use primitive::*;
pub use text::render_text;
