//! The engine thread: one [`Runner`] stepping on its own OS thread (the model's work
//! is CPU-bound and must not stall the async HTTP workers), fed by a command channel
//! and answering each request on its own event channel.
//!
//! Between two steps the thread takes every command that arrived, drops the requests
//! whose client went away (their blocks go back to the pool at once), runs one step,
//! and sends each sampled token to its request. When nothing runs it sleeps on the
//! channel, so an idle server costs nothing.

use lav_engine::block_manager::SeqId;
use lav_engine::metrics::{RequestTimes, Slo, prometheus, summarize};
use lav_engine::runner::Runner;
use lav_engine::sequence::{Finish, SamplingParams, Sequence, Status};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::sync::mpsc;
use tokio::sync::{mpsc as tmpsc, oneshot};

/// What a request hears from the engine, tagged with its choice index (`n > 1`
/// runs one sequence per choice).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The choice's first token is coming: `cached` prompt tokens came from the
    /// engine's prefix cache (no prefill for them).
    Started {
        index: usize,
        cached: usize,
    },
    Token {
        index: usize,
        token: u32,
    },
    Done {
        index: usize,
        finish: Finish,
    },
    Failed(String),
}

/// One request: a prompt sampled `params.len()` times (one sequence per choice).
pub struct Submit {
    pub prompt: Vec<u32>,
    pub params: Vec<SamplingParams>,
    pub events: tmpsc::UnboundedSender<Event>,
    /// The engine's ids for the choices, or why it refused them.
    pub ack: oneshot::Sender<Result<Vec<SeqId>, String>>,
}

enum Cmd {
    Submit(Submit),
    /// Cancel these sequences; `served`: the request got what it wanted (a stop
    /// string matched) and counts in the metrics, else the client gave up.
    Abort {
        ids: Vec<SeqId>,
        served: bool,
    },
    Metrics(oneshot::Sender<String>),
}

/// The async side's handle on the engine thread. Cloning it is cheap.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Cmd>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the engine has stopped")]
pub struct Stopped;

impl EngineHandle {
    /// Starts the engine thread on `runner`. The latency limits are the ones goodput
    /// counts against at `/metrics`.
    pub fn spawn(runner: Runner, slo: Slo) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("lav-engine".into())
            .spawn(move || Engine::new(runner, slo).run(rx))
            .expect("spawn the engine thread");
        Self { tx }
    }

    /// Queues a request; the ids come back once the engine has taken it (between two
    /// steps).
    pub async fn submit(
        &self,
        prompt: Vec<u32>,
        params: Vec<SamplingParams>,
        events: tmpsc::UnboundedSender<Event>,
    ) -> Result<Result<Vec<SeqId>, String>, Stopped> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Submit(Submit {
                prompt,
                params,
                events,
                ack,
            }))
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Ends sequences early because a stop string matched: their blocks go back to
    /// the pool and they count as served.
    pub fn finish(&self, ids: Vec<SeqId>) {
        let _ = self.tx.send(Cmd::Abort { ids, served: true });
    }

    /// Cancels sequences whose client gave up.
    pub fn abort(&self, ids: Vec<SeqId>) {
        let _ = self.tx.send(Cmd::Abort { ids, served: false });
    }

    /// The Prometheus text of the requests served so far and the pool's state now.
    pub async fn metrics(&self) -> Result<String, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Metrics(tx)).map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}

struct Sub {
    index: usize,
    events: tmpsc::UnboundedSender<Event>,
    /// Whether [`Event::Started`] went out.
    started: bool,
}

/// Finished requests whose timestamps `/metrics` summarises: the most recent ones,
/// so a server that runs for days neither grows nor slows.
const METRICS_WINDOW: usize = 10_000;

struct Engine {
    runner: Runner,
    slo: Slo,
    subs: HashMap<SeqId, Sub>,
    /// The last [`METRICS_WINDOW`] served requests' timestamps, oldest first.
    served: VecDeque<RequestTimes>,
    aborted: usize,
    next_id: SeqId,
    preemptions: usize,
    steps: usize,
    busy_seconds: f64,
}

