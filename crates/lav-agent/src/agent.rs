//! The loop, its state and its stop conditions.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use thiserror::Error;

pub use lav_agent_types::{
    Message, Reply, Role, ToolCall, ToolResult, ToolSpec, Toolbox, Tools, Usage,
};

#[derive(Debug, Error)]
pub enum AgentError {
    #[error("the language model failed: {0}")]
    Llm(String),
    #[error("cannot record the run to {path}: {reason}")]
    Record { path: String, reason: String },
    #[error("cannot replay {path}: {reason}")]
    Replay { path: String, reason: String },
    /// The context manager could not fit the view in the window (the loop stops
    /// with [`Stop::ContextFull`]).
    #[error(
        "the context needs {needed} tokens but the window leaves {limit} for the prompt ({over} over): turn on compaction, memory notes or sub-agents"
    )]
    ContextFull {
        needed: usize,
        limit: usize,
        over: usize,
    },
}

pub type Result<T> = std::result::Result<T, AgentError>;

/// A language model backend: the local model with constrained decoding, an
/// OpenAI-compatible endpoint, or a scripted policy.
pub trait Llm {
    /// Its name, for the record and for telemetry (`chat <model>`).
    fn name(&self) -> String;
    /// Who serves it, for telemetry's `gen_ai.provider.name` ("lav" for the local
    /// model and scripted policies, "openai" for an OpenAI-compatible endpoint).
    fn provider(&self) -> &'static str {
        "lav"
    }
    fn next(&mut self, state: &State, tools: &[ToolSpec]) -> Result<Reply>;
}

/// Everything the agent knows, serializable so a lab can show it mutate tick by tick
/// and a run can be saved and resumed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub transcript: Vec<Message>,
    /// State outside the conversation (a plan, a scratchpad, counters) that tools
    /// and labs may read and write.
    pub external: serde_json::Value,
    pub ticks: usize,
    pub usage: Usage,
}

impl State {
    pub fn new(system: &str, user: &str) -> State {
        State {
            transcript: vec![
                Message::new(Role::System, system),
                Message::new(Role::User, user),
            ],
            external: serde_json::Value::Null,
            ticks: 0,
            usage: Usage::default(),
        }
    }

    pub fn tokens(&self) -> u64 {
        self.usage.input_tokens + self.usage.output_tokens
    }
}

/// When a run must stop even if the model would go on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub max_ticks: usize,
    /// Input plus output tokens over the whole run.
    pub token_budget: u64,
    #[serde(with = "opt_secs")]
    pub deadline: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ticks: 8,
            token_budget: 20_000,
            deadline: None,
        }
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(Duration::from_secs_f64))
    }
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    EndOfTurn,
    StepCap,
    TokenBudget,
    Deadline,
    /// The same call came back with the same error on two ticks in a row (or the same
    /// success on three): the model is stuck, and more ticks would only repeat it.
    Repeating,
    /// The context no longer fits the model's window (see `context::Managed`).
    ContextFull,
}

impl Stop {
    /// What stopped the run, in words.
    pub fn describe(&self) -> &'static str {
        match self {
            Stop::EndOfTurn => "end of turn: the model answered",
            Stop::StepCap => "the step cap",
            Stop::TokenBudget => "the token budget",
            Stop::Deadline => "the deadline",
            Stop::ContextFull => "a full context: the prompt no longer fits the model's window",
            Stop::Repeating => {
                "a loop: the same call failed the same way twice in a row (or got the same result three times)"
            }
        }
    }
}

/// A finished run: the final state, why it stopped, and the answer if there was one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub state: State,
    pub stop: Stop,
    pub answer: Option<String>,
}

/// Observes a run as it happens (the recorder, telemetry, a lab's live view).
pub trait Observer {
    fn reply(&mut self, _tick: usize, _model: &str, _reply: &Reply, _seconds: f64) {}
    fn tool(&mut self, _tick: usize, _call: &ToolCall, _result: &ToolResult, _seconds: f64) {}
    /// The state once a tick is complete (its reply and every tool result applied):
    /// what a live view steps through.
    fn tick_end(&mut self, _state: &State) {}
    fn stop(&mut self, _run: &Run) {}
}

impl Observer for () {}

/// Runs the loop from `state` until a stop condition holds.
pub fn run(
    llm: &mut dyn Llm,
    tools: &mut dyn Tools,
    mut state: State,
    limits: Limits,
    observer: &mut dyn Observer,
) -> Result<Run> {
    let start = Instant::now();
    let specs = tools.list();
    let model = llm.name();
    let finish = |state: State, stop, answer, observer: &mut dyn Observer| {
        let r = Run {
            state,
            stop,
            answer,
        };
        observer.stop(&r);
        Ok(r)
    };
    // One `invoke_agent` span per run; inside it a `chat <model>` span per model call
    // and an `execute_tool <name>` span per tool call (OpenTelemetry's GenAI
    // conventions). Without a subscriber these cost almost nothing.
    let agent = tracing::info_span!(
        "invoke_agent",
        otel.name = "invoke_agent",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.provider.name = llm.provider(),
        gen_ai.request.model = model.as_str(),
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        lav.ticks = tracing::field::Empty,
        lav.stop = tracing::field::Empty,
    );
    // OpenTelemetry integers are signed 64-bit: tracing-opentelemetry would send a
    // u64 as a string, so counts are recorded as i64.
    let _in_agent = agent.enter();
    let out = run_ticks(
        llm, tools, &mut state, limits, observer, &specs, &model, start,
    );
    agent.record("gen_ai.usage.input_tokens", state.usage.input_tokens as i64);
    agent.record(
        "gen_ai.usage.output_tokens",
        state.usage.output_tokens as i64,
    );
    agent.record("lav.ticks", state.ticks as i64);
    let (stop, answer) = out?;
    agent.record("lav.stop", format!("{stop:?}").as_str());
    finish(state, stop, answer, observer)
}

