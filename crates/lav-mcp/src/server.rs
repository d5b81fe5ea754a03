//! A lav tool set as an MCP server.

use crate::{McpError, Result, runtime};
use lav_agent_types::{ToolCall, ToolSpec, Tools};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Serves a [`Tools`] set. Cloning shares the same tools (and their state: the orders
/// database, the sink's log), which is what every HTTP session of one server sees.
#[derive(Clone)]
pub struct Server {
    tools: Arc<Mutex<Box<dyn Tools + Send>>>,
    name: String,
    calls: Arc<AtomicU64>,
}

impl Server {
    pub fn new(name: &str, tools: impl Tools + Send + 'static) -> Server {
        Server {
            tools: Arc::new(Mutex::new(Box::new(tools))),
            name: name.to_string(),
            calls: Arc::new(AtomicU64::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Tools + Send>> {
        // A tool that panicked leaves its state as it was; serving on is better than
        // poisoning every later call.
        self.tools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The MCP form of a lav tool.
    pub fn tool(spec: &ToolSpec) -> Tool {
        let schema = match &spec.input_schema {
            serde_json::Value::Object(o) => o.clone(),
            _ => serde_json::Map::from_iter([("type".to_string(), "object".into())]),
        };
        Tool::new(spec.name.clone(), spec.description.clone(), schema)
    }

    /// Runs one MCP call against the tools. Missing arguments are an empty object, so
    /// the tool itself says which argument it needs.
    pub fn call(&self, request: &CallToolRequestParams) -> CallToolResult {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let call = ToolCall {
            id: format!("mcp-{n}"),
            name: request.name.to_string(),
            arguments: serde_json::Value::Object(request.arguments.clone().unwrap_or_default()),
        };
        let result = self.lock().call(&call);
        let content = vec![ContentBlock::text(result.content)];
        if result.is_error {
            CallToolResult::error(content)
        } else {
            CallToolResult::success(content)
        }
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                self.name.clone(),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions("lav's built-in tools: the labs' agents call these.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, ErrorData> {
        let tools = self.lock().list().iter().map(Server::tool).collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, ErrorData> {
        Ok(self.call(&request).into())
    }
}

/// Serves `server` on this process's stdin/stdout until the client hangs up.
pub fn serve_stdio(server: Server) -> Result<()> {
    let err = |e: String| McpError::Serve {
        target: "stdio".into(),
        reason: e,
    };
    runtime()?.block_on(async {
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| err(e.to_string()))?;
        running.waiting().await.map_err(|e| err(e.to_string()))?;
        Ok(())
    })
}

/// Serves `server` over streamable HTTP at `http://ADDR/mcp` until the process ends.
/// `bound` is told the address actually bound (port 0 picks a free one) once the
/// listener is up, so a caller can print it or a test can connect.
pub fn serve_http(
    server: Server,
    addr: &str,
    bound: impl FnOnce(std::net::SocketAddr),
) -> Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

    let err = |e: String| McpError::Serve {
        target: addr.to_string(),
        reason: e,
    };
    runtime()?.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| err(e.to_string()))?;
        let local = listener.local_addr().map_err(|e| err(e.to_string()))?;
        let service = TowerToHyperService::new(StreamableHttpService::new(
            move || Ok(server.clone()),
            LocalSessionManager::default().into(),
            StreamableHttpServerConfig::default(),
        ));
        bound(local);
        loop {
            let (stream, _) = listener.accept().await.map_err(|e| err(e.to_string()))?;
            let service = service.clone();
            tokio::spawn(async move {
                // A client that drops its connection ends only that connection.
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
