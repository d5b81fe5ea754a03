//! `lav-serve`: `lav serve`, an OpenAI-compatible HTTP server on lav-engine's
//! continuous-batching engine, so any OpenAI client (and `lav load`) can drive the
//! real model: `/v1/models`, `/v1/completions`, `/v1/chat/completions` (with SSE
//! streaming, `n`, `temperature`/`top_p`/`seed`, `stop`, `max_tokens`), `/health`
//! and `/metrics` (Prometheus text).
//!
//! [`engine`] runs the engine on its own thread; [`api`] parses and checks requests
//! and shapes errors; [`text`] turns tokens into streamed text and applies stop
//! strings; `http` holds the routes. Because the batched forward is batch-invariant,
//! a greedy request gets the same text however many others share its batches.
//!
//! May depend on `lav-engine`, `lav-model` (the tokenizer and chat template), axum
//! and tokio; never on a lab or a renderer.

pub mod api;
pub mod engine;
mod http;
pub mod text;

pub use api::{ApiError, Limits};
pub use engine::EngineHandle;
use lav_engine::metrics::Slo;
use lav_engine::runner::Runner;
use lav_engine::scheduler::SchedulerConfig;
use lav_model::{Llama, Tokenizer};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};

/// How `lav serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub scheduler: SchedulerConfig,
    /// The id clients name in `model`.
    pub model_id: String,
    /// Sequences that may wait for a slot beyond the running batch; past that,
    /// requests get 429.
    pub max_waiting: usize,
    /// Choices per request at most.
    pub max_n: usize,
    /// The system turn the chat template adds when a chat has none.
    pub default_system: Option<String>,
    /// The latency limits goodput at `/metrics` counts against.
    pub slo: Slo,
}

/// A server ready to listen: the engine thread is running.
pub struct Server {
    state: Arc<http::AppState>,
}

impl Server {
    /// Starts the engine on `model` with a KV pool of `cfg.scheduler.num_blocks`
    /// blocks (allocated now).
    pub fn new(model: Arc<Llama>, tok: Arc<Tokenizer>, cfg: ServeConfig) -> Self {
        let s = &cfg.scheduler;
        // A sequence must fit the pool alone, or preemption could never make room;
        // without chunked prefill it must also fit one step (it may be recomputed).
        let mut max_model_len = model.config.context_length.min(s.num_blocks * s.block_size);
        if !s.chunked_prefill {
            max_model_len = max_model_len.min(s.max_num_batched_tokens);
        }
        let stop_tokens = (0..tok.vocab_size() as u32)
            .filter(|&t| tok.is_stop(t))
            .collect();
        let limits = Limits {
            model_id: cfg.model_id.clone(),
            max_model_len,
            max_n: cfg.max_n,
            default_system: cfg.default_system.clone(),
            stop_tokens,
        };
        let max_in_flight = s.max_num_seqs + cfg.max_waiting;
        let runner = Runner::new(model, cfg.scheduler.clone());
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            state: Arc::new(http::AppState {
                engine: EngineHandle::spawn(runner, cfg.slo),
                tok,
                limits,
                in_flight: AtomicUsize::new(0),
                max_in_flight,
                requests: AtomicU64::new(0),
                created,
            }),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.state.limits
    }

    /// The routes, for serving or for calling in-process.
    pub fn router(&self) -> axum::Router {
        http::router(self.state.clone())
    }

    /// Serves on `listener` until Ctrl-C (or SIGTERM), then finishes the replies in
    /// flight and returns.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown())
            .await
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
