//! What a lab is: an ordered table of steps, each with its controls and the pure
//! function that builds its scene.

use crate::control::{Control, Values};
use crate::error::{LabError, Result};
use lav_scene::Scene;
use serde::Serialize;

/// One step's live panel as renderers see it: its stable id and the controls it reads.
#[derive(Clone, Debug, Serialize)]
pub struct StepSpec {
    pub id: &'static str,
    pub controls: Vec<Control>,
}

/// A step of lab `L`: its id (declared here once, checked against the lesson and the
/// scene file when the lab opens), its controls, and the function from the lab's state
/// and the control values to the step's scene.
pub struct Step<L> {
    pub id: &'static str,
    pub controls: Vec<Control>,
    pub scene: fn(&mut L, &Values) -> Result<Scene>,
}

impl<L> Step<L> {
    pub fn new(
        id: &'static str,
        controls: &[&Control],
        scene: fn(&mut L, &Values) -> Result<Scene>,
    ) -> Step<L> {
        Step {
            id,
            controls: controls.iter().map(|c| (*c).clone()).collect(),
            scene,
        }
    }
}

/// A lab as the framework drives it: ordered steps, and a deterministic function from
/// (its state, a step, the control values) to a scene. The state only caches real
/// computation (a forward pass, a BPE run) keyed by its inputs, so the same inputs
/// always give the same scene. Labs implement it through [`Steps`].
pub trait Lab: Send {
    fn steps(&self) -> &[StepSpec];
    /// The scene of step `step` (an index into [`Lab::steps`]).
    fn scene(&mut self, step: usize, values: &Values) -> Result<Scene>;
    /// Whether the last scene showed work still running in the background: the
    /// renderer asks for the scene again shortly.
    fn busy(&self) -> bool {
        false
    }
}

/// A lab's own state, which its step functions read and cache into.
pub trait LabState: Send + 'static {
    /// See [`Lab::busy`].
    fn busy(&self) -> bool {
        false
    }
}

/// A lab state with its step table: the one implementation of [`Lab`].
pub struct Steps<L> {
    state: L,
    specs: Vec<StepSpec>,
    scenes: Vec<fn(&mut L, &Values) -> Result<Scene>>,
}

impl<L: LabState> Steps<L> {
    /// Checks the table (at least one step, unique ids, one kind per control key)
    /// and boxes it as a [`Lab`].
    pub fn lab(state: L, steps: Vec<Step<L>>) -> Result<Box<dyn Lab>> {
        if steps.is_empty() {
            return Err(LabError::Lesson("a lab needs at least one step".into()));
        }
        let mut specs: Vec<StepSpec> = Vec::with_capacity(steps.len());
        let mut scenes = Vec::with_capacity(steps.len());
        for s in steps {
            if specs.iter().any(|p| p.id == s.id) {
                return Err(LabError::Lesson(format!(
                    "step `{}` is declared twice",
                    s.id
                )));
            }
            for c in &s.controls {
                // A default its own control would refuse is a bug in the lab: refuse
                // the table, so no renderer ever meets it.
                if let Err(e) = c.check(c.default.clone()) {
                    return Err(LabError::Lesson(format!(
                        "control `{}` has a bad default: {e}",
                        c.key
                    )));
                }
                let clash = specs
                    .iter()
                    .flat_map(|p| &p.controls)
                    .find(|o| o.key == c.key && !o.same_kind(c));
                if clash.is_some() {
                    return Err(LabError::Lesson(format!(
                        "control `{}` is declared with two kinds",
                        c.key
                    )));
                }
            }
            specs.push(StepSpec {
                id: s.id,
                controls: s.controls,
            });
            scenes.push(s.scene);
        }
        Ok(Box::new(Steps {
            state,
            specs,
            scenes,
        }))
    }
}

impl<L: LabState> Lab for Steps<L> {
    fn steps(&self) -> &[StepSpec] {
        &self.specs
    }

    fn scene(&mut self, step: usize, values: &Values) -> Result<Scene> {
        let f = self.scenes.get(step).ok_or_else(|| LabError::UnknownStep {
            lab: String::new(),
            step: step.to_string(),
            valid: self
                .specs
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        f(&mut self.state, values)
    }

    fn busy(&self) -> bool {
        self.state.busy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Value;
    use lav_scene::Scene;

    struct Counter(u32);
    impl LabState for Counter {}

    fn titled(title: &str) -> Scene {
        let mut s = Scene::new();
        s.items.push(crate::items::text(
            title,
            title,
            lav_scene::Provenance::computed("test"),
            "",
        ));
        s
    }

    #[test]
    fn dispatches_by_index_and_rejects_bad_tables() {
        let k = Control::slider("k", "K", 0.0, 9.0, 1.0, 2.0);
        let mut lab = Steps::lab(
            Counter(0),
            vec![
                Step::new("a", &[&k], |c: &mut Counter, v| {
                    c.0 += 1;
                    Ok(titled(&format!(
                        "a{} k={}",
                        c.0,
                        v.num(&Control::slider("k", "K", 0.0, 9.0, 1.0, 2.0))
                    )))
                }),
                Step::new("b", &[], |_: &mut Counter, _| Ok(titled("b"))),
            ],
        )
        .unwrap();
        let mut v = Values::default();
        assert_eq!(lab.scene(0, &v).unwrap().items[0].id, "a1 k=2");
        v.set(&k, Value::Num(5.0)).unwrap();
        assert_eq!(lab.scene(0, &v).unwrap().items[0].id, "a2 k=5");
        assert_eq!(lab.scene(1, &v).unwrap().items[0].id, "b");
        assert!(lab.scene(2, &v).is_err());
        let dup = Steps::lab(
            Counter(0),
            vec![
                Step::new("a", &[], |_: &mut Counter, _| Ok(titled("a"))),
                Step::new("a", &[], |_: &mut Counter, _| Ok(titled("a"))),
            ],
        );
        assert!(dup.is_err());
        let t = Control::toggle("k", "K", true);
        let clash = Steps::lab(
            Counter(0),
            vec![
                Step::new("a", &[&k], |_: &mut Counter, _| Ok(titled("a"))),
                Step::new("b", &[&t], |_: &mut Counter, _| Ok(titled("b"))),
            ],
        );
        let e = clash
            .err()
            .expect("a key with two kinds is refused")
            .to_string();
        assert!(e.contains("two kinds"), "{e}");
        let bad = Control::slider("k", "K", 0.0, 9.0, 1.0, 12.0);
        let e = Steps::lab(
            Counter(0),
            vec![Step::new("a", &[&bad], |_: &mut Counter, _| {
                Ok(titled("a"))
            })],
        )
        .err()
        .expect("a default out of range is refused")
        .to_string();
        assert!(e.contains("bad default"), "{e}");
    }
}
