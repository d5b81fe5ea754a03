//! `lav serve` end to end, as a separate process on a free port: the official OpenAI
//! Python client completes a chat, a stream and `n=2`; greedy requests sent together
//! get exactly the text each gets alone; every bad input gets its status code; a
//! client that leaves mid-stream gives its KV blocks back; and `lav load` measures
//! it.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const LAV: &str = env!("CARGO_BIN_EXE_lav");
const MODEL: &str = "SmolLM2-135M-Instruct";

struct Server {
    child: Child,
    addr: String,
    /// Kept open: a server whose stdout is closed dies of SIGPIPE on its next line.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Server {
    let mut child = Command::new(LAV)
        .args(["serve", "--addr", "127.0.0.1:0", "--threads", "2"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start lav serve");
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut line).expect("read the address line");
    let addr = line
        .trim()
        .strip_prefix("lav serve: listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Server {
        child,
        addr,
        _stdout: stdout,
    }
}

/// A response: status, headers (lower-cased names) and body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 exchange over a fresh connection (Connection: close), so the test
/// sees exactly what a client sees, status line and all.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Reply {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the reply");
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = raw.split_once("\r\n\r\n").expect("a header block");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

fn post(addr: &str, path: &str, body: &Value) -> Reply {
    http(addr, "POST", path, &body.to_string())
}

/// A Prometheus gauge or counter from /metrics.
fn metric(addr: &str, name: &str) -> f64 {
    let m = http(addr, "GET", "/metrics", "");
    assert_eq!(m.status, 200);
    m.body
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{}", m.body))
        .parse()
        .unwrap()
}

fn chat_body(content: &str, max_tokens: usize) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "temperature": 0,
        "max_tokens": max_tokens,
    })
}

