//! `lav agent` runs an agent on lav's tools; `lav trace show` draws a recorded run.

use crate::Global;
use crate::lab_cmd::CliLoader;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use lav_agent::{
    Limits, Llm, Observer, Recorder, Replay, Reply, State, ToolCall, ToolResult, Tools,
};
use lav_model::Loader;
use lav_model::WeightFormat;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct AgentArgs {
    /// What to ask the agent.
    pub task: String,
    /// An OpenAI-compatible endpoint (e.g. http://localhost:11434/v1) instead of the
    /// local model.
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,
    /// The model name to send to --llm-url.
    #[arg(long, value_name = "NAME", requires = "llm_url")]
    pub llm_model: Option<String>,
    /// Hold the tools of this MCP server (streamable HTTP URL) instead of the
    /// built-in ones.
    #[arg(long, value_name = "URL")]
    pub mcp: Option<String>,
    /// With the local model: required (a tool call first, then the model's free
    /// choice: the default, as the tiny model rarely calls a tool on its own), auto
    /// (it picks a tool or the `answer` tool) or free (its first token decides
    /// between a call and plain text).
    #[arg(long, default_value = "required", value_name = "CHOICE")]
    pub tool_choice: String,
    /// Ticks at most.
    #[arg(long, default_value_t = 6)]
    pub max_ticks: usize,
    /// Input plus output tokens at most.
    #[arg(long, default_value_t = 20_000)]
    pub token_budget: u64,
    /// Where to record the run (default: lav's runs folder).
    #[arg(long, value_name = "PATH")]
    pub record: Option<PathBuf>,
    /// The folder read_file may read (default: the labs folder).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Args)]
pub struct TraceArgs {
    #[command(subcommand)]
    action: TraceAction,
}

#[derive(Subcommand)]
enum TraceAction {
    /// Draw a recorded run's span waterfall (the built-in viewer when no Jaeger runs).
    Show {
        /// A run id printed by `lav agent` (or a path to its .jsonl record).
        run: String,
        /// Print plain text instead of opening the terminal UI.
        #[arg(long)]
        text: bool,
    },
    /// List the recorded runs, newest last.
    List,
}

fn runs_dir() -> PathBuf {
    lav_store::lav_home().join("runs")
}

/// Prints the run as it happens.
struct Printer;

impl Observer for Printer {
    fn reply(&mut self, tick: usize, model: &str, reply: &Reply, seconds: f64) {
        let u = reply.usage();
        match reply {
            Reply::Final { text, .. } => println!(
                "[{tick}] {model} answers ({seconds:.2} s, {} in / {} out tokens):\n{text}",
                u.input_tokens, u.output_tokens
            ),
            Reply::Calls { calls, .. } => {
                for c in calls {
                    println!(
                        "[{tick}] {model} calls {}({}) ({seconds:.2} s)",
                        c.name, c.arguments
                    );
                }
            }
        }
    }
    fn tool(&mut self, tick: usize, call: &ToolCall, result: &ToolResult, seconds: f64) {
        let mark = if result.is_error { "error" } else { "result" };
        let body: String = result.content.chars().take(400).collect();
        println!(
            "[{tick}] {} {mark} ({:.1} ms): {body}",
            call.name,
            seconds * 1e3
        );
    }
}

/// Both observers at once.
struct Both<'a>(&'a mut dyn Observer, &'a mut dyn Observer);

impl Observer for Both<'_> {
    fn reply(&mut self, tick: usize, model: &str, reply: &Reply, seconds: f64) {
        self.0.reply(tick, model, reply, seconds);
        self.1.reply(tick, model, reply, seconds);
    }
    fn tool(&mut self, tick: usize, call: &ToolCall, result: &ToolResult, seconds: f64) {
        self.0.tool(tick, call, result, seconds);
        self.1.tool(tick, call, result, seconds);
    }
    fn stop(&mut self, run: &lav_agent::Run) {
        self.0.stop(run);
        self.1.stop(run);
    }
}

/// What `lav agent` tells the model before the task.
pub const SYSTEM: &str = "You are lav's assistant. Use a tool when it helps.";

