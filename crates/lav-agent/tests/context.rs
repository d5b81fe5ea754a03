//! The context manager on a long scripted task: a reader fetches page after page
//! (each 60 words), so its transcript outgrows a small window. Tokens are counted as
//! words here; lav counts them with the model's tokenizer.

use lav_agent::context::{Budget, Delegate, Managed, Notes, Policy};
use lav_agent::workflow::Backend;
use lav_agent::{
    Limits, Llm, Reply, Role, State, Stop, ToolCall, ToolResult, ToolSpec, Tools, Usage,
};
use serde_json::json;
use std::sync::{Arc, Mutex};

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Pages of 60 words; page k carries "fact k is 100+k".
struct Pages;

impl Tools for Pages {
    fn list(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "fetch".into(),
            description: "Fetches a page.".into(),
            input_schema: json!({"type": "object", "properties": {"page": {"type": "integer"}}}),
        }]
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let k = call.arguments["page"].as_u64().unwrap_or(0);
        let filler = vec!["lorem"; 54].join(" ");
        ToolResult::from_result(Ok(format!("page {k}: fact {k} is {} {filler}", 100 + k)))
    }
}

/// Reads `pages` pages (noting each fact when `note` is on), then answers with the
/// facts it can still see in the view it is sent.
struct Reader {
    pages: u64,
    note: bool,
    /// Every view it was sent, as text.
    seen: Arc<Mutex<Vec<String>>>,
}

fn usage() -> Usage {
    Usage {
        input_tokens: 10,
        output_tokens: 3,
        cached_tokens: None,
    }
}

impl Llm for Reader {
    fn name(&self) -> String {
        "reader".into()
    }
    fn next(&mut self, state: &State, _: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
        let text: String = state
            .transcript
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        self.seen.lock().unwrap().push(text.clone());
        let fetched = state
            .transcript
            .iter()
            .filter(|m| m.role == Role::Tool && m.content.starts_with("page"))
            .count() as u64;
        // Which page is next: one more than the last fetched (the view may have
        // folded earlier ones into the summary).
        let next = state
            .transcript
            .iter()
            .rev()
            .find_map(|m| {
                m.content
                    .strip_prefix("page ")
                    .and_then(|r| r.split(':').next()?.parse::<u64>().ok())
            })
            .map_or(0, |k| k + 1)
            .max(fetched);
        // Its own last move was a note: now fetch.
        let already_noted = state
            .transcript
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .is_some_and(|m| m.tool_calls.iter().any(|c| c.name == "remember"));
        if self.note && next > 0 && !already_noted {
            let k = next - 1;
            return Ok(Reply::Calls {
                text: String::new(),
                calls: vec![ToolCall {
                    id: format!("n{k}"),
                    name: "remember".into(),
                    arguments: json!({"note": format!("fact {k} is {}", 100 + k)}),
                }],
                usage: usage(),
            });
        }
        if next < self.pages {
            return Ok(Reply::Calls {
                text: String::new(),
                calls: vec![ToolCall {
                    id: format!("p{next}"),
                    name: "fetch".into(),
                    arguments: json!({"page": next}),
                }],
                usage: usage(),
            });
        }
        let facts: Vec<String> = (0..self.pages)
            .filter(|k| text.contains(&format!("fact {k} is {}", 100 + k)))
            .map(|k| (100 + k).to_string())
            .collect();
        Ok(Reply::Final {
            text: format!("facts: {}", facts.join(" ")),
            usage: usage(),
        })
    }
}

/// A summarizer that keeps every "fact k is N" it is shown, and nothing else.
struct Keeper;

impl Llm for Keeper {
    fn name(&self) -> String {
        "keeper".into()
    }
    fn next(&mut self, state: &State, _: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
        let text = &state.transcript[1].content;
        let mut facts = Vec::new();
        for (i, _) in text.match_indices("fact ") {
            let w: Vec<&str> = text[i..].split_whitespace().take(4).collect();
            let f = w.join(" ");
            if w.len() == 4 && w[2] == "is" && !facts.contains(&f) {
                facts.push(f);
            }
        }
        Ok(Reply::Final {
            text: facts.join("; "),
            usage: Usage {
                input_tokens: words(text) as u64,
                output_tokens: 4 * facts.len() as u64,
                cached_tokens: None,
            },
        })
    }
}

struct Both(Pages, Option<Notes>);

