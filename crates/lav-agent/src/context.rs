//! The context manager: what the model is sent each tick, and what it costs.
//!
//! The loop's [`State`] keeps the whole transcript; [`Managed`] wraps a model and,
//! every tick, builds the *view* the model reads from it: the system prompt, the
//! task, a summary of compacted turns, the memory notes, then the recent turns. It
//! counts each segment of that view (system, tools, history, retrieved, scratch)
//! with the model's own tokenizer (a [`Counter`]) against the context window, writes
//! a compaction summary with a model when the view passes a threshold, and refuses
//! (one line, [`AgentError::ContextFull`], which the loop turns into
//! [`crate::Stop::ContextFull`]) when it cannot fit. [`Notes`] keeps memory notes in
//! a file; [`Delegate`] runs sub-agents in clean windows.

use crate::agent::{
    AgentError, Limits, Llm, Message, Reply, Result, Role, State, ToolCall, ToolResult, ToolSpec,
    Tools, Usage,
};
use crate::workflow::Backend;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Counts tokens as the model would (the real tokenizer in lav; any function in
/// tests).
pub trait Counter: Send + Sync {
    fn tokens(&self, text: &str) -> usize;
}

impl<F: Fn(&str) -> usize + Send + Sync> Counter for F {
    fn tokens(&self, text: &str) -> usize {
        self(text)
    }
}

/// A view's tokens by segment, against the window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// The system prompt and the task.
    pub system: usize,
    /// The tool specs (names, descriptions, schemas as JSON).
    pub tools: usize,
    /// Turns: the model's replies and non-retrieval tool results, and any summary.
    pub history: usize,
    /// Results of retrieval tools (documents pulled in).
    pub retrieved: usize,
    /// Memory notes and scratch state.
    pub scratch: usize,
    /// The model's context window.
    pub window: usize,
    /// Kept free for the reply.
    pub reserve: usize,
}

impl Budget {
    pub fn total(&self) -> usize {
        self.system + self.tools + self.history + self.retrieved + self.scratch
    }

    /// What the prompt may use: the window less the reply's reserve.
    pub fn limit(&self) -> usize {
        self.window.saturating_sub(self.reserve)
    }

    /// Tokens over the limit, if any.
    pub fn overflow(&self) -> Option<usize> {
        self.total()
            .checked_sub(self.limit())
            .filter(|&over| over > 0)
    }

    /// The segments with their names, in the view's order.
    pub fn segments(&self) -> [(&'static str, usize); 5] {
        [
            ("system", self.system),
            ("tools", self.tools),
            ("scratch", self.scratch),
            ("history", self.history),
            ("retrieved", self.retrieved),
        ]
    }
}

/// How the manager keeps the view inside the window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The model's context window, in tokens.
    pub window: usize,
    /// Tokens kept free for the reply.
    pub reserve: usize,
    /// Compact when the view passes this fraction of the limit (None: never).
    pub compact_at: Option<f64>,
    /// Messages kept verbatim after a compaction (the most recent).
    pub keep_recent: usize,
    /// A notes file shown to the model in the scratch segment.
    pub memory: Option<PathBuf>,
    /// Tools whose results count as retrieved content.
    pub retrieval_tools: Vec<String>,
    /// The stable parts first (system and task, then the summary, then the turns,
    /// which only grow) and the notes, rewritten any tick, last: consecutive views
    /// share the longest prefix, which a prefix cache reuses. When false the notes
    /// and summary go first, ahead of the system prompt.
    pub stable_prefix_first: bool,
}

impl Policy {
    pub fn new(window: usize) -> Policy {
        Policy {
            window,
            reserve: 256,
            compact_at: None,
            keep_recent: 4,
            memory: None,
            retrieval_tools: Vec::new(),
            stable_prefix_first: true,
        }
    }
}

/// What one tick sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TickView {
    pub tick: usize,
    pub budget: Budget,
    /// Whether a compaction ran before this tick.
    pub compacted: bool,
    /// Messages of the transcript folded into the summary so far.
    pub folded: usize,
    /// Of the input, tokens the backend served from its prefix cache (None: it does
    /// not say).
    pub cached: Option<u64>,
    /// The summarizer's tokens spent on this tick's compaction.
    pub summary_usage: Usage,
}

/// A model behind the context manager.
pub struct Managed<'a> {
    inner: &'a mut dyn Llm,
    /// Writes compaction summaries (the same model, or another).
    summarizer: Option<&'a mut dyn Llm>,
    counter: Arc<dyn Counter>,
    policy: Policy,
    /// Transcript messages (after the system prompt and the task) in the summary.
    folded: usize,
    summary: Option<String>,
    /// Every tick's view, in order.
    pub views: Vec<TickView>,
    /// The text of the last view, for prefix comparisons.
    pub last_view: Vec<Message>,
}

