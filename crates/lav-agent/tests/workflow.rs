//! The workflow patterns on a fake model whose replies depend only on the prompt and
//! which sleeps a set time per call: real threads, real clocks, so the latency rule is
//! checked on the timings of a concurrent run.

use lav_agent::workflow::{self, Backend, Evaluator, Flow, Gate, Merge, Shape, Stage};
use lav_agent::{Llm, Reply, State, ToolCall, ToolResult, ToolSpec, Tools, Usage};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the fake model does for a prompt: its reply, and how long it takes.
type Policy = dyn Fn(&Ask) -> (Reply, u64) + Send + Sync;

/// What the fake model sees on a call.
struct Ask {
    user: String,
    tools: Vec<String>,
    variant: u64,
    /// Whether a tool has answered in this run yet.
    called: bool,
}

struct FakeLlm {
    policy: Arc<Policy>,
    variant: u64,
}

impl Llm for FakeLlm {
    fn name(&self) -> String {
        "fake".into()
    }
    fn next(&mut self, state: &State, tools: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
        let ask = Ask {
            user: state.transcript[1].content.clone(),
            tools: tools.iter().map(|t| t.name.clone()).collect(),
            variant: self.variant,
            called: state
                .transcript
                .iter()
                .any(|m| m.role == lav_agent::Role::Tool),
        };
        let (reply, ms) = (self.policy)(&ask);
        std::thread::sleep(Duration::from_millis(ms));
        Ok(reply)
    }
}

/// One tool, `lookup`, answering "value of X is N" with N the length of X.
struct Lookup;

impl Tools for Lookup {
    fn list(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "lookup".into(),
            description: "Looks a key up.".into(),
            input_schema: json!({"type": "object", "properties": {"key": {"type": "string"}}}),
        }]
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        match call.arguments["key"].as_str() {
            Some(k) => ToolResult::from_result(Ok(format!("value of {k} is {}", k.len()))),
            None => ToolResult::error("key is required"),
        }
    }
}

struct NoTools;

impl Tools for NoTools {
    fn list(&self) -> Vec<ToolSpec> {
        Vec::new()
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        ToolResult::error(format!("no tool {}", call.name))
    }
}

struct Fake {
    policy: Arc<Policy>,
    /// Every model call's user turn, in the order the calls began.
    log: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    fn new(policy: impl Fn(&Ask) -> (Reply, u64) + Send + Sync + 'static) -> Fake {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let policy: Arc<Policy> = Arc::new(move |a: &Ask| {
            l.lock().unwrap().push(a.user.clone());
            policy(a)
        });
        Fake { policy, log }
    }
    fn calls(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Backend for Fake {
    fn llm(&self, variant: u64) -> Box<dyn Llm + Send> {
        Box::new(FakeLlm {
            policy: self.policy.clone(),
            variant,
        })
    }
    fn tools(&self, names: &[String]) -> Box<dyn Tools + Send> {
        if names.iter().any(|n| n == "lookup") {
            Box::new(Lookup)
        } else {
            Box::new(NoTools)
        }
    }
}

fn say(text: &str) -> Reply {
    Reply::Final {
        text: text.into(),
        usage: Usage {
            input_tokens: 10,
            output_tokens: 2,
            cached_tokens: None,
        },
    }
}

fn call(name: &str, args: serde_json::Value) -> Reply {
    Reply::Calls {
        text: String::new(),
        calls: vec![ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments: args,
        }],
        usage: Usage {
            input_tokens: 10,
            output_tokens: 5,
            cached_tokens: None,
        },
    }
}

fn stage(name: &str) -> Flow {
    Flow::Stage(Stage::new(
        name,
        "You are a step.",
        &format!("{name}: {{input}}"),
    ))
}

/// Sleeps are named in the prompt: "wait80: …" takes 80 ms.
fn sleepy() -> Fake {
    Fake::new(|a| {
        let ms = a
            .user
            .strip_prefix("wait")
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(5);
        (say(&format!("done {}", a.user.len())), ms)
    })
}

