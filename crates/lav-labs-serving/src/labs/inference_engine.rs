//! inference-engine: a request's path through lav's engine end to end, timed stage by
//! stage; the scheduler loop step by step (queues, batch composition, block pool) on
//! the engine serving the model with the learner's knobs as its configuration; every
//! request's state over the run; and how many KV blocks a memory budget buys.

use super::{Context, ms, prompt_text};
use crate::trace::{self, Trace};
use lav_engine::block_manager::BLOCK_SIZE;
use lav_engine::runner::Runner;
use lav_engine::scheduler::SchedulerConfig;
use lav_engine::sequence::{SamplingParams, Sequence, Status};
use lav_engine::workload::Lengths;
use lav_gpusim::{Gpu, ModelConfig};
use lav_lab::items::{ModelSource, bar, bars, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values, published};
use lav_model::{KvPool, Llama, Tokenizer};
use lav_scene::*;
use std::sync::Arc;
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = MIB * 1024.0;
const HERE: &str = "this machine (RAM)";
const OWN: &str = "this model";

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let gpus = lav_gpusim::gpus(&ctx.dir).lab()?;
    let configs = lav_gpusim::model_configs(&ctx.dir).lab()?;
    let mut memories = vec![HERE.to_string()];
    memories.extend(gpus.iter().map(|g| g.name.clone()));
    let mut models = vec![OWN.to_string()];
    models.extend(configs.iter().map(|m| m.name.clone()));
    fn as_str(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let c = Controls {
        prompt: Control::text(
            "prompt",
            "Prompt",
            300,
            "Explain in one sentence what a scheduler does.",
        ),
        max_tokens: Control::slider("max_tokens", "max_tokens", 1.0, 64.0, 1.0, 16.0),
        seqs: Control::slider("max_num_seqs", "max_num_seqs", 1.0, 8.0, 1.0, 4.0),
        budget: Control::slider(
            "max_num_batched_tokens",
            "max_num_batched_tokens",
            16.0,
            256.0,
            16.0,
            64.0,
        ),
        kv_mib: Control::slider("kv_mib", "KV memory (MiB)", 6.0, 48.0, 1.0, 16.0),
        chunked: Control::toggle("chunked_prefill", "Chunked prefill", true),
        step: Control::slider("step", "Engine step (% of the run)", 1.0, 100.0, 1.0, 30.0),
        util: Control::slider(
            "gpu_memory_utilization",
            "gpu_memory_utilization",
            0.1,
            0.95,
            0.05,
            0.9,
        ),
        memory: Control::choice("memory", "Memory", &as_str(&memories), "H100 SXM 80GB"),
        model: Control::choice("model", "Model", &as_str(&models), "Llama-3-8B"),
    };
    let knobs = [&c.seqs, &c.budget, &c.kv_mib, &c.chunked];
    let mut loop_controls = knobs.to_vec();
    loop_controls.push(&c.step);
    let steps = vec![
        Step::new("path", &[&c.prompt, &c.max_tokens], Engine::path),
        Step::new("loop", &loop_controls, Engine::scheduler_loop),
        Step::new("states", &knobs, Engine::states),
        Step::new(
            "memory",
            &[&c.memory, &c.model, &c.util, &c.budget],
            Engine::memory,
        ),
    ];
    Steps::lab(
        Engine {
            c,
            text: prompt_text(&ctx.dir)?,
            facts: published::facts(&ctx.dir, "inference-engine")?,
            tokenizer: ctx.loader.tokenizer().lab()?,
            source: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            model: ctx.loader.model().lab()?,
            gpus,
            configs,
            one: Job::default(),
            run: Job::default(),
        },
        steps,
    )
}

struct Controls {
    prompt: Control,
    max_tokens: Control,
    seqs: Control,
    budget: Control,
    kv_mib: Control,
    chunked: Control,
    step: Control,
    util: Control,
    memory: Control,
    model: Control,
}

/// The knobs of a run: (max_num_seqs, max_num_batched_tokens, KV blocks, chunked).
type Knobs = (usize, usize, usize, bool);

struct Engine {
    c: Controls,
    text: String,
    facts: Vec<published::Fact>,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    source: ModelSource,
    gpus: Vec<Gpu>,
    configs: Vec<ModelConfig>,
    one: Job<(String, usize), Path>,
    run: Job<Knobs, Trace>,
}

