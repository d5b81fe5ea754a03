//! tool-use: tools as name + description + JSON Schema, served over MCP; SmolLM2
//! decoding a call under the grammar mask (every step's allowed and forbidden tokens
//! on the real logits); parallel calls; a bad argument coming back as `is_error` and
//! corrected; and how a tool's description moves the model's choice of tool.

use super::Context;
use lav_agent::{Limits, ScriptedPolicy, State};
use lav_agent_types::{Reply, ToolCall, ToolResult, ToolSpec, Toolbox, Tools, Usage};
use lav_grammar::{Grammar, TokenTrie, ToolChoice};
use lav_lab::items::ModelSource;
use lav_lab::items::{bar, bars, chip, sig, strip, table, text};
use lav_lab::job::{Job, State as JobState, progress_item};
use lav_lab::{Control, Lab, LabError, LabState, Result, ResultExt, Step, Steps, Values};
use lav_local::{Decoded, LocalLlm};
use lav_model::{Llama, Tokenizer};
use lav_scene::*;
use serde_json::json;
use std::sync::Arc;

const GET_ORDER: &str = "Looks up one order by its number.";

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let c = Controls {
        request: Control::text("request", "Request", 200, "Where is my order 1003?"),
        tstep: Control::slider("tstep", "Decoding step", 0.0, 63.0, 1.0, 0.0),
        description: Control::text("description", "get_order's description", 200, GET_ORDER),
    };
    let steps = vec![
        Step::new("schemas", &[], ToolLab::schemas),
        Step::new("mask", &[&c.request, &c.tstep], ToolLab::mask),
        Step::new("parallel", &[], ToolLab::parallel),
        Step::new("errors", &[], ToolLab::errors),
        Step::new(
            "descriptions",
            &[&c.request, &c.description],
            ToolLab::descriptions,
        ),
    ];
    Steps::lab(
        ToolLab {
            c,
            model: ctx.loader.model().lab()?,
            tok: ctx.loader.tokenizer().lab()?,
            model_name: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            dir: ctx.dir.join("data/agents"),
            trie: None,
            decode: Job::default(),
            choice: Job::default(),
        },
        steps,
    )
}

struct Controls {
    request: Control,
    tstep: Control,
    description: Control,
}

struct ToolLab {
    c: Controls,
    model: Arc<Llama>,
    tok: Arc<Tokenizer>,
    model_name: ModelSource,
    dir: std::path::PathBuf,
    trie: Option<Arc<TokenTrie>>,
    decode: Job<String, Decoded>,
    choice: Job<(String, String), Vec<(String, f64)>>,
}

/// The tools the lab's agent holds (lav's built-ins without the docs index, which
/// needs the embedder), with get_order's description as the learner wrote it; the
/// file reader is confined to the lab's agent data.
fn tools(dir: &std::path::Path, get_order: &str) -> Result<Toolbox> {
    let orders = lav_tools::Orders::seeded().map_err(LabError::Input)?;
    let described = Described {
        inner: orders,
        description: get_order.to_string(),
    };
    Ok(Toolbox::default()
        .with(lav_tools::Calculator)
        .with(lav_tools::FileReader::new(dir).map_err(|e| LabError::Input(e.to_string()))?)
        .with(described)
        .with(lav_tools::Sink::default()))
}

/// The orders tools with get_order's description replaced.
struct Described {
    inner: lav_tools::Orders,
    description: String,
}

impl Tools for Described {
    fn list(&self) -> Vec<ToolSpec> {
        let mut l = self.inner.list();
        for s in l.iter_mut().filter(|s| s.name == "get_order") {
            s.description = self.description.clone();
        }
        l
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        self.inner.call(call)
    }
}

fn call(id: &str, name: &str, arguments: serde_json::Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    }
}

