//! Lesson text as data: `labs/<track>/<lab>.md`, read at run time so prose changes
//! never need a recompile.
//!
//! The format is plain Markdown with two conventions:
//!
//! ```markdown
//! # Lab title
//!
//! ## Step title {#step-id}
//!
//! Explanation, any number of paragraphs.
//!
//! Try it: what the learner should do with the live panel.
//! ```

use crate::error::LabError;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Lesson {
    pub title: String,
    pub steps: Vec<LessonStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LessonStep {
    pub id: String,
    pub title: String,
    /// The explanation, paragraphs separated by blank lines.
    pub body: String,
    /// The "Try it" prompt.
    pub try_it: String,
}

impl Lesson {
    pub fn step(&self, id: &str) -> Option<&LessonStep> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Parses a lesson file's text. `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Lesson, LabError> {
        let bad = |line: usize, why: &str| LabError::Lesson(format!("{origin}:{line}: {why}"));
        let mut title = None;
        let mut steps: Vec<LessonStep> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            if let Some(h) = line.strip_prefix("## ") {
                let (t, id) = h
                    .trim_end()
                    .strip_suffix('}')
                    .and_then(|h| h.rsplit_once("{#"))
                    .ok_or_else(|| bad(n, "a step heading needs an id: `## Title {#step-id}`"))?;
                if steps.iter().any(|s| s.id == id) {
                    return Err(bad(n, &format!("step id `{id}` appears twice")));
                }
                steps.push(LessonStep {
                    id: id.trim().to_string(),
                    title: t.trim().to_string(),
                    body: String::new(),
                    try_it: String::new(),
                });
            } else if let Some(h) = line.strip_prefix("# ") {
                if title.is_some() || !steps.is_empty() {
                    return Err(bad(n, "only one `# Title`, before the steps"));
                }
                title = Some(h.trim().to_string());
            } else if let Some(step) = steps.last_mut() {
                if let Some(t) = line.strip_prefix("Try it:") {
                    step.try_it = t.trim().to_string();
                } else if !step.try_it.is_empty() && !line.trim().is_empty() {
                    // A continuation of the "Try it" paragraph.
                    step.try_it.push(' ');
                    step.try_it.push_str(line.trim());
                } else {
                    step.body.push_str(line);
                    step.body.push('\n');
                }
            } else if !line.trim().is_empty() {
                return Err(bad(n, "text before the first step heading"));
            }
        }
        for s in &mut steps {
            s.body = s.body.trim().to_string();
        }
        let title = title.ok_or_else(|| bad(1, "missing `# Title`"))?;
        if steps.is_empty() {
            return Err(bad(1, "no steps (`## Title {#id}`)"));
        }
        Ok(Lesson { title, steps })
    }

    pub fn load(path: &Path) -> Result<Lesson, LabError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            LabError::Lesson(format!("cannot read lesson file {}: {e}", path.display()))
        })?;
        Lesson::parse(&text, &path.display().to_string())
    }
}

/// The `labs/` folder: `$LAV_LABS_DIR`, else `labs/` next to the executable or one of
/// its parents (an installed copy, or `target/…` inside a checkout), else the
/// checkout this crate was built from.
pub fn labs_dir() -> Result<PathBuf, LabError> {
    if let Some(d) = std::env::var_os("LAV_LABS_DIR") {
        let d = PathBuf::from(d);
        return if d.join("index.toml").is_file() {
            Ok(d)
        } else {
            Err(LabError::Lesson(format!(
                "LAV_LABS_DIR={} has no index.toml: point it at the labs/ folder of a lav checkout",
                d.display()
            )))
        };
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(5) {
            candidates.push(dir.join("labs"));
            candidates.push(dir.join("share/lav/labs"));
        }
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs"));
    candidates
        .into_iter()
        .find(|d| d.join("index.toml").is_file())
        .ok_or_else(|| {
            LabError::Lesson(
                "lesson files not found: set LAV_LABS_DIR to the labs/ folder of a lav checkout"
                    .into(),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_bodies_and_try_it() {
        let l = Lesson::parse(
            "# Tokens\n\n## Bytes first {#bytes}\n\nText is bytes.\n\nMore.\n\nTry it: type é\nand 🙂.\n\n## Merges {#merge}\nPairs.\n",
            "t.md",
        )
        .unwrap();
        assert_eq!(l.title, "Tokens");
        assert_eq!(l.steps.len(), 2);
        assert_eq!(l.steps[0].id, "bytes");
        assert_eq!(l.steps[0].title, "Bytes first");
        assert_eq!(l.steps[0].body, "Text is bytes.\n\nMore.");
        assert_eq!(l.steps[0].try_it, "type é and 🙂.");
        assert_eq!(l.step("merge").unwrap().body, "Pairs.");
    }

    #[test]
    fn rejects_headings_without_ids_and_duplicates() {
        let e = Lesson::parse("# T\n## No id\n", "x.md").unwrap_err();
        assert!(e.to_string().contains("x.md:2"), "{e}");
        let e = Lesson::parse("# T\n## A {#a}\n## B {#a}\n", "x.md").unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
