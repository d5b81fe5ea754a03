//! `lav mcp serve` against clients lav did not write: the official Python MCP SDK
//! over stdio and over streamable HTTP, and lav's own rmcp client over both. Each
//! lists the tools, calls every one, and gets `is_error` results for bad arguments.

use lav_agent::{ToolCall, Tools};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const LAV: &str = env!("CARGO_BIN_EXE_lav");

const TOOLS: &[&str] = &[
    "search_docs",
    "calculate",
    "read_file",
    "get_order",
    "list_orders",
    "cancel_order",
    "send_message",
    "http_get",
    "lab_list",
    "lab_view",
];

/// A folder for `read_file`: one note inside, and a secret next to it (outside).
fn root() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().expect("temp dir");
    let root = t.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("note.txt"), "the meeting moved to Thursday\n").unwrap();
    std::fs::write(t.path().join("secret.txt"), "hunter2\n").unwrap();
    (t, root)
}

/// Every tool once with good arguments, then bad ones. (expected is_error, a piece of
/// the text)
fn calls() -> Vec<(Value, bool, &'static str)> {
    vec![
        (
            json!({"name": "calculate", "arguments": {"expression": "2*(3+4)"}}),
            false,
            "14",
        ),
        (
            json!({"name": "read_file", "arguments": {"path": "note.txt"}}),
            false,
            "Thursday",
        ),
        (
            json!({"name": "get_order", "arguments": {"order_id": 1003}}),
            false,
            "laptop stand",
        ),
        (
            json!({"name": "list_orders", "arguments": {"customer": "Alan Turing"}}),
            false,
            "chess set",
        ),
        (
            json!({"name": "cancel_order", "arguments": {"order_id": 1004}}),
            false,
            "cancelled",
        ),
        (
            json!({"name": "send_message", "arguments": {"to": "a@example.org", "body": "hi"}}),
            false,
            "sent",
        ),
        (
            json!({"name": "http_get", "arguments": {"url": "https://example.org/?q=1"}}),
            false,
            "sent",
        ),
        (
            json!({"name": "lab_list", "arguments": {}}),
            false,
            "kv-cache",
        ),
        (
            json!({"name": "lab_view", "arguments": {"lab": "tokenization", "step": "bytes", "set": {"text": "héllo"}}}),
            false,
            "Text is bytes",
        ),
        // Bad arguments: each an error result, never a crash or a protocol failure.
        (
            json!({"name": "calculate", "arguments": {"expression": 5}}),
            true,
            "expression",
        ),
        (
            json!({"name": "send_message", "arguments": {"to": "a@example.org"}}),
            true,
            "body",
        ),
        (
            json!({"name": "calculate", "arguments": {"expression": "2 +* 3"}}),
            true,
            "",
        ),
        (
            json!({"name": "read_file", "arguments": {"path": "../secret.txt"}}),
            true,
            "refused",
        ),
        (json!({"name": "read_file", "arguments": {}}), true, "path"),
        (
            json!({"name": "get_order", "arguments": {"order_id": "1003; DROP TABLE orders"}}),
            true,
            "order_id",
        ),
        (
            json!({"name": "cancel_order", "arguments": {"order_id": 1001}}),
            true,
            "delivered",
        ),
        (
            json!({"name": "lab_view", "arguments": {"lab": "no-such-lab"}}),
            true,
            "no-such-lab",
        ),
        (
            json!({"name": "lab_view", "arguments": {"lab": "tokenization", "step": "nope"}}),
            true,
            "nope",
        ),
    ]
}

fn check(results: &[(String, bool, String)]) {
    let expected = calls();
    assert_eq!(results.len(), expected.len());
    for ((name, is_error, text), (call, want_error, piece)) in results.iter().zip(&expected) {
        assert_eq!(name, call["name"].as_str().unwrap());
        assert_eq!(*is_error, *want_error, "{call}: {text}");
        assert!(text.contains(piece), "{call}: {text:?} lacks {piece:?}");
        assert!(
            !text.contains("hunter2"),
            "{call} leaked the file outside the root"
        );
    }
}

