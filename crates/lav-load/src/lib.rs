//! `lav-load`: drives an OpenAI-compatible server with a load and measures it the
//! way serving benchmarks do (vLLM's `benchmark_serving`): each request streams
//! from `/v1/completions`; the time of each text chunk is a token's time; TTFT,
//! TPOT, ITL, E2E, throughput and goodput come from [`lav_engine::metrics`].
//!
//! Three kinds of load: an open loop (`Rate`: Poisson arrivals at R per second,
//! whether or not the server keeps up), a closed loop (`Concurrency`: C clients,
//! each sending its next request when the last one ends), and a recorded set's own
//! arrival times (`Replay`). A run sends for `duration` seconds; requests in flight
//! at the end are waited for.
//!
//! It knows nothing of lav's engine beyond the metrics' definitions, so the same
//! numbers come from lav serve, vLLM, SGLang or llama-server.
//!
//! May depend on `lav-engine` (metrics and workloads only), ureq and serde; never on
//! a lab or a renderer.

use lav_engine::metrics::{RequestTimes, Slo, Summary, summarize};
use lav_engine::workload::Request;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How requests are sent.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Load {
    /// Poisson arrivals, this many per second (open loop).
    Rate(f64),
    /// This many clients, each sending its next request when the last ends.
    Concurrency(usize),
    /// The workload's own arrival times.
    Replay,
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Load::Rate(r) => write!(f, "rate {r:.2}/s"),
            Load::Concurrency(c) => write!(f, "concurrency {c}"),
            Load::Replay => write!(f, "replay"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The server's base address, e.g. `http://127.0.0.1:8000`.
    pub url: String,
    pub model: String,
    pub load: Load,
    /// Seconds during which new requests are sent (a replay sends its whole set).
    pub duration: f64,
    /// Requests to send, cycled through in order (prompts and output lengths).
    pub requests: Vec<Request>,
    pub slo: Slo,
    pub seed: u64,
    /// Give up on one request after this long.
    pub timeout: Duration,
}

/// One load level's result.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub load: Load,
    pub summary: Summary,
    /// Requests that failed (HTTP errors, transport errors, timeouts).
    pub errors: usize,
    /// The first failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Every successful request's timestamps, seconds from the start of this point.
    pub requests: Vec<RequestTimes>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("cannot reach {url} ({why}): is the server running? (`lav serve` starts one)")]
    Unreachable { url: String, why: String },
    #[error("{url} answered {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}/v1/models lists no model: name one with --model")]
    NoModel { url: String },
    #[error("no request succeeded; the first failure: {0}")]
    AllFailed(String),
    #[error("{0}")]
    Bad(String),
}

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(timeout)
        .build()
}

fn transport(url: &str, e: ureq::Error) -> LoadError {
    match e {
        ureq::Error::Status(status, r) => {
            let body = r.into_string().unwrap_or_default();
            let msg = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.lines().next().unwrap_or("").to_string());
            LoadError::Http {
                url: url.to_string(),
                status,
                body: msg,
            }
        }
        ureq::Error::Transport(t) => LoadError::Unreachable {
            url: url.to_string(),
            why: t
                .to_string()
                .lines()
                .next()
                .unwrap_or("transport error")
                .to_string(),
        },
    }
}

/// The base address without a trailing slash or `/v1`.
pub fn base_url(url: &str) -> Result<String, LoadError> {
    let u = url.trim_end_matches('/');
    let u = u.strip_suffix("/v1").unwrap_or(u);
    if !u.starts_with("http://") {
        return Err(LoadError::Bad(format!(
            "--url {url}: lav load speaks plain http (http://HOST:PORT); reach a TLS endpoint through a local proxy"
        )));
    }
    Ok(u.to_string())
}

/// The first model the server lists (what to send when none is named).
pub fn first_model(url: &str) -> Result<String, LoadError> {
    let models = format!("{url}/v1/models");
    let v: Value = agent(Duration::from_secs(10))
        .get(&models)
        .call()
        .map_err(|e| transport(&models, e))?
        .into_json()
        .map_err(|e| LoadError::Unreachable {
            url: models.clone(),
            why: format!("not JSON: {e}"),
        })?;
    v["data"][0]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| LoadError::NoModel {
            url: url.to_string(),
        })
}

