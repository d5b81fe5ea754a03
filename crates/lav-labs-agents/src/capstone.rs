//! The capstone: one customer-order task (the labelled order questions) built the
//! three ways the reference site names, plus an orchestrator with sub-agents:
//!
//! - **RAG only:** code retrieves the order records that match the question (BM25
//!   over one record per order) and one model call answers from them; no tools.
//! - **Deterministic workflow:** code reads the order id or customer name from the
//!   question and calls the orders tool itself; one model call answers from the
//!   result.
//! - **Autonomous agent:** the agent loop with every tool `lav agent` offers the shop
//!   (calculator, orders, docs search, messages) decides what to call.
//! - **Orchestrator and sub-agents:** one call splits the request, workers holding
//!   the same tools do the parts at once, a last call answers.
//!
//! Each run keeps its answer (judged by the task's answer check, the same for every
//! design), its model and tool calls, tokens and wall time, the tools it held (its
//! trifecta exposure comes from them) and its steps in words, for the traces side by
//! side. `lav bench --capstone --record` saves the runs for the lab.

use crate::workflows::{Only, Shop, read_recording};
use lav_agent::guard::Capability;
use lav_agent::tasks::{self, Task};
use lav_agent::workflow::{self, Backend, Flow, Node, Stage};
use lav_agent::{Llm, Tools};
use lav_tools::corpus::Document;
use lav_tools::retrieval::{Bm25, Chunk, Retriever};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The designs, in the scorecard's order.
pub const DESIGNS: [&str; 4] = [
    "RAG only",
    "deterministic workflow",
    "autonomous agent",
    "orchestrator and sub-agents",
];

/// What the retrieval of the RAG design reads, named like a tool so that its
/// exposure is counted the same way.
pub const ORDER_RECORDS: &str = "order records (retrieved)";

/// Every tool (and data source) a lab may hold, with the trifecta leg it brings:
/// the one table the capstone and the security lab label tools from.
pub const LEGS: [(&str, Capability); 11] = [
    ("calculate", Capability::Plain),
    ("get_order", Capability::PrivateData),
    ("list_orders", Capability::PrivateData),
    ("cancel_order", Capability::PrivateData),
    (ORDER_RECORDS, Capability::PrivateData),
    ("read_file", Capability::PrivateData),
    ("search_docs", Capability::UntrustedContent),
    ("fetch_page", Capability::UntrustedContent),
    ("send_message", Capability::Exfiltration),
    ("http_get", Capability::Exfiltration),
    ("answer", Capability::Plain),
];

/// The three legs a tool set holds: private data, untrusted content, exfiltration.
/// A tool missing from [`LEGS`] counts as exfiltration, as the guard treats it.
pub fn legs(tools: &[String]) -> [bool; 3] {
    let mut l = [false; 3];
    for t in tools {
        match LEGS
            .iter()
            .find(|(n, _)| n == t)
            .map_or(Capability::Exfiltration, |(_, c)| *c)
        {
            Capability::PrivateData => l[0] = true,
            Capability::UntrustedContent => l[1] = true,
            Capability::Exfiltration => l[2] = true,
            Capability::Plain => {}
        }
    }
    l
}

/// The tools the agent and the workers hold: what `lav agent` offers a shop
/// assistant.
pub const AGENT_TOOLS: [&str; 6] = [
    "calculate",
    "get_order",
    "list_orders",
    "search_docs",
    "send_message",
    "http_get",
];

/// The customer questions of the labelled set (its order lookups).
pub fn tasks(labs: &Path) -> Result<Vec<Task>, String> {
    let mut all = tasks::load(labs)?;
    all.retain(|t| t.kind == tasks::Kind::Order && t.answer.is_some());
    Ok(all)
}

/// The shop's tools plus the docs search and the message sink: the agent's set.
pub struct FullShop {
    pub shop: Shop,
    pub docs: Arc<Vec<Document>>,
}

impl FullShop {
    pub fn new(shop: Shop, labs: &Path) -> Result<FullShop, String> {
        Ok(FullShop {
            shop,
            docs: Arc::new(lav_tools::corpus::load(labs)?),
        })
    }
}

impl Backend for FullShop {
    fn llm(&self, variant: u64) -> Box<dyn Llm + Send> {
        self.shop.llm(variant)
    }