#[allow(clippy::too_many_arguments)]
fn run_ticks(
    llm: &mut dyn Llm,
    tools: &mut dyn Tools,
    state: &mut State,
    limits: Limits,
    observer: &mut dyn Observer,
    specs: &[ToolSpec],
    model: &str,
    start: Instant,
) -> Result<(Stop, Option<String>)> {
    // The previous tick's calls, as (assistant message, call, result message)
    // positions in the transcript (no copies), and for how many ticks in a row each
    // has come back the same.
    let mut before: Vec<(usize, usize, usize, usize)> = Vec::new();
    loop {
        if state.ticks >= limits.max_ticks {
            return Ok((Stop::StepCap, None));
        }
        if state.tokens() >= limits.token_budget {
            return Ok((Stop::TokenBudget, None));
        }
        if limits.deadline.is_some_and(|d| start.elapsed() >= d) {
            return Ok((Stop::Deadline, None));
        }
        state.ticks += 1;
        let tick = state.ticks;
        let t = Instant::now();
        let chat = tracing::info_span!(
            "chat",
            otel.name = format!("chat {model}"),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.provider.name = llm.provider(),
            gen_ai.request.model = model,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            lav.tick = tick as i64,
        );
        let reply = chat.in_scope(|| llm.next(state, specs));
        let reply = match reply {
            Ok(r) => r,
            Err(e @ AgentError::ContextFull { .. }) => {
                // Not a failure of the model: the harness declined to send a prompt
                // that cannot fit, and says so on the trace.
                chat.record("otel.status_code", "error");
                tracing::warn!(parent: &chat, "{e}");
                return Ok((Stop::ContextFull, None));
            }
            Err(e) => {
                chat.record("otel.status_code", "error");
                return Err(e);
            }
        };
        let u = reply.usage();
        chat.record("gen_ai.usage.input_tokens", u.input_tokens as i64);
        chat.record("gen_ai.usage.output_tokens", u.output_tokens as i64);
        chat.record(
            "gen_ai.response.finish_reasons",
            match &reply {
                Reply::Final { .. } => "stop",
                Reply::Calls { .. } => "tool_calls",
            },
        );
        drop(chat);
        observer.reply(tick, model, &reply, t.elapsed().as_secs_f64());
        state.usage.input_tokens += u.input_tokens;
        state.usage.output_tokens += u.output_tokens;
        if let Some(c) = u.cached_tokens {
            *state.usage.cached_tokens.get_or_insert(0) += c;
        }
        match reply {
            Reply::Final { text, .. } => {
                state
                    .transcript
                    .push(Message::new(Role::Assistant, text.clone()));
                observer.tick_end(state);
                return Ok((Stop::EndOfTurn, Some(text)));
            }
            Reply::Calls { text, calls, .. } => {
                let mut m = Message::new(Role::Assistant, text);
                m.tool_calls = calls.clone();
                state.transcript.push(m);
                let asked = state.transcript.len() - 1;
                let mut now = Vec::new();
                let mut repeated = None;
                for (j, call) in calls.iter().enumerate() {
                    let t = Instant::now();
                    let span = tracing::info_span!(
                        "execute_tool",
                        otel.name = format!("execute_tool {}", call.name),
                        gen_ai.operation.name = "execute_tool",
                        gen_ai.tool.name = call.name.as_str(),
                        gen_ai.tool.call.id = call.id.as_str(),
                        gen_ai.tool.type = "function",
                        "error.type" = tracing::field::Empty,
                        otel.status_code = tracing::field::Empty,
                        lav.tick = tick as i64,
                    );
                    let result = span.in_scope(|| tools.call(call));
                    if result.is_error {
                        // The model sees the error and may correct itself; the trace
                        // marks the span so a dashboard can count tool failures.
                        span.record("error.type", "tool_error");
                        span.record("otel.status_code", "error");
                    }
                    drop(span);
                    observer.tool(tick, call, &result, t.elapsed().as_secs_f64());
                    let t = &state.transcript;
                    let streak = 1 + before
                        .iter()
                        .find(|&&(a, c, r, _)| {
                            let old = &t[a].tool_calls[c];
                            old.name == call.name
                                && old.arguments == call.arguments
                                && t[r].content == result.content
                        })
                        .map_or(0, |&(.., n)| n);
                    // The same error twice is a loop; a success may be repeated once
                    // on purpose (reading a page again), not twice.
                    let limit = if result.is_error { 2 } else { 3 };
                    if streak >= limit && repeated.is_none() {
                        repeated = Some(call.clone());
                    }
                    now.push((asked, j, state.transcript.len(), streak));
                    let mut m = Message::new(Role::Tool, result.content.clone());
                    m.tool_call_id = Some(call.id.clone());
                    m.is_error = result.is_error;
                    state.transcript.push(m);
                }
                observer.tick_end(state);
                if let Some(call) = repeated {
                    // The trace says which call looped, on the run's span.
                    tracing::warn!(
                        lav.repeated_tool = call.name.as_str(),
                        lav.repeated_arguments = call.arguments.to_string().as_str(),
                        "{} got the same result for the same arguments on consecutive ticks",
                        call.name
                    );
                    return Ok((Stop::Repeating, None));
                }
                before = now;
            }
        }
    }
}