/// lav's built-in tools (docs search, calculator, orders, files under `root`, the
/// message sink), as `lav agent` holds them.
pub fn builtin_tools(
    loader: &Arc<CliLoader>,
    labs: &std::path::Path,
    root: &std::path::Path,
) -> Result<Box<dyn Tools>> {
    let docs = lav_tools::DocsSearch::new(
        &lav_tools::corpus::load(labs).map_err(anyhow::Error::msg)?,
        lav_tools::docs::DEFAULT_CHUNKING,
        Some(crate::mcp_cmd::embed_fn(loader.clone())),
    )
    .map_err(anyhow::Error::msg)?;
    Ok(Box::new(
        lav_tools::builtin(docs, root, lav_tools::Sink::default()).map_err(anyhow::Error::msg)?,
    ))
}

pub fn agent(g: &Global, format: WeightFormat, a: AgentArgs) -> Result<()> {
    let labs = lav_lab::labs_dir()?;
    let loader = Arc::new(CliLoader::new(g, format));
    let mut tools: Box<dyn Tools> = match &a.mcp {
        Some(url) => Box::new(lav_mcp::Client::http(url)?),
        None => {
            let root = a.root.clone().unwrap_or_else(|| labs.clone());
            builtin_tools(&loader, &labs, &root)?
        }
    };
    let mut llm: Box<dyn Llm> = match &a.llm_url {
        Some(url) => Box::new(lav_agent::OpenAiCompatible::new(
            url,
            a.llm_model.as_deref().unwrap_or("default"),
        )),
        None => {
            let mut l = lav_local::LocalLlm::new(
                loader.model()?,
                loader.tokenizer()?,
                &loader.model_name(),
            );
            l.choice = lav_local::Choice::parse(&a.tool_choice).ok_or_else(|| {
                anyhow::anyhow!(
                    "--tool-choice must be auto, free or required, got `{}`",
                    a.tool_choice
                )
            })?;
            Box::new(l)
        }
    };
    let limits = Limits {
        max_ticks: a.max_ticks,
        token_budget: a.token_budget,
        deadline: None,
    };
    let state = State::new(SYSTEM, &a.task);
    let id = run_id();
    let path = match &a.record {
        Some(p) => p.clone(),
        None => {
            std::fs::create_dir_all(runs_dir()).context("cannot create lav's runs folder")?;
            runs_dir().join(format!("{id}.jsonl"))
        }
    };
    let mut rec = Recorder::create(&path, &llm.name(), limits, tools.list(), &state)?;
    let telemetry = lav_telemetry::Telemetry::from_env();
    let run = lav_agent::run(
        llm.as_mut(),
        tools.as_mut(),
        state,
        limits,
        &mut Both(&mut Printer, &mut rec),
    )?;
    telemetry.shutdown();
    rec.finish()?;
    eprintln!(
        "run {id}: {} ticks, stopped by {}, {} tokens; recorded in {} (see it with `lav trace show {id}`)",
        run.state.ticks,
        run.stop.describe(),
        run.state.tokens(),
        path.display()
    );
    Ok(())
}

/// A sortable id: the start time in UTC.
fn run_id() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("run-{}-{:03}", t.as_secs(), t.subsec_millis())
}

pub fn trace(a: TraceArgs) -> Result<()> {
    match a.action {
        TraceAction::List => {
            let mut runs: Vec<String> = std::fs::read_dir(runs_dir())
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| {
                            e.file_name()
                                .to_str()?
                                .strip_suffix(".jsonl")
                                .map(str::to_string)
                        })
                        .collect()
                })
                .unwrap_or_default();
            runs.sort();
            if runs.is_empty() {
                println!("no recorded runs yet; `lav agent \"…\"` records one");
            }
            for r in runs {
                println!("{r}");
            }
            Ok(())
        }
        TraceAction::Show { run, text } => {
            let path = if run.ends_with(".jsonl") || run.contains('/') {
                PathBuf::from(&run)
            } else {
                runs_dir().join(format!("{run}.jsonl"))
            };
            if !path.exists() {
                bail!(
                    "no recorded run {run} (looked for {}); `lav trace list` shows the runs",
                    path.display()
                );
            }
            let replay = Replay::load(&path)?;
            let scene =
                lav_labs_agents::agent_trace::trace_scene(&replay, &path.display().to_string());
            if text || !std::io::stdout().is_terminal() {
                print!("{}", lav_scene::render_text(&scene));
                return Ok(());
            }
            Ok(lav_tui::view(&format!("trace {run}"), &scene)?)
        }
    }
}
