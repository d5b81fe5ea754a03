//! The loop's stop conditions, tool errors as results, and record → replay.

use lav_agent::*;
use serde_json::json;
use std::time::Duration;

/// `add(a, b)`: a tool that checks its arguments, as every tool must.
struct Adder {
    calls: usize,
}

impl Tools for Adder {
    fn list(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "add".into(),
            description: "Adds two numbers.".into(),
            input_schema: json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}),
        }]
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        self.calls += 1;
        let num = |k: &str| call.arguments.get(k).and_then(|v| v.as_f64());
        match (call.name.as_str(), num("a"), num("b")) {
            ("add", Some(a), Some(b)) => ToolResult {
                content: format!("{}", a + b),
                is_error: false,
            },
            ("add", _, _) => ToolResult {
                content: "add needs numbers a and b".into(),
                is_error: true,
            },
            (other, _, _) => ToolResult {
                content: format!("no tool named {other}"),
                is_error: true,
            },
        }
    }
}

fn call(id: &str, args: serde_json::Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: "add".into(),
        arguments: args,
    }
}

fn usage(n: u64) -> Usage {
    Usage {
        input_tokens: n,
        output_tokens: n / 10,
        cached_tokens: None,
    }
}

fn calls(id: &str, args: serde_json::Value) -> Reply {
    Reply::Calls {
        text: String::new(),
        calls: vec![call(id, args)],
        usage: usage(100),
    }
}

fn start() -> State {
    State::new("You add numbers.", "What is 2 + 3, then + 4?")
}

#[test]
fn a_final_answer_ends_the_turn_and_the_transcript_holds_every_step() {
    let mut llm = ScriptedPolicy::new(
        "script",
        vec![
            calls("c1", json!({"a": 2, "b": 3})),
            // A malformed call: the tool answers with an error result, the run goes on.
            calls("c2", json!({"a": "five"})),
            calls("c3", json!({"a": 5, "b": 4})),
            Reply::Final {
                text: "9".into(),
                usage: usage(50),
            },
        ],
    );
    let mut tools = Adder { calls: 0 };
    let r = run(&mut llm, &mut tools, start(), Limits::default(), &mut ()).unwrap();
    assert_eq!(r.stop, Stop::EndOfTurn);
    assert_eq!(r.answer.as_deref(), Some("9"));
    assert_eq!(r.state.ticks, 4);
    assert_eq!(tools.calls, 3);
    let roles: Vec<Role> = r.state.transcript.iter().map(|m| m.role).collect();
    use Role::*;
    assert_eq!(
        roles,
        [
            System, User, Assistant, Tool, Assistant, Tool, Assistant, Tool, Assistant
        ]
    );
    let t = &r.state.transcript;
    assert_eq!((t[3].content.as_str(), t[3].is_error), ("5", false));
    assert!(t[5].is_error && t[5].content.contains("needs numbers"));
    assert_eq!(t[5].tool_call_id.as_deref(), Some("c2"));
    assert_eq!(
        r.state.usage,
        Usage {
            input_tokens: 350,
            output_tokens: 35,
            cached_tokens: None,
        }
    );
    // The state is plain data: it survives JSON.
    let back: State = serde_json::from_str(&serde_json::to_string(&r.state).unwrap()).unwrap();
    assert_eq!(back, r.state);
}

#[test]
fn step_cap_token_budget_and_deadline_stop_the_loop() {
    let forever = || {
        (0..100)
            .map(|i| calls(&format!("c{i}"), json!({"a": i, "b": 1})))
            .collect::<Vec<_>>()
    };
    let mut tools = Adder { calls: 0 };
    let r = run(
        &mut ScriptedPolicy::new("s", forever()),
        &mut tools,
        start(),
        Limits {
            max_ticks: 3,
            ..Limits::default()
        },
        &mut (),
    )
    .unwrap();
    assert_eq!((r.stop, r.state.ticks), (Stop::StepCap, 3));

    // 110 tokens a tick: the budget of 250 is spent after the third tick.
    let r = run(
        &mut ScriptedPolicy::new("s", forever()),
        &mut tools,
        start(),
        Limits {
            token_budget: 250,
            ..Limits::default()
        },
        &mut (),
    )
    .unwrap();
    assert_eq!((r.stop, r.state.ticks), (Stop::TokenBudget, 3));

    struct Slow;
    impl Llm for Slow {
        fn name(&self) -> String {
            "slow".into()
        }
        fn next(&mut self, s: &State, _: &[ToolSpec]) -> Result<Reply, AgentError> {
            std::thread::sleep(Duration::from_millis(30));
            // Different arguments each tick: a loop of the same call would stop first.
            Ok(calls(
                &format!("c{}", s.ticks),
                json!({"a": s.ticks, "b": 1}),
            ))
        }
    }
    let limits = Limits {
        deadline: Some(Duration::from_millis(75)),
        max_ticks: 100,
        ..Limits::default()
    };
    let r = run(&mut Slow, &mut tools, start(), limits, &mut ()).unwrap();
    assert_eq!(r.stop, Stop::Deadline);
    // However slow the machine, the deadline (not the step cap) ends it.
    assert!(r.state.ticks < 100, "{}", r.state.ticks);
}

