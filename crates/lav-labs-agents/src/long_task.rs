//! The long task of the context-engineering lab: an audit of orders 1001–1012, one
//! lookup each, then a question about an early one ("what item was in order
//! 1003?"). The moves are scripted (so every setup does the same work); what the
//! context manager does with them is real: its views are counted with the model's
//! tokenizer, its compaction summaries and the final answer are written by the
//! model, the notes live in a file and sub-agents work in clean windows. The
//! checker compares the answer with the orders database.

use lav_agent::context::{Counter, Delegate, Managed, Notes, Policy, TickView};
use lav_agent::workflow::Backend;
use lav_agent::{Limits, Llm, Reply, Role, State, Stop, ToolCall, ToolSpec, Toolbox, Tools, Usage};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::{Arc, Mutex};

/// The orders the audit looks up, and the one it is asked about at the end.
pub const FIRST: u64 = 1001;
pub const LAST: u64 = 1012;
pub const ASKED: u64 = 1003;

pub const SYSTEM: &str =
    "You are a shop's auditor. Look orders up with the tools and answer questions about them.";

pub fn task() -> String {
    format!(
        "Audit orders {FIRST} to {LAST}, one lookup each. Then answer: what item was in order {ASKED}?"
    )
}

fn question() -> String {
    format!("Now answer in one sentence: what item was in order {ASKED}?")
}

/// Tokenizes as the model does (for counting shared prefixes).
pub type Ids = Arc<dyn Fn(&str) -> Vec<u32> + Send + Sync>;

/// What the learner toggles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Setup {
    /// The context window in tokens (the model's own, or a smaller what-if).
    pub window: usize,
    pub compaction: bool,
    pub memory: bool,
    pub subagents: bool,
    pub stable_prefix_first: bool,
}

/// One audit under one setup.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditRun {
    pub setup: Setup,
    pub views: Vec<TickView>,
    /// Per view: tokens it shares from the start with the one before (what a prefix
    /// cache could reuse), counted on the prompt the local model would read.
    pub shared_prefix: Vec<usize>,
    /// Per view: the tokens of that prompt (the view as the local model reads it,
    /// its worked examples included), what `shared_prefix` is a part of.
    #[serde(default)]
    pub prompt_tokens: Vec<usize>,
    pub stop: Stop,
    pub answer: Option<String>,
    /// The item the database holds for the asked order.
    pub expected: String,
    pub passed: bool,
    /// The parent's calls, summaries included.
    pub usage: Usage,
    /// The sub-agents' calls.
    pub sub_usage: Usage,
    pub ticks: usize,
    pub seconds: f64,
    /// Per view, the prompt tokens an endpoint's prefix cache served when the view
    /// was sent to it (as `usage.prompt_tokens_details.cached_tokens`; None where it
    /// did not say). Empty unless the audit ran against an endpoint.
    #[serde(default)]
    pub engine_cached: Vec<Option<u64>>,
    /// Per view, the prompt tokens the endpoint counted for it.
    #[serde(default)]
    pub engine_prompt: Vec<u64>,
}

/// The scripted auditor: a lookup per order (or a delegation), a note after each
/// when memory is on, then the model's answer from the view it is sent.
struct Auditor<'a> {
    next: u64,
    note_due: bool,
    setup: Setup,
    answerer: &'a mut dyn Llm,
    /// Prefix sharing, counted on the local model's prompt for each view.
    count_ids: Ids,
    last_ids: Vec<u32>,
    shared: Vec<usize>,
    lens: Vec<usize>,
    /// An endpoint each view is also sent to (one token back), to read what its
    /// prefix cache served.
    probe: Option<&'a mut dyn Llm>,
    probed: Vec<(Option<u64>, u64)>,
}

fn call(id: String, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        id,
        name: name.into(),
        arguments,
    }
}

/// "order N: ITEM, STATUS" from a get_order result.
fn summary_line(result: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(result).ok()?;
    Some(format!(
        "order {}: {}, {}",
        v["id"],
        v["item"].as_str()?,
        v["status"].as_str()?
    ))
}

