//! The OpenAI wire format lav serve speaks: requests parsed and checked into a
//! [`Plan`] the engine can run, and errors as `{"error": {...}}` with the status a
//! client expects. Everything a client can get wrong is refused here with a status
//! and a sentence, before the engine sees it.

use lav_engine::sequence::SamplingParams;
use lav_model::{ChatMessage, Tokenizer, chat_prompt, tool_format};
use serde::Deserialize;
use serde_json::{Value, json};

/// An HTTP error with the OpenAI error body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// Seconds to wait before retrying (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }

    /// OpenAI's error type names by status.
    pub fn kind(&self) -> &'static str {
        match self.status {
            400 => "BadRequestError",
            404 => "NotFoundError",
            429 => "RateLimitError",
            503 => "ServiceUnavailableError",
            _ => "InternalServerError",
        }
    }

    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": null,
            "code": self.status,
        }})
    }
}

/// A prompt: one string, or a list holding one string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<String>),
}

/// `stop`: one string or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The fields completions and chat share.
#[derive(Debug, Deserialize)]
struct Common {
    model: String,
    max_tokens: Option<u64>,
    /// The chat API's newer name for `max_tokens`.
    max_completion_tokens: Option<u64>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    n: Option<u64>,
    stop: Option<Stop>,
    #[serde(default)]
    stream: bool,
    stream_options: Option<StreamOptions>,
    /// vLLM's extension: keep generating past the end-of-text token (load tests use
    /// it to get exact output lengths).
    #[serde(default)]
    ignore_eos: bool,
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    prompt: Prompt,
    #[serde(flatten)]
    common: Common,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Option<Content>,
    /// An assistant turn's calls, as the client got them back.
    #[serde(default)]
    tool_calls: Vec<MessageCall>,
}

#[derive(Debug, Deserialize)]
struct MessageCall {
    function: Function,
}

#[derive(Debug, Deserialize)]
struct Function {
    name: String,
    /// OpenAI sends the arguments as a JSON string.
    #[serde(default)]
    arguments: serde_json::Value,
}

/// A tool on offer: `{"type": "function", "function": {name, description, parameters}}`.
#[derive(Debug, Deserialize)]
struct Tool {
    #[serde(rename = "type")]
    kind: String,
    function: ToolFunction,
}

#[derive(Debug, Deserialize)]
struct ToolFunction {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    parameters: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Vec<Message>,
    #[serde(default)]
    tools: Vec<Tool>,
    #[serde(default)]
    tool_choice: Option<serde_json::Value>,
    #[serde(flatten)]
    common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Completion,
    Chat,
}

/// What the server knows when it checks a request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The id `/v1/models` lists; requests must name it.
    pub model_id: String,
    /// Prompt plus output tokens at most (the model's context, or less when the KV
    /// pool cannot hold a whole context).
    pub max_model_len: usize,
    /// Choices per request at most.
    pub max_n: usize,
    /// The system turn the model's chat template adds when a chat has none.
    pub default_system: Option<String>,
    /// Token ids that end a reply unless `ignore_eos`.
    pub stop_tokens: Vec<u32>,
}

/// A checked request, ready for the engine.
#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: Kind,
    pub prompt: Vec<u32>,
    /// One per choice.
    pub params: Vec<SamplingParams>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// Tools were offered: replies that open with `<tool_call>` blocks come back as
    /// `tool_calls` (parsed after generation, as vLLM's tool parsers do; nothing
    /// constrains the sampling).
    pub tools: bool,
}

fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid request body: {e}")))
}

