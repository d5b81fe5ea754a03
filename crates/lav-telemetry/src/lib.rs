//! `lav-telemetry`: exports the agent's spans over OTLP.
//!
//! The agent loop (`lav-agent`) opens `tracing` spans named after OpenTelemetry's
//! GenAI conventions; this crate turns them into OpenTelemetry spans with
//! tracing-opentelemetry and ships them with the OTLP exporter, configured the
//! standard way: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`),
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`, the default, or `grpc`) and
//! `OTEL_SERVICE_NAME` (default `lav`). With no endpoint set nothing is exported.
//! An endpoint that is down never stops a run: it costs one warning on stderr.
//!
//! May depend on tracing and the OpenTelemetry crates; never on the model, the labs
//! or a renderer.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

/// Where spans go, from the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub endpoint: String,
    pub grpc: bool,
    pub service: String,
}

impl Config {
    /// The OTLP settings in the environment, or `None` when no endpoint is set.
    pub fn from_env() -> Option<Config> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".into());
        Some(Config {
            endpoint,
            grpc: protocol.trim() == "grpc",
            service: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "lav".into()),
        })
    }

    /// `host:port` of the endpoint URL, for the reachability check.
    fn authority(&self) -> Option<String> {
        let rest = self
            .endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, r)| r);
        let host_port = rest.split('/').next()?;
        if host_port.is_empty() {
            return None;
        }
        let default_port = if self.endpoint.starts_with("https") {
            443
        } else if self.grpc {
            4317
        } else {
            4318
        };
        Some(
            if host_port
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                host_port.to_string()
            } else {
                format!("{host_port}:{default_port}")
            },
        )
    }
}

/// The exporter while a command runs. Dropping it (or [`Telemetry::shutdown`])
/// flushes the spans still queued.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// gRPC's client needs a tokio runtime alive for as long as it exports.
    _runtime: Option<tokio::runtime::Runtime>,
    config: Option<Config>,
    warned: bool,
    guard: Option<tracing::subscriber::DefaultGuard>,
}

fn warn(config: &Config, why: &str) {
    eprintln!(
        "warning: telemetry: the OTLP endpoint {} {why}; the run goes on without exporting spans",
        config.endpoint
    );
}

impl Telemetry {
    /// Off: no exporter, no subscriber.
    pub fn off() -> Telemetry {
        Telemetry {
            provider: None,
            _runtime: None,
            config: None,
            warned: false,
            guard: None,
        }
    }

    /// Starts exporting per `config` (`None`: off). The subscriber is installed for
    /// this thread until the returned value is dropped, so a test can scope it.
    pub fn start(config: Option<Config>) -> Telemetry {
        let Some(config) = config else {
            return Telemetry::off();
        };
        let mut t = Telemetry::off();
        // A quick connect first: an exporter pointed at nothing would retry in the
        // background and report each failure; one line up front is clearer.
        let reachable = config.authority().and_then(|a| {
            use std::net::ToSocketAddrs;
            let addr = a.to_socket_addrs().ok()?.next()?;
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()
        });
        if reachable.is_none() {
            warn(&config, "cannot be reached");
            t.warned = true;
            t.config = Some(config);
            return t;
        }
        let built = if config.grpc {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let e = rt.block_on(async {
                        use opentelemetry_otlp::WithExportConfig;
                        opentelemetry_otlp::SpanExporter::builder()
                            .with_tonic()
                            .with_endpoint(config.endpoint.clone())
                            .build()
                    });
                    t._runtime = Some(rt);
                    e.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            }
        } else {
            // The HTTP exporter appends /v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT
            // itself when it reads the variable; an explicit endpoint is used as is.
            let url = if std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some() {
                config.endpoint.clone()
            } else {
                format!("{}/v1/traces", config.endpoint.trim_end_matches('/'))
            };
            use opentelemetry_otlp::WithExportConfig;
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(url)
                .build()
                .map_err(|e| e.to_string())
        };
        let exporter = match built {
            Ok(e) => e,
            Err(e) => {
                warn(&config, &format!("cannot be used ({e})"));
                t.warned = true;
                t.config = Some(config);
                return t;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("lav");
        let subscriber =
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
        t.guard = Some(tracing::subscriber::set_default(subscriber));
        t.provider = Some(provider);
        t.config = Some(config);
        t
    }

    /// From the environment (see the crate docs).
    pub fn from_env() -> Telemetry {
        Telemetry::start(Config::from_env())
    }

    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends what is queued and stops. An export that failed becomes the single
    /// warning (unless one was printed already).
    pub fn shutdown(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.guard.take();
        if let Some(p) = self.provider.take() {
            let flushed = p.force_flush().and_then(|_| p.shutdown());
            if let (Err(e), Some(c), false) = (flushed, &self.config, self.warned) {
                warn(c, &format!("did not take the spans ({e})"));
                self.warned = true;
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.finish();
    }
}