impl<'a> Managed<'a> {
    pub fn new(inner: &'a mut dyn Llm, counter: Arc<dyn Counter>, policy: Policy) -> Self {
        Managed {
            inner,
            summarizer: None,
            counter,
            policy,
            folded: 0,
            summary: None,
            views: Vec::new(),
            last_view: Vec::new(),
        }
    }

    /// Compaction summaries are written by `summarizer`.
    pub fn with_summarizer(mut self, summarizer: &'a mut dyn Llm) -> Self {
        self.summarizer = Some(summarizer);
        self
    }

    fn notes(&self) -> Option<String> {
        let path = self.policy.memory.as_ref()?;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Some(if text.trim().is_empty() {
            "(no notes yet)".into()
        } else {
            text
        })
    }

    /// The view of `state` as the model will read it, and its budget.
    pub fn view(&self, state: &State, tools: &[ToolSpec]) -> (State, Budget) {
        let count = |s: &str| self.counter.tokens(s);
        let t = &state.transcript;
        let head = t.len().min(2);
        let rest = &t[head..];
        let kept = &rest[self.folded.min(rest.len())..];
        let summary = self
            .summary
            .as_ref()
            .map(|s| Message::new(Role::User, format!("Summary of the work so far:\n{s}")));
        // The notes file is read once per view: its text is both shown and counted.
        let notes_text = self.notes();
        let notes = notes_text.as_ref().map(|n| {
            Message::new(
                Role::User,
                format!("Your notes (from your memory file):\n{n}"),
            )
        });
        let mut view = Vec::new();
        if self.policy.stable_prefix_first {
            // What never changes, then what changes only on a compaction, then the
            // append-only turns, and the notes (rewritten any tick) last.
            view.extend(t[..head].iter().cloned());
            view.extend(summary);
            view.extend(kept.iter().cloned());
            view.extend(notes);
        } else {
            view.extend(notes);
            view.extend(summary);
            view.extend(t[..head].iter().cloned());
            view.extend(kept.iter().cloned());
        }
        let retrieval = |m: &Message| {
            m.role == Role::Tool
                && m.tool_call_id.as_ref().is_some_and(|id| {
                    t.iter()
                        .flat_map(|a| a.tool_calls.iter())
                        .find(|c| &c.id == id)
                        .is_some_and(|c| self.policy.retrieval_tools.contains(&c.name))
                })
        };
        let msg = |m: &Message| {
            count(&m.content)
                + m.tool_calls
                    .iter()
                    .map(|c| count(&c.name) + count(&c.arguments.to_string()))
                    .sum::<usize>()
        };
        let mut b = Budget {
            window: self.policy.window,
            reserve: self.policy.reserve,
            tools: if tools.is_empty() {
                0
            } else {
                count(&serde_json::to_string(tools).unwrap_or_default())
            },
            ..Budget::default()
        };
        b.system = t[..head].iter().map(msg).sum();
        b.scratch = notes_text.as_deref().map_or(0, count);
        b.history = self.summary.as_deref().map_or(0, count);
        for m in kept {
            if retrieval(m) {
                b.retrieved += msg(m);
            } else {
                b.history += msg(m);
            }
        }
        let mut s = state.clone();
        s.transcript = view;
        (s, b)
    }

    /// Folds all but the most recent messages into the summary, written by the
    /// summarizer. The cut never separates a tool result from its call.
    fn compact(&mut self, state: &State) -> Result<Option<Usage>> {
        let Some(summarizer) = self.summarizer.as_deref_mut() else {
            return Ok(None);
        };
        let t = &state.transcript;
        let head = t.len().min(2);
        let rest = &t[head..];
        let mut cut = rest.len().saturating_sub(self.policy.keep_recent);
        while cut > self.folded && cut < rest.len() && rest[cut].role == Role::Tool {
            cut -= 1;
        }
        if cut <= self.folded {
            return Ok(None);
        }
        let mut text = String::new();
        if let Some(s) = &self.summary {
            text.push_str(&format!("Earlier summary: {s}\n"));
        }
        for m in &rest[self.folded..cut] {
            let who = match m.role {
                Role::Assistant => "assistant",
                Role::Tool => "tool result",
                Role::User => "user",
                Role::System => "system",
            };
            let mut line = m.content.clone();
            for c in &m.tool_calls {
                line.push_str(&format!(" [called {} {}]", c.name, c.arguments));
            }
            text.push_str(&format!("{who}: {line}\n"));
        }
        let ask = State::new(
            "You summarize an agent's work so far for its own later use. Keep every number, id, name and finding; drop the wording.",
            &format!(
                "Task: {}\n\nWork to summarize:\n{text}\nWrite the summary.",
                t.get(1).map_or("", |m| m.content.as_str())
            ),
        );
        let reply = summarizer.next(&ask, &[])?;
        let usage = reply.usage();
        let summary = match reply {
            Reply::Final { text, .. } => text,
            Reply::Calls { text, .. } => text,
        };
        self.summary = Some(summary.trim().to_string());
        self.folded = cut;
        Ok(Some(usage))
    }
}