impl LabState for Engine {
    fn busy(&self) -> bool {
        self.one.busy() || self.run.busy()
    }
}

/// One request's trip, each stage timed on this machine.
struct Path {
    prompt_tokens: usize,
    output: String,
    output_tokens: usize,
    tokenize: f64,
    queue: f64,
    prefill: f64,
    decode: f64,
    detokenize: f64,
    steps: usize,
}

fn one_request(model: &Arc<Llama>, tok: &Tokenizer, prompt: &str, n: usize) -> Result<Path> {
    let t0 = Instant::now();
    let ids = tok.encode(prompt).lab()?;
    let tokenize = t0.elapsed().as_secs_f64();
    if ids.is_empty() {
        return Err(lav_lab::LabError::Input(
            "the prompt is empty: type a few words".into(),
        ));
    }
    let mut r = Runner::new(
        model.clone(),
        SchedulerConfig {
            num_blocks: (ids.len() + n).div_ceil(BLOCK_SIZE) + 1,
            max_num_batched_tokens: ids.len().max(512),
            ..Default::default()
        },
    );
    let params = SamplingParams {
        max_tokens: n,
        ..Default::default()
    };
    r.add(Sequence::new(0, ids.clone(), params)).lab()?;
    let mut out = Vec::new();
    let mut steps = 0;
    while !r.is_idle() {
        for (_, t) in r.step().lab()?.tokens {
            out.push(t);
        }
        steps += 1;
    }
    let times = r.times()[&0].clone();
    let t1 = Instant::now();
    let output = tok.decode(&out).lab()?;
    let detokenize = t1.elapsed().as_secs_f64();
    let (sched, first, fin) = (
        times.scheduled.unwrap_or(times.arrival),
        times.tokens.first().copied().unwrap_or(times.arrival),
        times.finish.unwrap_or(times.arrival),
    );
    Ok(Path {
        prompt_tokens: ids.len(),
        output,
        output_tokens: out.len(),
        tokenize,
        queue: sched - times.arrival,
        prefill: first - sched,
        decode: fin - first,
        detokenize,
        steps,
    })
}

/// KV bytes per position as lav stores them (f32 K and V, every layer).
fn kv_position_bytes(model: &Llama) -> usize {
    KvPool::new(&model.config, 0, BLOCK_SIZE).bytes_per_position()
}

fn state_code(s: Option<Status>) -> f32 {
    match s {
        None => 0.0,
        Some(Status::Waiting) => 1.0,
        Some(Status::Running) => 2.0,
        Some(Status::Preempted) => 3.0,
        Some(Status::Finished(_)) => 4.0,
    }
}

impl Engine {
    fn engine(&self) -> Provenance {
        Provenance::engine(format!(
            "lav's engine serving {}, read from its scheduler after each step",
            self.source
        ))
    }

    fn knobs(&self, v: &Values) -> Knobs {
        let block = (kv_position_bytes(&self.model) * BLOCK_SIZE) as f64;
        let blocks = (v.num(&self.c.kv_mib) * MIB / block).floor() as usize;
        (
            v.usize(&self.c.seqs).max(1),
            v.usize(&self.c.budget).max(1),
            blocks.max(1),
            v.flag(&self.c.chunked),
        )
    }

    /// The trace served with the learner's knobs (a progress scene while it runs).
    /// Without chunked prefill a whole request must fit one step (vLLM asks
    /// max_num_batched_tokens ≥ max_model_len), so the budget is raised to the longest
    /// request and a note says so.
    fn served(&mut self, v: &Values, scene: &mut Scene) -> Result<Option<Knobs>> {
        let mut k = self.knobs(v);
        let reqs = trace::arrivals(
            &self.tokenizer,
            &self.text,
            30.0,
            8,
            Lengths::Uniform { min: 16, max: 64 },
            Lengths::Uniform { min: 8, max: 24 },
            5,
        )?;
        let longest = reqs
            .iter()
            .map(|r| r.prompt.len() + r.max_tokens)
            .max()
            .unwrap_or(1);
        if !k.3 && k.1 < longest {
            scene.push(lav_lab::items::styled(
                "raised",
                "Budget raised",
                Provenance::computed("the engine's admission rule".to_string()),
                format!(
                    "Without chunked prefill a preempted request is recomputed in one step, so the engine refuses any request longer than max_num_batched_tokens. The budget is raised from {} to {longest}, the longest request here.",
                    k.1
                ),
                TextStyle::Warning,
            ));
            k.1 = longest;
        }
        let model = self.model.clone();
        let cfg = SchedulerConfig {
            max_num_seqs: k.0,
            max_num_batched_tokens: k.1,
            num_blocks: k.2,
            chunked_prefill: k.3,
            ..Default::default()
        };
        if let State::Running(p) = self
            .run
            .get(&k, move |p| trace::serve(&model, &reqs, cfg, p))?
        {
            scene.push(progress_item(
                "progress",
                "The engine is serving eight requests",
                p,
            ));
            return Ok(None);
        }
        Ok(Some(k))
    }

