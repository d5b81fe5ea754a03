//! `lav-agent-types`: what an agent, its tools and its model say to one another:
//! messages, tool specs, calls and results, token usage, the model's reply, and the
//! [`Tools`] trait. The loop (`lav-agent`), the tools (`lav-tools`), MCP (`lav-mcp`),
//! the grammar (`lav-grammar`) and the local model (`lav-local`) all speak these.
//!
//! A leaf crate: depends on serde and serde_json only, so a tool set or a protocol
//! adapter never pulls in the loop, the model or an HTTP client.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One tool invocation the model asked for. `arguments` is whatever the model wrote;
/// the tool checks it and answers with an error result if it is malformed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: serde_json::Value,
}

/// What a tool returned. An error is a result the model sees, not a crash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub content: String,
    pub is_error: bool,
}

impl ToolResult {
    /// A tool's outcome as the model sees it: `Err` becomes an `is_error` result.
    pub fn from_result(r: std::result::Result<String, String>) -> ToolResult {
        match r {
            Ok(content) => ToolResult {
                content,
                is_error: false,
            },
            Err(content) => ToolResult {
                content,
                is_error: true,
            },
        }
    }

    pub fn error(content: impl Into<String>) -> ToolResult {
        ToolResult::from_result(Err(content.into()))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            is_error: false,
        }
    }
}

/// A tool as the model is told about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub input_schema: serde_json::Value,
}

/// Tokens one model call read and wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of the input, tokens the backend served from its prefix cache (KV kept from
    /// an earlier request), as the backend reports it; `None` where it reports
    /// nothing (a scripted policy, an endpoint without the figure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
}

/// The model's move for one tick.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// A final answer: the turn ends.
    Final { text: String, usage: Usage },
    /// Tools to call (several may run in the same tick), with any text said alongside.
    Calls {
        text: String,
        calls: Vec<ToolCall>,
        usage: Usage,
    },
}

impl Reply {
    pub fn usage(&self) -> Usage {
        match self {
            Reply::Final { usage, .. } | Reply::Calls { usage, .. } => *usage,
        }
    }
}

/// The tools the agent holds.
pub trait Tools {
    fn list(&self) -> Vec<ToolSpec>;
    fn call(&mut self, call: &ToolCall) -> ToolResult;
}

/// Several tool sets held at once: `list` joins them, `call` routes by name.
#[derive(Default)]
pub struct Toolbox {
    pub sets: Vec<Box<dyn Tools + Send>>,
}

impl Toolbox {
    pub fn with(mut self, t: impl Tools + Send + 'static) -> Self {
        self.sets.push(Box::new(t));
        self
    }
}

impl Tools for Toolbox {
    fn list(&self) -> Vec<ToolSpec> {
        self.sets.iter().flat_map(|t| t.list()).collect()
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        for t in &mut self.sets {
            if t.list().iter().any(|s| s.name == call.name) {
                return t.call(call);
            }
        }
        let names: Vec<String> = self.list().into_iter().map(|s| s.name).collect();
        ToolResult {
            content: format!("no tool named {}; tools: {}", call.name, names.join(", ")),
            is_error: true,
        }
    }
}