/// Runs the Python SDK client against `target`; returns tool names and call results.
fn python_client(target: &str) -> (Vec<String>, Vec<(String, bool, String)>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/py/mcp_roundtrip.py");
    let calls: Vec<Value> = calls().into_iter().map(|c| c.0).collect();
    let out = lav_tests::python()
        .arg(script)
        .arg(target)
        .arg(serde_json::to_string(&calls).unwrap())
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python MCP client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("client JSON");
    let mut tools: Vec<String> = v["tools"].as_object().unwrap().keys().cloned().collect();
    tools.sort();
    for (name, t) in v["tools"].as_object().unwrap() {
        assert_eq!(t["input_schema"]["type"], "object", "{name}");
        assert!(
            !t["description"].as_str().unwrap_or("").is_empty(),
            "{name}"
        );
    }
    let results = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["is_error"].as_bool().unwrap(),
                r["text"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (tools, results)
}

fn sorted_tools() -> Vec<String> {
    let mut t: Vec<String> = TOOLS.iter().map(|s| s.to_string()).collect();
    t.sort();
    t
}

/// `lav mcp serve --http 127.0.0.1:0`, killed on drop; `url` is where it listens.
struct HttpServer {
    child: Child,
    url: String,
}

impl HttpServer {
    fn start(root: &Path) -> HttpServer {
        let mut child = Command::new(LAV)
            .args(["mcp", "serve", "--http", "127.0.0.1:0", "--root"])
            .arg(root)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("lav mcp serve --http");
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        HttpServer { child, url }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_sdk_over_stdio() {
    let (_t, root) = root();
    let cmd = json!([LAV, "mcp", "serve", "--root", root]);
    let (tools, results) = python_client(&cmd.to_string());
    assert_eq!(tools, sorted_tools());
    check(&results);
}

#[test]
fn python_sdk_over_http() {
    let (_t, root) = root();
    let server = HttpServer::start(&root);
    let (tools, results) = python_client(&server.url);
    assert_eq!(tools, sorted_tools());
    check(&results);
}

fn rust_client(client: &mut lav_mcp::Client) {
    assert!(
        client.server_name().starts_with("lav "),
        "{}",
        client.server_name()
    );
    let mut names: Vec<String> = client.list().into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, sorted_tools());
    let results: Vec<(String, bool, String)> = calls()
        .into_iter()
        .enumerate()
        .map(|(i, (c, _, _))| {
            let call = ToolCall {
                id: format!("c{i}"),
                name: c["name"].as_str().unwrap().to_string(),
                arguments: c["arguments"].clone(),
            };
            let r = client.call(&call);
            (call.name, r.is_error, r.content)
        })
        .collect();
    check(&results);
    // Arguments that are not an object never leave the client.
    let r = client.call(&ToolCall {
        id: "x".into(),
        name: "calculate".into(),
        arguments: json!("1+1"),
    });
    assert!(r.is_error && r.content.contains("JSON object"), "{r:?}");
}

#[test]
fn rust_client_over_stdio_and_http() {
    let (_t, root) = root();
    let mut c = lav_mcp::Client::stdio(
        Path::new(LAV),
        &["mcp", "serve", "--root", root.to_str().unwrap()],
    )
    .expect("stdio client");
    assert_eq!(c.transport, "stdio");
    rust_client(&mut c);

    let server = HttpServer::start(&root);
    let mut c = lav_mcp::Client::http(&server.url).expect("http client");
    assert_eq!(c.transport, "http");
    rust_client(&mut c);
}

#[test]
fn unreachable_server_is_one_line_error() {
    let e = lav_mcp::Client::http("http://127.0.0.1:9/mcp")
        .err()
        .expect("no server there");
    let msg = e.to_string();
    assert!(
        msg.starts_with("cannot connect to the MCP server http://127.0.0.1:9/mcp"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    let e = lav_mcp::Client::stdio(Path::new("/nonexistent/lav"), &[])
        .err()
        .expect("no program");
    assert!(
        e.to_string()
            .starts_with("cannot connect to the MCP server /nonexistent/lav"),
        "{e}"
    );
}

/// The README's example as a new user runs it, with default flags: SmolLM2 calls the
/// calculator with a well-formed expression and answers 391.
#[test]
fn the_readme_agent_example_calls_the_calculator_and_answers_391() {
    let t = tempfile::tempdir().unwrap();
    let out = Command::new(LAV)
        .args(["agent", "What is 17 times 23?", "--record"])
        .arg(t.path().join("run.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("calls calculate("), "{stdout}");
    assert!(
        stdout.contains("calculate result") && stdout.contains(": 391"),
        "{stdout}"
    );
    let answer = stdout.split(" answers ").nth(1).unwrap_or("");
    assert!(lav_agent::tasks::states(answer, "391"), "{stdout}");
}

#[test]
fn agent_run_is_recorded_replayed_and_traced_with_the_endpoint_down() {
    let t = tempfile::tempdir().unwrap();
    let rec = t.path().join("run.jsonl");
    let out = Command::new(LAV)
        .args([
            "agent",
            "Cancel order 1008 please.",
            "--tool-choice",
            "required",
            "--max-ticks",
            "2",
            "--record",
        ])
        .arg(&rec)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings = stderr
        .lines()
        .filter(|l| l.starts_with("warning: telemetry"))
        .count();
    assert_eq!(warnings, 1, "{stderr}");
    assert!(
        stderr.contains("2 ticks") || stderr.contains("1 ticks"),
        "{stderr}"
    );

    // The record replays without the model, with identical tool results.
    let replay = lav_agent::Replay::load(&rec).unwrap();
    let recorded = replay.recorded().expect("a stop event").clone();
    let again = replay.rerun(&mut ()).unwrap();
    assert_eq!(again.state.transcript, recorded.state.transcript);
    assert!(
        recorded
            .state
            .transcript
            .iter()
            .any(|m| m.role == lav_agent::Role::Tool)
    );

    let show = Command::new(LAV)
        .args(["trace", "show"])
        .arg(&rec)
        .arg("--text")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success());
    assert!(
        text.contains("invoke_agent")
            && text.contains("chat SmolLM2")
            && text.contains("execute_tool "),
        "{text}"
    );
    let missing = Command::new(LAV)
        .args(["trace", "show", "no-such-run"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success() && err.lines().count() == 1 && err.contains("lav trace list"),
        "{err}"
    );
}
