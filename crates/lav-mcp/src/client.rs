//! An MCP server's tools, held by the agent as [`Tools`].

use crate::{McpError, Result, Server, runtime};
use lav_agent_types::{ToolCall, ToolResult, ToolSpec, Tools};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::{RoleClient, ServiceExt};
use std::path::Path;

/// A connection to one MCP server. The tool list is read once at connect time, as the
/// agent is told its tools once per run.
pub struct Client {
    service: RunningService<RoleClient, ()>,
    specs: Vec<ToolSpec>,
    /// How it is connected, for the trace and the labs: "stdio", "http" or "in-process".
    pub transport: &'static str,
    // Declared last so the service's tasks are dropped before the runtime.
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// Starts `program args…` and speaks MCP over its stdin/stdout.
    pub fn stdio(program: &Path, args: &[&str]) -> Result<Client> {
        use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
        let target = format!("{} {}", program.display(), args.join(" "));
        let rt = runtime()?;
        let service = rt.block_on(async {
            let cmd = tokio::process::Command::new(program).configure(|c| {
                c.args(args);
            });
            let transport = TokioChildProcess::new(cmd).map_err(|e| connect(&target, e))?;
            ().serve(transport).await.map_err(|e| connect(&target, e))
        })?;
        Client::ready(rt, service, "stdio", &target)
    }

    /// Connects to a streamable HTTP endpoint such as `http://127.0.0.1:7000/mcp`.
    pub fn http(url: &str) -> Result<Client> {
        use rmcp::transport::StreamableHttpClientTransport;
        let rt = runtime()?;
        let service = rt.block_on(async {
            let transport = StreamableHttpClientTransport::from_uri(url.to_string());
            ().serve(transport).await.map_err(|e| connect(url, e))
        })?;
        Client::ready(rt, service, "http", url)
    }

    /// Serves `server` on one end of an in-memory pipe and connects to the other: MCP
    /// end to end, without a process or a socket.
    pub fn in_process(server: Server) -> Result<Client> {
        let rt = runtime()?;
        let service = rt.block_on(async {
            let (server_io, client_io) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                if let Ok(running) = server.serve(server_io).await {
                    let _ = running.waiting().await;
                }
            });
            ().serve(client_io)
                .await
                .map_err(|e| connect("in-process", e))
        })?;
        Client::ready(rt, service, "in-process", "in-process")
    }

    fn ready(
        rt: tokio::runtime::Runtime,
        service: RunningService<RoleClient, ()>,
        transport: &'static str,
        target: &str,
    ) -> Result<Client> {
        let tools = rt
            .block_on(service.list_all_tools())
            .map_err(|e| connect(target, e))?;
        let specs = tools
            .into_iter()
            .map(|t| ToolSpec {
                name: t.name.to_string(),
                description: t.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: serde_json::Value::Object((*t.input_schema).clone()),
            })
            .collect();
        Ok(Client {
            service,
            specs,
            transport,
            rt,
        })
    }

    /// The server's name and version as it announced them.
    pub fn server_name(&self) -> String {
        self.service
            .peer_info()
            .and_then(|i| {
                let s = i.server_info.as_ref()?;
                Some(format!("{} {}", s.name, s.version))
            })
            .unwrap_or_default()
    }
}

fn connect(target: &str, e: impl std::fmt::Display) -> McpError {
    McpError::Connect {
        target: target.to_string(),
        reason: e.to_string(),
    }
}

/// The text of an MCP result, as the model reads it.
fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Tools for Client {
    fn list(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        // MCP arguments are a JSON object; anything else is the model's mistake and
        // goes back to it as an error result instead of over the wire.
        let arguments = match &call.arguments {
            serde_json::Value::Object(o) => o.clone(),
            serde_json::Value::Null => serde_json::Map::new(),
            other => {
                return ToolResult::error(format!(
                    "arguments to {} must be a JSON object, got {other}",
                    call.name
                ));
            }
        };
        let params = CallToolRequestParams::new(call.name.clone()).with_arguments(arguments);
        match self.rt.block_on(self.service.call_tool(params)) {
            Ok(r) => ToolResult {
                content: text_of(&r),
                is_error: r.is_error.unwrap_or(false),
            },
            Err(e) => ToolResult::error(format!("MCP call to {} failed: {e}", call.name)),
        }
    }
}