/// `/v1/completions`. `fallback_seed` seeds sampling when the request names no seed.
pub fn completion(
    body: &[u8],
    tok: &Tokenizer,
    lim: &Limits,
    fallback_seed: u64,
) -> Result<Plan, ApiError> {
    let r: CompletionRequest = parse(body)?;
    let text = match r.prompt {
        Prompt::One(s) => s,
        Prompt::Many(mut v) if v.len() == 1 => v.remove(0),
        Prompt::Many(v) => {
            return Err(ApiError::bad(format!(
                "lav serve takes one prompt per request, got {}: send them as separate requests (they are batched anyway)",
                v.len()
            )));
        }
    };
    // OpenAI's completions endpoint defaults to 16 tokens.
    plan(
        Kind::Completion,
        &text,
        r.common,
        16,
        tok,
        lim,
        fallback_seed,
    )
}

/// `/v1/chat/completions`: the messages through the model's chat template.
pub fn chat(
    body: &[u8],
    tok: &Tokenizer,
    lim: &Limits,
    fallback_seed: u64,
) -> Result<Plan, ApiError> {
    let r: ChatRequest = parse(body)?;
    if r.messages.is_empty() {
        return Err(ApiError::bad(
            "`messages` is empty: send at least one message",
        ));
    }
    let tools = offered_tools(&r)?;
    let mut msgs = Vec::new();
    for (i, m) in r.messages.iter().enumerate() {
        if !matches!(
            m.role.as_str(),
            "system" | "user" | "assistant" | "developer" | "tool"
        ) {
            return Err(ApiError::bad(format!(
                "messages[{i}].role `{}` is not one of system, developer, user, assistant, tool",
                m.role
            )));
        }
        let text = match &m.content {
            None => String::new(),
            Some(Content::Text(t)) => t.clone(),
            Some(Content::Parts(parts)) => {
                let mut t = String::new();
                for p in parts {
                    if p.kind != "text" {
                        return Err(ApiError::bad(format!(
                            "messages[{i}] has a `{}` part; SmolLM2 reads text only",
                            p.kind
                        )));
                    }
                    t.push_str(&p.text);
                }
                t
            }
        };
        let role = if m.role == "developer" {
            "system"
        } else {
            &m.role
        };
        // Calls and results in the format the model writes and reads them.
        let mut text = if role == "tool" {
            tool_format::tool_response(&text)
        } else {
            text
        };
        for (j, c) in m.tool_calls.iter().enumerate() {
            let args = match &c.function.arguments {
                serde_json::Value::String(s) => serde_json::from_str(s).map_err(|e| {
                    ApiError::bad(format!(
                        "messages[{i}].tool_calls[{j}].function.arguments is not JSON: {e}"
                    ))
                })?,
                v => v.clone(),
            };
            if !text.is_empty() {
                text.push('\n');
            }
            let schema = r
                .tools
                .iter()
                .find(|t| t.function.name == c.function.name)
                .map(|t| &t.function.parameters)
                .unwrap_or(&serde_json::Value::Null);
            text.push_str(&tool_format::call_block(&c.function.name, &args, schema));
        }
        msgs.push(ChatMessage::new(role, &text));
    }
    if msgs[0].role != "system"
        && let Some(s) = &lim.default_system
    {
        msgs.insert(0, ChatMessage::new("system", s));
    }
    if !tools.is_empty() {
        // The tool list goes into the system turn, after what the client said there.
        let sys = msgs.iter_mut().find(|m| m.role == "system");
        let list: String = tools.iter().map(String::as_str).collect();
        match sys {
            Some(m) => m.content = format!("{}\n\n{}{list}", m.content, tool_format::TOOLS_HEADER),
            None => msgs.insert(
                0,
                ChatMessage::new("system", &format!("{}{list}", tool_format::TOOLS_HEADER)),
            ),
        }
    }
    let text = chat_prompt(&msgs, true);
    let default = usize::MAX;
    let mut p = plan(
        Kind::Chat,
        &text,
        r.common,
        default,
        tok,
        lim,
        fallback_seed,
    )?;
    if !tools.is_empty() && p.stream {
        return Err(ApiError::bad(
            "lav serve returns tool calls only whole: send the tools without `stream`",
        ));
    }
    p.tools = !tools.is_empty();
    Ok(p)
}

