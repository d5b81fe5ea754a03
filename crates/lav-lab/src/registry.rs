//! The list of every lab in the curriculum (`labs/index.toml`) with its status:
//! available when the catalogue this build assembled has an implementation, planned
//! otherwise.

use crate::catalogue::Catalogue;
use crate::error::{LabError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Available,
    Planned,
}

#[derive(Clone, Debug, Serialize)]
pub struct LabEntry {
    pub id: String,
    pub title: String,
    pub track: String,
    pub status: Status,
}

#[derive(Clone, Debug, Serialize)]
pub struct Track {
    pub id: String,
    pub title: String,
    pub labs: Vec<LabEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Registry {
    pub tracks: Vec<Track>,
    #[serde(skip)]
    dir: PathBuf,
}

#[derive(Deserialize)]
struct IndexFile {
    track: Vec<IndexTrack>,
}

#[derive(Deserialize)]
struct IndexTrack {
    id: String,
    title: String,
    labs: Vec<IndexLab>,
}

#[derive(Deserialize)]
struct IndexLab {
    id: String,
    title: String,
}

impl Registry {
    /// Reads `index.toml` from the labs folder; a lab is available when `catalogue`
    /// can open it.
    pub fn load(dir: &Path, catalogue: &Catalogue) -> Result<Registry> {
        let path = dir.join("index.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LabError::Lesson(format!("cannot read {}: {e}", path.display())))?;
        let index: IndexFile = toml::from_str(&text)
            .map_err(|e| LabError::Lesson(format!("{}: {}", path.display(), e.message())))?;
        let tracks = index
            .track
            .into_iter()
            .map(|t| Track {
                labs: t
                    .labs
                    .into_iter()
                    .map(|l| LabEntry {
                        status: if catalogue.has(&l.id) {
                            Status::Available
                        } else {
                            Status::Planned
                        },
                        id: l.id,
                        title: l.title,
                        track: t.id.clone(),
                    })
                    .collect(),
                id: t.id,
                title: t.title,
            })
            .collect();
        let registry = Registry {
            tracks,
            dir: dir.to_path_buf(),
        };
        // A lab built but missing from the index could never be opened or listed.
        if let Some(id) = catalogue.ids().find(|id| registry.get(id).is_none()) {
            return Err(LabError::Lesson(format!(
                "lab `{id}` is built but {} does not list it: add it to its track",
                path.display()
            )));
        }
        Ok(registry)
    }

    pub fn labs(&self) -> impl Iterator<Item = &LabEntry> {
        self.tracks.iter().flat_map(|t| t.labs.iter())
    }

    pub fn get(&self, id: &str) -> Option<&LabEntry> {
        self.labs().find(|l| l.id == id)
    }

    /// The entry for `id`, or an error listing the labs that exist.
    pub fn find(&self, id: &str) -> Result<&LabEntry> {
        let e = self.get(id).ok_or_else(|| LabError::UnknownLab {
            id: id.to_string(),
            valid: self.available().join(", ") + " (and the planned ones in `lav labs`)",
        })?;
        if e.status == Status::Planned {
            return Err(LabError::Planned {
                id: id.to_string(),
                available: self.available().join(", "),
            });
        }
        Ok(e)
    }

    pub fn available(&self) -> Vec<&str> {
        self.labs()
            .filter(|l| l.status == Status::Available)
            .map(|l| l.id.as_str())
            .collect()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a lab's lesson text lives.
    pub fn lesson_path(&self, e: &LabEntry) -> PathBuf {
        self.dir.join(&e.track).join(format!("{}.md", e.id))
    }
}
