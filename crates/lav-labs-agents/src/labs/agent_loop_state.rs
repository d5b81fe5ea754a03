//! agent-loop-state: the agent loop tick by tick. A real run of lav's loop over real
//! tools reached through MCP in process (the moves are scripted so the run is the
//! same every time), with every message's tokens counted by the model's tokenizer;
//! end-to-end success against per-step accuracy, measured over seeded runs of the
//! loop; and the stop conditions firing.

use super::Context;
use lav_agent::{Limits, Llm, Run, ScriptedPolicy, State};
use lav_agent_types::{Reply, ToolCall, ToolResult, ToolSpec, Toolbox, Tools, Usage};
use lav_lab::items::{bar, bars, sig, table, text};
use lav_lab::{Control, Lab, LabError, LabState, Result, ResultExt, Step, Steps, Values};
use lav_local::{LocalLlm, call_block};
use lav_model::Tokenizer;
use lav_scene::*;
use serde_json::json;
use std::sync::Arc;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let tok = ctx.loader.tokenizer().lab()?;
    let run = task_run(&tok)?;
    let last = (run.states.len() - 1) as f64;
    let c = Controls {
        tick: Control::slider("tick", "Tick", 0.0, last, 1.0, last),
        price: Control::slider(
            "price",
            "$ per million input tokens (what-if)",
            0.1,
            15.0,
            0.1,
            3.0,
        ),
        p: Control::slider("p", "Per-step accuracy p", 0.5, 1.0, 0.01, 0.9),
        n: Control::slider("n", "Steps n", 1.0, 30.0, 1.0, 10.0),
        max_ticks: Control::slider("max_ticks", "Step cap (ticks)", 1.0, 12.0, 1.0, 8.0),
        budget: Control::slider("budget", "Token budget", 200.0, 6000.0, 100.0, 3000.0),
    };
    let steps = vec![
        Step::new("loop", &[&c.tick, &c.price], LoopLab::loop_step),
        Step::new("reliability", &[&c.p, &c.n], LoopLab::reliability),
        Step::new("stops", &[&c.max_ticks, &c.budget], LoopLab::stops),
    ];
    Steps::lab(
        LoopLab {
            c,
            tok,
            model_name: ctx.loader.model_name(),
            run,
            curves: std::collections::HashMap::new(),
        },
        steps,
    )
}

struct Controls {
    tick: Control,
    price: Control,
    p: Control,
    n: Control,
    max_ticks: Control,
    budget: Control,
}

struct LoopLab {
    c: Controls,
    tok: Arc<Tokenizer>,
    model_name: String,
    /// The task run, with the state after each tick.
    run: TaskRun,
    /// Measured success rates by (p in hundredths, n).
    curves: std::collections::HashMap<(u32, usize), f64>,
}

/// Counts a scripted policy's tokens with the real tokenizer: input is exactly the
/// prompt lav's local model would read at this tick ([`LocalLlm::prompt`]: the tools
/// in the system prompt, results in their tags, re-sent every tick), output is the
/// reply as the model would write it, call blocks included.
pub struct Counted {
    pub inner: ScriptedPolicy,
    pub tok: Arc<Tokenizer>,
}

/// The assistant turn as [`LocalLlm::prompt`] renders it back: text, then each call's
/// block on its own line.
pub fn reply_text(text: &str, calls: &[ToolCall], tools: &[ToolSpec]) -> String {
    let mut s = text.to_string();
    for c in calls {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(&call_block(c, tools));
    }
    s
}

impl Llm for Counted {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn next(&mut self, state: &State, tools: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
        let count = |s: &str| self.tok.encode(s).map(|v| v.len() as u64).unwrap_or(0);
        let input = count(&LocalLlm::prompt(state, tools));
        let mut r = self.inner.next(state, tools)?;
        let out = match &r {
            Reply::Final { text, .. } => count(text),
            Reply::Calls { text, calls, .. } => count(&reply_text(text, calls, tools)),
        };
        let u = Usage {
            input_tokens: input,
            output_tokens: out,
            cached_tokens: None,
        };
        match &mut r {
            Reply::Final { usage, .. } | Reply::Calls { usage, .. } => *usage = u,
        }
        Ok(r)
    }
}