impl Engine {
    fn new(runner: Runner, slo: Slo) -> Self {
        Self {
            runner,
            slo,
            subs: HashMap::new(),
            served: VecDeque::new(),
            aborted: 0,
            next_id: 0,
            preemptions: 0,
            steps: 0,
            busy_seconds: 0.0,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Cmd>) {
        loop {
            if self.runner.is_idle() {
                match rx.recv() {
                    Ok(c) => self.handle(c),
                    Err(_) => return,
                }
            }
            while let Ok(c) = rx.try_recv() {
                self.handle(c);
            }
            self.drop_gone();
            if !self.runner.is_idle() {
                self.step();
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Submit(s) => {
                let r = self.add(s.prompt, s.params, &s.events);
                let _ = s.ack.send(r);
            }
            Cmd::Abort { ids, served } => self.abort(&ids, served),
            Cmd::Metrics(tx) => {
                let _ = tx.send(self.metrics());
            }
        }
    }

    fn add(
        &mut self,
        prompt: Vec<u32>,
        params: Vec<SamplingParams>,
        events: &tmpsc::UnboundedSender<Event>,
    ) -> Result<Vec<SeqId>, String> {
        if prompt.is_empty() {
            return Err("the prompt is empty: send at least one token of text".into());
        }
        let mut ids = Vec::new();
        for (index, p) in params.into_iter().enumerate() {
            let id = self.next_id;
            self.next_id += 1;
            if let Err(e) = self.runner.add(Sequence::new(id, prompt.clone(), p)) {
                // All choices or none: the ones already queued are taken back, and
                // counted nowhere (the request was refused, not served or cancelled).
                for &q in &ids {
                    self.subs.remove(&q);
                    self.runner.abort(q);
                    self.runner.forget(q);
                }
                return Err(e.to_string());
            }
            self.subs.insert(
                id,
                Sub {
                    index,
                    events: events.clone(),
                    started: false,
                },
            );
            ids.push(id);
        }
        Ok(ids)
    }

    fn abort(&mut self, ids: &[SeqId], served: bool) {
        for &id in ids {
            if self.subs.remove(&id).is_some() {
                self.runner.abort(id);
                if served {
                    self.keep(id);
                } else {
                    self.runner.forget(id);
                    self.aborted += 1;
                }
            }
        }
    }

    /// Moves a served request's timestamps into the metrics window.
    fn keep(&mut self, id: SeqId) {
        if let Some(t) = self.runner.forget(id) {
            if self.served.len() == METRICS_WINDOW {
                self.served.pop_front();
            }
            self.served.push_back(t);
        }
    }

    /// Requests whose receiver is gone (the client disconnected) are aborted before
    /// they cost another step.
    fn drop_gone(&mut self) {
        let gone: Vec<SeqId> = self
            .subs
            .iter()
            .filter(|(_, s)| s.events.is_closed())
            .map(|(id, _)| *id)
            .collect();
        self.abort(&gone, false);
    }

    fn step(&mut self) {
        match self.runner.step() {
            Ok(r) => {
                self.steps += 1;
                self.busy_seconds += r.seconds;
                self.preemptions += r.batch.preempted.len();
                for (id, token) in r.tokens {
                    if let Some(s) = self.subs.get_mut(&id) {
                        if !s.started {
                            s.started = true;
                            let cached = self
                                .runner
                                .scheduler()
                                .running()
                                .iter()
                                .chain(&r.finished)
                                .find(|q| q.id() == id)
                                .and_then(Sequence::prefix_hit)
                                .unwrap_or(0);
                            let _ = s.events.send(Event::Started {
                                index: s.index,
                                cached,
                            });
                        }
                        let _ = s.events.send(Event::Token {
                            index: s.index,
                            token,
                        });
                    }
                }
                for seq in r.finished {
                    if let (Some(s), Status::Finished(finish)) =
                        (self.subs.remove(&seq.id()), seq.status())
                    {
                        let _ = s.events.send(Event::Done {
                            index: s.index,
                            finish,
                        });
                        self.keep(seq.id());
                    }
                }
            }
            Err(e) => {
                // A failed step fails every request in flight, with the reason, and
                // the engine goes on with an empty pool.
                let msg = format!("the engine failed a step: {e}");
                let ids: Vec<SeqId> = self.subs.keys().copied().collect();
                for s in self.subs.values() {
                    let _ = s.events.send(Event::Failed(msg.clone()));
                }
                self.abort(&ids, false);
            }
        }
    }

    fn metrics(&self) -> String {
        // The window of served requests, and those still in flight.
        let served: Vec<RequestTimes> = self
            .served
            .iter()
            .chain(self.runner.times().values())
            .cloned()
            .collect();
        let mut out = prometheus(&summarize(&served, self.slo));
        let sched = self.runner.scheduler();
        let bm = sched.blocks();
        let gauges = [
            (
                "kv_blocks_total",
                "Blocks in the paged KV pool.",
                bm.num_blocks() as f64,
            ),
            (
                "kv_blocks_free",
                "Blocks no sequence holds.",
                bm.num_free() as f64,
            ),
            (
                "kv_cache_usage_ratio",
                "Fraction of the pool's blocks held by sequences.",
                bm.num_used() as f64 / bm.num_blocks().max(1) as f64,
            ),
            (
                "num_requests_running",
                "Sequences in the running batch.",
                sched.running().len() as f64,
            ),
            (
                "num_requests_waiting",
                "Sequences queued for a slot.",
                sched.waiting().count() as f64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP lav_{name} {help}\n# TYPE lav_{name} gauge\nlav_{name} {v}"
            );
        }
        for (name, help, v) in [
            (
                "num_preemptions_total",
                "Sequences preempted (recomputed later) when the pool ran out.",
                self.preemptions as f64,
            ),
            (
                "engine_steps_total",
                "Forward steps run.",
                self.steps as f64,
            ),
            (
                "engine_busy_seconds_total",
                "Seconds spent in forward steps.",
                self.busy_seconds,
            ),
            (
                "requests_aborted_total",
                "Sequences cancelled because their client went away.",
                self.aborted as f64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP lav_{name} {help}\n# TYPE lav_{name} counter\nlav_{name} {v}"
            );
        }
        out
    }
}