#[test]
fn openai_client_and_concurrent_greedy_and_bad_input() {
    let srv = serve(&[]);
    let a = srv.addr.as_str();

    assert_eq!(http(a, "GET", "/health", "").status, 200);
    let models = http(a, "GET", "/v1/models", "").json();
    assert_eq!(models["data"][0]["id"], MODEL);

    // The official client: chat, stream, n=2, stream with usage, unknown model.
    let py = lav_tests::python()
        .arg(lav_tests::repo_dir().join("tests/py/openai_client.py"))
        .arg(format!("http://{a}"))
        .arg(MODEL)
        .output()
        .expect("python3");
    assert!(
        py.status.success(),
        "openai client failed: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let r: Value = serde_json::from_slice(&py.stdout).expect("the client's JSON");
    let chat = &r["chat"];
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["role"], "assistant");
    assert!(!chat["text"].as_str().unwrap().is_empty(), "{r}");
    assert!(
        matches!(chat["finish"].as_str(), Some("stop" | "length")),
        "{r}"
    );
    let u = &chat["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    // The template's default system turn plus the question: well over 20 tokens.
    assert!(u["prompt_tokens"].as_u64().unwrap() > 20, "{r}");
    // Greedy: the stream writes the same text as the whole reply.
    assert_eq!(r["stream"]["text"], chat["text"], "{r}");
    assert_eq!(r["stream"]["finish"], chat["finish"]);
    assert_eq!(r["stream"]["roles"], json!(["assistant"]));
    let n2 = r["n2"]["texts"].as_array().unwrap();
    assert_eq!(n2.len(), 2, "{r}");
    assert_ne!(n2[0], n2[1], "two sampled choices should differ: {r}");
    assert_eq!(r["n2"]["usage"]["completion_tokens"], 24, "{r}");
    let cs = &r["completion_stream"];
    assert_eq!(cs["usage"]["completion_tokens"], 8, "{r}");
    assert!(!cs["text"].as_str().unwrap().is_empty());
    assert_eq!(r["unknown_model"], 404);

    // Greedy requests served together get exactly the text each gets alone.
    let prompts = [
        "What is a GPU?",
        "Write a haiku about the sea.",
        "List three prime numbers.",
        "Say hello in French.",
        "Why is the sky blue?",
    ];
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| post(a, "/v1/chat/completions", &chat_body(p, 20)).json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_string())
        .collect();
    let together: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = prompts
            .iter()
            .map(|p| {
                s.spawn(move || {
                    post(a, "/v1/chat/completions", &chat_body(p, 20)).json()["choices"][0]["message"]
                        ["content"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, together);
    assert!(
        metric(a, "lav_engine_steps_total") > 0.0
            && metric(a, "lav_requests_finished_total") >= 12.0
    );

    // Bad input: a status each, an OpenAI error body, never a dropped connection.
    let bad = |path: &str, body: &str, status: u16, says: &str| {
        let r = http(a, "POST", path, body);
        assert_eq!(r.status, status, "{body} -> {}", r.body);
        let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(msg.contains(says), "{msg:?} lacks {says:?}");
    };
    bad(
        "/v1/chat/completions",
        "{\"model\": ",
        400,
        "invalid request body",
    );
    bad(
        "/v1/chat/completions",
        "[1, 2]",
        400,
        "invalid request body",
    );
    bad(
        "/v1/chat/completions",
        &json!({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        404,
        "does not exist here",
    );
    bad(
        "/v1/chat/completions",
        &json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000})
            .to_string(),
        400,
        "at most",
    );
    bad(
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "hi", "temperature": -1}).to_string(),
        400,
        "temperature",
    );
    bad(
        "/v1/chat/completions",
        &json!({"model": MODEL, "messages": []}).to_string(),
        400,
        "empty",
    );
    let nowhere = http(a, "GET", "/v2/everything", "");
    assert_eq!(nowhere.status, 404);
    assert!(
        nowhere.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/v1/models")
    );
}

#[test]
fn full_queue_429_and_disconnect_frees_blocks_and_load_measures() {
    // Two slots and one waiting place: three sequences in flight at most.
    let srv = serve(&[
        "--max-num-seqs",
        "2",
        "--max-waiting",
        "1",
        "--kv-blocks",
        "64",
    ]);
    let a = srv.addr.as_str();
    let total = metric(a, "lav_kv_blocks_total");
    assert_eq!(total, 64.0);

    // A streamed request with three choices fills the server, and stays in flight.
    let mut s = TcpStream::connect(a).unwrap();
    let body = json!({"model": MODEL, "prompt": "Once upon a time", "n": 3, "max_tokens": 400,
        "temperature": 0.7, "seed": 1, "ignore_eos": true, "stream": true})
    .to_string();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut seen = 0;
    let mut line = String::new();
    while seen < 4 {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the stream ended early"
        );
        if line.starts_with("data: {") {
            seen += 1;
        }
    }
    assert!(
        metric(a, "lav_kv_blocks_free") < total,
        "the stream holds blocks"
    );

    let full = post(
        a,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "hi", "max_tokens": 4}),
    );
    assert_eq!(full.status, 429, "{}", full.body);
    assert_eq!(full.header("retry-after"), Some("1"));

    // The client leaves mid-stream: its sequences are aborted and the pool is full
    // again (the engine notices between two steps).
    drop(reader);
    drop(s);
    let t0 = Instant::now();
    while metric(a, "lav_kv_blocks_free") < total {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "blocks never came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(a, "lav_requests_aborted_total"), 3.0);
    let ok = post(
        a,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": "hi", "max_tokens": 4}),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);

    // lav load against it: a closed loop of two clients for three seconds.
    let out = Command::new(LAV)
        .args([
            "load",
            "--url",
            &format!("http://{a}"),
            "--concurrency",
            "2",
            "--duration",
            "3",
        ])
        .args(["--prompt-tokens", "24", "--output-tokens", "6", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("lav load's JSON");
    assert_eq!(v["model"], MODEL);
    let p = &v["points"][0];
    assert_eq!(p["errors"], 0, "{p}");
    let s = &p["summary"];
    let n = s["finished"].as_u64().unwrap();
    assert!(n >= 2, "{s}");
    assert_eq!(
        s["output_tokens"].as_u64().unwrap(),
        6 * n,
        "ignore_eos gives exact lengths"
    );
    let ttft = s["ttft"]["p50"].as_f64().unwrap();
    let e2e = s["e2e"]["p50"].as_f64().unwrap();
    assert!(ttft > 0.0 && ttft < e2e, "{s}");
    assert!(s["tpot"]["p50"].as_f64().unwrap() > 0.0);
    // Every request the client timed reached the server's own count.
    assert!(metric(a, "lav_requests_finished_total") >= n as f64 + 1.0);
}

#[test]
fn load_against_nothing_is_one_line() {
    // A port nothing listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(LAV)
        .args([
            "load",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach") && err.contains("lav serve"),
        "{err}"
    );
    let out = Command::new(LAV)
        .args(["serve", "--addr", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot listen on not-an-address"), "{err}");
}

/// The calculator as an OpenAI function.
fn calculator() -> Value {
    json!({"type": "function", "function": {
        "name": "calculate",
        "description": "Evaluates an arithmetic expression.",
        "parameters": {"type": "object", "properties": {"expression": {"type": "string", "examples": ["17 * 23"]}}, "required": ["expression"]}
    }})
}

/// A worked exchange as an OpenAI client sends it back: the call, then its result.
fn worked(q: &str, expr: &str, result: &str, answer: &str, id: &str) -> Vec<Value> {
    vec![
        json!({"role": "user", "content": q}),
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
            "function": {"name": "calculate", "arguments": json!({"expression": expr}).to_string()}}]}),
        json!({"role": "tool", "tool_call_id": id, "content": result}),
        json!({"role": "assistant", "content": answer}),
    ]
}

#[test]
fn tools_and_tool_turns_go_through_lav_serve_and_calls_come_back_parsed() {
    let srv = serve(&[]);
    let a = srv.addr.as_str();
    let mut messages = vec![
        json!({"role": "system", "content": "You are a helpful assistant. Use the calculator for arithmetic."}),
    ];
    messages.extend(worked(
        "What is 6 times 7?",
        "6 * 7",
        "42",
        "6 times 7 is 42.",
        "c1",
    ));
    messages.extend(worked(
        "What is 12 plus 30?",
        "12 + 30",
        "42",
        "12 plus 30 is 42.",
        "c2",
    ));
    messages.push(json!({"role": "user", "content": "What is 17 times 23?"}));
    let body = json!({"model": MODEL, "messages": messages, "tools": [calculator()],
        "temperature": 0, "max_tokens": 60});
    let r = post(a, "/v1/chat/completions", &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let m = &v["choices"][0]["message"];
    // Primed by two worked calls, greedy SmolLM2 calls the tool; the server reads the
    // block back into an OpenAI tool call.
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert_eq!(m["tool_calls"][0]["function"]["name"], "calculate", "{v}");
    let args: Value = serde_json::from_str(
        m["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(args["expression"].is_string(), "{v}");
    assert!(m["content"].is_null(), "{v}");
    // The tool list and turns cost prompt tokens: more than the same chat without tools.
    let plain = json!({"model": MODEL, "messages": [{"role": "user", "content": "What is 17 times 23?"}],
        "temperature": 0, "max_tokens": 4});
    let with = json!({"model": MODEL, "messages": [{"role": "user", "content": "What is 17 times 23?"}],
        "tools": [calculator()], "temperature": 0, "max_tokens": 4});
    let p0 = post(a, "/v1/chat/completions", &plain).json()["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap();
    let p1 = post(a, "/v1/chat/completions", &with).json()["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap();
    assert!(p1 > p0 + 20, "{p0} {p1}");
    // The same request again finds its prompt's full blocks in the engine's prefix
    // cache (all but the last position, which must be computed for the logits), and
    // says so as OpenAI does.
    let again = post(a, "/v1/chat/completions", &with).json();
    let block = lav_engine::block_manager::BLOCK_SIZE as u64;
    assert_eq!(
        again["usage"]["prompt_tokens_details"]["cached_tokens"],
        (p1 - 1) / block * block,
        "{again}"
    );
    // `none` leaves the tools out of the prompt.
    let mut none = with.clone();
    none["tool_choice"] = json!("none");
    let pn = post(a, "/v1/chat/completions", &none).json()["usage"]["prompt_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(pn, p0);
    // What lav serve cannot do is refused in one line, with what to do instead.
    for (change, want) in [
        (json!({"tool_choice": "required"}), "constrained decoding"),
        (json!({"stream": true}), "without `stream`"),
        (
            json!({"tools": [{"type": "retrieval", "function": {"name": "x"}}]}),
            "`function` tools only",
        ),
    ] {
        let mut b = with.clone();
        for (k, v) in change.as_object().unwrap() {
            b[k] = v.clone();
        }
        let r = post(a, "/v1/chat/completions", &b);
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(want), "{}", r.body);
    }
    let mut bad = body.clone();
    bad["messages"][2]["tool_calls"][0]["function"]["arguments"] = json!("{not json");
    let r = post(a, "/v1/chat/completions", &bad);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("is not JSON"), "{}", r.body);
}

/// The context-engineering lab driven by `lav serve`: every view of the long audit
/// is also sent to the server, and the prefix step shows the cached tokens the
/// engine reported for each, in whole KV blocks, the first view (a fresh server)
/// finding none and each later one reusing the previous view's blocks.
#[test]
fn the_context_lab_reads_lav_serves_prefix_cache_per_view() {
    let s = serve(&[]);
    let out = Command::new(LAV)
        .args([
            "lab",
            "context-engineering",
            "--step",
            "prefix",
            "--set",
            "driver=live: the endpoint",
            "--llm-url",
            &format!("http://{}/v1", s.addr),
            "--llm-model",
            MODEL,
            "--text",
        ])
        .output()
        .expect("run lav lab");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = "## Prefix-cache hits the endpoint reported per view: ";
    let i = text.find(head).unwrap_or_else(|| panic!("{text}"));
    let rest = &text[i + head.len()..];
    let nums: Vec<u64> = rest
        .split_whitespace()
        .take(3)
        .filter_map(|w| w.parse().ok())
        .collect();
    let (served, prompts) = (nums[0], nums[1]);
    let ticks: Vec<u64> = rest
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("tick "))
        .map(|l| {
            l.split('\t')
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ticks.len() >= 5, "{text}");
    assert_eq!(ticks.iter().sum::<u64>(), served);
    assert_eq!(ticks[0], 0, "{text}");
    let block = lav_engine::block_manager::BLOCK_SIZE as u64;
    for (k, t) in ticks.iter().enumerate().skip(1) {
        assert!(*t > 0 && t % block == 0, "tick {}: {t}\n{text}", k + 1);
    }
    // The audit only appends: most of every later prompt is the one before.
    assert!(served * 2 > prompts, "{served} of {prompts}\n{text}");
}
