//! Workflow primitives: fixed code paths around model calls, the five patterns of
//! Anthropic's "Building effective agents" (prompt chaining with gates, routing,
//! parallelization by sectioning or voting, orchestrator–workers and
//! evaluator–optimizer).
//!
//! A [`Flow`] is a tree of these; any flow may stand where a stage does, so the
//! patterns compose. Every model call is a [`crate::run`] of the agent loop (with the
//! stage's tools, or a single structured choice), so a workflow is traced with the
//! same GenAI spans as the loop, inside one `workflow <pattern>` span per node.
//! Parallel branches run on threads of their own, each with its own model client
//! from the [`Backend`], so a node's recorded start and end times show what really
//! overlapped, and [`Node::rule_seconds`] (the serial sum plus the max of each
//! parallel group) can be checked against the measured wall time.

use crate::agent::{
    AgentError, Limits, Llm, Result, Role, Run, State, ToolCall, ToolResult, ToolSpec, Tools,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Where a workflow's stages get their model clients and tools. Shared by the threads
/// of a parallel group, so every stage gets fresh ones (no state leaks between
/// branches, and branches do not wait on one another's client).
pub trait Backend: Send + Sync {
    /// A model client. `variant` 0 is the default (greedy for the local model);
    /// voting's later branches ask for 1, 2, … so they can differ (sampled with that
    /// seed).
    fn llm(&self, variant: u64) -> Box<dyn Llm + Send>;
    /// Tools holding only those named (and none when `names` is empty).
    fn tools(&self, names: &[String]) -> Box<dyn Tools + Send>;
}

/// One agent run: a system prompt, a user turn built from the flow's input, and the
/// tools it may call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub name: String,
    pub system: String,
    /// The user turn: `{input}` becomes the node's input, `{task}` the workflow's.
    pub prompt: String,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub take: Take,
}

/// What a stage hands on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Take {
    /// The model's final answer (the run goes on until it gives one).
    #[default]
    Answer,
    /// The tools' results from the first tick, one per line: the model only picks the
    /// call, and a later step writes the answer. No result, no output.
    ToolResults,
}

impl Stage {
    pub fn new(name: &str, system: &str, prompt: &str) -> Stage {
        Stage {
            name: name.into(),
            system: system.into(),
            prompt: prompt.into(),
            tools: Vec::new(),
            limits: Limits {
                max_ticks: 4,
                ..Limits::default()
            },
            take: Take::Answer,
        }
    }

    /// Hands on the first tick's tool results instead of an answer.
    pub fn taking_tool_results(mut self) -> Stage {
        self.take = Take::ToolResults;
        self
    }

    pub fn with_tools(mut self, tools: &[&str]) -> Stage {
        self.tools = tools.iter().map(|s| s.to_string()).collect();
        self
    }

    fn user(&self, input: &str, task: &str) -> String {
        self.prompt
            .replace("{input}", input)
            .replace("{task}", task)
    }
}

/// A deterministic check between steps: `Err` says why the output may not go on.
#[derive(Clone)]
pub struct Gate {
    pub name: String,
    #[allow(clippy::type_complexity)]
    check: Arc<dyn Fn(&Output) -> std::result::Result<(), String> + Send + Sync>,
}

