//! The shop's workflows: one customer question (a calculation or an order lookup)
//! answered by a single agent and by each of the five workflow patterns, built from
//! `lav_agent::workflow` over the calculator and orders tools. Who drives the model
//! is a [`Driver`]: SmolLM2 under the tool grammar, an OpenAI-compatible endpoint, or
//! a [`Recording`] of an earlier run. `lav bench --workflows` records; the
//! workflow-patterns lab plays back or runs live.

use lav_agent::tasks::{self, Task};
use lav_agent::workflow::{self, Backend, Evaluator, Flow, Gate, Merge, Outcome, Stage};
use lav_agent::{Llm, ToolCall, ToolResult, ToolSpec, Toolbox, Tools};
use lav_grammar::TokenTrie;
use lav_local::LocalLlm;
use lav_model::{Llama, Tokenizer};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The system prompt of a stage that may call the shop's tools (as `lav agent`'s).
pub const SYSTEM: &str = "You are lav's assistant. Use a tool when it helps.";

/// The shop's tools a stage may hold.
pub const TOOLS: [&str; 3] = ["calculate", "get_order", "list_orders"];

/// The tasks of the labelled set (`labs/data/agent-tasks.toml`) the patterns are
/// compared on: every calculation and order lookup.
pub fn labelled(labs: &Path) -> Result<Vec<Task>, String> {
    let mut all = tasks::load(labs)?;
    all.retain(|t| matches!(t.kind, tasks::Kind::Arithmetic | tasks::Kind::Order));
    Ok(all)
}

fn agent(name: &str, tools: &[&str]) -> Stage {
    Stage::new(name, SYSTEM, "{input}").with_tools(tools)
}

fn answer_from(name: &str, what: &str) -> Stage {
    Stage::new(
        name,
        "You answer a customer's question in one sentence from what you are given. State the number or the detail asked for.",
        &format!("Question: {{task}}\n{what}:\n{{input}}"),
    )
}

/// The single agent (the baseline every pattern is compared with) and the five
/// patterns, each with its name as the lab shows it.
pub fn patterns() -> Vec<(&'static str, Flow)> {
    let single = || Flow::Stage(agent("agent", &TOOLS));
    vec![
        ("single agent", single()),
        (
            "chain with a gate",
            Flow::Chain(vec![
                (
                    Flow::Stage(agent("call a tool", &TOOLS).taking_tool_results()),
                    Some(Gate::tool_answered()),
                ),
                (Flow::Stage(answer_from("answer", "Tool result")), None),
            ]),
        ),
        (
            "routing",
            Flow::Route {
                classifier: Stage::new(
                    "classify",
                    "You send each customer request to the right desk: math for a calculation, orders for a question about an order.",
                    "Request: {input}",
                ),
                routes: vec![
                    (
                        "math".into(),
                        Flow::Stage(agent("math desk", &["calculate"])),
                    ),
                    (
                        "orders".into(),
                        Flow::Stage(agent("orders desk", &["get_order", "list_orders"])),
                    ),
                ],
            },
        ),
        (
            "parallel voting",
            Flow::Parallel {
                branches: vec![single(), single(), single()],
                merge: Merge::Vote,
            },
        ),
        (
            "orchestrator-workers",
            Flow::Orchestrate {
                orchestrator: Stage::new(
                    "plan",
                    "You split a customer's request into the smallest steps, one per worker. Each worker can use a calculator and look up orders.",
                    "Request: {input}",
                ),
                worker: agent("worker", &TOOLS),
                synthesizer: answer_from("synthesize", "Workers' reports"),
                max_workers: 3,
            },
        ),
        (
            "evaluator-optimizer",
            Flow::Optimize {
                generator: Box::new(single()),
                evaluator: Evaluator::Model(Stage::new(
                    "review",
                    "You review an assistant's answer to a customer. Pass it if it answers the question with a concrete number or detail; otherwise say what is missing.",
                    "Question: {task}\nAnswer: {input}",
                )),
                max_rounds: 2,
            },
        ),
    ]
}

/// Who answers for the model.
#[derive(Clone)]
pub enum Driver {
    /// SmolLM2 (or the loaded model) under lav's tool grammar, on this machine.
    Local {
        model: Arc<Llama>,
        tok: Arc<Tokenizer>,
        trie: Arc<TokenTrie>,
        name: String,
    },
    /// Any OpenAI-compatible `/chat/completions` endpoint.
    Endpoint { url: String, model: String },
}

impl Driver {
    /// How the screen names who drove.
    pub fn describe(&self) -> String {
        match self {
            Driver::Local { name, .. } => format!("{name} under lav's tool grammar"),
            Driver::Endpoint { url, model } => format!("{model} at {url}"),
        }
    }
}

/// Sampling temperature of voting's later branches (the first is greedy), each with
/// its own seed, so the branches can differ.
const VOTE_TEMPERATURE: f32 = 0.7;

/// Tokens per reply at most when an endpoint drives (the local agent's own cap).
const REPLY_TOKENS: u64 = 320;