#[test]
fn latency_is_the_serial_sum_plus_the_max_of_each_parallel_group() {
    let fake = sleepy();
    let flow = Flow::Chain(vec![
        (stage("wait60"), None),
        (
            Flow::Parallel {
                branches: vec![stage("wait240"), stage("wait160"), stage("wait80")],
                merge: Merge::Sections(None),
            },
            None,
        ),
        (stage("wait100"), None),
    ]);
    let out = workflow::run(&fake, &flow, "go").unwrap();
    let t = &out.trace;
    let wall = t.seconds();
    let rule = t.rule_seconds();
    let serial = t.serial_seconds();
    // The rule from the recorded timings matches the measured wall time to within
    // the bookkeeping between calls...
    assert!((wall - rule).abs() < 0.03, "wall {wall} vs rule {rule}");
    // ...and the branches really overlapped: all three started together, and the
    // whole took far less than its calls end to end.
    let group = &t.children[1].children[0];
    assert_eq!(group.shape, Shape::Parallel);
    let starts: Vec<f64> = group.children.iter().map(|n| n.start).collect();
    let spread = starts.iter().cloned().fold(f64::MIN, f64::max)
        - starts.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 0.03, "branch starts {starts:?}");
    assert!(serial - wall > 0.2, "serial {serial} wall {wall}");
    // The rule, by hand, from the stages' own recorded times.
    let s: Vec<f64> = t.stages().iter().map(|n| n.seconds()).collect();
    assert_eq!(s.len(), 5);
    let by_hand = s[0] + s[1].max(s[2]).max(s[3]) + s[4];
    assert!((rule - by_hand).abs() < 1e-9);
    assert!(s[1] >= 0.24 && s[4] >= 0.1, "{s:?}");
    // Calls and tokens add up over the stages.
    assert_eq!(t.model_calls(), 5);
    assert_eq!(t.tokens(), (50, 10));
}

#[test]
fn a_failed_gate_ends_the_chain_and_a_passed_one_lets_it_go_on() {
    // The first step looks a key up only when the task mentions one.
    let fake = Fake::new(|a| {
        if a.tools.iter().any(|t| t == "lookup") && !a.called && a.user.contains("key=") {
            let k = a.user.split("key=").nth(1).unwrap().trim();
            (call("lookup", json!({ "key": k })), 1)
        } else if a.called {
            (say("looked it up"), 1)
        } else {
            (say(&format!("answer from: {}", a.user)), 1)
        }
    });
    let first = Stage::new("find", "Find it.", "{input}").with_tools(&["lookup"]);
    let flow = Flow::Chain(vec![
        (Flow::Stage(first), Some(Gate::tool_answered())),
        (
            Flow::Stage(Stage::new("answer", "Answer.", "Q: {task} R: {input}")),
            None,
        ),
    ]);
    let ok = workflow::run(&fake, &flow, "key=apple").unwrap();
    assert!(ok.output.ok);
    assert_eq!(ok.trace.children.len(), 2);
    assert!(ok.trace.children[0].note.contains("passed"));
    assert_eq!(ok.output.tool_results, vec!["value of apple is 5"]);
    assert_eq!(ok.output.text, "answer from: Q: key=apple R: looked it up");
    assert_eq!(ok.trace.tool_calls(), 1);

    let before = fake.calls().len();
    let stopped = workflow::run(&fake, &flow, "no key here").unwrap();
    assert!(!stopped.output.ok);
    assert_eq!(stopped.trace.children.len(), 1, "the second step never ran");
    assert_eq!(fake.calls().len(), before + 1);
    assert!(
        stopped.trace.note.contains("gate") && stopped.trace.note.contains("no tool answered"),
        "{}",
        stopped.trace.note
    );
    // A failed workflow has no answer for a checker to read.
    assert_eq!(stopped.as_run().answer, None);
}

#[test]
fn the_router_takes_the_chosen_route_and_the_last_one_when_it_cannot_tell() {
    let fake = Fake::new(|a| {
        if a.tools.iter().any(|t| t == "choose_route") {
            let pick = if a.user.contains("order") {
                "orders"
            } else if a.user.contains("sum") {
                "math"
            } else {
                "nonsense"
            };
            (call("choose_route", json!({ "route": pick })), 1)
        } else {
            (say(&format!("handled by {}", a.user)), 1)
        }
    });
    let flow = Flow::Route {
        classifier: Stage::new("classify", "Route it.", "{input}"),
        routes: vec![
            ("orders".into(), stage("orders-desk")),
            ("math".into(), stage("math-desk")),
            ("other".into(), stage("front-desk")),
        ],
    };
    let o = workflow::run(&fake, &flow, "where is my order").unwrap();
    assert_eq!(o.output.text, "handled by orders-desk: where is my order");
    assert_eq!(o.trace.children[0].note, "chose orders");
    let m = workflow::run(&fake, &flow, "a sum please").unwrap();
    assert!(m.output.text.starts_with("handled by math-desk"));
    let x = workflow::run(&fake, &flow, "hello").unwrap();
    assert!(x.output.text.starts_with("handled by front-desk"));
    assert!(x.trace.children[0].note.contains("took other"));
    // The choice is not a tool call of the task.
    assert_eq!(x.trace.tool_calls(), 0);
    assert_eq!(x.trace.model_calls(), 2);
}

