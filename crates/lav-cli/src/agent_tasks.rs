//! `lav bench --agent-tasks`: the local agent on the labelled tool tasks
//! (`labs/data/agent-tasks.toml`), each run as `lav agent` runs it and judged by its
//! deterministic checker, for every combination of tool choice, prompt style and
//! value constraints asked for; success rates per kind of task.

use crate::Global;
use crate::agent_cmd::{SYSTEM, builtin_tools};
use crate::lab_cmd::CliLoader;
use anyhow::{Result, bail};
use lav_agent::tasks::{self, Kind, Outcome};
use lav_agent::{Limits, State, ToolCall, ToolResult, ToolSpec, Tools};
use lav_local::{LocalLlm, PromptStyle};
use lav_model::{Loader, WeightFormat};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// What to compare.
pub struct Plan {
    pub choices: Vec<String>,
    pub prompts: Vec<String>,
    pub constraints: Vec<String>,
    /// Only tasks whose id starts with this.
    pub only: Option<String>,
    pub json: bool,
}

/// The tools with their schemas as the grammar read them before value constraints:
/// no `pattern`, no lengths, and bounds only where a small integer range was spelled
/// out. The "before" of the comparison.
struct Unconstrained(Box<dyn Tools>);

/// `schema` without value constraints (see [`Unconstrained`]).
pub fn unconstrained(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            let small_range = match (
                m.get("minimum").and_then(Value::as_i64),
                m.get("maximum").and_then(Value::as_i64),
            ) {
                (Some(lo), Some(hi)) => {
                    m.get("type") == Some(&Value::from("integer")) && hi >= lo && hi - lo < 64
                }
                _ => false,
            };
            Value::Object(
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "pattern"
                                | "minLength"
                                | "maxLength"
                                | "exclusiveMinimum"
                                | "exclusiveMaximum"
                        ) && (small_range || !matches!(k.as_str(), "minimum" | "maximum"))
                    })
                    .map(|(k, v)| (k.clone(), unconstrained(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(unconstrained).collect()),
        v => v.clone(),
    }
}

impl Tools for Unconstrained {
    fn list(&self) -> Vec<ToolSpec> {
        self.0
            .list()
            .into_iter()
            .map(|mut s| {
                s.input_schema = unconstrained(&s.input_schema);
                s
            })
            .collect()
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        self.0.call(call)
    }
}

#[derive(Serialize)]
struct TaskRun {
    id: String,
    kind: Kind,
    outcome: Outcome,
    ticks: usize,
    seconds: f64,
}

#[derive(Serialize)]
struct Config {
    tool_choice: String,
    prompt: String,
    constraints: String,
    runs: Vec<TaskRun>,
}

pub fn run(g: &Global, format: WeightFormat, plan: Plan) -> Result<()> {
    let labs = lav_lab::labs_dir()?;
    let mut all = tasks::load(&labs).map_err(anyhow::Error::msg)?;
    if let Some(p) = &plan.only {
        all.retain(|t| t.id.starts_with(p.as_str()));
    }
    if all.is_empty() {
        bail!("no labelled task matches; ids look like arith-01, order-03, docs-02, none-05");
    }
    let loader = Arc::new(CliLoader::new(g, format));
    let model = loader.model()?;
    let tok = loader.tokenizer()?;
    let trie = Arc::new(lav_local::vocab_trie(&tok));
    let mut configs = Vec::new();
    for choice in &plan.choices {
        let tc = lav_local::Choice::parse(choice).ok_or_else(|| {
            anyhow::anyhow!("--tool-choice takes auto, free and required, got `{choice}`")
        })?;
        for prompt in &plan.prompts {
            let style = PromptStyle::parse(prompt).ok_or_else(|| {
                anyhow::anyhow!(
                    "--prompt takes plain, formats, examples, dialogue and selected, got `{prompt}`"
                )
            })?;
            for cons in &plan.constraints {
                let on = match cons.as_str() {
                    "on" => true,
                    "off" => false,
                    other => bail!("--constraints takes on and off, got `{other}`"),
                };
                let mut runs = Vec::new();
                for task in &all {
                    // Fresh tools per task: no run sees another's side effects.
                    let inner = builtin_tools(&loader, &labs, &labs)?;
                    let mut tools: Box<dyn Tools> = if on {
                        inner
                    } else {
                        Box::new(Unconstrained(inner))
                    };
                    let mut llm = LocalLlm::with_trie(
                        model.clone(),
                        tok.clone(),
                        trie.clone(),
                        &loader.model_name(),
                    );
                    llm.choice = tc;
                    llm.style = style;
                    let t = Instant::now();
                    let r = lav_agent::run(
                        &mut llm,
                        tools.as_mut(),
                        State::new(SYSTEM, &task.prompt),
                        Limits {
                            max_ticks: 6,
                            token_budget: 20_000,
                            deadline: None,
                        },
                        &mut (),
                    )?;
                    let outcome = tasks::check(task, &r);
                    let run = TaskRun {
                        id: task.id.clone(),
                        kind: task.kind,
                        outcome,
                        ticks: r.state.ticks,
                        seconds: t.elapsed().as_secs_f64(),
                    };
                    if !plan.json {
                        eprintln!(
                            "{choice:8} {prompt:8} {cons:3} {:9} {} {:5.1} s  {}",
                            run.id,
                            if run.outcome.passed { "pass" } else { "FAIL" },
                            run.seconds,
                            if run.outcome.passed {
                                r.answer
                                    .as_deref()
                                    .unwrap_or("")
                                    .lines()
                                    .next()
                                    .unwrap_or("")
                                    .chars()
                                    .take(60)
                                    .collect::<String>()
                            } else {
                                run.outcome.reason.clone()
                            }
                        );
                    }
                    runs.push(run);
                }
                configs.push(Config {
                    tool_choice: choice.clone(),
                    prompt: prompt.clone(),
                    constraints: cons.clone(),
                    runs,
                });
            }
        }
    }
    if plan.json {
        println!("{}", serde_json::to_string_pretty(&configs)?);
        return Ok(());
    }
    println!(
        "| tool choice | prompt | value constraints | {} | all | calls that failed | s per task |",
        Kind::ALL.map(|k| k.name()).join(" | ")
    );
    println!(
        "|---|---|---|{}---|---|---|",
        "---|".repeat(Kind::ALL.len())
    );
    for c in &configs {
        let rate = |k: Option<Kind>| {
            let rs: Vec<_> = c
                .runs
                .iter()
                .filter(|r| k.is_none_or(|k| r.kind == k))
                .collect();
            if rs.is_empty() {
                return "—".to_string();
            }
            let pass = rs.iter().filter(|r| r.outcome.passed).count();
            format!(
                "{pass}/{} ({:.0}%)",
                rs.len(),
                100.0 * pass as f64 / rs.len() as f64
            )
        };
        let calls: usize = c.runs.iter().map(|r| r.outcome.calls).sum();
        let failed: usize = c.runs.iter().map(|r| r.outcome.failed_calls).sum();
        let secs: f64 = c.runs.iter().map(|r| r.seconds).sum::<f64>() / c.runs.len() as f64;
        println!(
            "| {} | {} | {} | {} | {} | {failed} of {calls} | {secs:.1} |",
            c.tool_choice,
            c.prompt,
            c.constraints,
            Kind::ALL.map(|k| rate(Some(k))).join(" | "),
            rate(None)
        );
    }
    Ok(())
}