impl Gate {
    pub fn new(
        name: &str,
        check: impl Fn(&Output) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Gate {
        Gate {
            name: name.into(),
            check: Arc::new(check),
        }
    }

    /// Passes when some tool of the step answered without an error.
    pub fn tool_answered() -> Gate {
        Gate::new("a tool answered", |o| {
            if o.tool_results.is_empty() {
                Err("no tool answered without an error".into())
            } else {
                Ok(())
            }
        })
    }

    pub fn check(&self, out: &Output) -> std::result::Result<(), String> {
        (self.check)(out)
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gate({})", self.name)
    }
}

/// How a parallel group's outputs become one.
#[derive(Clone, Debug)]
pub enum Merge {
    /// Sectioning: each branch did its own part; the parts are joined (one per line,
    /// after its branch's name), or given to a synthesizing stage as `{input}`.
    Sections(Option<Stage>),
    /// Voting: the branches tried the same thing; the output whose key (see
    /// [`vote_key`]) most branches share wins, the earliest branch among ties.
    Vote,
}

/// A workflow: a tree of patterns over stages.
// A flow is built once per run and holds a handful of nodes: boxing its stages would
// only make flows harder to write.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Flow {
    Stage(Stage),
    /// Each step's output is the next step's input; a failed gate ends the chain
    /// there (the output so far, marked failed).
    Chain(Vec<(Flow, Option<Gate>)>),
    /// A classifying stage picks one route by name (a single constrained choice);
    /// an unrecognised choice takes the last route.
    Route {
        classifier: Stage,
        routes: Vec<(String, Flow)>,
    },
    Parallel {
        branches: Vec<Flow>,
        merge: Merge,
    },
    /// The orchestrator writes subtasks (up to `max_workers`), a worker runs each at
    /// once, and the synthesizer answers from their results.
    Orchestrate {
        orchestrator: Stage,
        worker: Stage,
        synthesizer: Stage,
        max_workers: usize,
    },
    /// The generator answers; the evaluator (a check or a model) passes it or says
    /// what to fix, and the generator tries again with that feedback, at most
    /// `max_rounds` times in all. When the rounds run out the last attempt goes out
    /// (the node's note says it never passed).
    Optimize {
        generator: Box<Flow>,
        evaluator: Evaluator,
        max_rounds: usize,
    },
}

#[derive(Clone, Debug)]
pub enum Evaluator {
    Check(Gate),
    /// A stage that must give a verdict: pass, or fail with feedback.
    Model(Stage),
}

impl Flow {
    /// The pattern's name, as the spans and the labs say it.
    pub fn pattern(&self) -> &'static str {
        match self {
            Flow::Stage(_) => "stage",
            Flow::Chain(_) => "chain",
            Flow::Route { .. } => "route",
            Flow::Parallel {
                merge: Merge::Vote, ..
            } => "parallel (voting)",
            Flow::Parallel { .. } => "parallel (sectioning)",
            Flow::Orchestrate { .. } => "orchestrator-workers",
            Flow::Optimize { .. } => "evaluator-optimizer",
        }
    }
}

/// What a node produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub text: String,
    /// False when a gate or the evaluator failed it, or a stage ended without an
    /// answer.
    pub ok: bool,
    /// The successful tool results seen on the way (for gates).
    pub tool_results: Vec<String>,
}

/// How a node ran its children.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// One agent run.
    Stage,
    /// Children one after another.
    Serial,
    /// Children at the same time.
    Parallel,
}

/// The trace of one node: when it ran (seconds from the workflow's start), what it
/// cost, and its children. A stage keeps its agent run (transcript and usage).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub label: String,
    pub shape: Shape,
    pub start: f64,
    pub end: f64,
    pub output: Output,
    /// A gate's or evaluator's verdict, a route's choice: what decided the path.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<Run>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Node>,
}

impl Node {
    pub fn seconds(&self) -> f64 {
        self.end - self.start
    }

    /// The latency rule: a stage's own time; the sum over serial children; the max
    /// over parallel ones.
    pub fn rule_seconds(&self) -> f64 {
        match self.shape {
            Shape::Stage => self.seconds(),
            Shape::Serial => self.children.iter().map(Node::rule_seconds).sum(),
            Shape::Parallel => self
                .children
                .iter()
                .map(Node::rule_seconds)
                .fold(0.0, f64::max),
        }
    }

    /// Every stage's time added up: what the workflow would take with nothing in
    /// parallel.
    pub fn serial_seconds(&self) -> f64 {
        match self.shape {
            Shape::Stage => self.seconds(),
            _ => self.children.iter().map(Node::serial_seconds).sum(),
        }
    }