#[test]
fn voting_keeps_the_answer_most_branches_agree_on() {
    // Branch variants 0 and 1 say 391; variant 2 says 341.
    let fake = Fake::new(|a| {
        let n = if a.variant == 2 { 341 } else { 391 };
        (say(&format!("It is {n}.")), 20)
    });
    let flow = Flow::Parallel {
        branches: vec![stage("try"), stage("try"), stage("try")],
        merge: Merge::Vote,
    };
    let out = workflow::run(&fake, &flow, "17*23").unwrap();
    assert_eq!(out.output.text, "It is 391.");
    assert_eq!(out.trace.note, "2 of 3 branches agree");
    assert_eq!(workflow::vote_key("It is 391."), workflow::vote_key("391"));
    assert_ne!(workflow::vote_key("It is 391."), workflow::vote_key("341"));
    assert_eq!(workflow::vote_key("Yes, Shipped!"), "yes shipped");
    // Three calls of 20 ms ran at once.
    assert!(out.trace.seconds() < 0.05, "{}", out.trace.seconds());
}

#[test]
fn the_orchestrator_s_subtasks_run_as_concurrent_workers_up_to_the_cap() {
    let fake = Fake::new(|a| {
        if a.tools.iter().any(|t| t == "choose_subtasks") {
            (
                call(
                    "choose_subtasks",
                    json!({ "subtasks": ["wait50: part a", "wait50: part b", "wait50: part c"] }),
                ),
                1,
            )
        } else if a.user.starts_with("wait50") {
            (say(&format!("did {}", &a.user[8..])), 50)
        } else {
            (say(&format!("summary of\n{}", a.user)), 1)
        }
    });
    let flow = Flow::Orchestrate {
        orchestrator: Stage::new("plan", "Plan.", "{input}"),
        worker: Stage::new("worker", "Do it.", "{input}"),
        synthesizer: Stage::new("synthesize", "Sum up.", "{input}"),
        max_workers: 2,
    };
    let out = workflow::run(&fake, &flow, "do three things").unwrap();
    assert_eq!(
        out.output.text,
        "summary of\n- wait50: part a: did part a\n- wait50: part b: did part b"
    );
    assert_eq!(
        out.trace.children[0].note,
        "2 subtasks (1 over the cap of 2 dropped)"
    );
    let workers = &out.trace.children[1];
    assert_eq!(workers.shape, Shape::Parallel);
    assert_eq!(workers.children.len(), 2);
    // Two 50 ms workers at once: about 50 ms, not 100.
    assert!(workers.seconds() < 0.09, "{}", workers.seconds());
    assert!((out.trace.seconds() - out.trace.rule_seconds()).abs() < 0.03);
}

#[test]
fn the_optimizer_retries_with_feedback_until_it_passes_or_runs_out_of_rounds() {
    // The generator gets it right once it has been told what was wrong.
    let fake = Fake::new(|a| {
        if a.tools.iter().any(|t| t == "choose_verdict") {
            let v = if a.user.contains("391") {
                json!({"verdict": "pass", "feedback": ""})
            } else {
                json!({"verdict": "fail", "feedback": "17*23 is not 341"})
            };
            (call("choose_verdict", v), 1)
        } else if a.user.contains("reviewer said") {
            (say("391"), 1)
        } else {
            (say("341"), 1)
        }
    });
    let flow = Flow::Optimize {
        generator: Box::new(Flow::Stage(Stage::new("solve", "Solve.", "{input}"))),
        evaluator: Evaluator::Model(Stage::new("review", "Review.", "{input}")),
        max_rounds: 3,
    };
    let out = workflow::run(&fake, &flow, "17*23?").unwrap();
    assert!(out.output.ok);
    assert_eq!(out.output.text, "391");
    let notes: Vec<&str> = out.trace.children.iter().map(|n| n.note.as_str()).collect();
    assert_eq!(
        notes,
        [
            "",
            "round 1 failed: 17*23 is not 341",
            "",
            "passed in round 2"
        ]
    );
    // A check that never passes stops at the cap: the last attempt goes out, and
    // the trace says it never passed.
    let never = Flow::Optimize {
        generator: Box::new(stage("solve")),
        evaluator: Evaluator::Check(Gate::new("never", |_| Err("no".into()))),
        max_rounds: 3,
    };
    let out = workflow::run(&fake, &never, "x").unwrap();
    assert_eq!(out.trace.children.len(), 3);
    assert_eq!(
        out.trace.children[2].note,
        "round 3 failed: no; no rounds left"
    );
    assert!(out.output.ok);
    assert_eq!(out.output.text, "391");
}

