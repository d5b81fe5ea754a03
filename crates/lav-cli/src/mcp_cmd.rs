//! `lav mcp serve`: lav's tools, and the labs themselves, for external MCP clients.

use crate::Global;
use crate::lab_cmd::CliLoader;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lav_agent::{ToolCall, ToolResult, ToolSpec, Tools};
use lav_lab::Registry;
use lav_model::WeightFormat;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct McpArgs {
    #[command(subcommand)]
    action: McpAction,
}

#[derive(Subcommand)]
enum McpAction {
    /// Serve lav's tools and lab controls over MCP (stdio unless --http is given).
    Serve {
        /// Serve streamable HTTP at http://ADDR/mcp instead of stdio (e.g.
        /// 127.0.0.1:7000; port 0 picks a free one and prints it).
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
        /// The folder `read_file` may read (default: the labs folder).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Leave out the lab tools (`lab_list`, `lab_view`).
        #[arg(long)]
        no_labs: bool,
    },
}

pub fn mcp(g: &Global, format: WeightFormat, a: McpArgs) -> Result<()> {
    match a.action {
        McpAction::Serve {
            http,
            root,
            no_labs,
        } => {
            let labs = lav_lab::labs_dir()?;
            let root = root.unwrap_or_else(|| labs.clone());
            let loader = Arc::new(CliLoader::new(g, format));
            let docs = lav_tools::DocsSearch::new(
                &lav_tools::corpus::load(&labs).map_err(anyhow::Error::msg)?,
                lav_tools::docs::DEFAULT_CHUNKING,
                Some(embed_fn(loader.clone())),
            )
            .map_err(anyhow::Error::msg)?;
            let mut tools = lav_tools::builtin(docs, &root, lav_tools::Sink::default())
                .map_err(anyhow::Error::msg)?;
            if !no_labs {
                let catalogue = crate::lab_cmd::catalogue(loader);
                tools = tools.with(LabTools {
                    registry: Registry::load(&labs, &catalogue)?,
                    catalogue,
                });
            }
            let server = lav_mcp::Server::new("lav", tools);
            match http {
                None => lav_mcp::serve_stdio(server)?,
                Some(addr) => lav_mcp::serve_http(server, &addr, |a| {
                    // The one line a script waits for before connecting.
                    eprintln!("lav MCP server at http://{a}/mcp");
                })?,
            }
            Ok(())
        }
    }
}

/// MiniLM through the CLI's loader: loaded (and fetched if need be) on the first dense
/// search, not at start.
pub fn embed_fn(loader: Arc<CliLoader>) -> Arc<lav_tools::retrieval::EmbedFn> {
    use lav_model::Loader;
    Arc::new(move |t: &str| {
        let e = loader.embedder().map_err(|e| e.to_string())?;
        e.embed(t).map_err(|e| e.to_string())
    })
}

/// The labs as tools: list them, and view any step with any controls set, as the
/// plain-text scene `lav lab --text` prints.
struct LabTools {
    catalogue: lav_lab::Catalogue,
    registry: Registry,
}

impl LabTools {
    fn view(&self, args: &serde_json::Value) -> Result<String> {
        let lab = args
            .get("lab")
            .and_then(|v| v.as_str())
            .context("give `lab`, a lab id from lab_list")?;
        let mut session = lav_lab::open_session(lab, self.registry.dir(), &self.catalogue)?;
        if let Some(step) = args.get("step").and_then(|v| v.as_str()) {
            session.go_to(step)?;
        }
        if let Some(set) = args.get("set") {
            let set = set
                .as_object()
                .context("`set` must be an object of control ids to values")?;
            for (k, v) in set {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                session.set_raw(&format!("{k}={v}"))?;
            }
        }
        let scene = session.scene_settled(|_| {})?;
        let st = session.lesson_step();
        let controls: Vec<String> = session
            .step()
            .controls
            .iter()
            .map(|c| c.describe())
            .collect();
        let steps: Vec<&str> = session.steps().iter().map(|s| s.id).collect();
        Ok(format!(
            "# {} — {} [{}]\nsteps: {}\ncontrols: {}\n\n{}\n\n{}",
            session.lesson().title,
            st.title,
            session.step().id,
            steps.join(", "),
            controls.join(", "),
            st.body,
            lav_scene::render_text(&scene)
        ))
    }
}

impl Tools for LabTools {
    fn list(&self) -> Vec<ToolSpec> {
        vec![
            ToolSpec {
                name: "lab_list".into(),
                description: "Lists lav's labs: id, track, title and whether it is available.".into(),
                input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            },
            ToolSpec {
                name: "lab_view".into(),
                description: "Opens a lab at a step with controls set and returns the step's explanation and its scene as text (every number is computed live).".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "lab": {"type": "string", "description": "lab id, e.g. \"kv-cache\""},
                        "step": {"type": "string", "description": "step id (default: the first)"},
                        "set": {"type": "object", "description": "control id → value, e.g. {\"temperature\": 0.7}"}
                    },
                    "required": ["lab"],
                    "additionalProperties": false
                }),
            },
        ]
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        match call.name.as_str() {
            "lab_list" => {
                let mut out = String::new();
                for t in &self.registry.tracks {
                    for l in &t.labs {
                        let status = match l.status {
                            lav_lab::Status::Available => "available",
                            lav_lab::Status::Planned => "planned",
                        };
                        out += &format!("{}\t{}\t{}\t{}\n", l.id, t.title, status, l.title);
                    }
                }
                ToolResult::from_result(Ok(out))
            }
            "lab_view" => ToolResult::from_result(
                self.view(&call.arguments)
                    .map_err(|e| format!("{e:#}").replace('\n', " ")),
            ),
            other => ToolResult::error(format!("no lab tool named {other}")),
        }
    }
}