    fn path(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let prompt = v.text(&self.c.prompt).to_string();
        let n = v.usize(&self.c.max_tokens).max(1);
        let (model, tok) = (self.model.clone(), self.tokenizer.clone());
        let key = (prompt.clone(), n);
        let nodes = [
            ("http", "HTTP request (lav-serve: http.rs)"),
            ("tokenize", "chat template + tokenize (api.rs)"),
            ("queue", "engine thread: waiting queue (engine.rs)"),
            ("schedule", "Scheduler + BlockManager (scheduler.rs)"),
            ("forward", "Runner: one batched forward (runner.rs)"),
            ("sample", "Sampler (lav-model)"),
            ("detokenize", "detokenize + stop strings (text.rs)"),
            ("stream", "SSE chunk to the client"),
        ];
        scene.push(Item::new(
            "pipeline",
            "A request's path through lav serve",
            Provenance::computed("lav's own modules".to_string()),
            Primitive::Graph(Graph {
                nodes: nodes
                    .iter()
                    .enumerate()
                    .map(|(i, (id, label))| Node {
                        id: (*id).into(),
                        label: (*label).into(),
                        role: if (3..=5).contains(&i) {
                            Role::Highlight
                        } else {
                            Role::Token
                        },
                        layer: i,
                    })
                    .collect(),
                edges: nodes
                    .windows(2)
                    .map(|w| Edge {
                        from: w[0].0.into(),
                        to: w[1].0.into(),
                        label: String::new(),
                    })
                    .chain([Edge {
                        from: "sample".into(),
                        to: "schedule".into(),
                        label: "next step".into(),
                    }])
                    .collect(),
            }),
        ));
        match self
            .one
            .get(&key, move |_| one_request(&model, &tok, &prompt, n))?
        {
            State::Running(p) => scene.push(progress_item("progress", "Serving one request", p)),
            State::Ready(r) => {
                let prov = Provenance::engine(format!(
                    "lav's engine serving {}, timed on this machine",
                    self.source
                ));
                scene.push(table(
                    "stages",
                    &format!(
                        "One request, {} prompt tokens → {} output tokens, in {} engine steps",
                        r.prompt_tokens, r.output_tokens, r.steps
                    ),
                    prov.clone(),
                    &["stage", "time"],
                    vec![
                        vec!["tokenize (the prompt as typed)".into(), ms(r.tokenize)],
                        vec!["queue (nothing ahead of it)".into(), ms(r.queue)],
                        vec!["prefill: first step, first token".into(), ms(r.prefill)],
                        vec![
                            format!("decode: {} more steps", r.output_tokens.saturating_sub(1)),
                            ms(r.decode),
                        ],
                        vec!["detokenize".into(), ms(r.detokenize)],
                        vec![
                            "time to first token".into(),
                            ms(r.tokenize + r.queue + r.prefill),
                        ],
                    ],
                ));
                scene.push(text("output", "What came out", prov, r.output.trim()));
            }
        }
        scene.push(published::table(
            "published",
            "The same parts in vLLM",
            &self.facts,
        ));
        Ok(scene)
    }

