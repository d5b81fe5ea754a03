//! `lav serve`: the OpenAI-compatible server on the engine (see `lav-serve`).

use crate::{Global, resolve};
use anyhow::{Context, Result};
use lav_engine::metrics::Slo;
use lav_engine::scheduler::{Policy, SchedulerConfig};
use lav_model::WeightFormat;
use lav_serve::{ServeConfig, Server};
use std::io::Write;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where to listen (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8000", value_name = "HOST:PORT")]
    addr: String,
    /// The model id clients send (default: the model's name).
    #[arg(long, value_name = "ID")]
    served_model_name: Option<String>,
    /// Sequences per step at most (batch slots).
    #[arg(long, default_value_t = 8)]
    max_num_seqs: usize,
    /// Positions computed per step at most (prefill chunks and decode tokens).
    #[arg(long, default_value_t = 512)]
    max_num_batched_tokens: usize,
    /// KV blocks of 16 positions in the paged pool (allocated at start).
    #[arg(long, default_value_t = 512)]
    kv_blocks: usize,
    /// Prefill a long prompt in one step instead of in chunks beside decodes.
    #[arg(long)]
    no_chunked_prefill: bool,
    /// continuous (iteration-level) or static batching.
    #[arg(long, default_value = "continuous", value_name = "continuous|static")]
    policy: String,
    /// Sequences that may wait beyond the running batch before requests get 429.
    #[arg(long, default_value_t = 64)]
    max_waiting: usize,
    /// Goodput's SLO at /metrics: time to first token, in milliseconds.
    #[arg(long, default_value_t = 2000.0)]
    slo_ttft_ms: f64,
    /// Goodput's SLO at /metrics: time per output token, in milliseconds.
    #[arg(long, default_value_t = 200.0)]
    slo_tpot_ms: f64,
}

pub fn serve(g: &Global, format: WeightFormat, a: ServeArgs) -> Result<()> {
    let policy = match a.policy.as_str() {
        "continuous" => Policy::Continuous,
        "static" => Policy::Static,
        p => anyhow::bail!("--policy must be continuous or static; got `{p}`"),
    };
    anyhow::ensure!(
        a.max_num_seqs > 0 && a.max_num_batched_tokens > 0 && a.kv_blocks > 0,
        "--max-num-seqs, --max-num-batched-tokens and --kv-blocks must be at least 1"
    );
    // Bind first, so a taken port fails before the model loads.
    let listener = std::net::TcpListener::bind(&a.addr).with_context(|| {
        format!(
            "cannot listen on {}: is another server there? pick another --addr HOST:PORT",
            a.addr
        )
    })?;
    listener.set_nonblocking(true)?;
    let (model, tok) = resolve::model(g, format)?;
    let model = Arc::new(model);
    let is_default = g.model.is_none() && g.hf.is_none();
    let model_id = a.served_model_name.clone().unwrap_or_else(|| {
        let base = match (&g.model, &g.hf) {
            (Some(p), _) => std::path::Path::new(p)
                .file_stem()
                .map_or_else(|| "local-gguf".into(), |s| s.to_string_lossy().into_owned()),
            (None, Some(h)) => h.clone(),
            (None, None) => "SmolLM2-135M-Instruct".into(),
        };
        if format == WeightFormat::Stored {
            base
        } else {
            format!("{base}-{}", g.weights.to_ascii_lowercase())
        }
    });
    let cfg = ServeConfig {
        scheduler: SchedulerConfig {
            policy,
            max_num_seqs: a.max_num_seqs,
            max_num_batched_tokens: a.max_num_batched_tokens,
            num_blocks: a.kv_blocks,
            block_size: lav_engine::block_manager::BLOCK_SIZE,
            chunked_prefill: !a.no_chunked_prefill,
        },
        model_id,
        max_waiting: a.max_waiting,
        max_n: 16,
        // SmolLM2's chat template adds its default system turn when a chat has none.
        default_system: is_default.then(|| lav_model::tokenizer::SMOLLM_DEFAULT_SYSTEM.to_string()),
        slo: Slo {
            ttft: a.slo_ttft_ms / 1000.0,
            tpot: a.slo_tpot_ms / 1000.0,
        },
    };
    let pool_mib = lav_model::KvPool::new(&model.config, 1, cfg.scheduler.block_size).bytes()
        as f64
        * a.kv_blocks as f64
        / (1 << 20) as f64;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let server = Server::new(model, Arc::new(tok), cfg);
        let lim = server.limits().clone();
        // The first line is the address (tests and scripts read it).
        println!("lav serve: listening on http://{addr}");
        println!(
            "model `{}`, {} KV blocks of 16 ({pool_mib:.0} MiB), context {} tokens, {} slots, {} batching; Ctrl-C stops",
            lim.model_id, a.kv_blocks, lim.max_model_len, a.max_num_seqs, a.policy
        );
        std::io::stdout().flush()?;
        server.serve(listener).await?;
        anyhow::Ok(())
    })
}
