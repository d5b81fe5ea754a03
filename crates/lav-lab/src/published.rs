//! Published figures (`labs/data/published.toml`): shown with their source, never
//! computed, kept in one data file so they can be checked and updated.

use crate::error::{LabError, Result};
use lav_scene::{Item, Primitive, Provenance, Table};
use serde::Deserialize;
use std::path::Path;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    pub lab: String,
    /// The step that shows it, when the lab shows facts in more than one step.
    #[serde(default)]
    pub step: String,
    pub label: String,
    pub value: String,
    pub source: String,
    /// May go out of date: confirm against the source before a release.
    #[serde(default)]
    pub check: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    fact: Vec<Fact>,
}

/// Every fact in the file, in file order.
pub fn all(labs_dir: &Path) -> Result<Vec<Fact>> {
    let path = labs_dir.join("data/published.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LabError::Lesson(format!("cannot read {}: {e}", path.display())))?;
    let f: File = toml::from_str(&text)
        .map_err(|e| LabError::Lesson(format!("{}: {}", path.display(), e.message())))?;
    Ok(f.fact)
}

/// The facts for one lab, in file order.
pub fn facts(labs_dir: &Path, lab: &str) -> Result<Vec<Fact>> {
    Ok(all(labs_dir)?
        .into_iter()
        .filter(|x| x.lab == lab)
        .collect())
}

/// The facts one step of a lab shows.
pub fn for_step(facts: &[Fact], step: &str) -> Vec<Fact> {
    facts.iter().filter(|f| f.step == step).cloned().collect()
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
