//! Published figures (`labs/data/published.toml`): shown with their source, never
//! computed, kept in one data file so they can be checked and updated.

use crate::error::{LabError, Result};
use lav_scene::{Item, Primitive, Provenance, Table};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Debug, Deserialize)]
pub struct Fact {
    pub lab: String,
    pub label: String,
    pub value: String,
    pub source: String,
}

#[derive(Deserialize)]
struct File {
    fact: Vec<Fact>,
}

/// The facts for one lab, in file order.
pub fn facts(labs_dir: &Path, lab: &str) -> Result<Vec<Fact>> {
    let path = labs_dir.join("data/published.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LabError::Lesson(format!("cannot read {}: {e}", path.display())))?;
    let f: File = toml::from_str(&text)
        .map_err(|e| LabError::Lesson(format!("{}: {}", path.display(), e.message())))?;
    Ok(f.fact.into_iter().filter(|x| x.lab == lab).collect())
}

/// The facts as a table item labelled "published".
pub fn table(id: &str, title: &str, facts: &[Fact]) -> Item {
    let sources: Vec<&str> = facts.iter().map(|f| f.source.as_str()).collect();
    Item::new(
        id,
        title,
        Provenance::published(sources.join("; ")),
        Primitive::Table(Table {
            columns: vec!["figure".into(), "value".into(), "source".into()],
            rows: facts
                .iter()
                .map(|f| vec![f.label.clone(), f.value.clone(), f.source.clone()])
                .collect(),
        }),
    )
}
