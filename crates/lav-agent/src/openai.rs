//! Any OpenAI-compatible chat endpoint (`--llm-url`, `--llm-model`): llama.cpp's
//! server, vLLM, Ollama, or a hosted API. One `POST {url}/chat/completions` per tick,
//! with the tools as functions; the reply's tool calls become [`ToolCall`]s. Arguments
//! that are not valid JSON are passed on as a string, so the tool answers with an
//! error result instead of the run failing.

use crate::agent::{
    AgentError, Llm, Message, Reply, Result, Role, State, ToolCall, ToolSpec, Usage,
};
use serde_json::{Value, json};
use std::time::Duration;

pub struct OpenAiCompatible {
    /// Base URL, e.g. `http://localhost:8080/v1`.
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
    /// Sent when set; otherwise the endpoint's default (1.0 for OpenAI's API).
    pub temperature: Option<f32>,
    pub seed: Option<u64>,
    /// A cap on each reply, sent when set (a small model left uncapped can ramble to
    /// the end of its context).
    pub max_tokens: Option<u64>,
}

impl OpenAiCompatible {
    pub fn new(url: &str, model: &str) -> Self {
        OpenAiCompatible {
            url: url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            api_key: std::env::var("OPENAI_API_KEY").ok(),
            timeout: Duration::from_secs(120),
            temperature: None,
            seed: None,
            max_tokens: None,
        }
    }

    /// The request body for `state` and `tools`, as the API expects it.
    pub fn body(&self, state: &State, tools: &[ToolSpec]) -> Value {
        let messages: Vec<Value> = state.transcript.iter().map(message).collect();
        let mut body = json!({"model": self.model, "messages": messages});
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(s) = self.seed {
            body["seed"] = json!(s);
        }
        if let Some(m) = self.max_tokens {
            body["max_tokens"] = json!(m);
        }
        if !tools.is_empty() {
            body["tools"] = tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.input_schema}})
                })
                .collect();
        }
        body
    }
}

fn message(m: &Message) -> Value {
    match m.role {
        Role::Tool => json!({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}),
        Role::Assistant if !m.tool_calls.is_empty() => json!({
            "role": "assistant",
            "content": m.content,
            "tool_calls": m.tool_calls.iter().map(|c| json!({
                "id": c.id, "type": "function",
                "function": {"name": c.name, "arguments": c.arguments.to_string()}
            })).collect::<Vec<_>>()
        }),
        role => json!({"role": role, "content": m.content}),
    }
}

/// Reads one chat-completions response into a [`Reply`].
pub fn parse_reply(v: &Value) -> Result<Reply> {
    let bad = |what: &str| AgentError::Llm(format!("the endpoint's reply has no {what}"));
    let msg = v
        .pointer("/choices/0/message")
        .ok_or_else(|| bad("choices[0].message"))?;
    let text = msg
        .get("content")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let usage = Usage {
        input_tokens: v
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        output_tokens: v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        // OpenAI's field, also filled by vLLM and SGLang with prefix caching on.
        cached_tokens: v
            .pointer("/usage/prompt_tokens_details/cached_tokens")
            .and_then(Value::as_u64),
    };
    let calls: Vec<ToolCall> = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, c)| {
                    let raw = c.pointer("/function/arguments");
                    let arguments = match raw {
                        Some(Value::String(s)) => {
                            serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                        }
                        Some(other) => other.clone(),
                        None => Value::Null,
                    };
                    ToolCall {
                        id: c
                            .get("id")
                            .and_then(Value::as_str)
                            .map_or_else(|| format!("call_{i}"), str::to_string),
                        name: c
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                        arguments,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(if calls.is_empty() {
        Reply::Final { text, usage }
    } else {
        Reply::Calls { text, calls, usage }
    })
}

impl Llm for OpenAiCompatible {
    fn name(&self) -> String {
        self.model.clone()
    }

    fn provider(&self) -> &'static str {
        "openai"
    }

    fn next(&mut self, state: &State, tools: &[ToolSpec]) -> Result<Reply> {
        let url = format!("{}/chat/completions", self.url);
        let mut req = ureq::post(&url).timeout(self.timeout);
        if let Some(k) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let resp = req
            .send_json(self.body(state, tools))
            .map_err(|e| match e {
                ureq::Error::Status(code, r) => {
                    let body = r.into_string().unwrap_or_default();
                    let first = body
                        .lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(200)
                        .collect::<String>();
                    AgentError::Llm(format!("{url} answered HTTP {code}: {first}"))
                }
                ureq::Error::Transport(t) => AgentError::Llm(format!(
                    "cannot reach {url} ({}): is the server running? check --llm-url",
                    t.to_string().lines().next().unwrap_or("transport error")
                )),
            })?;
        let v: Value = resp
            .into_json()
            .map_err(|e| AgentError::Llm(format!("{url} did not answer JSON: {e}")))?;
        parse_reply(&v)
    }
}