impl Llm for Auditor<'_> {
    fn name(&self) -> String {
        self.answerer.name()
    }

    fn next(&mut self, view: &State, tools: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
        let ids = (self.count_ids)(&lav_local::LocalLlm::prompt(view, tools));
        let same = ids
            .iter()
            .zip(&self.last_ids)
            .take_while(|(a, b)| a == b)
            .count();
        self.shared.push(same);
        self.lens.push(ids.len());
        self.last_ids = ids;
        if let Some(p) = self.probe.as_mut() {
            let r = p.next(view, tools)?;
            self.probed
                .push((r.usage().cached_tokens, r.usage().input_tokens));
        }
        let scripted = |calls| Reply::Calls {
            text: String::new(),
            calls,
            usage: Usage::default(),
        };
        if self.note_due {
            self.note_due = false;
            let last = view
                .transcript
                .iter()
                .rev()
                .find(|m| m.role == Role::Tool && !m.is_error)
                .map(|m| m.content.clone())
                .unwrap_or_default();
            let note = summary_line(&last).unwrap_or(last);
            return Ok(scripted(vec![call(
                format!("n{}", self.next),
                "remember",
                json!({ "note": note }),
            )]));
        }
        if self.next <= LAST {
            let id = self.next;
            self.next += 1;
            self.note_due = self.setup.memory;
            return Ok(scripted(vec![if self.setup.subagents {
                call(
                    format!("d{id}"),
                    "delegate",
                    json!({ "task": format!("Look up order {id} and say its item and status in one line.") }),
                )
            } else {
                call(format!("g{id}"), "get_order", json!({ "order_id": id }))
            }]));
        }
        // The audit is done: the model answers from what it is shown.
        let mut v = view.clone();
        v.transcript
            .push(lav_agent::Message::new(Role::User, question()));
        self.answerer.next(&v, &[])
    }
}

/// Sub-agents for the audit: scripted lookups in clean windows (one call, one line
/// back).
struct Clerks;

struct Clerk;

impl Llm for Clerk {
    fn name(&self) -> String {
        "scripted clerk".into()
    }
    fn next(&mut self, s: &State, _: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
        if let Some(r) = s.transcript.iter().find(|m| m.role == Role::Tool) {
            return Ok(Reply::Final {
                text: summary_line(&r.content).unwrap_or_else(|| r.content.clone()),
                usage: Usage::default(),
            });
        }
        let id: u64 = s.transcript[1]
            .content
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or(0);
        Ok(Reply::Calls {
            text: String::new(),
            calls: vec![call("c1".into(), "get_order", json!({ "order_id": id }))],
            usage: Usage::default(),
        })
    }
}

impl Backend for Clerks {
    fn llm(&self, _: u64) -> Box<dyn Llm + Send> {
        Box::new(Clerk)
    }
    fn tools(&self, _: &[String]) -> Box<dyn Tools + Send> {
        match lav_tools::Orders::seeded() {
            Ok(o) => Box::new(o),
            Err(_) => Box::new(Toolbox::default()),
        }
    }
}

/// The item the database holds for `id`.
pub fn item_of(id: u64) -> Result<String, String> {
    let mut o = lav_tools::Orders::seeded()?;
    let r = o.call(&call("x".into(), "get_order", json!({ "order_id": id })));
    let v: serde_json::Value = serde_json::from_str(&r.content).map_err(|e| e.to_string())?;
    v["item"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("order {id} has no item"))
}

/// Runs the audit under `setup`: `answerer` writes the final answer and
/// `summarizer` the compaction summaries (the same model, as two clients), `count`
/// counts tokens as the model does and `ids` tokenizes for prefix sharing.
pub fn audit(
    setup: Setup,
    answerer: &mut dyn Llm,
    summarizer: &mut dyn Llm,
    count: Arc<dyn Counter>,
    ids: Ids,
) -> Result<AuditRun, String> {
    audit_probed(setup, answerer, summarizer, None, count, ids)
}