/// The tool list's lines, or none when `tool_choice` is `none`. Only `auto` and
/// `none` are served: `required` and a named function need constrained decoding,
/// which lav serve does not do (the local agent does, under its grammar).
fn offered_tools(r: &ChatRequest) -> Result<Vec<String>, ApiError> {
    match &r.tool_choice {
        None => {}
        Some(serde_json::Value::String(s)) if s == "auto" => {}
        Some(serde_json::Value::String(s)) if s == "none" => return Ok(Vec::new()),
        Some(other) => {
            return Err(ApiError::bad(format!(
                "tool_choice {other} needs constrained decoding, which lav serve does not do: send \"auto\" or \"none\" (or drive the local agent, `lav agent`, which constrains calls with its grammar)"
            )));
        }
    }
    r.tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.kind != "function" {
                return Err(ApiError::bad(format!(
                    "tools[{i}].type is `{}`; lav serve offers `function` tools only",
                    t.kind
                )));
            }
            let f = &t.function;
            Ok(tool_format::tool_line(
                &f.name,
                &f.description,
                &tool_format::signature_with_formats(&f.parameters),
            ))
        })
        .collect()
}

fn plan(
    kind: Kind,
    text: &str,
    c: Common,
    default_max: usize,
    tok: &Tokenizer,
    lim: &Limits,
    fallback_seed: u64,
) -> Result<Plan, ApiError> {
    if c.model != lim.model_id {
        return Err(ApiError::new(
            404,
            format!(
                "model `{}` does not exist here: this server serves `{}` (see /v1/models)",
                c.model, lim.model_id
            ),
        ));
    }
    let prompt = tok
        .encode(text)
        .map_err(|e| ApiError::bad(format!("cannot tokenize the prompt: {e}")))?;
    if prompt.is_empty() {
        return Err(ApiError::bad("the prompt is empty: send some text"));
    }
    let room = lim.max_model_len.saturating_sub(prompt.len());
    if room == 0 {
        return Err(ApiError::bad(format!(
            "the prompt is {} tokens, and this server's context holds {} in all: shorten it",
            prompt.len(),
            lim.max_model_len
        )));
    }
    let max_tokens = match c.max_completion_tokens.or(c.max_tokens) {
        None => default_max.min(room),
        Some(0) => return Err(ApiError::bad("`max_tokens` must be at least 1")),
        Some(m) if m > room as u64 => {
            return Err(ApiError::bad(format!(
                "`max_tokens` is {m}, but the prompt is {} tokens and the context holds {}: at most {room} fit",
                prompt.len(),
                lim.max_model_len
            )));
        }
        Some(m) => m as usize,
    };
    let n = c.n.unwrap_or(1);
    if n == 0 || n > lim.max_n as u64 {
        return Err(ApiError::bad(format!(
            "`n` must be between 1 and {}, got {n}",
            lim.max_n
        )));
    }
    let temperature = c.temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::bad(format!(
            "`temperature` must be between 0 and 2, got {temperature}"
        )));
    }
    let top_p = c.top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::bad(format!(
            "`top_p` must be above 0 and at most 1, got {top_p}"
        )));
    }
    let stop = match c.stop {
        None => Vec::new(),
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    if stop.len() > 4 {
        return Err(ApiError::bad(format!(
            "`stop` holds {} strings; at most 4",
            stop.len()
        )));
    }
    let seed = c.seed.unwrap_or(fallback_seed);
    let params = (0..n)
        .map(|i| SamplingParams {
            temperature,
            top_p,
            // Choices differ by seed, so `n` samples are `n` different draws.
            seed: seed.wrapping_add(i),
            max_tokens,
            stop_tokens: if c.ignore_eos {
                Vec::new()
            } else {
                lim.stop_tokens.clone()
            },
        })
        .collect();
    Ok(Plan {
        kind,
        prompt,
        params,
        stop,
        stream: c.stream,
        include_usage: c.stream_options.unwrap_or_default().include_usage,
        tools: false,
    })
}
