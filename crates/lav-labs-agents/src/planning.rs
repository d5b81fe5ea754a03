//! The shop's planning tasks: customer questions that take more than one step (look
//! up two orders and add them, look one up and divide), each with a deterministic
//! checker, run through `lav_agent::planner` under three cap presets. `lav bench
//! --planner --record` saves the runs; the planning-reflection lab plays them back or
//! runs them live.

use crate::workflows::{Shop, TOOLS};
use lav_agent::planner::{self, Caps, Outcome, Prompts};
use lav_agent::tasks;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// A task of `labs/data/agents/planner-tasks.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanTask {
    pub id: String,
    pub prompt: String,
    /// The answer must state this number (or text), as the labelled tasks' checker
    /// compares it.
    pub answer: String,
    /// How the answer is worked out, for the learner.
    pub working: String,
}

impl PlanTask {
    /// The deterministic checker: `Err` says why the answer is wrong.
    pub fn check(&self, answer: &str) -> Result<(), String> {
        if tasks::states(answer, &self.answer) {
            Ok(())
        } else {
            Err(format!("it does not state {}", self.answer))
        }
    }
}

#[derive(Deserialize)]
struct File {
    task: Vec<PlanTask>,
}

/// Where the tasks live, under the labs folder.
pub const TASKS: &str = "data/agents/planner-tasks.toml";

pub fn load(labs: &Path) -> Result<Vec<PlanTask>, String> {
    let path = labs.join(TASKS);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if f.task.is_empty() {
        return Err(format!("{}: no task", path.display()));
    }
    Ok(f.task)
}

/// The cap presets the lab compares, each with the name it shows: no second chance,
/// a retry after one reflection, and the planner's defaults (reflect, retry,
/// re-plan).
pub fn presets() -> Vec<(&'static str, Caps)> {
    let base = Caps {
        tokens: 40_000,
        time: Duration::from_secs(300),
        ..Caps::default()
    };
    vec![
        (
            "no reflection",
            Caps {
                retries: 0,
                reflections: 0,
                replans: 0,
                ..base
            },
        ),
        (
            "reflect and retry",
            Caps {
                retries: 1,
                reflections: 1,
                replans: 0,
                ..base
            },
        ),
        (
            "reflect, retry, re-plan",
            Caps {
                retries: 1,
                reflections: 3,
                replans: 1,
                ..base
            },
        ),
    ]
}

/// The planner's prompts for the shop: every step may use the shop's tools.
pub fn prompts() -> Prompts {
    Prompts {
        tools: TOOLS.iter().map(|s| s.to_string()).collect(),
        ..Prompts::default()
    }
}

/// One task under one preset, with the checker's verdict on the final answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanRun {
    pub task: String,
    pub preset: String,
    pub caps: Caps,
    pub outcome: Outcome,
    pub passed: bool,
}

impl PlanRun {
    pub fn run(shop: &Shop, task: &PlanTask, preset: &str, caps: Caps) -> Result<Self, String> {
        let check = |a: &str| task.check(a);
        let outcome = planner::run(shop, &prompts(), caps, &task.prompt, &check)
            .map_err(|e| e.to_string())?;
        // The planner only calls an answer solved once the checker passed it; check
        // again so a recording edited by hand cannot claim a pass.
        let passed = outcome
            .answer
            .as_deref()
            .is_some_and(|a| task.check(a).is_ok());
        Ok(PlanRun {
            task: task.id.clone(),
            preset: preset.into(),
            caps,
            outcome,
            passed,
        })
    }
}

/// Runs saved by `lav bench --planner --record` and played back by the lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    pub driver: String,
    pub recorded: String,
    pub runs: Vec<PlanRun>,
}

/// Where the lab finds its recording, under the labs folder.
pub const RECORDING: &str = "data/agents/planner-runs.json";

impl Recording {
    pub fn load(labs: &Path) -> Result<Recording, String> {
        crate::workflows::read_recording(labs, RECORDING, "lav bench --planner --record")
    }

    pub fn get(&self, task: &str, preset: &str) -> Option<&PlanRun> {
        self.runs
            .iter()
            .find(|r| r.task == task && r.preset == preset)
    }
}
