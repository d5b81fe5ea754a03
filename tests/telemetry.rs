//! The agent's spans reach a real OTLP receiver (oteltap, OTLP/HTTP-protobuf) with
//! the GenAI names and parent links; a run whose endpoint is down still completes.

use lav_agent::{Limits, Reply, ScriptedPolicy, State, ToolCall, Toolbox, Usage, run};
use lav_telemetry::{Config, Telemetry};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn call(id: &str, name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: id.into(),
        name: name.into(),
        arguments,
    }
}

/// Two ticks: two parallel tool calls (one failing), then a final answer.
fn agent_run() -> lav_agent::Run {
    let u = |i, o| Usage {
        input_tokens: i,
        output_tokens: o,
        cached_tokens: None,
    };
    let mut llm = ScriptedPolicy::new(
        "SmolLM2-135M-Instruct",
        vec![
            Reply::Calls {
                text: String::new(),
                calls: vec![
                    call("a", "calculate", json!({"expression": "6*7"})),
                    call("b", "get_order", json!({"order_id": "x"})),
                ],
                usage: u(120, 30),
            },
            Reply::Final {
                text: "42".into(),
                usage: u(180, 5),
            },
        ],
    );
    let mut tools = Toolbox::default()
        .with(lav_tools::Calculator)
        .with(lav_tools::Orders::seeded().unwrap());
    run(
        &mut llm,
        &mut tools,
        State::new("system", "what is 6*7?"),
        Limits::default(),
        &mut (),
    )
    .unwrap()
}

#[test]
fn spans_reach_a_real_otlp_receiver() {
    let port = free_port();
    let mut rx = lav_tests::python()
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/otlp_receiver.py"
        ))
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut out = BufReader::new(rx.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");

    let t = Telemetry::start(Some(Config {
        endpoint: format!("http://127.0.0.1:{port}"),
        grpc: false,
        service: "lav-test".into(),
    }));
    assert!(t.exporting());
    let r = agent_run();
    assert_eq!(r.answer.as_deref(), Some("42"));
    t.shutdown();

    drop(rx.stdin.take());
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    rx.wait().unwrap();
    let spans: Vec<Value> = serde_json::from_str(rest.trim()).expect("receiver JSON");
    let by = |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(spans.len(), 5, "{names:?}");

    let agent = by("invoke_agent");
    assert_eq!(agent.len(), 1, "{names:?}");
    let agent = agent[0];
    assert_eq!(agent["parent_span_id"], "", "invoke_agent is the root");
    let chats = by("chat SmolLM2-135M-Instruct");
    assert_eq!(chats.len(), 2, "{names:?}");
    let calc = by("execute_tool calculate");
    let order = by("execute_tool get_order");
    assert_eq!((calc.len(), order.len()), (1, 1), "{names:?}");
    for s in chats.iter().chain(&calc).chain(&order) {
        assert_eq!(s["trace_id"], agent["trace_id"], "one trace per run");
        assert_eq!(
            s["parent_span_id"], agent["span_id"],
            "{} is a child of invoke_agent",
            s["name"]
        );
    }
    // Usage per chat, and the totals on the agent span.
    assert_eq!(chats[0]["attributes"]["gen_ai.usage.input_tokens"], 120);
    assert_eq!(chats[0]["attributes"]["gen_ai.usage.output_tokens"], 30);
    assert_eq!(chats[0]["attributes"]["gen_ai.operation.name"], "chat");
    assert_eq!(
        chats[0]["attributes"]["gen_ai.response.finish_reasons"],
        "tool_calls"
    );
    assert_eq!(chats[0]["kind"], 3, "chat is a CLIENT span");
    assert_eq!(agent["attributes"]["gen_ai.usage.input_tokens"], 300);
    assert_eq!(agent["attributes"]["gen_ai.usage.output_tokens"], 35);
    assert_eq!(calc[0]["attributes"]["gen_ai.tool.name"], "calculate");
    assert_eq!(calc[0]["attributes"]["gen_ai.tool.call.id"], "a");
    // The failed call is marked on its span; the good one is not.
    assert_eq!(order[0]["status"], 2, "STATUS_CODE_ERROR");
    assert_eq!(order[0]["attributes"]["error.type"], "tool_error");
    assert_ne!(calc[0]["status"], 2);
    // Tick order: the tools run after the first chat and before the second.
    let start = |s: &Value| s["start_ns"].as_u64().unwrap();
    let end = |s: &Value| s["end_ns"].as_u64().unwrap();
    assert!(end(chats[0]) <= start(calc[0]) && end(order[0]) <= start(chats[1]));
    assert!(start(agent) <= start(chats[0]) && end(chats[1]) <= end(agent));
}

#[test]
fn endpoint_down_costs_one_warning_and_the_run_completes() {
    // Run in a child process so its stderr can be read: this test binary re-run
    // with a filter and a flag.
    if std::env::var_os("LAV_TELEMETRY_CHILD").is_some() {
        let t = Telemetry::start(Some(Config {
            endpoint: format!("http://127.0.0.1:{}", free_port()),
            grpc: false,
            service: "lav-test".into(),
        }));
        assert!(!t.exporting());
        let r = agent_run();
        t.shutdown();
        println!("answer={}", r.answer.unwrap());
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "endpoint_down_costs_one_warning_and_the_run_completes",
            "--exact",
            "--nocapture",
        ])
        .env("LAV_TELEMETRY_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("answer=42"), "{stdout}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("warning: telemetry"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("cannot be reached"), "{}", warnings[0]);
    let _ = std::io::stdout().flush();
}