    /// The stages, depth first (in the order they were started within each
    /// serial run).
    pub fn stages(&self) -> Vec<&Node> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(n) = stack.pop() {
            if n.shape == Shape::Stage {
                out.push(n);
            }
            stack.extend(n.children.iter().rev());
        }
        out
    }

    /// Model calls (ticks) over every stage.
    pub fn model_calls(&self) -> usize {
        self.stages()
            .iter()
            .filter_map(|s| s.run.as_ref())
            .map(|r| r.state.ticks)
            .sum()
    }

    /// Tool calls over every stage (structured choices not counted).
    pub fn tool_calls(&self) -> usize {
        self.stages()
            .iter()
            .filter_map(|s| s.run.as_ref())
            .flat_map(|r| r.state.transcript.iter())
            .flat_map(|m| m.tool_calls.iter())
            .filter(|c| !c.name.starts_with(CHOICE_PREFIX))
            .count()
    }

    /// Input plus output tokens over every stage.
    pub fn tokens(&self) -> (u64, u64) {
        self.stages()
            .iter()
            .filter_map(|s| s.run.as_ref())
            .fold((0, 0), |(i, o), r| {
                (
                    i + r.state.usage.input_tokens,
                    o + r.state.usage.output_tokens,
                )
            })
    }
}

/// A finished workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub pattern: String,
    pub task: String,
    pub output: Output,
    pub trace: Node,
}

impl Outcome {
    /// A run of the agent loop whose transcript is the task and the final answer,
    /// every stage's calls in between: what the task checkers read.
    pub fn as_run(&self) -> Run {
        let mut state = State::new("", &self.task);
        for (i, s) in self.trace.stages().into_iter().enumerate() {
            if let Some(r) = &s.run {
                // Stages number their calls independently: the ids are made unique
                // so each result still pairs with its own call.
                let tag = |id: &str| format!("s{i}-{id}");
                state.transcript.extend(
                    r.state
                        .transcript
                        .iter()
                        .filter(|m| m.role != Role::System && m.role != Role::User)
                        .map(|m| {
                            let mut m = m.clone();
                            for c in &mut m.tool_calls {
                                c.id = tag(&c.id);
                            }
                            m.tool_call_id = m.tool_call_id.as_deref().map(tag);
                            m
                        }),
                );
                state.ticks += r.state.ticks;
                state.usage.input_tokens += r.state.usage.input_tokens;
                state.usage.output_tokens += r.state.usage.output_tokens;
            }
        }
        Run {
            state,
            stop: crate::Stop::EndOfTurn,
            answer: self.output.ok.then(|| self.output.text.clone()),
        }
    }
}

/// Structured choices (a route, subtasks, a verdict) are tool calls whose names
/// start with this, answered by the workflow itself.
pub const CHOICE_PREFIX: &str = "choose_";

