//! The routes, and how a running request becomes a JSON reply or an SSE stream.

use crate::api::{self, ApiError, Kind, Limits, Plan};
use crate::engine::{EngineHandle, Event};
use crate::text::ChoiceText;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lav_engine::block_manager::SeqId;
use lav_engine::sequence::Finish;
use lav_model::Tokenizer;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::mpsc as tmpsc;

/// What every handler shares.
pub struct AppState {
    pub engine: EngineHandle,
    pub tok: Arc<Tokenizer>,
    pub limits: Limits,
    /// Sequences admitted and not yet done, and how many may be (running slots plus
    /// the waiting queue): past it a request gets 429.
    pub in_flight: AtomicUsize,
    pub max_in_flight: usize,
    pub requests: AtomicU64,
    pub created: u64,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(
                404,
                "no such endpoint: lav serve has /v1/models, /v1/completions, /v1/chat/completions, /health and /metrics",
            )
        })
        .with_state(state)
}

async fn models(State(s): State<Arc<AppState>>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": s.limits.model_id,
            "object": "model",
            "created": s.created,
            "owned_by": "lav",
            "max_model_len": s.limits.max_model_len,
        }],
    }))
    .into_response()
}

async fn metrics(State(s): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let text = s
        .engine
        .metrics()
        .await
        .map_err(|e| ApiError::new(503, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn completions(State(s): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let seed = s.requests.fetch_add(1, Ordering::Relaxed) ^ s.created;
    let plan = api::completion(&body, &s.tok, &s.limits, seed)?;
    serve(s, plan).await
}

async fn chat(State(s): State<Arc<AppState>>, body: Bytes) -> Result<Response, ApiError> {
    let seed = s.requests.fetch_add(1, Ordering::Relaxed) ^ s.created;
    let plan = api::chat(&body, &s.tok, &s.limits, seed)?;
    serve(s, plan).await
}

/// Holds a request's places in the in-flight count until it is dropped.
struct Admission {
    state: Arc<AppState>,
    n: usize,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(self.n, Ordering::AcqRel);
    }
}

fn admit(state: &Arc<AppState>, n: usize) -> Result<Admission, ApiError> {
    let prev = state.in_flight.fetch_add(n, Ordering::AcqRel);
    let a = Admission {
        state: state.clone(),
        n,
    };
    if prev + n > state.max_in_flight {
        return Err(ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                429,
                format!(
                    "the queue is full ({} sequences in flight, {} at most): retry later",
                    prev, state.max_in_flight
                ),
            )
        });
    }
    Ok(a)
}

async fn serve(state: Arc<AppState>, plan: Plan) -> Result<Response, ApiError> {
    let admission = admit(&state, plan.params.len())?;
    let (tx, rx) = tmpsc::unbounded_channel();
    let ids = state
        .engine
        .submit(plan.prompt.clone(), plan.params.clone(), tx)
        .await
        .map_err(|e| ApiError::new(503, e.to_string()))?
        .map_err(ApiError::bad)?;
    let n = ids.len();
    let run = Run {
        id: format!(
            "{}-{}",
            if plan.kind == Kind::Chat {
                "chatcmpl"
            } else {
                "cmpl"
            },
            ids[0]
        ),
        texts: (0..n).map(|_| ChoiceText::new(&plan.stop)).collect(),
        finish: vec![None; n],
        tokens: vec![0; n],
        cached: 0,
        rx,
        ids,
        state: state.clone(),
        plan,
        _admission: admission,
    };
    if run.plan.stream {
        Ok(stream(run).into_response())
    } else {
        whole(run).await
    }
}

/// One request's choices as they run. Dropping it before every choice has finished
/// (the client went away mid-stream) cancels the rest, so their blocks go back to
/// the pool at once.
struct Run {
    id: String,
    texts: Vec<ChoiceText>,
    finish: Vec<Option<&'static str>>,
    tokens: Vec<usize>,
    /// The prompt tokens the engine's prefix cache held for the first choice (the
    /// prompt is counted once for all choices, so are its cached tokens).
    cached: usize,
    rx: tmpsc::UnboundedReceiver<Event>,
    ids: Vec<SeqId>,
    state: Arc<AppState>,
    plan: Plan,
    _admission: Admission,
}

impl Drop for Run {
    fn drop(&mut self) {
        let open: Vec<SeqId> = self
            .ids
            .iter()
            .zip(&self.finish)
            .filter(|(_, f)| f.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !open.is_empty() {
            self.state.engine.abort(open);
        }
    }
}

/// What a request's next event means for the client.
enum Out {
    Text(usize, String),
    Finished(usize, &'static str),
    Failed(String),
}

impl Run {
    fn done(&self) -> bool {
        self.finish.iter().all(Option::is_some)
    }