/// [`audit`], each view also sent to `probe` (an endpoint asked for one token) to
/// read its prefix-cache hits.
pub fn audit_probed<'a>(
    setup: Setup,
    answerer: &'a mut dyn Llm,
    summarizer: &mut dyn Llm,
    probe: Option<&'a mut dyn Llm>,
    count: Arc<dyn Counter>,
    ids: Ids,
) -> Result<AuditRun, String> {
    let t = std::time::Instant::now();
    let expected = item_of(ASKED)?;
    let dir = tempfile_dir()?;
    let notes = dir.join("notes.md");
    let policy = Policy {
        window: setup.window,
        reserve: 128,
        compact_at: setup.compaction.then_some(0.7),
        keep_recent: 4,
        memory: setup.memory.then(|| notes.clone()),
        retrieval_tools: Vec::new(),
        stable_prefix_first: setup.stable_prefix_first,
    };
    // With sub-agents the parent holds only the delegation: the lookups are theirs.
    let mut tools = Toolbox::default();
    if !setup.subagents {
        tools = tools.with(lav_tools::Orders::seeded()?);
    }
    if setup.memory {
        tools = tools.with(Notes {
            path: notes.clone(),
        });
    }
    let sub_runs = Arc::new(Mutex::new(Vec::new()));
    if setup.subagents {
        tools = tools.with(Delegate {
            backend: Arc::new(Clerks),
            system: "You are a clerk. Look the order up and report it in one line.".into(),
            tools: vec!["get_order".into()],
            limits: Limits {
                max_ticks: 3,
                ..Limits::default()
            },
            runs: sub_runs.clone(),
        });
    }
    let mut auditor = Auditor {
        next: FIRST,
        note_due: false,
        setup,
        answerer,
        count_ids: ids,
        last_ids: Vec::new(),
        shared: Vec::new(),
        lens: Vec::new(),
        probe,
        probed: Vec::new(),
    };
    let (run, views) = {
        let mut m = Managed::new(&mut auditor, count, policy).with_summarizer(summarizer);
        let run = lav_agent::run(
            &mut m,
            &mut tools,
            State::new(SYSTEM, &task()),
            Limits {
                max_ticks: 40,
                token_budget: u64::MAX,
                deadline: None,
            },
            &mut (),
        )
        .map_err(|e| e.to_string())?;
        (run, m.views.clone())
    };
    let _ = std::fs::remove_dir_all(&dir);
    let passed = run
        .answer
        .as_deref()
        .is_some_and(|a| lav_agent::tasks::states(a, &expected));
    let sub_usage = sub_runs
        .lock()
        .map(|r| {
            r.iter().fold(Usage::default(), |mut u, run| {
                u.input_tokens += run.state.usage.input_tokens;
                u.output_tokens += run.state.usage.output_tokens;
                u
            })
        })
        .unwrap_or_default();
    Ok(AuditRun {
        setup,
        views,
        shared_prefix: auditor.shared,
        prompt_tokens: auditor.lens,
        engine_cached: auditor.probed.iter().map(|p| p.0).collect(),
        engine_prompt: auditor.probed.iter().map(|p| p.1).collect(),
        stop: run.stop,
        answer: run.answer.clone(),
        expected,
        passed,
        usage: run.state.usage,
        sub_usage,
        ticks: run.state.ticks,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// Token counting and tokenizing as `tok` does, for [`audit`].
pub fn counters(tok: Arc<lav_model::Tokenizer>) -> (Arc<dyn Counter>, Ids) {
    let t = tok.clone();
    (
        Arc::new(move |s: &str| t.encode(s).map(|v| v.len()).unwrap_or(0)),
        Arc::new(move |s: &str| tok.encode(s).unwrap_or_default()),
    )
}

/// The audit with the local model writing the summaries (≤ 160 tokens) and the
/// answer (≤ 60): what the lab runs live and `lav bench --context` records.
pub fn audit_local(
    setup: Setup,
    model: Arc<lav_model::Llama>,
    tok: Arc<lav_model::Tokenizer>,
    trie: Arc<lav_grammar::TokenTrie>,
    name: &str,
) -> Result<AuditRun, String> {
    let mut answerer =
        lav_local::LocalLlm::with_trie(model.clone(), tok.clone(), trie.clone(), name);
    answerer.max_tokens = 60;
    let mut summarizer = lav_local::LocalLlm::with_trie(model, tok.clone(), trie, name);
    summarizer.max_tokens = 160;
    let (count, ids) = counters(tok);
    audit(setup, &mut answerer, &mut summarizer, count, ids)
}

/// The audit against an OpenAI-compatible endpoint (`lav serve`, vLLM, …): the
/// endpoint writes the summaries and the answer, and every view is also sent to it
/// for one token, to read the prompt tokens its prefix cache served. `tok` counts as
/// the manager does (the local model's tokenizer).
pub fn audit_endpoint(
    setup: Setup,
    url: &str,
    model: &str,
    tok: Arc<lav_model::Tokenizer>,
) -> Result<AuditRun, String> {
    let client = |max: u64| {
        let mut c = lav_agent::OpenAiCompatible::new(url, model);
        c.temperature = Some(0.0);
        c.max_tokens = Some(max);
        c
    };
    let (mut answerer, mut summarizer, mut probe) = (client(60), client(160), client(1));
    let (count, ids) = counters(tok);
    audit_probed(
        setup,
        &mut answerer,
        &mut summarizer,
        Some(&mut probe),
        count,
        ids,
    )
}

/// A fresh folder for one audit's notes file.
fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let d = std::env::temp_dir().join(format!(
        "lav-audit-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    Ok(d)
}