/// About `n` tokens of filler text: common words, one BPE token each in GPT-style
/// vocabularies, drawn from a seeded generator (the server's usage reports the
/// exact count).
pub fn filler(n: usize, seed: u64) -> String {
    const WORDS: [&str; 16] = [
        " the", " time", " of", " day", " and", " a", " small", " model", " is", " on", " this",
        " machine", " with", " its", " own", " cache",
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = String::from("Once");
    for _ in 1..n.max(1) {
        s.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    s
}

/// Sends one streaming completion and times it on `epoch`'s clock.
fn one(
    agent: &ureq::Agent,
    cfg: &LoadConfig,
    r: &Request,
    epoch: Instant,
) -> Result<RequestTimes, LoadError> {
    let url = format!("{}/v1/completions", cfg.url);
    // Fresh filler for every request of every load level: a server's prefix cache
    // (lav's block hashes, llama-server's slot cache) must not turn a level's
    // prefills into cache hits on the previous level's prompts.
    let level = match cfg.load {
        Load::Rate(r) => r.to_bits(),
        Load::Concurrency(c) => c as u64 | 1 << 62,
        Load::Replay => 1 << 63,
    };
    let salt = cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ level.rotate_left(17);
    let prompt = r
        .prompt
        .clone()
        .unwrap_or_else(|| filler(r.prompt_tokens, salt ^ r.id));
    let body = json!({
        "model": cfg.model,
        "prompt": prompt,
        "max_tokens": r.max_tokens,
        "temperature": 0.0,
        "stream": true,
        "stream_options": {"include_usage": true},
        // Exact output lengths, so every server does the same work (vLLM's and
        // lav's extension; servers without it ignore it).
        "ignore_eos": true,
    });
    let mut t = RequestTimes {
        arrival: epoch.elapsed().as_secs_f64(),
        prompt_tokens: r.prompt_tokens,
        ..Default::default()
    };
    let resp = agent
        .post(&url)
        .send_json(body)
        .map_err(|e| transport(&url, e))?;
    let reader = BufReader::new(resp.into_reader());
    for line in reader.lines() {
        let line = line.map_err(|e| LoadError::Unreachable {
            url: url.clone(),
            why: format!("the stream broke: {e}"),
        })?;
        let Some(data) = line.strip_prefix("data:").map(str::trim) else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| LoadError::Bad(format!("{url} sent an event that is not JSON: {e}")))?;
        if let Some(msg) = v["error"]["message"].as_str() {
            return Err(LoadError::Bad(format!("{url} failed mid-stream: {msg}")));
        }
        let now = epoch.elapsed().as_secs_f64();
        if v["choices"][0]["text"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
        {
            t.tokens.push(now);
        }
        if let Some(p) = v["usage"]["prompt_tokens"].as_u64() {
            t.prompt_tokens = p as usize;
        }
    }
    t.finish = Some(epoch.elapsed().as_secs_f64());
    if t.tokens.is_empty() {
        return Err(LoadError::Bad(format!("{url} streamed no text")));
    }
    Ok(t)
}

/// Runs one load level. `progress` sees the fraction of the sending time elapsed
/// and the requests finished so far.
pub fn run(cfg: &LoadConfig, progress: &(dyn Fn(f64, usize) + Sync)) -> Result<Point, LoadError> {
    if cfg.requests.is_empty() {
        return Err(LoadError::Bad("the workload holds no request".into()));
    }
    let agent = agent(cfg.timeout);
    let epoch = Instant::now();
    let results: Mutex<Vec<Result<RequestTimes, LoadError>>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let pick = || {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let mut r = cfg.requests[i % cfg.requests.len()].clone();
        r.id = i as u64;
        r
    };
    let send = |r: &Request| {
        let out = one(&agent, cfg, r, epoch);
        results.lock().expect("results").push(out);
        done.fetch_add(1, Ordering::Relaxed);
    };
    let elapsed = || epoch.elapsed().as_secs_f64();
    let tick = || {
        progress(
            (elapsed() / cfg.duration).min(1.0),
            done.load(Ordering::Relaxed),
        )
    };
    std::thread::scope(|s| {
        if let Load::Concurrency(c) = cfg.load {
            for _ in 0..c.max(1) {
                s.spawn(|| {
                    while elapsed() < cfg.duration {
                        send(&pick());
                    }
                });
            }
        } else {
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            let mut at = 0.0f64;
            for i in 0.. {
                at = match cfg.load {
                    Load::Rate(rate) => {
                        let u: f64 = rng.random();
                        at - (1.0 - u).ln() / rate
                    }
                    // A replay sends the whole recorded set, whatever the duration.
                    _ if i >= cfg.requests.len() => break,
                    _ => cfg.requests[i].arrival,
                };
                if cfg.load != Load::Replay && at >= cfg.duration {
                    break;
                }
                while elapsed() < at {
                    tick();
                    let left = (at - elapsed()).max(0.0);
                    std::thread::sleep(Duration::from_secs_f64(left.min(0.02)));
                }
                let r = pick();
                let send = &send;
                s.spawn(move || send(&r));
            }
        }
        while done.load(Ordering::Relaxed) < next.load(Ordering::Relaxed)
            || (cfg.load != Load::Replay && elapsed() < cfg.duration)
        {
            tick();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    tick();
    let mut times = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for r in results.into_inner().expect("results") {
        match r {
            Ok(t) => times.push(t),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    if times.is_empty() {
        return Err(LoadError::AllFailed(
            first_error.unwrap_or_else(|| "no request was sent".into()),
        ));
    }
    times.sort_by(|a, b| a.arrival.total_cmp(&b.arrival));
    Ok(Point {
        load: cfg.load,
        summary: summarize(&times, cfg.slo),
        errors,
        first_error,
        requests: times,
    })
}

/// The load levels of a saturation sweep up to `top`: concurrency 1, 2, 4, … and
/// `top` itself; rates a quarter, a half, three quarters and all of `top`.
pub fn sweep(top: Load) -> Vec<Load> {
    match top {
        Load::Concurrency(c) => {
            let mut v: Vec<usize> = std::iter::successors(Some(1usize), |x| Some(x * 2))
                .take_while(|&x| x < c)
                .collect();
            v.push(c.max(1));
            v.into_iter().map(Load::Concurrency).collect()
        }
        Load::Rate(r) => [0.25, 0.5, 0.75, 1.0]
            .into_iter()
            .map(|f| Load::Rate(r * f))
            .collect(),
        Load::Replay => vec![Load::Replay],
    }
}