    /// The next things to tell the client; empty when all choices have finished.
    async fn next(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        while out.is_empty() && !self.done() {
            let Some(ev) = self.rx.recv().await else {
                out.push(Out::Failed("the engine has stopped".into()));
                self.finish
                    .iter_mut()
                    .for_each(|f| *f = f.or(Some("abort")));
                break;
            };
            match ev {
                Event::Started { index: 0, cached } => self.cached = cached,
                Event::Token { index, token } if self.finish[index].is_none() => {
                    self.tokens[index] += 1;
                    let t = &mut self.texts[index];
                    let piece = t.push(&self.state.tok, token);
                    if !piece.is_empty() {
                        out.push(Out::Text(index, piece));
                    }
                    if t.stopped() {
                        self.finish[index] = Some("stop");
                        self.state.engine.finish(vec![self.ids[index]]);
                        out.push(Out::Finished(index, "stop"));
                    }
                }
                Event::Done { index, finish } if self.finish[index].is_none() => {
                    let rest = self.texts[index].finish();
                    if !rest.is_empty() {
                        out.push(Out::Text(index, rest));
                    }
                    let reason = match finish {
                        Finish::Stop => "stop",
                        Finish::Length => "length",
                        Finish::Aborted => "abort",
                    };
                    self.finish[index] = Some(reason);
                    out.push(Out::Finished(index, reason));
                }
                Event::Failed(msg) => {
                    self.finish
                        .iter_mut()
                        .for_each(|f| *f = f.or(Some("abort")));
                    out.push(Out::Failed(msg));
                }
                // Tokens of a choice that a stop string already ended.
                _ => {}
            }
        }
        out
    }

    fn usage(&self) -> Value {
        let completion: usize = self.tokens.iter().sum();
        json!({
            "prompt_tokens": self.plan.prompt.len(),
            "completion_tokens": completion,
            "total_tokens": self.plan.prompt.len() + completion,
            "prompt_tokens_details": {"cached_tokens": self.cached},
        })
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.plan.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.state.created,
            "model": self.state.limits.model_id,
            "choices": choices,
        })
    }
}

/// A chat reply's message: with tools on offer, `<tool_call>` blocks at its start
/// become `tool_calls` (finish reason `tool_calls`); a malformed block stays text,
/// so the client sees what the model wrote.
fn chat_message(
    text: &str,
    reason: Option<&'static str>,
    tools: bool,
    choice: usize,
) -> (Value, Option<&'static str>) {
    let calls = if tools {
        lav_model::tool_format::parse_calls(text).unwrap_or_default()
    } else {
        Vec::new()
    };
    if calls.is_empty() {
        return (json!({"role": "assistant", "content": text}), reason);
    }
    let calls: Vec<Value> = calls
        .into_iter()
        .enumerate()
        .map(|(j, (name, args))| {
            json!({"id": format!("call_{choice}_{j}"), "type": "function",
                "function": {"name": name, "arguments": args.to_string()}})
        })
        .collect();
    (
        json!({"role": "assistant", "content": null, "tool_calls": calls}),
        Some("tool_calls"),
    )
}

/// The whole reply at once.
async fn whole(mut run: Run) -> Result<Response, ApiError> {
    let mut texts = vec![String::new(); run.ids.len()];
    loop {
        let outs = run.next().await;
        if outs.is_empty() {
            break;
        }
        for o in outs {
            match o {
                Out::Text(i, t) => texts[i].push_str(&t),
                Out::Finished(..) => {}
                Out::Failed(msg) => return Err(ApiError::new(500, msg)),
            }
        }
    }
    let choices = texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let reason = run.finish[i];
            match run.plan.kind {
                Kind::Chat => {
                    let (message, reason) = chat_message(&text, reason, run.plan.tools, i);
                    json!({
                        "index": i,
                        "message": message,
                        "finish_reason": reason,
                        "logprobs": null,
                    })
                }
                Kind::Completion => json!({
                    "index": i,
                    "text": text,
                    "finish_reason": reason,
                    "logprobs": null,
                }),
            }
        })
        .collect();
    let mut body = run.envelope(false, choices);
    body["usage"] = run.usage();
    Ok(axum::Json(body).into_response())
}

/// The reply as server-sent events, one chunk per piece of text, ending in
/// `data: [DONE]` as OpenAI's stream does.
fn stream(run: Run) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let mut first: VecDeque<String> = VecDeque::new();
    if run.plan.kind == Kind::Chat {
        // Chat streams open each choice with the role.
        for i in 0..run.ids.len() {
            first.push_back(
                run.envelope(
                    true,
                    vec![json!({"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})],
                )
                .to_string(),
            );
        }
    }
    let state = (run, first, false);
    let events = futures_util::stream::unfold(state, |(mut run, mut queue, ended)| async move {
        loop {
            if let Some(data) = queue.pop_front() {
                return Some((Ok(SseEvent::default().data(data)), (run, queue, ended)));
            }
            if ended {
                return None;
            }
            let outs = run.next().await;
            if outs.is_empty() {
                if run.plan.include_usage {
                    let mut u = run.envelope(true, Vec::new());
                    u["usage"] = run.usage();
                    queue.push_back(u.to_string());
                }
                queue.push_back("[DONE]".into());
                return queue
                    .pop_front()
                    .map(|d| (Ok(SseEvent::default().data(d)), (run, queue, true)));
            }
            for o in outs {
                let choice = |i: usize, text: Option<&str>, reason: Option<&str>| match run
                    .plan
                    .kind
                {
                    Kind::Chat => {
                        let delta = text.map_or(json!({}), |t| json!({"content": t}));
                        json!({"index": i, "delta": delta, "logprobs": null, "finish_reason": reason})
                    }
                    Kind::Completion => {
                        json!({"index": i, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": reason})
                    }
                };
                match o {
                    Out::Text(i, t) => queue.push_back(
                        run.envelope(true, vec![choice(i, Some(&t), None)])
                            .to_string(),
                    ),
                    Out::Finished(i, r) => queue.push_back(
                        run.envelope(true, vec![choice(i, None, Some(r))])
                            .to_string(),
                    ),
                    Out::Failed(msg) => {
                        queue.push_back(ApiError::new(500, msg).body().to_string());
                    }
                }
            }
        }
    });
    Sse::new(events)
}