#[test]
fn patterns_compose_and_every_call_is_traced_inside_its_workflow_span() {
    use tracing_subscriber::layer::SubscriberExt;
    // A route whose chosen branch is a vote: spans are named as they would be
    // exported, each with its parent's name.
    /// Each span's name and its parent's.
    type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;
    #[derive(Clone, Default)]
    struct Names(Seen);
    impl<S> tracing_subscriber::Layer<S> for Names
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            id: &tracing::span::Id,
            ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct V(Option<String>);
            impl tracing::field::Visit for V {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "otel.name" {
                        self.0 = Some(format!("{v:?}").trim_matches('"').to_string());
                    }
                }
                fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                    if f.name() == "otel.name" {
                        self.0 = Some(v.to_string());
                    }
                }
            }
            let mut v = V(None);
            attrs.record(&mut v);
            let name = v.0.unwrap_or_else(|| attrs.metadata().name().to_string());
            let span = ctx.span(id).unwrap();
            span.extensions_mut().insert(name.clone());
            let parent = span
                .parent()
                .and_then(|p| p.extensions().get::<String>().cloned());
            self.0.lock().unwrap().push((name, parent));
        }
    }
    let names = Names::default();
    let subscriber = tracing_subscriber::registry().with(names.clone());
    let fake = Fake::new(|a| {
        if a.tools.iter().any(|t| t == "choose_route") {
            (call("choose_route", json!({"route": "math"})), 1)
        } else {
            (say("391"), 5)
        }
    });
    let flow = Flow::Route {
        classifier: Stage::new("classify", "Route.", "{input}"),
        routes: vec![(
            "math".into(),
            Flow::Parallel {
                branches: vec![stage("a"), stage("b")],
                merge: Merge::Vote,
            },
        )],
    };
    let out = tracing::subscriber::with_default(subscriber, || {
        workflow::run(&fake, &flow, "17*23").unwrap()
    });
    assert_eq!(out.output.text, "391");
    let spans = names.0.lock().unwrap().clone();
    let count = |n: &str, p: &str| {
        spans
            .iter()
            .filter(|(a, b)| a == n && b.as_deref() == Some(p))
            .count()
    };
    assert_eq!(spans[0], ("workflow route".to_string(), None), "{spans:?}");
    // The classifier's run and the vote sit under the route; each branch's run
    // (on its own thread) under the vote's branch node, and a chat inside each run.
    assert_eq!(count("invoke_agent", "workflow route"), 1, "{spans:?}");
    assert_eq!(count("workflow parallel (voting)", "workflow route"), 1);
    assert_eq!(count("workflow stage", "workflow parallel (voting)"), 2);
    assert_eq!(count("invoke_agent", "workflow stage"), 2, "{spans:?}");
    assert_eq!(count("chat fake", "invoke_agent"), 3, "{spans:?}");
    assert_eq!(count("execute_tool choose_route", "invoke_agent"), 1);
}

#[test]
fn a_stage_taking_tool_results_hands_on_what_the_tool_said_after_one_call() {
    let fake = Fake::new(|a| {
        if a.called {
            (say("must not be asked"), 1)
        } else if a.user.contains("key=") {
            (call("lookup", json!({"key": "apple"})), 1)
        } else {
            (say("I will not call anything"), 1)
        }
    });
    let flow = Flow::Stage(
        Stage::new("pick", "Pick a tool.", "{input}")
            .with_tools(&["lookup"])
            .taking_tool_results(),
    );
    let out = workflow::run(&fake, &flow, "key=apple").unwrap();
    assert!(out.output.ok);
    assert_eq!(out.output.text, "value of apple is 5");
    assert_eq!(out.trace.model_calls(), 1);
    let none = workflow::run(&fake, &flow, "nothing").unwrap();
    assert!(!none.output.ok);
    assert_eq!(none.trace.note, "no tool answered without an error");
}