/// Keeps the state after every tick.
#[derive(Default)]
struct Snapshots(Vec<State>);

impl lav_agent::Observer for Snapshots {
    fn tick_end(&mut self, state: &State) {
        self.0.push(state.clone());
    }
}

struct TaskRun {
    run: Run,
    /// The state at the end of tick t (index 0: before the first tick).
    states: Vec<State>,
    /// The tools as the loop listed them over MCP.
    tools: Vec<ToolSpec>,
}

const TASK: &str = "Order 1004: with 8% sales tax, does it cost more than $200?";

fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    }
}

fn task_run(tok: &Arc<Tokenizer>) -> Result<TaskRun> {
    let e = |e: String| LabError::Input(e);
    let orders = lav_tools::Orders::seeded().map_err(e)?;
    let server = lav_mcp::Server::new(
        "lav",
        Toolbox::default().with(orders).with(lav_tools::Calculator),
    );
    let mut tools = lav_mcp::Client::in_process(server).map_err(|x| e(x.to_string()))?;
    let u = Usage::default();
    let moves = vec![
        Reply::Calls {
            text: "Let me look up the order.".into(),
            calls: vec![call("t1", "get_order", json!({"order_id": 1004}))],
            usage: u,
        },
        Reply::Calls {
            text: "It is $199.00 before tax; adding 8%.".into(),
            calls: vec![call("t2", "calculate", json!({"expression": "199.00 * 1.08"}))],
            usage: u,
        },
        Reply::Final {
            text: "Yes: order 1004 (noise-cancelling headphones) costs $199.00, or $214.92 with 8% tax, which is more than $200.".into(),
            usage: u,
        },
    ];
    let mut llm = Counted {
        inner: ScriptedPolicy::new("scripted agent", moves),
        tok: tok.clone(),
    };
    let start = State::new("You are a shop assistant. Use the tools.", TASK);
    let mut snaps = Snapshots(vec![start.clone()]);
    let specs = tools.list();
    let run = lav_agent::run(
        &mut llm,
        &mut tools,
        start.clone(),
        Limits::default(),
        &mut snaps,
    )
    .map_err(|x| e(x.to_string()))?;
    Ok(TaskRun {
        run,
        states: snaps.0,
        tools: specs,
    })
}

/// A deterministic coin: SplitMix64 over (seed, index).
fn coin(seed: u64, i: u64, p: f64) -> bool {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 <= p
}

/// A step that works with probability p (seeded): the tool an n-step task needs.
struct Flaky {
    seed: u64,
    p: f64,
    i: u64,
}

impl Tools for Flaky {
    fn list(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "step".into(),
            description: "Does one step of the task; succeeds with probability p.".into(),
            input_schema: json!({"type": "object"}),
        }]
    }
    fn call(&mut self, _: &ToolCall) -> ToolResult {
        self.i += 1;
        if coin(self.seed, self.i, self.p) {
            ToolResult::from_result(Ok("ok".into()))
        } else {
            ToolResult::error("this step went wrong")
        }
    }
}

/// Runs an n-step task through the real loop: success when every step worked.
fn n_step_run(n: usize, p: f64, seed: u64) -> Result<bool> {
    let moves: Vec<Reply> = (0..n)
        .map(|i| Reply::Calls {
            text: String::new(),
            // Each step names itself: the same call twice would read as a loop.
            calls: vec![call(&format!("s{i}"), "step", json!({ "step": i }))],
            usage: Usage::default(),
        })
        .chain(std::iter::once(Reply::Final {
            text: "done".into(),
            usage: Usage::default(),
        }))
        .collect();
    let mut llm = ScriptedPolicy::new("n-step task", moves);
    let mut tools = Flaky { seed, p, i: 0 };
    let r = lav_agent::run(
        &mut llm,
        &mut tools,
        State::new("", "task"),
        Limits {
            max_ticks: n + 1,
            ..Limits::default()
        },
        &mut (),
    )
    .map_err(|e| LabError::Input(e.to_string()))?;
    Ok(r.state.transcript.iter().all(|m| !m.is_error))
}

/// The share of `runs` seeded n-step runs that succeeded.
pub fn measured_success(n: usize, p: f64, runs: u64) -> Result<f64> {
    let mut ok = 0;
    for seed in 0..runs {
        ok += n_step_run(n, p, seed * 7919 + n as u64)? as u64;
    }
    Ok(ok as f64 / runs as f64)
}

