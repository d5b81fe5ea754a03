//! What a lab is, and a session that drives one.

use crate::control::{Control, Value, Values};
use crate::error::{LabError, Result};
use crate::lesson::{Lesson, LessonStep};
use crate::registry::LabEntry;
use lav_model::{Embedder, Llama, Tokenizer};
use lav_scene::Scene;
use serde::Serialize;
use std::sync::Arc;

/// One step's live panel: its stable id and the controls it reads.
#[derive(Clone, Debug, Serialize)]
pub struct StepSpec {
    pub id: &'static str,
    pub controls: Vec<Control>,
}

/// A lab: ordered steps, and a deterministic function from (its state, a step, the
/// control values) to a scene. The state only caches real computation (a forward
/// pass, a BPE run) keyed by its inputs, so the same inputs always give the same
/// scene.
pub trait Lab: Send {
    fn steps(&self) -> &[StepSpec];
    fn scene(&mut self, step: &str, values: &Values) -> Result<Scene>;
    /// Whether the last scene showed work still running in the background: the
    /// renderer asks for the scene again shortly.
    fn busy(&self) -> bool {
        false
    }
}

/// Loads the real models for labs that need them. The command line implements it
/// (it knows where models are cached); tests implement it over the test fixtures.
pub trait Loader {
    fn model(&self) -> Result<Arc<Llama>>;
    fn tokenizer(&self) -> Result<Arc<Tokenizer>>;
    fn embedder(&self) -> Result<Arc<Embedder>>;
    /// The model's display name, for provenance labels.
    fn model_name(&self) -> String;
}

/// A lab with its lesson, the current step and the learner's values: what the
/// terminal UI and `lav lab` drive.
pub struct Session {
    pub entry: LabEntry,
    pub lesson: Lesson,
    lab: Box<dyn Lab>,
    step: usize,
    pub values: Values,
}

impl Session {
    pub fn new(entry: LabEntry, lesson: Lesson, lab: Box<dyn Lab>) -> Result<Session> {
        // The lesson and the code must describe the same steps, in the same order.
        let code: Vec<&str> = lab.steps().iter().map(|s| s.id).collect();
        let text: Vec<&str> = lesson.steps.iter().map(|s| s.id.as_str()).collect();
        if code != text {
            return Err(LabError::Lesson(format!(
                "lesson for `{}` has steps [{}] but the lab has [{}]",
                entry.id,
                text.join(", "),
                code.join(", ")
            )));
        }
        Ok(Session {
            entry,
            lesson,
            lab,
            step: 0,
            values: Values::default(),
        })
    }

    pub fn steps(&self) -> &[StepSpec] {
        self.lab.steps()
    }

    pub fn step_index(&self) -> usize {
        self.step
    }

    pub fn step(&self) -> &StepSpec {
        &self.lab.steps()[self.step]
    }

    pub fn lesson_step(&self) -> &LessonStep {
        &self.lesson.steps[self.step]
    }

    pub fn go_to(&mut self, id: &str) -> Result<()> {
        let steps = self.lab.steps();
        self.step = steps
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| LabError::UnknownStep {
                lab: self.entry.id.clone(),
                step: id.to_string(),
                valid: steps.iter().map(|s| s.id).collect::<Vec<_>>().join(", "),
            })?;
        Ok(())
    }

    pub fn next(&mut self) {
        self.step = (self.step + 1).min(self.lab.steps().len() - 1);
    }

    pub fn prev(&mut self) {
        self.step = self.step.saturating_sub(1);
    }

    /// Every control of the lab, each key once, in step order.
    pub fn all_controls(&self) -> Vec<&Control> {
        let mut out: Vec<&Control> = Vec::new();
        for s in self.lab.steps() {
            for c in &s.controls {
                if !out.iter().any(|o| o.key == c.key) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// `key=value` from the command line, checked against the lab's controls.
    pub fn set_raw(&mut self, assignment: &str) -> Result<()> {
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| LabError::Control(format!("--set {assignment}: expected key=value")))?;
        let controls = self.all_controls();
        let c = controls.iter().find(|c| c.key == key).ok_or_else(|| {
            let valid: Vec<String> = controls.iter().map(|c| c.describe()).collect();
            LabError::Control(format!(
                "unknown control `{key}` in lab `{}`; controls: {}",
                self.entry.id,
                valid.join(", ")
            ))
        })?;
        let v = c.parse(raw)?;
        self.values.set(key, v);
        Ok(())
    }

    pub fn set(&mut self, key: &str, v: Value) {
        self.values.set(key, v);
    }

    pub fn scene(&mut self) -> Result<Scene> {
        let id = self.lab.steps()[self.step].id;
        self.lab.scene(id, &self.values)
    }

    /// Whether the last scene was drawn while background work ran (see [`Lab::busy`]).
    pub fn busy(&self) -> bool {
        self.lab.busy()
    }

    /// The scene once background work has finished: for one-shot output (`--json`,
    /// `--text`) and tests. `on_progress` sees each intermediate scene.
    pub fn scene_settled(&mut self, mut on_progress: impl FnMut(&Scene)) -> Result<Scene> {
        loop {
            let s = self.scene()?;
            if !self.busy() {
                return Ok(s);
            }
            on_progress(&s);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