/// A [`Backend`] over a driver and the shop's tools: the orders database seeded
/// afresh for every stage, so no stage sees another's side effects.
pub struct Shop {
    pub driver: Driver,
}

impl Backend for Shop {
    fn llm(&self, variant: u64) -> Box<dyn Llm + Send> {
        match &self.driver {
            Driver::Local {
                model,
                tok,
                trie,
                name,
            } => {
                let mut l = LocalLlm::with_trie(model.clone(), tok.clone(), trie.clone(), name);
                l.choice = lav_local::Choice::Required;
                if variant > 0 {
                    l.sampling = Some((VOTE_TEMPERATURE, variant));
                }
                Box::new(l)
            }
            Driver::Endpoint { url, model } => {
                let mut l = lav_agent::OpenAiCompatible::new(url, model);
                // As the local model: greedy, and voting's later branches sampled with
                // their own seeds.
                l.temperature = Some(if variant > 0 { VOTE_TEMPERATURE } else { 0.0 });
                l.seed = (variant > 0).then_some(variant);
                // The local model's cap on a reply, so both drivers write as much.
                l.max_tokens = Some(REPLY_TOKENS);
                Box::new(l)
            }
        }
    }

    fn tools(&self, names: &[String]) -> Box<dyn Tools + Send> {
        let mut b = Toolbox::default();
        if names.iter().any(|n| n == "calculate") {
            b = b.with(lav_tools::Calculator);
        }
        if names
            .iter()
            .any(|n| n.ends_with("_order") || n.ends_with("_orders"))
        {
            match lav_tools::Orders::seeded() {
                Ok(o) => b = b.with(o),
                // The stage then sees the failure as a tool error, not a crash.
                Err(e) => b = b.with(Broken(e)),
            }
        }
        Box::new(Only {
            inner: b,
            names: names.to_vec(),
        })
    }
}

/// Tools restricted to those named.
pub(crate) struct Only {
    pub inner: Toolbox,
    pub names: Vec<String>,
}

impl Tools for Only {
    fn list(&self) -> Vec<ToolSpec> {
        let mut l = self.inner.list();
        l.retain(|s| self.names.contains(&s.name));
        l
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        if self.names.contains(&call.name) {
            self.inner.call(call)
        } else {
            ToolResult::error(format!(
                "this step holds no tool {}; it holds {}",
                call.name,
                self.names.join(", ")
            ))
        }
    }
}

/// The orders tools when the database could not be opened.
pub(crate) struct Broken(pub String);

impl Tools for Broken {
    fn list(&self) -> Vec<ToolSpec> {
        Vec::new()
    }
    fn call(&mut self, _: &ToolCall) -> ToolResult {
        ToolResult::error(format!("the orders database is unavailable: {}", self.0))
    }
}

/// One pattern on one task, with the checker's verdict.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PatternRun {
    pub task: String,
    pub pattern: String,
    pub outcome: Outcome,
    pub passed: bool,
    /// Why the checker failed it (empty when it passed).
    #[serde(default)]
    pub reason: String,
}

impl PatternRun {
    pub fn run(backend: &Shop, task: &Task, pattern: &str, flow: &Flow) -> Result<Self, String> {
        let outcome = workflow::run(backend, flow, &task.prompt).map_err(|e| e.to_string())?;
        let verdict = tasks::check(task, &outcome.as_run());
        // A workflow that gave no answer says why in its trace (a gate, a stage out
        // of ticks), not in the loop's stop reason.
        let reason = match (&verdict.passed, outcome.output.ok) {
            (false, false) => format!("no answer: {}", why_not(&outcome.trace)),
            _ => verdict.reason,
        };
        Ok(PatternRun {
            task: task.id.clone(),
            pattern: pattern.into(),
            outcome,
            passed: verdict.passed,
            reason,
        })
    }
}

/// The first note of a node that failed, depth first: what stopped the workflow.
fn why_not(n: &workflow::Node) -> String {
    if !n.note.is_empty() && !n.output.ok {
        return n.note.clone();
    }
    n.children
        .iter()
        .map(why_not)
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| n.note.clone())
}

/// Runs saved by `lav bench --workflows --record` and played back by the lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    /// Who drove, as [`Driver::describe`] says it.
    pub driver: String,
    /// When and on what it was recorded.
    pub recorded: String,
    pub runs: Vec<PatternRun>,
}

/// Where the lab finds its recording, under the labs folder.
pub const RECORDING: &str = "data/agents/workflow-runs.json";

impl Recording {
    pub fn load(labs: &Path) -> Result<Recording, String> {
        read_recording(labs, RECORDING, "lav bench --workflows --record")
    }

    pub fn get(&self, task: &str, pattern: &str) -> Option<&PatternRun> {
        self.runs
            .iter()
            .find(|r| r.task == task && r.pattern == pattern)
    }
}

/// Reads a recording saved as JSON under the labs folder; a missing file says which
/// command records it.
pub fn read_recording<T: serde::de::DeserializeOwned>(
    labs: &Path,
    rel: &str,
    command: &str,
) -> Result<T, String> {
    let path = labs.join(rel);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}; record it with `{command}`", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}