const RUNS: u64 = 400;

impl LoopLab {
    fn success(&mut self, n: usize, p: f64) -> Result<f64> {
        let key = ((p * 100.0).round() as u32, n);
        if let Some(v) = self.curves.get(&key) {
            return Ok(*v);
        }
        let v = measured_success(n, p, RUNS)?;
        self.curves.insert(key, v);
        Ok(v)
    }
}

impl LabState for LoopLab {}

fn prov() -> Provenance {
    Provenance::engine("lav's agent loop, tools over MCP in process (moves scripted)")
}

impl LoopLab {
    fn loop_step(&mut self, v: &Values) -> Result<Scene> {
        let count = |s: &str| self.tok.encode(s).map(|v| v.len()).unwrap_or(0);
        let mut scene = Scene::new();
        let t = v.usize(&self.c.tick).min(self.run.states.len() - 1);
        let st = &self.run.states[t];
        let rows = st
            .transcript
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut content = m.content.clone();
                for c in &m.tool_calls {
                    content += &format!(" → {}({}) [{}]", c.name, c.arguments, c.id);
                }
                if let Some(id) = &m.tool_call_id {
                    content = format!("[{id}] {content}");
                }
                vec![
                    i.to_string(),
                    format!("{:?}", m.role).to_lowercase(),
                    content,
                    count(&m.content).to_string(),
                ]
            })
            .collect();
        scene.push(table(
            "transcript",
            &format!(
                "The state after tick {t} of {}: the transcript",
                self.run.states.len() - 1
            ),
            prov(),
            &["#", "role", "content", "content tokens"],
            rows,
        ));
        let state_json = serde_json::to_string(st).unwrap_or_default();
        scene.push(text(
            "state",
            &format!(
                "The whole state, serialized ({} bytes): what a run saves and resumes from",
                state_json.len()
            ),
            prov(),
            state_json.chars().take(600).collect::<String>()
                + if state_json.len() > 600 { "…" } else { "" },
        ));
        // Input per tick: the transcript is re-sent every time.
        let final_state = &self.run.run.state;
        let mut per_tick = Vec::new();
        let mut cum = 0.0;
        for (i, s) in self.run.states.iter().enumerate().skip(1) {
            let input =
                s.usage.input_tokens as f64 - self.run.states[i - 1].usage.input_tokens as f64;
            cum += input;
            per_tick.push(bar(
                format!("tick {i} input"),
                input,
                if i <= t { Role::Token } else { Role::Muted },
            ));
        }
        scene.push(bars(
            "meter",
            "Input tokens per tick: the whole prompt lav's model reads, tools and all",
            Provenance::model(format!(
                "{}'s tokenizer over LocalLlm's prompt",
                self.model_name
            )),
            "tokens",
            per_tick,
        ));
        let price = v.num(&self.c.price);
        scene.push(table(
            "cost",
            "Token and cost meter",
            Provenance::computed("tokens counted by the tokenizer × a what-if price"),
            &["", "input", "output", "cost (input)"],
            vec![
                vec![
                    format!("after tick {t}"),
                    st.usage.input_tokens.to_string(),
                    st.usage.output_tokens.to_string(),
                    format!("${}", sig(st.usage.input_tokens as f64 * price / 1e6)),
                ],
                vec![
                    "whole run".into(),
                    final_state.usage.input_tokens.to_string(),
                    final_state.usage.output_tokens.to_string(),
                    format!("${}", sig(cum * price / 1e6)),
                ],
            ],
        ));
        scene.push(text(
            "tools",
            "Tools held (listed over MCP)",
            prov(),
            self.run
                .tools
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ));
        Ok(scene)
    }

    fn reliability(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let p = v.num(&self.c.p);
        let n = v.usize(&self.c.n).max(1);
        let mut formula = Vec::new();
        let mut measured = Vec::new();
        for k in 1..=30usize {
            formula.push((k as f64, p.powi(k as i32)));
        }
        for k in [1usize, 2, 5, 10, 20, 30] {
            measured.push((k as f64, self.success(k, p)?));
        }
        let here = self.success(n, p)?;
        scene.push(Item::new(
            "curve",
            format!("End-to-end success vs steps at p = {p:.2}"),
            Provenance::computed(format!(
                "p^n, and {RUNS} seeded runs of the real loop per point"
            )),
            Primitive::Plot(Plot {
                x_label: "steps n".into(),
                y_label: "P(all steps succeed)".into(),
                x_log: false,
                y_log: false,
                series: vec![
                    Series {
                        name: "p^n".into(),
                        points: formula,
                        line: true,
                        role: Role::Token,
                    },
                    Series {
                        name: "measured".into(),
                        points: measured,
                        line: false,
                        role: Role::Highlight,
                    },
                ],
            }),
        ));
        scene.push(table(
            "point",
            "At your n",
            Provenance::computed("formula and seeded runs"),
            &["n", "p^n", "measured", "runs"],
            vec![vec![
                n.to_string(),
                format!("{:.1}%", 100.0 * p.powi(n as i32)),
                format!("{:.1}%", 100.0 * here),
                RUNS.to_string(),
            ]],
        ));
        Ok(scene)
    }

    fn stops(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let max_ticks = v.usize(&self.c.max_ticks).max(1);
        let budget = v.num(&self.c.budget) as u64;
        // An agent that would keep searching for 12 ticks, one order after another
        // (a different call each tick: the same one repeated would stop as a loop).
        let moves: Vec<Reply> = (0..12)
            .map(|i| Reply::Calls {
                text: format!("Still looking (attempt {}).", i + 1),
                calls: vec![call(
                    &format!("q{i}"),
                    "get_order",
                    json!({ "order_id": 1001 + i }),
                )],
                usage: Usage::default(),
            })
            .chain(std::iter::once(Reply::Final {
                text: "Found it.".into(),
                usage: Usage::default(),
            }))
            .collect();
        let mut llm = Counted {
            inner: ScriptedPolicy::new("scripted agent", moves),
            tok: self.tok.clone(),
        };
        let mut tools = lav_tools::Orders::seeded().map_err(LabError::Input)?;
        let r = lav_agent::run(
            &mut llm,
            &mut tools,
            State::new(
                "You are a shop assistant.",
                "Find Ada Byron's most recent order.",
            ),
            Limits {
                max_ticks,
                token_budget: budget,
                deadline: None,
            },
            &mut (),
        )
        .map_err(|e| LabError::Input(e.to_string()))?;
        let why = r.stop.describe();
        scene.push(table(
            "stop",
            &format!("Stopped by {why}"),
            prov(),
            &["ticks", "input tokens", "output tokens", "total", "answer"],
            vec![vec![
                r.state.ticks.to_string(),
                r.state.usage.input_tokens.to_string(),
                r.state.usage.output_tokens.to_string(),
                r.state.tokens().to_string(),
                r.answer
                    .clone()
                    .unwrap_or_else(|| "(none: stopped first)".into()),
            ]],
        ));
        Ok(scene)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_counts_exactly_what_the_local_model_reads_and_writes() {
        let tok = lav_testkit::tokenizer_arc();
        let r = task_run(&tok).unwrap();
        let count = |s: &str| tok.encode(s).unwrap().len() as u64;
        assert!(r.states.len() >= 4, "three moves: {}", r.states.len());
        for i in 1..r.states.len() {
            let (before, after) = (&r.states[i - 1], &r.states[i]);
            let sent = after.usage.input_tokens - before.usage.input_tokens;
            assert_eq!(
                sent,
                count(&LocalLlm::prompt(before, &r.tools)),
                "tick {i}: input"
            );
            // The tick's reply is the assistant turn it added.
            let reply = after.transcript[before.transcript.len()..]
                .iter()
                .find(|m| m.role == lav_agent_types::Role::Assistant)
                .unwrap();
            let wrote = after.usage.output_tokens - before.usage.output_tokens;
            assert_eq!(
                wrote,
                count(&reply_text(&reply.content, &reply.tool_calls, &r.tools)),
                "tick {i}: output"
            );
        }
        // The tools' descriptions are part of every prompt.
        let first = LocalLlm::prompt(&r.states[0], &r.tools);
        assert!(
            first.contains("get_order") && first.contains("calculate"),
            "{first}"
        );
    }
}