impl Tools for Both {
    fn list(&self) -> Vec<ToolSpec> {
        let mut l = self.0.list();
        if let Some(n) = &self.1 {
            l.extend(n.list());
        }
        l
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        match (&mut self.1, call.name.as_str()) {
            (Some(n), "remember" | "recall") => n.call(call),
            _ => self.0.call(call),
        }
    }
}

const PAGES: u64 = 12;

fn policy() -> Policy {
    Policy {
        reserve: 50,
        ..Policy::new(600)
    }
}

fn read(policy: Policy, note: bool, summarize: bool) -> (lav_agent::Run, Vec<Budget>, Vec<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = Reader {
        pages: PAGES,
        note,
        seen: seen.clone(),
    };
    let mut keeper = Keeper;
    let notes = policy.memory.clone().map(|path| Notes { path });
    let mut m = Managed::new(&mut reader, Arc::new(words), policy);
    if summarize {
        m = m.with_summarizer(&mut keeper);
    }
    let limits = Limits {
        max_ticks: 60,
        token_budget: u64::MAX,
        deadline: None,
    };
    let run = lav_agent::run(
        &mut m,
        &mut Both(Pages, notes),
        State::new(
            "You read pages and report every fact.",
            "Read pages 0 to 11.",
        ),
        limits,
        &mut (),
    )
    .unwrap();
    let budgets = m.views.iter().map(|v| v.budget).collect();
    let seen = seen.lock().unwrap().clone();
    (run, budgets, seen)
}

#[test]
fn without_compaction_the_window_overflows_and_the_run_stops_saying_so() {
    let (run, budgets, _) = read(policy(), false, false);
    assert_eq!(run.stop, Stop::ContextFull);
    assert_eq!(run.answer, None);
    let last = budgets.last().unwrap();
    assert!(last.overflow().is_some(), "{last:?}");
    // Every view before the last fitted; the last one is refused, not sent.
    assert!(
        budgets[..budgets.len() - 1]
            .iter()
            .all(|b| b.overflow().is_none())
    );
    let e = lav_agent::AgentError::ContextFull {
        needed: last.total(),
        limit: last.limit(),
        over: last.overflow().unwrap(),
    }
    .to_string();
    assert!(!e.contains('\n') && e.contains("compaction"), "{e}");
    assert!(Stop::ContextFull.describe().contains("window"));
}

#[test]
fn compaction_keeps_every_view_under_budget_and_the_summary_keeps_the_facts() {
    let p = Policy {
        compact_at: Some(0.8),
        keep_recent: 2,
        ..policy()
    };
    let (run, budgets, seen) = read(p, false, true);
    assert_eq!(run.stop, Stop::EndOfTurn);
    assert!(
        budgets.iter().all(|b| b.total() <= b.limit()),
        "{budgets:?}"
    );
    // The view passed the threshold more than once, and was compacted each time.
    let peak = budgets.iter().map(Budget::total).max().unwrap();
    assert!(peak as f64 <= 0.8 * 550.0 + 60.0 * 2.0 + 20.0, "{peak}");
    // The facts survived in the summary: the answer names all twelve.
    let want: Vec<String> = (0..PAGES).map(|k| (100 + k).to_string()).collect();
    assert_eq!(run.answer.unwrap(), format!("facts: {}", want.join(" ")));
    assert!(
        seen.iter()
            .any(|v| v.contains("Summary of the work so far"))
    );
    // The transcript keeps everything: the window is a view of it.
    let fetched = run
        .state
        .transcript
        .iter()
        .filter(|m| m.role == Role::Tool)
        .count();
    assert_eq!(fetched as u64, PAGES);
    // The summaries' tokens are counted in the run's usage: more than the reader's
    // own 10 + 3 per tick.
    let ticks = run.state.ticks as u64;
    assert!(run.state.usage.input_tokens > 10 * ticks);
}

