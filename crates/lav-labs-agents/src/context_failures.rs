//! The four ways a context fails (poisoning, distraction, confusion, clash), each
//! shown on a real run and again with its fix. The context of each run is built by
//! the lab (scripted, and labelled so); the model's answer is its own, judged by the
//! capstone's answer check (the detail asked for, and no rival of the same kind).
//! `lav bench --context-failures --record` saves the runs for context-engineering.

use crate::capstone::{self, FullShop};
use lav_agent::tasks::{Kind, Task};
use lav_agent::workflow::Backend;
use lav_agent::{Limits, Message, Role, Run, State};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One failure mode: how the lab breaks the context, and how it fixes it.
pub struct Mode {
    pub name: &'static str,
    /// What goes wrong, in a sentence.
    pub what: &'static str,
    /// The fix the second run applies.
    pub fix: &'static str,
    pub question: &'static str,
    pub answer: &'static str,
}

pub const MODES: [Mode; 4] = [
    Mode {
        name: "poisoning",
        what: "a wrong fact (the model's own unchecked claim) sits in the context and is taken as true from then on",
        fix: "write to memory only what a tool returned: the unchecked claim is replaced by the record the orders tool gave",
        question: "What item is in order 1003?",
        answer: "laptop stand",
    },
    Mode {
        name: "distraction",
        what: "so much is in the context (every order on file) that the one record that matters is lost among the rest",
        fix: "retrieve just in time: only the record BM25 finds for the question stays in the context",
        question: "What is the status of order 1006?",
        answer: "cancelled",
    },
    Mode {
        name: "confusion",
        what: "every tool the assistant has is offered, so the model must pick among tools the question does not need",
        fix: "load only the tools the question needs: the customer's order list alone",
        question: "What did Grace Hopper order most recently?",
        answer: "headphones",
    },
    Mode {
        name: "clash",
        what: "two sources in the context disagree (a stale cache and the database), and the model has to pick one",
        fix: "prune the stale source: keep the authoritative, newest record only",
        question: "What is the status of order 1003?",
        answer: "shipped",
    },
];

/// The mode named `name`.
pub fn mode(name: &str) -> Option<&'static Mode> {
    MODES.iter().find(|m| m.name == name)
}

fn task(m: &Mode) -> Task {
    Task {
        id: m.name.into(),
        kind: Kind::Order,
        prompt: m.question.into(),
        tool: None,
        args: None,
        answer: Some(m.answer.into()),
        result: None,
    }
}

const SYSTEM: &str = "You are lav's assistant for a small shop. Answer the customer from what you know and the tools you have.";

/// The run's starting state and the tools it holds.
pub fn context(m: &Mode, fixed: bool) -> Result<(State, Vec<String>), String> {
    let records = capstone::order_records()?;
    let record = |id: &str| {
        records
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.text.clone())
            .ok_or_else(|| format!("no order {id} on file"))
    };
    let mut s = State::new(SYSTEM, "");
    s.transcript.pop();
    let mut say = |role: Role, text: String| s.transcript.push(Message::new(role, text));
    let tools: Vec<String> = match (m.name, fixed) {
        ("poisoning", _) => {
            say(Role::User, "Please remember order 1003 for me.".into());
            say(
                Role::Assistant,
                if fixed {
                    format!("Noted, from the orders tool: {}", record("1003")?)
                } else {
                    "Noted: order 1003 is a webcam.".into()
                },
            );
            Vec::new()
        }
        ("distraction", _) => {
            let on_file = if fixed {
                let bm25 = lav_tools::retrieval::Bm25::new(&records)?;
                use lav_tools::retrieval::Retriever;
                let top = bm25.search(m.question, 1);
                top.iter()
                    .map(|(id, _)| record(id))
                    .collect::<Result<Vec<_>, _>>()?
            } else {
                records.iter().map(|r| r.text.clone()).collect()
            };
            say(
                Role::User,
                format!("Here are the orders on file:\n{}", on_file.join("\n")),
            );
            say(Role::Assistant, "Thank you, I have them.".into());
            Vec::new()
        }
        ("confusion", true) => vec!["list_orders".into()],
        ("confusion", false) => capstone::AGENT_TOOLS
            .iter()
            .chain(["cancel_order"].iter())
            .map(|s| s.to_string())
            .collect(),
        ("clash", _) => {
            let fresh = format!("From the orders database, just now: {}", record("1003")?);
            let stale = "From this morning's cache: Order 1003: 1 × laptop stand, total $45.00, status placed, placed on 2026-11-20 by Grace Hopper.".to_string();
            let notes = if fixed {
                fresh
            } else {
                // The stale source last: where a small model's attention is strongest.
                format!("{fresh}\n{stale}")
            };
            say(Role::User, format!("Notes on order 1003:\n{notes}"));
            say(Role::Assistant, "Thank you, noted.".into());
            Vec::new()
        }
        (other, _) => return Err(format!("no failure mode {other}")),
    };
    s.transcript.push(Message::new(Role::User, m.question));
    Ok((s, tools))
}

/// One run of a mode, failing or fixed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModeRun {
    pub mode: String,
    pub fixed: bool,
    pub tools: Vec<String>,
    pub run: Run,
    pub answer: String,
    pub passed: bool,
    /// Why the check failed it (empty when it passed).
    pub reason: String,
}

pub fn run(backend: &FullShop, m: &Mode, fixed: bool) -> Result<ModeRun, String> {
    let (state, tools) = context(m, fixed)?;
    let mut llm = backend.llm(0);
    let mut held = backend.tools(&tools);
    let run = lav_agent::run(
        llm.as_mut(),
        held.as_mut(),
        state,
        Limits {
            max_ticks: 3,
            ..Limits::default()
        },
        &mut (),
    )
    .map_err(|e| e.to_string())?;
    let answer = run.answer.clone().unwrap_or_default();
    let verdict = capstone::check(&task(m), &answer)?;
    Ok(ModeRun {
        mode: m.name.into(),
        fixed,
        tools,
        run,
        answer,
        passed: verdict.is_ok(),
        reason: verdict.err().unwrap_or_default(),
    })
}

/// What `lav bench --context-failures --record` saves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Recording {
    pub driver: String,
    pub recorded: String,
    pub runs: Vec<ModeRun>,
}

pub const RECORDING: &str = "data/agents/context-failures.json";

impl Recording {
    pub fn load(labs: &Path) -> Result<Recording, String> {
        crate::workflows::read_recording(labs, RECORDING, "lav bench --context-failures --record")
    }

    pub fn get(&self, mode: &str, fixed: bool) -> Option<&ModeRun> {
        self.runs
            .iter()
            .find(|r| r.mode == mode && r.fixed == fixed)
    }
}