impl Llm for Managed<'_> {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn provider(&self) -> &'static str {
        self.inner.provider()
    }

    fn next(&mut self, state: &State, tools: &[ToolSpec]) -> Result<Reply> {
        let (mut view, mut budget) = self.view(state, tools);
        let mut compacted = false;
        let mut spent = Usage::default();
        if let Some(at) = self.policy.compact_at
            && budget.total() as f64 > at * budget.limit() as f64
            && let Some(u) = self.compact(state)?
        {
            compacted = true;
            spent = u;
            (view, budget) = self.view(state, tools);
        }
        if let Some(over) = budget.overflow() {
            self.views.push(TickView {
                tick: state.ticks,
                budget,
                compacted,
                folded: self.folded,
                cached: None,
                summary_usage: spent,
            });
            return Err(AgentError::ContextFull {
                needed: budget.total(),
                limit: budget.limit(),
                over,
            });
        }
        let mut reply = self.inner.next(&view, tools)?;
        let cached = reply.usage().cached_tokens;
        // The summary's tokens are part of what the tick cost.
        match &mut reply {
            Reply::Final { usage, .. } | Reply::Calls { usage, .. } => {
                usage.input_tokens += spent.input_tokens;
                usage.output_tokens += spent.output_tokens;
            }
        }
        self.views.push(TickView {
            tick: state.ticks,
            budget,
            compacted,
            folded: self.folded,
            cached,
            summary_usage: spent,
        });
        self.last_view = view.transcript;
        Ok(reply)
    }
}

/// Memory notes in a file: `remember` appends a line, `recall` reads them all. The
/// file outlives the window (and the run).
pub struct Notes {
    pub path: PathBuf,
}

impl Tools for Notes {
    fn list(&self) -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "remember".into(),
                description:
                    "Saves a short note to your memory file, kept across compactions and runs."
                        .into(),
                input_schema: serde_json::json!({
                    "type": "object",
                    "properties": {"note": {"type": "string", "minLength": 1, "maxLength": 200}},
                    "required": ["note"],
                    "additionalProperties": false
                }),
            },
            ToolSpec {
                name: "recall".into(),
                description: "Reads every note in your memory file.".into(),
                input_schema: serde_json::json!({"type": "object", "properties": {}, "additionalProperties": false}),
            },
        ]
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        use std::io::Write;
        match call.name.as_str() {
            "remember" => {
                let Some(note) = call.arguments["note"]
                    .as_str()
                    .filter(|n| !n.trim().is_empty())
                else {
                    return ToolResult::error("remember needs a non-empty `note`");
                };
                let line = note.replace('\n', " ");
                let r = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
                    .and_then(|mut f| writeln!(f, "- {line}"));
                ToolResult::from_result(
                    r.map(|_| "noted".to_string())
                        .map_err(|e| format!("cannot write {}: {e}", self.path.display())),
                )
            }
            "recall" => ToolResult::from_result(Ok(std::fs::read_to_string(&self.path)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "(no notes yet)".into()))),
            other => ToolResult::error(format!("no tool {other}")),
        }
    }
}

/// Sub-agents: `delegate` runs a task in a clean window (a fresh state with only its
/// own instructions) and hands back only its answer, so the parent's window grows by
/// a line, not by the sub-agent's whole transcript.
pub struct Delegate {
    pub backend: Arc<dyn Backend>,
    pub system: String,
    pub tools: Vec<String>,
    pub limits: Limits,
    /// Every sub-agent's run, in order (what they cost, what they saw).
    pub runs: Arc<Mutex<Vec<crate::Run>>>,
}

impl Tools for Delegate {
    fn list(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "delegate".into(),
            description: "Hands a self-contained subtask to a sub-agent with a fresh context; returns only its answer.".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"task": {"type": "string", "minLength": 1, "maxLength": 300}},
                "required": ["task"],
                "additionalProperties": false
            }),
        }]
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let Some(task) = call.arguments["task"]
            .as_str()
            .filter(|t| !t.trim().is_empty())
        else {
            return ToolResult::error("delegate needs a non-empty `task`");
        };
        let mut llm = self.backend.llm(0);
        let mut tools = self.backend.tools(&self.tools);
        let state = State::new(&self.system, task);
        match crate::run(llm.as_mut(), tools.as_mut(), state, self.limits, &mut ()) {
            Ok(run) => {
                let r = match &run.answer {
                    Some(a) => ToolResult::from_result(Ok(a.clone())),
                    None => ToolResult::error(format!(
                        "the sub-agent gave no answer (stopped by {})",
                        run.stop.describe()
                    )),
                };
                self.runs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(run);
                r
            }
            Err(e) => ToolResult::error(format!("the sub-agent failed: {e}")),
        }
    }
}