/// Log-probability of each tool's name at the point where the model writes it,
/// normalised over the tools: P(tool | request, tool list).
fn tool_choice(
    model: &Llama,
    tok: &Tokenizer,
    prompt: &str,
    names: &[String],
) -> Result<Vec<(String, f64)>> {
    let e = |e: lav_model::ModelError| LabError::Input(e.to_string());
    let prefix = format!("{prompt}<tool_call>\n{{\"name\": \"");
    let ids = tok.encode(&prefix).map_err(e)?;
    let mut cache = model.new_cache();
    let first = model.next_logits(&ids, &mut cache).map_err(e)?;
    let mut out = Vec::new();
    for name in names {
        let toks = tok.encode(&format!("{name}\"")).map_err(e)?;
        let mut c = cache.clone();
        let mut logits = first.clone();
        let mut lp = 0.0;
        for (i, &t) in toks.iter().enumerate() {
            let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let z: f64 = logits
                .iter()
                .map(|&l| (l as f64 - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            lp += logits[t as usize] as f64 - z;
            if i + 1 < toks.len() {
                logits = model.next_logits(&[t], &mut c).map_err(e)?;
            }
        }
        out.push((name.clone(), lp));
    }
    let max = out.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = out.iter().map(|x| (x.1 - max).exp()).sum();
    Ok(out
        .into_iter()
        .map(|(n, l)| (n, (l - max).exp() / z))
        .collect())
}

impl ToolLab {
    fn llm(&mut self) -> LocalLlm {
        let trie = self
            .trie
            .get_or_insert_with(|| Arc::new(lav_local::vocab_trie(&self.tok)))
            .clone();
        LocalLlm::with_trie(
            self.model.clone(),
            self.tok.clone(),
            trie,
            &self.model_name.name,
        )
    }
}

fn engine() -> Provenance {
    Provenance::engine("lav's agent runtime and MCP (in process)")
}

impl LabState for ToolLab {
    fn busy(&self) -> bool {
        self.decode.busy() || self.choice.busy()
    }
}

impl ToolLab {
    fn schemas(&mut self, _: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let specs = tools(&self.dir, GET_ORDER)?.list();
        scene.push(table(
            "tools",
            "Each tool: a name, a description and a JSON Schema for its arguments",
            engine(),
            &["name", "arguments", "description"],
            specs
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        lav_local::signature(&s.input_schema),
                        s.description.clone(),
                    ]
                })
                .collect(),
        ));
        let get = specs
            .iter()
            .find(|s| s.name == "get_order")
            .expect("get_order");
        let mcp = serde_json::to_string_pretty(&lav_mcp::Server::tool(get)).unwrap_or_default();
        scene.push(text(
            "mcp",
            "get_order as an MCP server lists it (the tools/list result over JSON-RPC 2.0)",
            engine(),
            mcp,
        ));
        Ok(scene)
    }

    fn mask(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let request = v.text(&self.c.request).to_string();
        let mut llm = self.llm();
        let specs = tools(&self.dir, GET_ORDER)?.list();
        let prompt = LocalLlm::prompt(&State::new("", &request), &specs);
        llm.max_tokens = 160;
        let key = request.clone();
        if let JobState::Running(p) = self.decode.get(&key, move |p| {
            p.set(0, 1, "decoding under the grammar mask");
            llm.decode(
                &prompt,
                Grammar::tool_reply(&specs, ToolChoice::Required, 1),
            )
            .map_err(|e| LabError::Input(e.to_string()))
        })? {
            return Ok(scene.with(progress_item(
                "progress",
                "The model writing a tool call",
                p,
            )));
        }
        let d = self.decode.ready(&key).expect("ready");
        let s = v.usize(&self.c.tstep).min(d.steps.len().saturating_sub(1));
        let model = self
            .model_name
            .prov(format!("{} under lav's tool-call grammar", self.model_name));
        scene.push(strip(
            "reply",
            &format!("The reply, token by token ({} tokens; the selected step is highlighted, overridden ones are purple)", d.steps.len()),
            model.clone(),
            d.steps.iter().enumerate().map(|(i, st)| chip(st.text.replace('\n', "⏎"), Some(st.token), if st.unconstrained_agrees { Role::Token } else { Role::Position }, i == s)).collect(),
        ));
        if let Some(st) = d.steps.get(s) {
            let mut bs: Vec<Bar> = st
                .top_allowed
                .iter()
                .map(|(_, t, l)| {
                    bar(
                        format!("✓ {}", t.replace('\n', "⏎")),
                        *l as f64,
                        Role::Token,
                    )
                })
                .collect();
            bs.extend(st.top_forbidden.iter().map(|(_, t, l)| {
                bar(
                    format!("✗ {}", t.replace('\n', "⏎")),
                    *l as f64,
                    Role::Muted,
                )
            }));
            scene.push(bars(
                "logits",
                &format!("Step {s}: the model's top logits, allowed (✓) and masked out (✗)"),
                model.clone(),
                "logit",
                bs,
            ));
            scene.push(text(
                "verdict",
                "What the mask did",
                model,
                format!(
                    "{} of {} tokens allowed here. {}{}",
                    st.allowed,
                    self.tok.vocab_size(),
                    if st.unconstrained_agrees {
                        "The model's favourite was allowed."
                    } else {
                        "The model's favourite was forbidden; the best allowed token was taken."
                    },
                    if st.forced {
                        " (Near the token budget: only tokens closing the reply fastest.)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let agree = d.steps.iter().filter(|s| s.unconstrained_agrees).count();
        scene.push(table(
            "summary",
            "The whole reply",
            Provenance::engine("measured on this machine"),
            &[
                "tokens",
                "mask changed the choice",
                "mask ms/token",
                "model ms/token",
                "text",
            ],
            vec![vec![
                d.steps.len().to_string(),
                (d.steps.len() - agree).to_string(),
                sig(1e3 * d.mask_seconds / d.steps.len().max(1) as f64),
                sig(1e3 * d.model_seconds / d.steps.len().max(1) as f64),
                d.text.clone(),
            ]],
        ));
        Ok(scene)
    }

    fn parallel(&mut self, _: &Values) -> Result<Scene> {
        self.scripted(true)
    }

    fn errors(&mut self, _: &Values) -> Result<Scene> {
        self.scripted(false)
    }

    /// The "parallel" step (three calls in one tick) or the "errors" step (a bad
    /// argument corrected): scripted moves, real tools over MCP.
    fn scripted(&mut self, parallel: bool) -> Result<Scene> {
        let mut scene = Scene::new();
        let server = lav_mcp::Server::new("lav", tools(&self.dir, GET_ORDER)?);
        let mut client =
            lav_mcp::Client::in_process(server).map_err(|e| LabError::Input(e.to_string()))?;
        let u = Usage::default();
        let moves = if parallel {
            vec![
                Reply::Calls {
                    text: "Looking up both orders at once.".into(),
                    calls: vec![
                        call("p1", "get_order", json!({"order_id": 1003})),
                        call("p2", "get_order", json!({"order_id": 1007})),
                        call("p3", "calculate", json!({"expression": "45.00 + 60.00"})),
                    ],
                    usage: u,
                },
                Reply::Final {
                    text: "Both have shipped; together they cost $105.00.".into(),
                    usage: u,
                },
            ]
        } else {
            vec![
                Reply::Calls {
                    text: String::new(),
                    calls: vec![call(
                        "e1",
                        "get_order",
                        json!({"order_id": "one thousand and three"}),
                    )],
                    usage: u,
                },
                Reply::Calls {
                    text: "The tool wants an integer.".into(),
                    calls: vec![call("e2", "get_order", json!({"order_id": 1003}))],
                    usage: u,
                },
                Reply::Final {
                    text: "Order 1003, a laptop stand, has shipped.".into(),
                    usage: u,
                },
            ]
        };
        struct Timed(Vec<(String, String, bool, String, f64)>);
        impl lav_agent::Observer for Timed {
            fn tool(&mut self, tick: usize, c: &ToolCall, r: &ToolResult, s: f64) {
                self.0.push((
                    format!("{tick}"),
                    format!("{} [{}] {}", c.name, c.id, c.arguments),
                    r.is_error,
                    r.content.clone(),
                    s,
                ));
            }
        }
        let mut llm = ScriptedPolicy::new("scripted agent", moves);
        let mut obs = Timed(Vec::new());
        lav_agent::run(
            &mut llm,
            &mut client,
            State::new("", "orders 1003 and 1007?"),
            Limits::default(),
            &mut obs,
        )
        .map_err(|e| LabError::Input(e.to_string()))?;
        let rows = obs
            .0
            .iter()
            .map(|(t, c, e, r, s)| {
                // The long result last, where a narrow window cuts it.
                vec![
                    t.clone(),
                    c.clone(),
                    if *e { "is_error".into() } else { "ok".into() },
                    sig(s * 1e3),
                    r.chars().take(90).collect(),
                ]
            })
            .collect();
        scene.push(table(
            "calls",
            "Calls and their results, paired by id",
            Provenance::scripted(
                "the agent's moves are written in advance; the tools, results and times are real (MCP in process)",
            ),
            &["tick", "call", "", "ms", "result"],
            rows,
        ));
        if parallel {
            let times: Vec<f64> = obs.0.iter().map(|x| x.4 * 1e3).collect();
            let sum: f64 = times.iter().sum();
            let max = times.iter().cloned().fold(0.0, f64::max);
            scene.push(table(
                "batch",
                "One tick, three calls, one after another (lav's loop)",
                Provenance::engine("measured on this machine"),
                &["calls", "batch time: the sum of the call times"],
                vec![vec![times.len().to_string(), format!("{} ms", sig(sum))]],
            ));
            scene.push(text(
                "concurrent",
                "The same calls run concurrently",
                Provenance::what_if(
                    "a runtime that runs a tick's calls at once waits for the slowest; lav's loop does not",
                ),
                format!(
                    "A runtime that ran these {} calls at once would wait only for the slowest: {} ms instead of {} ms.",
                    times.len(),
                    sig(max),
                    sig(sum)
                ),
            ));
        }
        Ok(scene)
    }

    fn descriptions(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let request = v.text(&self.c.request).to_string();
        let description = v.text(&self.c.description).to_string();
        let specs = tools(&self.dir, &description)?.list();
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let prompt = LocalLlm::prompt(&State::new("", &request), &specs);
        let (model, tok) = (self.model.clone(), self.tok.clone());
        let key = (request.clone(), description.clone());
        if let JobState::Running(p) = self.choice.get(&key, move |p| {
            p.set(0, 1, "scoring each tool name");
            tool_choice(&model, &tok, &prompt, &names)
        })? {
            return Ok(scene.with(progress_item("progress", "Scoring the tools", p)));
        }
        let probs = self.choice.ready(&key).expect("ready");
        let best = probs
            .iter()
            .cloned()
            .fold((String::new(), 0.0), |a, b| if b.1 > a.1 { b } else { a });
        scene.push(bars(
            "choice",
            &format!(
                "P(tool) where the model writes the tool's name: {} leads",
                best.0
            ),
            self.model_name.prov(format!(
                "{}: each name's log-probability, normalised over the tools",
                self.model_name
            )),
            "probability",
            probs
                .iter()
                .map(|(n, p)| {
                    bar(
                        n.clone(),
                        *p,
                        if *n == best.0 {
                            Role::Highlight
                        } else {
                            Role::Token
                        },
                    )
                })
                .collect(),
        ));
        scene.push(text(
            "description",
            "get_order's description, as the model reads it",
            engine(),
            description,
        ));
        Ok(scene)
    }
}
