//! `lav-mcp`: the Model Context Protocol side of lav's agents, through rmcp.
//!
//! [`Server`] exposes any [`lav_agent_types::Tools`] as an MCP server over stdio or
//! streamable HTTP; [`Client`] connects to an MCP server (a child process over stdio,
//! a URL over streamable HTTP, or a server in the same process) and is itself a
//! [`lav_agent_types::Tools`], so the agent loop holds remote tools exactly like local ones.
//! The loop and the tools stay synchronous; this crate owns the tokio runtime MCP
//! needs and blocks on it at the boundary.
//!
//! May depend on `lav-agent` (the tool types), rmcp, tokio and hyper; never on the
//! model runtime, the labs or a renderer.

mod client;
mod server;

pub use client::Client;
pub use server::{Server, serve_http, serve_stdio};

/// A failure to reach or start an MCP peer. Tool failures are not errors: they come
/// back as `is_error` results the model sees.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("cannot start the MCP runtime: {0}")]
    Runtime(String),
    #[error("cannot connect to the MCP server {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("cannot serve MCP on {target}: {reason}")]
    Serve { target: String, reason: String },
}

pub type Result<T> = std::result::Result<T, McpError>;

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    // One worker is plenty for a handful of tool calls, and keeps a 2-core laptop
    // free for the model.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| McpError::Runtime(e.to_string()))
}