/// The key a vote compares: the numbers in the text when it has any (so "391" and
/// "The answer is 391." agree), else its words in lower case.
pub fn vote_key(text: &str) -> String {
    let n = crate::tasks::numbers(text);
    if n.is_empty() {
        text.split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric())
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        n.iter()
            .map(|v| format!("{v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Runs `flow` on `task`.
pub fn run(backend: &dyn Backend, flow: &Flow, task: &str) -> Result<Outcome> {
    run_with_input(backend, flow, task, task)
}

/// As [`run`], with the first node's `{input}` given apart from the `{task}`: what
/// code put in front of the model (retrieved records, a tool's result).
pub fn run_with_input(
    backend: &dyn Backend,
    flow: &Flow,
    task: &str,
    input: &str,
) -> Result<Outcome> {
    let ctx = Ctx {
        backend,
        task,
        clock: Instant::now(),
    };
    let trace = ctx.node(flow, input, 0)?;
    Ok(Outcome {
        pattern: flow.pattern().into(),
        task: task.into(),
        output: trace.output.clone(),
        trace,
    })
}

struct Ctx<'a> {
    backend: &'a dyn Backend,
    task: &'a str,
    clock: Instant,
}

/// Answers structured-choice calls by accepting them: the choice is read from the
/// call itself.
struct Choice(ToolSpec);

/// One model call from `state` that must choose: a call of `spec` (under a tool
/// grammar the model can do nothing else). The run, and the call's arguments if it
/// made one. Routes, subtasks, verdicts and the planner's plans are all asked so.
pub(crate) fn choose_once(
    llm: &mut dyn Llm,
    state: State,
    spec: ToolSpec,
    limits: Limits,
) -> Result<(Run, Option<serde_json::Value>)> {
    let name = spec.name.clone();
    // One tick: the choice is the call; nothing needs to follow it.
    let limits = Limits {
        max_ticks: 1,
        ..limits
    };
    let run = crate::run(llm, &mut Choice(spec), state, limits, &mut ())?;
    let args = run
        .state
        .transcript
        .iter()
        .flat_map(|m| m.tool_calls.iter())
        .find(|c| c.name == name)
        .map(|c| c.arguments.clone());
    Ok((run, args))
}

impl Tools for Choice {
    fn list(&self) -> Vec<ToolSpec> {
        vec![self.0.clone()]
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        if call.name == self.0.name {
            ToolResult::from_result(Ok("noted".into()))
        } else {
            ToolResult::error(format!("unknown tool {}", call.name))
        }
    }
}

impl Ctx<'_> {
    fn now(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    fn node(&self, flow: &Flow, input: &str, variant: u64) -> Result<Node> {
        let span = tracing::info_span!(
            "workflow",
            otel.name = format!("workflow {}", flow.pattern()),
            lav.workflow.pattern = flow.pattern(),
            lav.workflow.ok = tracing::field::Empty,
        );
        let _in = span.enter();
        let node = match flow {
            Flow::Stage(s) => self.stage(s, input, variant),
            Flow::Chain(links) => self.chain(links, input, variant),
            Flow::Route { classifier, routes } => self.route(classifier, routes, input, variant),
            Flow::Parallel { branches, merge } => self.parallel(branches, merge, input),
            Flow::Orchestrate {
                orchestrator,
                worker,
                synthesizer,
                max_workers,
            } => self.orchestrate(orchestrator, worker, synthesizer, *max_workers, input),
            Flow::Optimize {
                generator,
                evaluator,
                max_rounds,
            } => self.optimize(generator, evaluator, *max_rounds, input, variant),
        }?;
        span.record("lav.workflow.ok", node.output.ok);
        Ok(node)
    }

    /// One agent run of `stage` on `input`.
    fn stage(&self, stage: &Stage, input: &str, variant: u64) -> Result<Node> {
        let start = self.now();
        let mut llm = self.backend.llm(variant);
        let mut tools = self.backend.tools(&stage.tools);
        let state = State::new(&stage.system, &stage.user(input, self.task));
        let limits = match stage.take {
            Take::Answer => stage.limits,
            Take::ToolResults => Limits {
                max_ticks: 1,
                ..stage.limits
            },
        };
        let run = crate::run(llm.as_mut(), tools.as_mut(), state, limits, &mut ())?;
        let results = successes(&run);
        let output = match stage.take {
            Take::Answer => Output {
                text: run.answer.clone().unwrap_or_default(),
                ok: run.answer.is_some(),
                tool_results: results,
            },
            Take::ToolResults => Output {
                text: results.join("\n"),
                ok: !results.is_empty(),
                tool_results: results,
            },
        };
        let note = match (output.ok, stage.take) {
            (true, _) => String::new(),
            (false, Take::Answer) => format!("no answer: stopped by {}", run.stop.describe()),
            (false, Take::ToolResults) => "no tool answered without an error".into(),
        };
        Ok(Node {
            label: stage.name.clone(),
            shape: Shape::Stage,
            start,
            end: self.now(),
            output,
            note,
            run: Some(run),
            children: Vec::new(),
        })
    }

    /// One model call that must choose: a call of `spec` (under a tool grammar the
    /// model can do nothing else). Returns the stage node and the call's arguments.
    fn choose(
        &self,
        stage: &Stage,
        spec: ToolSpec,
        input: &str,
        variant: u64,
    ) -> Result<(Node, Option<serde_json::Value>)> {
        let start = self.now();
        let mut llm = self.backend.llm(variant);
        let state = State::new(&stage.system, &stage.user(input, self.task));
        let (run, args) = choose_once(llm.as_mut(), state, spec, stage.limits)?;
        let text = match (&args, &run.answer) {
            (Some(a), _) => a.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => String::new(),
        };
        Ok((
            Node {
                label: stage.name.clone(),
                shape: Shape::Stage,
                start,
                end: self.now(),
                output: Output {
                    ok: args.is_some(),
                    text,
                    tool_results: Vec::new(),
                },
                note: String::new(),
                run: Some(run),
                children: Vec::new(),
            },
            args,
        ))
    }

    fn serial(&self, label: &str, start: f64, children: Vec<Node>, output: Output) -> Node {
        Node {
            label: label.into(),
            shape: Shape::Serial,
            start,
            end: self.now(),
            output,
            note: String::new(),
            run: None,
            children,
        }
    }

    fn chain(&self, links: &[(Flow, Option<Gate>)], input: &str, variant: u64) -> Result<Node> {
        let start = self.now();
        let mut children = Vec::new();
        let mut out = Output {
            text: input.into(),
            ok: true,
            tool_results: Vec::new(),
        };
        let mut note = String::new();
        for (i, (flow, gate)) in links.iter().enumerate() {
            let mut n = self.node(flow, &out.text, variant)?;
            let mut seen = std::mem::take(&mut out.tool_results);
            out = n.output.clone();
            seen.append(&mut out.tool_results);
            out.tool_results = seen;
            let verdict = match (gate, out.ok) {
                (_, false) => Err(format!("step {} gave no answer", i + 1)),
                (Some(g), true) => g
                    .check(&n.output)
                    .map_err(|why| format!("gate \u{201c}{}\u{201d} failed: {why}", g.name)),
                (None, true) => Ok(()),
            };
            if let Some(g) = gate {
                n.note = match &verdict {
                    Ok(()) => format!("gate \u{201c}{}\u{201d} passed", g.name),
                    Err(e) => e.clone(),
                };
            }
            children.push(n);
            if let Err(e) = verdict {
                out.ok = false;
                note = e;
                break;
            }
        }
        let mut node = self.serial("chain", start, children, out);
        node.note = note;
        Ok(node)
    }

    fn route(
        &self,
        classifier: &Stage,
        routes: &[(String, Flow)],
        input: &str,
        variant: u64,
    ) -> Result<Node> {
        let start = self.now();
        let names: Vec<&str> = routes.iter().map(|(n, _)| n.as_str()).collect();
        let spec = ToolSpec {
            name: format!("{CHOICE_PREFIX}route"),
            description: "Choose who handles the request.".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": { "route": { "type": "string", "enum": names } },
                "required": ["route"],
                "additionalProperties": false
            }),
        };
        let (mut c, args) = self.choose(classifier, spec, input, variant)?;
        let said = args
            .as_ref()
            .and_then(|a| a["route"].as_str().map(str::to_string))
            .unwrap_or_else(|| c.output.text.clone());
        let picked = routes.iter().position(|(n, _)| n == &said).or_else(|| {
            let s = said.to_lowercase();
            routes
                .iter()
                .position(|(n, _)| s.contains(&n.to_lowercase()))
        });
        let i = picked.unwrap_or(routes.len().saturating_sub(1));
        c.note = match picked {
            Some(_) => format!("chose {}", routes[i].0),
            None => format!("no route recognised in {said:?}: took {}", routes[i].0),
        };
        let mut children = vec![c];
        let out = match routes.get(i) {
            Some((_, flow)) => {
                let n = self.node(flow, input, variant)?;
                let o = n.output.clone();
                children.push(n);
                o
            }
            None => Output::default(),
        };
        Ok(self.serial("route", start, children, out))
    }

    /// Runs `jobs` at once, each on a thread of its own with the current span as
    /// parent; the nodes come back in the jobs' order.
    fn concurrently(&self, jobs: Vec<(&Flow, String, u64)>) -> Result<Vec<Node>> {
        let parent = tracing::Span::current();
        // A subscriber set for this thread only (as in tests) must follow the branches.
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let results: Vec<Result<Node>> = std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .iter()
                .map(|(flow, input, variant)| {
                    let parent = parent.clone();
                    let dispatch = dispatch.clone();
                    s.spawn(move || {
                        tracing::dispatcher::with_default(&dispatch, || {
                            parent.in_scope(|| self.node(flow, input, *variant))
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(AgentError::Llm("a parallel branch panicked".into()))
                    })
                })
                .collect()
        });
        results.into_iter().collect()
    }

    fn parallel(&self, branches: &[Flow], merge: &Merge, input: &str) -> Result<Node> {
        let start = self.now();
        let vote = matches!(merge, Merge::Vote);
        // Voting's branches ask for different variants (the first the default), so
        // sampled models can differ.
        let jobs = branches
            .iter()
            .enumerate()
            .map(|(i, f)| (f, input.to_string(), if vote { i as u64 } else { 0 }))
            .collect();
        let nodes = self.concurrently(jobs)?;
        let group = Node {
            label: format!("{} branches", nodes.len()),
            shape: Shape::Parallel,
            start,
            end: self.now(),
            output: Output::default(),
            note: String::new(),
            run: None,
            children: nodes,
        };
        let tool_results: Vec<String> = group
            .children
            .iter()
            .flat_map(|n| n.output.tool_results.iter().cloned())
            .collect();
        let mut children = vec![group];
        let mut note = String::new();
        let out = match merge {
            Merge::Vote => {
                let answered: Vec<&Node> = children[0]
                    .children
                    .iter()
                    .filter(|n| n.output.ok)
                    .collect();
                let keys: Vec<String> = answered.iter().map(|n| vote_key(&n.output.text)).collect();
                let best = (0..keys.len()).max_by_key(|&i| {
                    // Most votes; among ties the earliest branch.
                    (
                        keys.iter().filter(|k| **k == keys[i]).count(),
                        usize::MAX - i,
                    )
                });
                match best {
                    Some(i) => {
                        let votes = keys.iter().filter(|k| **k == keys[i]).count();
                        note = format!("{votes} of {} branches agree", branches.len());
                        Output {
                            text: answered[i].output.text.clone(),
                            ok: true,
                            tool_results,
                        }
                    }
                    None => {
                        note = "no branch answered".into();
                        Output {
                            tool_results,
                            ..Output::default()
                        }
                    }
                }
            }
            Merge::Sections(synth) => {
                let parts: Vec<String> = children[0]
                    .children
                    .iter()
                    .map(|n| format!("{}: {}", n.label, n.output.text))
                    .collect();
                let joined = parts.join("\n");
                let all_ok = children[0].children.iter().all(|n| n.output.ok);
                match synth {
                    None => Output {
                        text: joined,
                        ok: all_ok,
                        tool_results,
                    },
                    Some(stage) => {
                        let n = self.stage(stage, &joined, 0)?;
                        let mut o = n.output.clone();
                        o.tool_results.extend(tool_results);
                        children.push(n);
                        o
                    }
                }
            }
        };
        let mut node = self.serial(if vote { "vote" } else { "sections" }, start, children, out);
        node.note = note;
        Ok(node)
    }

    fn orchestrate(
        &self,
        orchestrator: &Stage,
        worker: &Stage,
        synthesizer: &Stage,
        max_workers: usize,
        input: &str,
    ) -> Result<Node> {
        let start = self.now();
        let spec = ToolSpec {
            name: format!("{CHOICE_PREFIX}subtasks"),
            description:
                "Split the request into subtasks, each a short instruction for one worker.".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {
                    "subtasks": {
                        "type": "array",
                        "items": { "type": "string", "minLength": 1, "maxLength": 120 }
                    }
                },
                "required": ["subtasks"],
                "additionalProperties": false
            }),
        };
        let (mut plan, args) = self.choose(orchestrator, spec, input, 0)?;
        let mut subtasks: Vec<String> = args
            .as_ref()
            .and_then(|a| a["subtasks"].as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let cap = max_workers.max(1);
        let dropped = subtasks.len().saturating_sub(cap);
        subtasks.truncate(cap);
        if subtasks.is_empty() {
            // The orchestrator gave no usable plan: one worker takes the whole request.
            subtasks.push(input.to_string());
            plan.note = "no subtasks: one worker takes the request".into();
        } else {
            plan.note = format!(
                "{} subtask{}{}",
                subtasks.len(),
                if subtasks.len() == 1 { "" } else { "s" },
                if dropped > 0 {
                    format!(" ({dropped} over the cap of {cap} dropped)")
                } else {
                    String::new()
                }
            );
        }
        let flow = Flow::Stage(worker.clone());
        let jobs = subtasks.iter().map(|s| (&flow, s.clone(), 0)).collect();
        let workers = self.concurrently(jobs)?;
        let report: Vec<String> = subtasks
            .iter()
            .zip(&workers)
            .map(|(s, w)| format!("- {s}: {}", w.output.text))
            .collect();
        let group = Node {
            label: format!("{} workers", workers.len()),
            shape: Shape::Parallel,
            start: workers.iter().map(|w| w.start).fold(f64::MAX, f64::min),
            end: self.now(),
            output: Output::default(),
            note: String::new(),
            run: None,
            children: workers,
        };
        let synth = self.stage(synthesizer, &report.join("\n"), 0)?;
        let mut out = synth.output.clone();
        out.tool_results = group
            .children
            .iter()
            .flat_map(|n| n.output.tool_results.iter().cloned())
            .collect();
        Ok(self.serial("orchestrator-workers", start, vec![plan, group, synth], out))
    }

    fn optimize(
        &self,
        generator: &Flow,
        evaluator: &Evaluator,
        max_rounds: usize,
        input: &str,
        variant: u64,
    ) -> Result<Node> {
        let start = self.now();
        let mut children = Vec::new();
        let mut attempt = input.to_string();
        let mut out = Output::default();
        let mut seen = Vec::new();
        let rounds = max_rounds.max(1);
        for round in 1..=rounds {
            let mut g = self.node(generator, &attempt, variant)?;
            g.label = format!("{} (round {round})", g.label);
            out = g.output.clone();
            seen.extend(out.tool_results.iter().cloned());
            children.push(g);
            let verdict: std::result::Result<(), String> = if !out.ok {
                Err("it gave no answer".into())
            } else {
                match evaluator {
                    Evaluator::Check(gate) => gate.check(&out),
                    Evaluator::Model(stage) => {
                        let (e, v) = self.judge(stage, &out.text, variant)?;
                        children.push(e);
                        v
                    }
                }
            };
            let last = children.last_mut().expect("a child was pushed");
            match verdict {
                Ok(()) => {
                    last.note = format!("passed in round {round}");
                    out.ok = true;
                    break;
                }
                Err(why) if round == rounds => {
                    // Out of rounds: the last attempt goes out, marked as such, if
                    // there is one.
                    last.note = format!("round {round} failed: {why}; no rounds left");
                    out.ok = out.ok && !out.text.trim().is_empty();
                }
                Err(why) => {
                    last.note = format!("round {round} failed: {why}");
                    attempt = format!(
                        "{input}\n\nYour previous answer was: {}\nA reviewer said: {why}\nAnswer again.",
                        out.text
                    );
                }
            }
        }
        out.tool_results = seen;
        Ok(self.serial("evaluator-optimizer", start, children, out))
    }

    /// The evaluating model's verdict on `answer`.
    fn judge(
        &self,
        stage: &Stage,
        answer: &str,
        variant: u64,
    ) -> Result<(Node, std::result::Result<(), String>)> {
        let spec = ToolSpec {
            name: format!("{CHOICE_PREFIX}verdict"),
            description: "Say whether the answer is right; if not, what to fix.".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {
                    "verdict": { "type": "string", "enum": ["pass", "fail"] },
                    "feedback": { "type": "string", "maxLength": 160 }
                },
                "required": ["verdict", "feedback"],
                "additionalProperties": false
            }),
        };
        let (n, args) = self.choose(stage, spec, answer, variant)?;
        let v = match args {
            Some(a) if a["verdict"] == "pass" => Ok(()),
            Some(a) => Err(a["feedback"]
                .as_str()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or("the answer is wrong")
                .to_string()),
            // An evaluator that cannot give a verdict fails the round: no answer
            // goes out unchecked.
            None => Err("the evaluator gave no verdict".into()),
        };
        Ok((n, v))
    }
}

/// The successful tool results of a run.
fn successes(run: &Run) -> Vec<String> {
    run.state
        .transcript
        .iter()
        .filter(|m| m.role == Role::Tool && !m.is_error)
        .map(|m| m.content.clone())
        .collect()
}