    fn tools(&self, names: &[String]) -> Box<dyn Tools + Send> {
        let mut b = lav_agent::Toolbox::default();
        let shop: Vec<String> = names
            .iter()
            .filter(|n| crate::workflows::TOOLS.contains(&n.as_str()))
            .cloned()
            .collect();
        if !shop.is_empty() {
            b = b.with(Boxed(self.shop.tools(&shop)));
        }
        if names.iter().any(|n| n == "search_docs") {
            match lav_tools::DocsSearch::new(&self.docs, lav_tools::docs::DEFAULT_CHUNKING, None) {
                Ok(d) => b = b.with(d),
                Err(e) => b = b.with(crate::workflows::Broken(e)),
            }
        }
        if names.iter().any(|n| n == "send_message" || n == "http_get") {
            b = b.with(lav_tools::Sink::default());
        }
        Box::new(Only {
            inner: b,
            names: names.to_vec(),
        })
    }
}

/// A boxed tool set as a tool set.
struct Boxed(Box<dyn Tools + Send>);

impl Tools for Boxed {
    fn list(&self) -> Vec<lav_agent::ToolSpec> {
        self.0.list()
    }
    fn call(&mut self, call: &lav_agent::ToolCall) -> lav_agent::ToolResult {
        self.0.call(call)
    }
}

/// One design on one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DesignRun {
    pub task: String,
    pub design: String,
    pub answer: String,
    pub passed: bool,
    pub model_calls: usize,
    pub tool_calls: usize,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub seconds: f64,
    /// What it held: tools, and the RAG design's retrieved records.
    pub tools: Vec<String>,
    /// What happened, one line per step, for the traces side by side.
    pub steps: Vec<String>,
}