/// A doom loop: the same call with the same result twice in a row stops the run on
/// the second tick, with the reason; a different failure, or a fixed call, does not.
#[test]
fn the_same_failure_twice_in_a_row_stops_the_run() {
    let bad = || calls("c", json!({"a": "x", "b": 1}));
    let mut tools = Adder { calls: 0 };
    let r = run(
        &mut ScriptedPolicy::new("s", vec![bad(), bad(), bad(), bad()]),
        &mut tools,
        start(),
        Limits::default(),
        &mut (),
    )
    .unwrap();
    assert_eq!(
        (r.stop, r.state.ticks, tools.calls),
        (Stop::Repeating, 2, 2)
    );
    assert!(r.stop.describe().contains("twice in a row"));
    // A call that succeeds with the same result three times in a row loops as surely
    // (twice may be on purpose).
    let same = || calls("c", json!({"a": 1, "b": 1}));
    let r = run(
        &mut ScriptedPolicy::new("s", vec![same(), same(), same(), same()]),
        &mut tools,
        start(),
        Limits::default(),
        &mut (),
    )
    .unwrap();
    assert_eq!((r.stop, r.state.ticks), (Stop::Repeating, 3));
    // Failing with other arguments each time is not the same loop, and a model that
    // corrects itself goes on to answer.
    let varied = (0..3)
        .map(|i| calls("c", json!({"a": format!("x{i}"), "b": 1})))
        .chain([
            calls("c", json!({"a": 1, "b": 1})),
            Reply::Final {
                text: "2".into(),
                usage: usage(10),
            },
        ])
        .collect();
    let r = run(
        &mut ScriptedPolicy::new("s", varied),
        &mut tools,
        start(),
        Limits::default(),
        &mut (),
    )
    .unwrap();
    assert_eq!((r.stop, r.state.ticks), (Stop::EndOfTurn, 5));
    // A failure, a success, then the same failure again: not in a row.
    let r = run(
        &mut ScriptedPolicy::new(
            "s",
            vec![
                bad(),
                calls("c", json!({"a": 1, "b": 1})),
                bad(),
                Reply::Final {
                    text: "done".into(),
                    usage: usage(10),
                },
            ],
        ),
        &mut tools,
        start(),
        Limits::default(),
        &mut (),
    )
    .unwrap();
    assert_eq!(r.stop, Stop::EndOfTurn);
}

#[test]
fn a_recorded_run_replays_with_identical_tool_results() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.jsonl");
    let mut llm = ScriptedPolicy::new(
        "script",
        vec![
            Reply::Calls {
                text: "two at once".into(),
                calls: vec![
                    call("a", json!({"a": 1, "b": 2})),
                    call("b", json!({"a": 3})),
                ],
                usage: usage(10),
            },
            Reply::Final {
                text: "3".into(),
                usage: usage(10),
            },
        ],
    );
    let mut tools = Adder { calls: 0 };
    let limits = Limits::default();
    let mut rec = Recorder::create(&path, &llm.name(), limits, tools.list(), &start()).unwrap();
    let live = run(&mut llm, &mut tools, start(), limits, &mut rec).unwrap();
    rec.finish().unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let kinds: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["start", "reply", "tool", "tool", "reply", "stop"]);

    let replay = Replay::load(&path).unwrap();
    assert_eq!(replay.recorded(), Some(&live));
    let again = replay.rerun(&mut ()).unwrap();
    assert_eq!(
        again, live,
        "the replay walks the same states with the same tool results"
    );

    // A damaged record is a one-line error naming the file and the line.
    std::fs::write(
        &path,
        format!("{}\n{{not json\n", text.lines().next().unwrap()),
    )
    .unwrap();
    let e = Replay::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("run.jsonl") && e.contains("line 2") && !e.contains('\n'),
        "{e}"
    );
}