#[test]
fn memory_notes_live_in_a_file_and_are_shown_in_the_scratch_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.md");
    let p = Policy {
        compact_at: Some(0.8),
        keep_recent: 2,
        memory: Some(path.clone()),
        ..policy()
    };
    // A summarizer that forgets everything: only the notes carry the facts.
    struct Forgetful;
    impl Llm for Forgetful {
        fn name(&self) -> String {
            "forgetful".into()
        }
        fn next(&mut self, _: &State, _: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
            Ok(Reply::Final {
                text: "pages were read".into(),
                usage: Usage::default(),
            })
        }
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut reader = Reader {
        pages: PAGES,
        note: true,
        seen: seen.clone(),
    };
    let mut forgetful = Forgetful;
    let mut m = Managed::new(&mut reader, Arc::new(words), p).with_summarizer(&mut forgetful);
    let run = lav_agent::run(
        &mut m,
        &mut Both(Pages, Some(Notes { path: path.clone() })),
        State::new(
            "You read pages and report every fact.",
            "Read pages 0 to 11.",
        ),
        Limits {
            max_ticks: 80,
            token_budget: u64::MAX,
            deadline: None,
        },
        &mut (),
    )
    .unwrap();
    assert_eq!(run.stop, Stop::EndOfTurn);
    let file = std::fs::read_to_string(&path).unwrap();
    assert_eq!(file.lines().count() as u64, PAGES, "{file}");
    assert!(file.contains("- fact 11 is 111"));
    assert!(m.views.last().unwrap().budget.scratch >= words(&file));
    let want: Vec<String> = (0..PAGES).map(|k| (100 + k).to_string()).collect();
    assert_eq!(run.answer.unwrap(), format!("facts: {}", want.join(" ")));
}

#[test]
fn the_stable_prefix_first_keeps_consecutive_views_sharing_their_start() {
    let dir = tempfile::tempdir().unwrap();
    let shared = |stable: bool| {
        let path = dir.path().join(format!("notes-{stable}.md"));
        let p = Policy {
            memory: Some(path),
            stable_prefix_first: stable,
            ..Policy::new(100_000)
        };
        let (_, _, seen) = read(p, true, false);
        // Characters each view shares with the one before, from the start.
        seen.windows(2)
            .map(|w| {
                w[0].chars()
                    .zip(w[1].chars())
                    .take_while(|(a, b)| a == b)
                    .count()
            })
            .sum::<usize>()
    };
    let (stable, unstable) = (shared(true), shared(false));
    // The notes change every other tick: first, they cut every view's shared start
    // short; last, only they are re-sent.
    assert!(
        stable as f64 > 1.5 * unstable as f64,
        "stable {stable} unstable {unstable}"
    );
}

/// A backend whose model answers every task with the task's length, after one
/// fetch; for sub-agents.
struct SubShop;

impl Backend for SubShop {
    fn llm(&self, _: u64) -> Box<dyn Llm + Send> {
        struct Sub;
        impl Llm for Sub {
            fn name(&self) -> String {
                "sub".into()
            }
            fn next(&mut self, s: &State, _: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
                if s.transcript.len() == 2 {
                    return Ok(Reply::Calls {
                        text: String::new(),
                        calls: vec![ToolCall {
                            id: "s1".into(),
                            name: "fetch".into(),
                            arguments: json!({"page": 3}),
                        }],
                        usage: usage(),
                    });
                }
                Ok(Reply::Final {
                    text: format!("found {}", &s.transcript[2 + 1].content[8..21]),
                    usage: usage(),
                })
            }
        }
        Box::new(Sub)
    }
    fn tools(&self, _: &[String]) -> Box<dyn Tools + Send> {
        Box::new(Pages)
    }
}

#[test]
fn a_sub_agent_works_in_a_clean_window_and_hands_back_only_its_answer() {
    let runs = Arc::new(Mutex::new(Vec::new()));
    let mut d = Delegate {
        backend: Arc::new(SubShop),
        system: "You are a sub-agent.".into(),
        tools: vec!["fetch".into()],
        limits: Limits::default(),
        runs: runs.clone(),
    };
    let r = d.call(&ToolCall {
        id: "d1".into(),
        name: "delegate".into(),
        arguments: json!({"task": "find fact 3"}),
    });
    assert!(!r.is_error, "{r:?}");
    assert_eq!(r.content, "found fact 3 is 103");
    let runs = runs.lock().unwrap();
    // The sub-agent's window held only its own instructions, its call, the page and
    // its answer.
    let t = &runs[0].state.transcript;
    assert_eq!(t.len(), 5);
    assert_eq!(t[0].content, "You are a sub-agent.");
    assert_eq!(t[1].content, "find fact 3");
    // The parent gets 5 words back for a 60-word page.
    assert!(words(&r.content) < words(&t[3].content) / 10);
    let bad = d.call(&ToolCall {
        id: "d2".into(),
        name: "delegate".into(),
        arguments: json!({"task": ""}),
    });
    assert!(bad.is_error);
}
