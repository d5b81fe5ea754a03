//! The OpenAI-compatible backend against a real HTTP server started by the test.

use lav_agent::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

/// Serves `replies` in order, one per connection, and returns the request bodies.
fn server(replies: Vec<Value>) -> (String, std::thread::JoinHandle<Vec<Value>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for reply in replies {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            let mut first = String::new();
            r.read_line(&mut first).unwrap();
            assert!(first.starts_with("POST /v1/chat/completions"), "{first}");
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            seen.push(serde_json::from_slice(&body).unwrap());
            let out = reply.to_string();
            let mut s = s;
            write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{out}", out.len()).unwrap();
        }
        seen
    });
    (url, h)
}

struct Echo;

impl Tools for Echo {
    fn list(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "echo".into(),
            description: "Echoes `text`.".into(),
            input_schema: json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
        }]
    }
    fn call(&mut self, c: &ToolCall) -> ToolResult {
        match c.arguments.get("text").and_then(|t| t.as_str()) {
            Some(t) => ToolResult {
                content: t.into(),
                is_error: false,
            },
            None => ToolResult {
                content: "echo needs a string `text`".into(),
                is_error: true,
            },
        }
    }
}

#[test]
fn a_run_over_http_calls_tools_and_sends_results_back() {
    let (url, h) = server(vec![
        json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "echo", "arguments": "{\"text\": \"hi\"}"}},
            {"id": "t2", "type": "function", "function": {"name": "echo", "arguments": "{not json"}}
        ]}}], "usage": {"prompt_tokens": 40, "completion_tokens": 12}}),
        json!({"choices": [{"message": {"role": "assistant", "content": "said hi"}}], "usage": {"prompt_tokens": 70, "completion_tokens": 3}}),
    ]);
    let mut llm = OpenAiCompatible::new(&url, "test-model");
    llm.api_key = None;
    let r = run(
        &mut llm,
        &mut Echo,
        State::new("sys", "say hi"),
        Limits::default(),
        &mut (),
    )
    .unwrap();
    assert_eq!(
        (r.stop, r.answer.as_deref()),
        (Stop::EndOfTurn, Some("said hi"))
    );
    assert_eq!(
        r.state.usage,
        Usage {
            input_tokens: 110,
            output_tokens: 15,
            cached_tokens: None,
        }
    );
    let t = &r.state.transcript;
    assert_eq!(t[3].content, "hi");
    // Malformed arguments reach the tool as a string and come back as an error result.
    assert!(t[4].is_error, "{:?}", t[4]);
    let bodies = h.join().unwrap();
    assert_eq!(bodies[0]["model"], "test-model");
    assert_eq!(bodies[0]["tools"][0]["function"]["name"], "echo");
    // The second request carries the calls and their results, paired by id.
    let m = &bodies[1]["messages"];
    assert_eq!(m[2]["tool_calls"][0]["id"], "t1");
    assert_eq!(
        (m[3]["role"].as_str(), m[3]["tool_call_id"].as_str()),
        (Some("tool"), Some("t1"))
    );
    assert_eq!(m[4]["tool_call_id"], "t2");
}

#[test]
fn an_unreachable_endpoint_is_a_one_line_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut llm = OpenAiCompatible::new(&format!("http://127.0.0.1:{port}/v1"), "m");
    let e = run(
        &mut llm,
        &mut Echo,
        State::new("s", "u"),
        Limits::default(),
        &mut (),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("cannot reach") && e.contains("--llm-url") && !e.contains('\n'),
        "{e}"
    );
}