impl DesignRun {
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

fn answer_stage(what: &str) -> Stage {
    Stage::new(
        "answer",
        "You answer a customer's question about their orders in one sentence from what you are given. State the detail asked for.",
        &format!("Question: {{task}}\n{what}:\n{{input}}"),
    )
}

/// One line per assistant turn of each stage of a workflow's trace.
fn stage_lines(trace: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for n in trace.stages() {
        if let Some(r) = &n.run {
            for t in lav_agent::evals::turns(r) {
                out.push(if t.answer {
                    format!("{}: answered \u{201c}{}\u{201d}", n.label, t.did)
                } else {
                    format!("{}: called {} \u{2192} {}", n.label, t.did, t.got)
                });
            }
        } else if !n.note.is_empty() {
            out.push(format!("{}: {}", n.label, n.note));
        }
    }
    out
}

/// One record per order, as the RAG design's retrieval reads them.
pub fn order_records() -> Result<Vec<Chunk>, String> {
    let db = lav_tools::Orders::seeded()?;
    let mut out = Vec::new();
    for c in db.customers()? {
        for o in db.orders_of(&c)? {
            out.push(Chunk::new(
                &o.id.to_string(),
                &format!(
                    "Order {}: {} × {}, total ${}, status {}, placed on {} by {}.",
                    o.id, o.quantity, o.item, o.total, o.status, o.placed_on, o.customer
                ),
            ));
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Records the RAG design retrieves per question.
pub const TOP_K: usize = 3;

/// Runs one design on one task.
pub fn run(backend: &FullShop, task: &Task, design: &str) -> Result<DesignRun, String> {
    let start = Instant::now();
    let (outcome, tools, mut steps, code_calls) = match design {
        "RAG only" => {
            let records = order_records()?;
            let bm25 = Bm25::new(&records)?;
            let hits = bm25.search(&task.prompt, TOP_K);
            let text: Vec<String> = hits
                .iter()
                .filter_map(|(id, _)| records.iter().find(|r| &r.id == id))
                .map(|r| r.text.clone())
                .collect();
            let steps = vec![format!(
                "code: BM25 retrieved orders {}",
                hits.iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )];
            let flow = Flow::Stage(answer_stage("Order records"));
            let o = workflow::run_with_input(backend, &flow, &task.prompt, &text.join("\n"))
                .map_err(|e| e.to_string())?;
            (o, vec![ORDER_RECORDS.to_string()], steps, 0)
        }
        "deterministic workflow" => {
            let (name, args) = match route(&task.prompt) {
                Ok(r) => r,
                // A workflow handles only what its code expects: no answer, shown.
                Err(e) => {
                    return Ok(DesignRun {
                        task: task.id.clone(),
                        design: design.into(),
                        answer: String::new(),
                        passed: false,
                        model_calls: 0,
                        tool_calls: 0,
                        input_tokens: 0,
                        output_tokens: 0,
                        seconds: start.elapsed().as_secs_f64(),
                        tools: vec!["get_order".into(), "list_orders".into()],
                        steps: vec![format!("code: {e}")],
                    });
                }
            };
            let mut tools = backend.tools(&[name.to_string()]);
            let r = tools.call(&lav_agent::ToolCall {
                id: "code-1".into(),
                name: name.into(),
                arguments: args.clone(),
            });
            let steps = vec![format!(
                "code: called {name} {args} \u{2192} {}",
                crate::agent_trace::clip(&r.content, 120)
            )];
            let flow = Flow::Stage(answer_stage("The orders tool's result"));
            let o = workflow::run_with_input(backend, &flow, &task.prompt, &r.content)
                .map_err(|e| e.to_string())?;
            (o, vec![name.to_string()], steps, 1)
        }
        "autonomous agent" => {
            let flow = Flow::Stage(
                Stage::new("agent", crate::workflows::SYSTEM, "{input}").with_tools(&AGENT_TOOLS),
            );
            let o = workflow::run(backend, &flow, &task.prompt).map_err(|e| e.to_string())?;
            (o, tools_of(&AGENT_TOOLS), Vec::new(), 0)
        }
        "orchestrator and sub-agents" => {
            let flow = Flow::Orchestrate {
                orchestrator: Stage::new(
                    "plan",
                    "You split a customer's request into the smallest steps, one per worker. Each worker can look up orders, search the docs and send messages.",
                    "Request: {input}",
                ),
                worker: Stage::new("worker", crate::workflows::SYSTEM, "{input}")
                    .with_tools(&AGENT_TOOLS),
                synthesizer: answer_stage("Workers' reports"),
                max_workers: 3,
            };
            let o = workflow::run(backend, &flow, &task.prompt).map_err(|e| e.to_string())?;
            (o, tools_of(&AGENT_TOOLS), Vec::new(), 0)
        }
        other => {
            return Err(format!(
                "no design {other}; the designs are {}",
                DESIGNS.join(", ")
            ));
        }
    };
    steps.extend(stage_lines(&outcome.trace));
    let (i, o) = outcome.trace.tokens();
    let answer = if outcome.output.ok {
        outcome.output.text.clone()
    } else {
        String::new()
    };
    Ok(DesignRun {
        task: task.id.clone(),
        design: design.into(),
        passed: check(task, &answer)?.is_ok(),
        answer,
        model_calls: outcome.trace.model_calls(),
        tool_calls: outcome.trace.tool_calls() + code_calls,
        input_tokens: i,
        output_tokens: o,
        seconds: start.elapsed().as_secs_f64(),
        tools,
        steps,
    })
}

/// The answer check every design is judged by: the answer states the labelled
/// answer and names no other candidate of the same kind from the orders database
/// (another item, status, date or customer), so echoing a whole list of orders is
/// not an answer. `Err` inside says why it fails.
pub fn check(task: &Task, answer: &str) -> Result<Result<(), String>, String> {
    let want = task
        .answer
        .as_deref()
        .ok_or_else(|| format!("task {} has no labelled answer", task.id))?;
    if answer.trim().is_empty() {
        return Ok(Err("no answer".into()));
    }
    if !tasks::states(answer, want) {
        return Ok(Err(format!("it does not state {want}")));
    }
    // A number (a quantity) has no list of rivals to name.
    if want.parse::<f64>().is_ok() {
        return Ok(Ok(()));
    }
    let db = lav_tools::Orders::seeded()?;
    let mut all = Vec::new();
    for c in db.customers()? {
        all.extend(db.orders_of(&c)?);
    }
    let fields: [Vec<String>; 4] = [
        all.iter().map(|o| o.item.clone()).collect(),
        all.iter().map(|o| o.status.clone()).collect(),
        all.iter().map(|o| o.placed_on.clone()).collect(),
        all.iter().map(|o| o.customer.clone()).collect(),
    ];
    // "placed on" labels a date; it does not name the status "placed".
    let lower = answer.to_lowercase().replace("placed on", "");
    let w = want.to_lowercase();
    // The kind of detail asked for: the field one of whose values is the answer.
    let Some(field) = fields
        .iter()
        .find(|f| f.iter().any(|v| v.to_lowercase().contains(&w)))
    else {
        return Ok(Ok(()));
    };
    let other = field.iter().find(|v| {
        let v = v.to_lowercase();
        !v.contains(&w) && !w.contains(&v) && lower.contains(&v)
    });
    Ok(match other {
        Some(v) => Err(format!("it also names {v}")),
        None => Ok(()),
    })
}

fn tools_of(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The deterministic workflow's code path: an order id in the question means
/// `get_order`; a customer's name means `list_orders`. Anything else is an error the
/// scorecard shows (a workflow only handles what its code expects).
pub fn route(question: &str) -> Result<(&'static str, serde_json::Value), String> {
    if let Some(id) = question
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 4)
        .and_then(|w| w.parse::<i64>().ok())
    {
        return Ok(("get_order", serde_json::json!({"order_id": id})));
    }
    let db = lav_tools::Orders::seeded()?;
    let lower = question.to_lowercase();
    for name in db.customers()? {
        let last = name
            .split_whitespace()
            .last()
            .unwrap_or(&name)
            .to_lowercase();
        if lower.contains(&last) {
            return Ok(("list_orders", serde_json::json!({"customer": name})));
        }
    }
    Err(format!(
        "the workflow's code finds no order id or customer in \u{201c}{question}\u{201d}"
    ))
}

/// Runs saved by `lav bench --capstone --record` and played back by the lab.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    pub driver: String,
    pub recorded: String,
    pub runs: Vec<DesignRun>,
}

pub const RECORDING: &str = "data/agents/capstone-runs.json";

impl Recording {
    pub fn load(labs: &Path) -> Result<Recording, String> {
        read_recording(labs, RECORDING, "lav bench --capstone --record")
    }

    pub fn get(&self, task: &str, design: &str) -> Option<&DesignRun> {
        self.runs
            .iter()
            .find(|r| r.task == task && r.design == design)
    }
}

/// One design's totals over a set of runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    pub design: String,
    pub passed: usize,
    pub tasks: usize,
    /// Means per task.
    pub model_calls: f64,
    pub tool_calls: f64,
    pub tokens: f64,
    pub seconds: f64,
    pub legs: [bool; 3],
}

pub fn scorecard(runs: &[&DesignRun]) -> Vec<Score> {
    DESIGNS
        .iter()
        .filter_map(|d| {
            let mine: Vec<&&DesignRun> = runs.iter().filter(|r| r.design == *d).collect();
            if mine.is_empty() {
                return None;
            }
            let n = mine.len() as f64;
            let mean = |f: &dyn Fn(&DesignRun) -> f64| mine.iter().map(|r| f(r)).sum::<f64>() / n;
            let mut held: Vec<String> = mine.iter().flat_map(|r| r.tools.clone()).collect();
            held.sort();
            held.dedup();
            Some(Score {
                design: d.to_string(),
                passed: mine.iter().filter(|r| r.passed).count(),
                tasks: mine.len(),
                model_calls: mean(&|r| r.model_calls as f64),
                tool_calls: mean(&|r| r.tool_calls as f64),
                tokens: mean(&|r| r.tokens() as f64),
                seconds: mean(&|r| r.seconds),
                legs: legs(&held),
            })
        })
        .collect()
}

/// The decision rule, applied: among the designs that do not hold all three legs of
/// the trifecta, the most accurate; among those within one task of it, the one with
/// the fewest tokens. `None` when every design holds all three.
pub fn decide(scores: &[Score]) -> Option<&Score> {
    let safe: Vec<&Score> = scores
        .iter()
        .filter(|s| !s.legs.iter().all(|l| *l))
        .collect();
    let best = safe.iter().map(|s| s.passed).max()?;
    safe.into_iter()
        .filter(|s| s.passed + 1 >= best)
        .min_by(|a, b| a.tokens.total_cmp(&b.tokens))
}
