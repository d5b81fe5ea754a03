//! A session drives one lab for a renderer: the current step, the learner's values
//! and every rule about them (kinds, ranges, defaults, wrap-around), so renderers only
//! draw controls and report what the learner did.

use crate::control::{Control, Value, Values};
use crate::error::{LabError, Result};
use crate::lab::{Lab, StepSpec};
use crate::lesson::{Lesson, LessonStep};
use crate::registry::LabEntry;
use lav_scene::Scene;

/// A lab with its lesson, the current step and the learner's values: what the
/// terminal UI, the 3-D app and `lav lab` drive.
pub struct Session {
    entry: LabEntry,
    lesson: Lesson,
    lab: Box<dyn Lab>,
    step: usize,
    values: Values,
}

impl Session {
    /// Joins a lab to its lesson; the two must list the same step ids in the same order.
    pub fn new(entry: LabEntry, lesson: Lesson, lab: Box<dyn Lab>) -> Result<Session> {
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

    pub fn entry(&self) -> &LabEntry {
        &self.entry
    }

    pub fn lesson(&self) -> &Lesson {
        &self.lesson
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

    /// Step ids that a presentation file (a camera per step) may name: an unknown one
    /// is an error naming the file, so a renamed step cannot leave a stale entry.
    pub fn check_step_ids<'a>(
        &self,
        origin: &str,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<()> {
        for id in ids {
            if !self.steps().iter().any(|s| s.id == id) {
                return Err(self.unknown_step(id).map_origin(origin));
            }
        }
        Ok(())
    }

    fn unknown_step(&self, id: &str) -> LabError {
        LabError::UnknownStep {
            lab: self.entry.id.clone(),
            step: id.to_string(),
            valid: self
                .steps()
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    pub fn go_to(&mut self, id: &str) -> Result<()> {
        self.step = self
            .steps()
            .iter()
            .position(|s| s.id == id)
            .ok_or_else(|| self.unknown_step(id))?;
        Ok(())
    }

    /// Goes to step `i` (clamped to the last step).
    pub fn go_to_index(&mut self, i: usize) {
        self.step = i.min(self.steps().len() - 1);
    }

    pub fn next(&mut self) {
        self.go_to_index(self.step + 1);
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

    fn control(&self, key: &str) -> Result<Control> {
        let controls = self.all_controls();
        controls
            .iter()
            .find(|c| c.key == key)
            .map(|c| (*c).clone())
            .ok_or_else(|| {
                let valid: Vec<String> = controls.iter().map(|c| c.describe()).collect();
                LabError::Control(format!(
                    "unknown control `{key}` in lab `{}`; controls: {}",
                    self.entry.id,
                    valid.join(", ")
                ))
            })
    }

    /// The learner's values as set (unset controls take their defaults when read).
    pub fn values(&self) -> &Values {
        &self.values
    }

    /// The current value of control `key`: the one set, or its default.
    pub fn value(&self, key: &str) -> Result<Value> {
        let c = self.control(key)?;
        Ok(self.values.value(&c).clone())
    }

    /// The values with every control's default filled in (what the lab sees; camera
    /// focus patterns read them).
    pub fn effective_values(&self) -> Values {
        let mut v = self.values.clone();
        for c in self.all_controls() {
            if v.get(c.key).is_none() {
                v.set_default(c);
            }
        }
        v
    }

    /// `key=value` from the command line, checked against the lab's controls.
    pub fn set_raw(&mut self, assignment: &str) -> Result<()> {
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| LabError::Control(format!("--set {assignment}: expected key=value")))?;
        let c = self.control(key)?;
        let v = c.parse(raw)?;
        self.values.set(&c, v)
    }

    /// Sets a typed value from a widget, checked against the control (kind, range,
    /// step, choices, length).
    pub fn set(&mut self, key: &str, v: Value) -> Result<()> {
        let c = self.control(key)?;
        self.values.set(&c, v)
    }

    /// One press or nudge of `key` by `steps` (see [`Control::nudged`]): what the
    /// terminal's +/- and Enter and the app's buttons do.
    pub fn nudge(&mut self, key: &str, steps: f64) -> Result<()> {
        let c = self.control(key)?;
        let next = c.nudged(self.values.value(&c), steps);
        self.values.set(&c, next)
    }

    pub fn scene(&mut self) -> Result<Scene> {
        self.lab
            .scene(self.step, &self.values)
            .map_err(|e| match e {
                LabError::UnknownStep { step, valid, .. } => LabError::UnknownStep {
                    lab: self.entry.id.clone(),
                    step,
                    valid,
                },
                e => e,
            })
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

impl LabError {
    fn map_origin(self, origin: &str) -> LabError {
        LabError::Lesson(format!("{origin}: {self}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{LabState, Step, Steps};
    use crate::registry::Status;

    struct Empty;
    impl LabState for Empty {}

    fn session() -> Session {
        let k = Control::slider("k", "K", 1.0, 8.0, 1.0, 4.0);
        let mode = Control::choice("mode", "Mode", &["a", "b"], "a");
        let next = Control::button("next", "Next", 3);
        let lab = Steps::lab(
            Empty,
            vec![
                Step::new("one", &[&k, &mode], |_: &mut Empty, _| Ok(Scene::new())),
                Step::new("two", &[&k, &next], |_: &mut Empty, _| Ok(Scene::new())),
            ],
        )
        .unwrap();
        let lesson = Lesson::parse(
            "# T\n## One {#one}\nA.\nTry it: a.\n## Two {#two}\nB.\nTry it: b.\n",
            "t.md",
        )
        .unwrap();
        let entry = LabEntry {
            id: "t".into(),
            title: "T".into(),
            track: "x".into(),
            status: Status::Available,
        };
        Session::new(entry, lesson, lab).unwrap()
    }

    #[test]
    fn the_session_owns_every_control_rule() {
        let mut s = session();
        assert_eq!(
            s.value("k").unwrap(),
            Value::Num(4.0),
            "unset reads the default"
        );
        assert!(s.set("k", Value::Num(9.0)).is_err(), "out of range");
        assert!(s.set("k", Value::Bool(true)).is_err(), "wrong kind");
        assert!(
            s.set("nope", Value::Num(1.0))
                .unwrap_err()
                .to_string()
                .contains("k (1..8")
        );
        s.nudge("k", 10.0).unwrap();
        assert_eq!(
            s.value("k").unwrap(),
            Value::Num(8.0),
            "a nudge stops at the end"
        );
        s.nudge("mode", 1.0).unwrap();
        s.nudge("mode", 1.0).unwrap();
        assert_eq!(
            s.value("mode").unwrap(),
            Value::Text("a".into()),
            "choices cycle"
        );
        for _ in 0..4 {
            s.nudge("next", 1.0).unwrap();
        }
        assert_eq!(
            s.value("next").unwrap(),
            Value::Num(1.0),
            "buttons wrap at their cycle"
        );
        let all = s.effective_values();
        assert_eq!(all.iter().count(), 3);
        s.set_raw("k=2").unwrap();
        assert_eq!(s.values().get("k"), Some(&Value::Num(2.0)));
        assert!(
            s.go_to("three")
                .unwrap_err()
                .to_string()
                .contains("one, two")
        );
        assert!(s.check_step_ids("scenes/t.toml", ["one", "two"]).is_ok());
        let e = s
            .check_step_ids("scenes/t.toml", ["one", "old"])
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("scenes/t.toml: unknown step `old`"),
            "{e}"
        );
    }

    #[test]
    fn a_lesson_that_disagrees_with_the_table_is_refused() {
        let lab = Steps::lab(
            Empty,
            vec![Step::new("one", &[], |_: &mut Empty, _| Ok(Scene::new()))],
        )
        .unwrap();
        let lesson = Lesson::parse("# T\n## Other {#other}\nA.\n", "t.md").unwrap();
        let entry = LabEntry {
            id: "t".into(),
            title: "T".into(),
            track: "x".into(),
            status: Status::Available,
        };
        let e = Session::new(entry, lesson, lab).err().unwrap().to_string();
        assert!(e.contains("[other]") && e.contains("[one]"), "{e}");
    }
}