    fn scheduler_loop(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let Some(k) = self.served(v, &mut scene)? else {
            return Ok(scene);
        };
        let t = self.run.ready(&k).expect("ready");
        let n = t.steps.len();
        let i = ((v.num(&self.c.step) / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1;
        let s = &t.steps[i];
        let prov = self.engine();
        let ids = |v: &[u64]| {
            if v.is_empty() {
                "–".to_string()
            } else {
                v.iter()
                    .map(|i| format!("r{i}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let finished: Vec<u64> = s
            .states
            .iter()
            .enumerate()
            .filter(|(_, x)| matches!(x, Some(Status::Finished(_))))
            .map(|(i, _)| i as u64)
            .collect();
        let running: Vec<u64> = s.running.iter().map(|q| q.id).collect();
        scene.push(table(
            "queues",
            &format!("After step {} of {n} ({})", i + 1, ms(s.start)),
            prov.clone(),
            &["queue", "requests"],
            vec![
                vec!["waiting".into(), ids(&s.waiting)],
                vec!["running".into(), ids(&running)],
                vec!["finished".into(), ids(&finished)],
                vec!["preempted this step".into(), ids(&s.batch.preempted)],
                vec![
                    "KV blocks used / pool".into(),
                    format!("{} / {}", k.2 - s.free_blocks, k.2),
                ],
            ],
        ));
        scene.push(bars(
            "batch",
            &format!(
                "Step {}: positions computed per sequence, {} of a budget of {}",
                i + 1,
                s.batch.num_tokens(),
                k.1
            ),
            prov.clone(),
            "positions",
            s.batch
                .chunks
                .iter()
                .map(|c| {
                    let (kind, role) = if c.len == 1 && c.start > 0 && c.samples {
                        ("decode", Role::Highlight)
                    } else if c.samples {
                        ("prefill (last chunk)", Role::Attention)
                    } else {
                        ("prefill chunk", Role::Muted)
                    };
                    bar(
                        format!("r{} {kind} @{}", c.seq, c.start),
                        c.len as f64,
                        role,
                    )
                })
                .collect(),
        ));
        let mut cells = vec![None; k.2];
        for q in &s.running {
            for &b in &q.blocks {
                cells[b as usize].get_or_insert(q.id);
            }
        }
        scene.push(Item::new(
            "pool",
            format!(
                "The block pool after step {}: {} blocks of {BLOCK_SIZE}",
                i + 1,
                k.2
            ),
            prov,
            Primitive::BlockGrid(BlockGrid {
                columns: 8,
                cells: cells
                    .iter()
                    .map(|o| Cell {
                        owner: o.map(|x: u64| x as usize),
                        label: o.map_or(String::new(), |x| format!("r{x}")),
                    })
                    .collect(),
            }),
        ));
        Ok(scene)
    }

    fn states(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let Some(k) = self.served(v, &mut scene)? else {
            return Ok(scene);
        };
        let t = self.run.ready(&k).expect("ready");
        let reqs = t.times.len();
        let n = t.steps.len();
        scene.push(Item::new(
            "states",
            "States per step: 0 absent, 1 waiting, 2 running, 3 preempted, 4 done",
            self.engine(),
            Primitive::Heatmap(Heatmap {
                rows: (0..reqs).map(|i| format!("r{i}")).collect(),
                cols: (1..=n).map(|s| s.to_string()).collect(),
                values: (0..reqs)
                    .flat_map(|r| t.steps.iter().map(move |s| state_code(s.states[r])))
                    .collect(),
                scale: ColorScale::Sequential { min: 0.0, max: 4.0 },
                selected: None,
                row_axis: "request".into(),
                col_axis: "engine step".into(),
            }),
        ));
        let count = |r: usize, want: fn(Option<Status>) -> bool| {
            t.steps.iter().filter(|s| want(s.states[r])).count()
        };
        scene.push(table(
            "per-request",
            &format!(
                "Steps each request spent in each state (max_num_seqs {}, budget {}, {} blocks, chunked prefill {})",
                k.0,
                k.1,
                k.2,
                if k.3 { "on" } else { "off" }
            ),
            self.engine(),
            &["request", "waiting", "running", "preempted", "output tokens"],
            (0..reqs)
                .map(|r| {
                    vec![
                        format!("r{r}"),
                        count(r, |s| s == Some(Status::Waiting)).to_string(),
                        count(r, |s| s == Some(Status::Running)).to_string(),
                        count(r, |s| s == Some(Status::Preempted)).to_string(),
                        t.outputs[r].len().to_string(),
                    ]
                })
                .collect(),
        ));
        scene.push(text(
            "summary",
            "The run",
            self.engine(),
            format!(
                "{n} steps, {} preemptions, {} output tokens in {}.",
                t.preemptions(),
                t.output_tokens(),
                ms(t.seconds)
            ),
        ));
        Ok(scene)
    }

    fn memory(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let util = v.num(&self.c.util);
        let tokens = v.usize(&self.c.budget);
        let gpu = self
            .gpus
            .iter()
            .find(|g| g.name == v.text(&self.c.memory))
            .cloned();
        let published = self
            .configs
            .iter()
            .find(|m| m.name == v.text(&self.c.model))
            .cloned();
        let cfg = &self.model.config;
        // Shape: (name, d, d_ff, weight bytes, KV bytes per position, activation bytes,
        // context). Published models are taken at BF16; lav's own as it runs here.
        let (name, d, dff, weights, kv_pos, act_bytes, context, how) = match &published {
            Some(m) => {
                let d = m.heads * m.head_dim;
                (
                    m.name.clone(),
                    d,
                    d * 7 / 2,
                    m.params as f64 * 2.0,
                    lav_gpusim::kv_bytes(m.layers, m.kv_heads, m.head_dim, 2.0, 1, 1),
                    2.0,
                    m.context,
                    format!("{}; BF16; d_ff taken as 3.5·d", m.source),
                )
            }
            None => (
                format!("{} (as lav runs it)", cfg.name),
                cfg.hidden_size,
                cfg.intermediate_size,
                lav_engine::per_token_cost(&self.model).1,
                kv_position_bytes(&self.model) as f64,
                4.0,
                cfg.context_length,
                "read from the GGUF; f32 K/V and activations".to_string(),
            ),
        };
        let (total, mem_label, mem_prov) = match &gpu {
            Some(g) => (
                g.hbm_bytes(),
                format!("{} ({})", g.name, g.hbm),
                Provenance::simulated(format!("{} row of the hardware table", g.name)),
            ),
            None => {
                let (_, avail) = lav_gpusim::machine::ram_bytes().unwrap_or((0.0, 0.0));
                (
                    avail,
                    format!("this machine's available RAM ({:.1} GiB)", avail / GIB),
                    Provenance::engine("this machine's /proc/meminfo".to_string()),
                )
            }
        };
        let budget = util * total;
        // The widest tensors of one step of `tokens` positions alive at once: the
        // residual stream and attention projections (4·d) and the MLP's gate, up and
        // product (3·d_ff), per position.
        let act = tokens as f64 * (4 * d + 3 * dff) as f64 * act_bytes;
        let block = kv_pos * BLOCK_SIZE as f64;
        let left = budget - weights - act;
        let blocks = (left / block).floor().max(0.0);
        let seqs = blocks * BLOCK_SIZE as f64 / context as f64;
        let prov = Provenance::computed(format!("{name}: {how}; memory: {mem_label}"));
        scene.push(table(
            "blocks",
            "KV blocks = (memory × util − weights − activations) / block bytes",
            prov.clone(),
            &["", "value"],
            vec![
                vec!["memory".into(), format!("{:.2} GiB", total / GIB)],
                vec![
                    format!("× gpu_memory_utilization {util:.2}"),
                    format!("{:.2} GiB", budget / GIB),
                ],
                vec!["− weights".into(), format!("{:.2} GiB", weights / GIB)],
                vec![
                    format!("− activations of a {tokens}-token step"),
                    format!("{:.3} GiB", act / GIB),
                ],
                vec![
                    "bytes per block".into(),
                    format!(
                        "{BLOCK_SIZE} × {:.1} KiB = {:.0} KiB",
                        kv_pos / 1024.0,
                        block / 1024.0
                    ),
                ],
                vec![
                    "KV blocks".into(),
                    if left > 0.0 {
                        format!("{blocks:.0}")
                    } else {
                        "none: the weights do not fit".into()
                    },
                ],
                vec![
                    format!("sequences at the full context ({context} tokens)"),
                    format!("{seqs:.1}"),
                ],
            ],
        ));
        scene.push(bars(
            "split",
            &format!("Where {mem_label} goes"),
            mem_prov,
            "GiB",
            vec![
                bar("weights", weights / GIB, Role::Weight),
                bar("activations", act / GIB, Role::Activation),
                bar("KV blocks", (blocks * block) / GIB, Role::Attention),
                bar("left to others", (total - budget) / GIB, Role::Muted),
            ],
        ));
        Ok(scene)
    }
}
