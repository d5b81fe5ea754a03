//! The labs this build can open, assembled by the composition root (`lav-cli`, a
//! test) from the track crates. The framework knows no lab: it is handed this table.

use crate::error::{LabError, Result};
use crate::lab::Lab;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (lessons and data files) and its
/// track's shared resources, `R` (for the model tracks, a `lav_model::Loader`).
pub struct Context<R: ?Sized> {
    pub dir: PathBuf,
    pub loader: Arc<R>,
}

/// How a track opens one of its labs.
pub type TrackOpener<R> = fn(&Context<R>) -> Result<Box<dyn Lab>>;

/// Opens a lab given the `labs/` folder (lessons and data files).
pub type Opener = Box<dyn Fn(&Path) -> Result<Box<dyn Lab>> + Send + Sync>;

/// Lab ids with the function that opens each.
#[derive(Default)]
pub struct Catalogue {
    labs: Vec<(&'static str, Opener)>,
}

impl Catalogue {
    /// Adds lab `id`; a second entry for the same id replaces the first.
    pub fn add(
        &mut self,
        id: &'static str,
        open: impl Fn(&Path) -> Result<Box<dyn Lab>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.labs.retain(|(l, _)| *l != id);
        self.labs.push((id, Box::new(open)));
        self
    }

    /// Adds a track's labs, each opened with the labs folder and `loader`.
    pub fn add_track<R: ?Sized + Send + Sync + 'static>(
        &mut self,
        labs: &[(&'static str, TrackOpener<R>)],
        loader: Arc<R>,
    ) -> &mut Self {
        for &(id, open) in labs {
            let loader = loader.clone();
            self.add(id, move |dir| {
                open(&Context {
                    dir: dir.to_path_buf(),
                    loader: loader.clone(),
                })
            });
        }
        self
    }

    /// Whether this build has an implementation of `id`.
    pub fn has(&self, id: &str) -> bool {
        self.labs.iter().any(|(l, _)| *l == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.labs.iter().map(|(l, _)| *l)
    }

    /// Opens lab `id` with the lessons and data in `dir`.
    pub fn open(&self, id: &str, dir: &Path) -> Result<Box<dyn Lab>> {
        let (_, open) =
            self.labs
                .iter()
                .find(|(l, _)| *l == id)
                .ok_or_else(|| LabError::UnknownLab {
                    id: id.to_string(),
                    valid: self.ids().collect::<Vec<_>>().join(", "),
                })?;
        open(dir)
    }
}
