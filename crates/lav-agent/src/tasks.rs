//! Labelled tool tasks (`labs/data/agent-tasks.toml`) and their deterministic
//! checkers: whether a run got a task right is decided by code from the run's own
//! transcript (which tool it called, with what, what came back, what it answered),
//! never by a model.

use crate::{Role, Run};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a task exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Arithmetic,
    Order,
    Docs,
    /// No tool is needed: calling one is a failure.
    None,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Arithmetic, Kind::Order, Kind::Docs, Kind::None];

    pub fn name(&self) -> &'static str {
        match self {
            Kind::Arithmetic => "arithmetic",
            Kind::Order => "order lookup",
            Kind::Docs => "doc search",
            Kind::None => "no tool needed",
        }
    }
}

/// One labelled task.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub id: String,
    pub kind: Kind,
    pub prompt: String,
    /// The tool that must be called (with a result that is not an error).
    pub tool: Option<String>,
    /// Arguments that call must carry, as JSON: every key with this value.
    pub args: Option<String>,
    /// The final answer must state this: a number (compared as a number) or text
    /// (compared without case).
    pub answer: Option<String>,
    /// Some successful result of the tool must contain this text.
    pub result: Option<String>,
}

#[derive(Deserialize)]
struct File {
    task: Vec<Task>,
}

/// The labelled tasks, from the labs folder.
pub fn load(labs_dir: &Path) -> Result<Vec<Task>, String> {
    let path = labs_dir.join("data/agent-tasks.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: File = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for t in &f.task {
        if let Some(a) = &t.args {
            serde_json::from_str::<serde_json::Value>(a)
                .map_err(|e| format!("{}: task {}: args: {e}", path.display(), t.id))?;
        }
        if (t.kind == Kind::None) != t.tool.is_none() {
            return Err(format!(
                "{}: task {}: a task names a tool exactly when its kind is not `none`",
                path.display(),
                t.id
            ));
        }
    }
    Ok(f.task)
}

/// How a run did on a task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    pub passed: bool,
    /// Why it failed, in a line (empty when it passed).
    pub reason: String,
    pub calls: usize,
    /// Calls whose result was an error (bad arguments, unknown ids, …).
    pub failed_calls: usize,
}

/// The numbers written in `text` ("1,024", "-3.5", "391.0").
pub fn numbers(text: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let neg = b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit);
        if b[i].is_ascii_digit() || neg {
            let start = i;
            i += usize::from(neg);
            while i < b.len()
                && (b[i].is_ascii_digit()
                    || ((b[i] == b'.' || b[i] == b',')
                        && b.get(i + 1).is_some_and(u8::is_ascii_digit)))
            {
                i += 1;
            }
            let s: String = text[start..i].chars().filter(|&c| c != ',').collect();
            if let Ok(v) = s.parse() {
                out.push(v);
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Whether `text` states `want`: as a number when `want` is one, else as text.
pub fn states(text: &str, want: &str) -> bool {
    match want.parse::<f64>() {
        Ok(w) => numbers(text)
            .iter()
            .any(|v| (v - w).abs() <= 1e-6 * w.abs().max(1.0)),
        Err(_) => text.to_lowercase().contains(&want.to_lowercase()),
    }
}

/// Checks a finished run against its task.
pub fn check(task: &Task, run: &Run) -> Outcome {
    let t = &run.state.transcript;
    let calls: Vec<_> = t
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .flat_map(|m| m.tool_calls.iter())
        .collect();
    let result_of = |id: &str| {
        t.iter()
            .find(|m| m.role == Role::Tool && m.tool_call_id.as_deref() == Some(id))
    };
    let failed_calls = calls
        .iter()
        .filter(|c| result_of(&c.id).is_none_or(|m| m.is_error))
        .count();
    let answer = run.answer.as_deref().unwrap_or("");
    let fail = |reason: String| Outcome {
        passed: false,
        reason,
        calls: calls.len(),
        failed_calls,
    };
    match &task.tool {
        None => {
            if let Some(c) = calls.first() {
                return fail(format!("called {} when no tool was needed", c.name));
            }
        }
        Some(tool) => {
            let want: serde_json::Map<String, serde_json::Value> = task
                .args
                .as_deref()
                .and_then(|a| serde_json::from_str(a).ok())
                .unwrap_or_default();
            let good: Vec<_> = calls
                .iter()
                .filter(|c| &c.name == tool)
                .filter(|c| want.iter().all(|(k, v)| c.arguments.get(k) == Some(v)))
                .filter_map(|c| result_of(&c.id).filter(|m| !m.is_error))
                .collect();
            if good.is_empty() {
                return fail(match calls.iter().find(|c| &c.name == tool) {
                    None => format!("never called {tool}"),
                    Some(c) => format!(
                        "called {tool} with {} but never successfully with {}",
                        c.arguments,
                        serde_json::Value::Object(want)
                    ),
                });
            }
            if let Some(r) = &task.result
                && !good.iter().any(|m| m.content.contains(r.as_str()))
            {
                return fail(format!("{tool}'s results do not contain {r:?}"));
            }
        }
    }
    if run.answer.is_none() {
        return fail(format!("no answer (stopped by {})", run.stop.describe()));
    }
    if answer.trim().is_empty() {
        return fail("an empty answer".into());
    }
    if let Some(w) = &task.answer
        && !states(answer, w)
    {
        return fail(format!("the answer does not state {w:?}"));
    }
    Outcome {
        passed: true,
        reason: String::new(),
        calls: calls.len(),
        failed_calls,
    }
}
