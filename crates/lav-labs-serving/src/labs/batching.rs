//! batching: one seeded arrival trace served by lav's engine on the real model, with
//! static and with continuous batching (the same scheduler code, two policies), its
//! slot occupancy and head-of-line waiting; a batch slider that runs into the KV
//! wall (this machine's RAM, or a GPU row simulated) with decode throughput measured
//! at batch 1–8 here; and batch invariance: one request's logits alone and among
//! companions, compared bit for bit.

use super::{Context, lifecycle, ms, pct, prompt_text};
use crate::trace::{self, Arrival, Trace};
use lav_engine::per_token_cost;
use lav_engine::scheduler::{Policy, SchedulerConfig};
use lav_engine::workload::Lengths;
use lav_gpusim::step_cost::{SeqWork, StepModel};
use lav_gpusim::{Gpu, ModelConfig};
use lav_lab::items::{ModelSource, bar, bars, sig, table, text};
use lav_lab::job::{Job, Progress, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values, published};
use lav_model::{BatchSeq, KvPool, Llama, Tokenizer};
use lav_scene::*;
use std::sync::Arc;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// The memory the KV wall is drawn against: this machine, or a GPU row.
const HERE: &str = "this machine (RAM)";
const OWN: &str = "this model";
/// Batch sizes whose decode speed is measured here.
const MEASURED: [usize; 4] = [1, 2, 4, 8];

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
        policy: Control::choice(
            "policy",
            "Batching",
            &["continuous", "static"],
            "continuous",
        ),
        rate: Control::slider("rate", "Arrivals per second", 1.0, 40.0, 1.0, 10.0),
        count: Control::slider("count", "Requests", 4.0, 16.0, 1.0, 8.0),
        memory: Control::choice("memory", "Memory", &as_str(&memories), "H100 SXM 80GB"),
        model: Control::choice("model", "Model", &as_str(&models), "Llama-3-8B"),
        context: Control::slider(
            "context",
            "Tokens per sequence",
            512.0,
            32768.0,
            512.0,
            4096.0,
        ),
        batch: Control::slider("batch", "Batch", 1.0, 512.0, 1.0, 8.0),
        companions: Control::slider("companions", "Requests in the batch", 1.0, 8.0, 1.0, 8.0),
        chunked: Control::toggle("chunked", "Prefill it in two chunks", true),
    };
    let steps = vec![
        Step::new(
            "arrivals",
            &[&c.policy, &c.rate, &c.count],
            BatchLab::arrivals,
        ),
        Step::new(
            "kv-wall",
            &[&c.memory, &c.model, &c.context, &c.batch],
            BatchLab::kv_wall,
        ),
        Step::new(
            "invariance",
            &[&c.companions, &c.chunked],
            BatchLab::invariance,
        ),
    ];
    let model = ctx.loader.model().lab()?;
    Steps::lab(
        BatchLab {
            c,
            text: prompt_text(&ctx.dir)?,
            facts: published::facts(&ctx.dir, "batching")?,
            tokenizer: ctx.loader.tokenizer().lab()?,
            source: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            gpus,
            configs,
            model,
            runs: Job::default(),
            speeds: Job::default(),
            same: Job::default(),
        },
        steps,
    )
}

struct Controls {
    policy: Control,
    rate: Control,
    count: Control,
    memory: Control,
    model: Control,
    context: Control,
    batch: Control,
    companions: Control,
    chunked: Control,
}

struct BatchLab {
    c: Controls,
    text: String,
    facts: Vec<published::Fact>,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    source: ModelSource,
    gpus: Vec<Gpu>,
    configs: Vec<ModelConfig>,
    /// The trace served both ways: (static, continuous), keyed by (rate, count).
    runs: Job<(u32, usize), (Trace, Trace)>,
    /// Decode tokens/s at each of [`MEASURED`].
    speeds: Job<(), Vec<(usize, f64)>>,
    same: Job<(usize, bool), Invariance>,
}

impl LabState for BatchLab {
    fn busy(&self) -> bool {
        self.runs.busy() || self.speeds.busy() || self.same.busy()
    }
}

/// The engine configuration of the arrivals step: four slots, so a queue forms.
fn config(policy: Policy) -> SchedulerConfig {
    SchedulerConfig {
        policy,
        max_num_seqs: 4,
        max_num_batched_tokens: 256,
        num_blocks: 64,
        ..Default::default()
    }
}

/// Slot-steps left empty while requests waited in the queue: head-of-line blocking.
fn idle_slots(t: &Trace) -> usize {
    let mut idle = 0;
    for s in &t.steps {
        // Requests that had arrived and were still queued when this step was planned.
        let waiting = t
            .times
            .iter()
            .filter(|r| r.arrival <= s.start && r.scheduled.is_none_or(|x| x > s.start))
            .count();
        let free = t.cfg.max_num_seqs - s.batch.chunks.len().min(t.cfg.max_num_seqs);
        idle += free.min(waiting);
    }
    idle
}

/// Decode positions a padded static batch would compute for nothing: each request
/// admitted in the same step keeps decoding (padding) until the longest of them is
/// done, as frameworks that pad a batch to one length do.
fn padding(t: &Trace) -> (usize, usize) {
    let mut groups: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (i, r) in t.times.iter().enumerate() {
        if let Some(s) = r.scheduled {
            groups
                .entry(s.to_bits())
                .or_default()
                .push(t.outputs[i].len());
        }
    }
    let pad = groups
        .values()
        .map(|g| {
            let longest = g.iter().copied().max().unwrap_or(0);
            g.iter().map(|n| longest - n).sum::<usize>()
        })
        .sum();
    (pad, t.output_tokens())
}

fn mean_ttft(t: &Trace) -> f64 {
    let v: Vec<f64> = t.times.iter().filter_map(|r| r.ttft()).collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

impl BatchLab {
    fn engine(&self) -> Provenance {
        Provenance::engine(format!(
            "lav's engine on {}, measured on this machine",
            self.source
        ))
    }

    fn arrivals(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let rate = v.num(&self.c.rate);
        let count = v.usize(&self.c.count);
        let reqs = trace::arrivals(
            &self.tokenizer,
            &self.text,
            rate,
            count,
            Lengths::Uniform { min: 8, max: 48 },
            Lengths::Uniform { min: 4, max: 24 },
            7,
        )?;
        let model = self.model.clone();
        let key = (rate as u32, count);
        if let State::Running(p) = self.runs.get(&key, move |p| {
            let st = trace::serve(&model, &reqs, config(Policy::Static), p)?;
            let co = trace::serve(&model, &reqs, config(Policy::Continuous), p)?;
            Ok((st, co))
        })? {
            scene.push(progress_item(
                "progress",
                "Serving the trace, static then continuous",
                p,
            ));
            return Ok(scene);
        }
        let (st, co) = self.runs.ready(&key).expect("ready");
        let is_static = v.text(&self.c.policy) == "static";
        let (this, other) = if is_static { (st, co) } else { (co, st) };
        let name = if is_static { "static" } else { "continuous" };
        let prov = self.engine();
        scene.push(Item::new(
            "timeline",
            format!("{count} requests, {name} batching: queue | prefill | decode (ms)"),
            prov.clone(),
            Primitive::Timeline(Timeline {
                lanes: (0..count)
                    .map(|i| {
                        format!(
                            "req {i} ({} → {})",
                            this.times[i].prompt_tokens,
                            this.outputs[i].len()
                        )
                    })
                    .collect(),
                spans: this
                    .times
                    .iter()
                    .enumerate()
                    .flat_map(|(i, t)| lifecycle(i, t))
                    .collect(),
                unit: "ms".into(),
            }),
        ));
        let occupancy = |t: &Trace, label: &str, role| Series {
            name: label.into(),
            points: t
                .steps
                .iter()
                .map(|s| (s.start * 1e3, s.batch.chunks.len() as f64))
                .collect(),
            line: true,
            role,
        };
        let other_name = if is_static { "continuous" } else { "static" };
        scene.push(Item::new(
            "slots",
            format!(
                "Sequences in each step, of {} slots ({name}; {other_name} dimmed)",
                this.cfg.max_num_seqs
            ),
            prov.clone(),
            Primitive::Plot(Plot {
                x_label: "ms".into(),
                y_label: "sequences".into(),
                x_log: false,
                y_log: false,
                series: vec![
                    occupancy(this, name, Role::Highlight),
                    occupancy(other, other_name, Role::Muted),
                ],
            }),
        ));
        let row = |label: &str, f: &dyn Fn(&Trace) -> String| vec![label.to_string(), f(st), f(co)];
        scene.push(table(
            "compare",
            "The same trace, both policies",
            prov,
            &["", "static", "continuous"],
            vec![
                row("output tokens", &|t| t.output_tokens().to_string()),
                row("run time", &|t| ms(t.seconds)),
                row("throughput (tok/s)", &|t| format!("{:.1}", t.tok_s())),
                row("engine steps", &|t| t.steps.len().to_string()),
                row("slots used per step", &|t| pct(t.slot_use())),
                row("slot-steps idle while requests queued", &|t| {
                    idle_slots(t).to_string()
                }),
                row("mean time to first token", &|t| ms(mean_ttft(t))),
                vec![
                    "padding, if each batch ran to its longest (what-if)".into(),
                    {
                        let (pad, out) = padding(st);
                        format!(
                            "{pad} positions ({} of the decode)",
                            pct(pad as f64 / (pad + out).max(1) as f64)
                        )
                    },
                    "0 (a finished request leaves)".into(),
                ],
            ],
        ));
        scene.push(published::table(
            "published",
            "Iteration-level scheduling, as published",
            &self.facts,
        ));
        Ok(scene)
    }

    fn kv_wall(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let batch = v.usize(&self.c.batch).max(1);
        let context = v.usize(&self.c.context).max(1);
        let memory = v.text(&self.c.memory).to_string();
        let model = v.text(&self.c.model).to_string();
        let gpu = self.gpus.iter().find(|g| g.name == memory).cloned();
        let cfg = &self.model.config;
        // Bytes per weight and per cached value: lav's own on this machine (its GGUF
        // weights, f32 K/V); BF16 on a GPU.
        let (own_weights, _) = per_token_cost(&self.model);
        let published = self.configs.iter().find(|m| m.name == model).cloned();
        let (name, weights, kv_token, params) = match (&published, &gpu) {
            (Some(m), _) => (
                m.name.clone(),
                m.params as f64 * 2.0,
                lav_gpusim::kv_bytes(m.layers, m.kv_heads, m.head_dim, 2.0, 1, 1),
                m.params as f64,
            ),
            (None, Some(_)) => (
                format!("{} (BF16)", cfg.name),
                lav_model::card::parameters_from_config(&self.model.config) as f64 * 2.0,
                lav_gpusim::kv_bytes(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, 2.0, 1, 1),
                lav_model::card::parameters_from_config(&self.model.config) as f64,
            ),
            (None, None) => (
                format!("{} (as lav runs it)", cfg.name),
                own_weights,
                KvPool::new(&self.model.config, 0, 16).bytes_per_position() as f64,
                lav_model::card::parameters_from_config(&self.model.config) as f64,
            ),
        };
        let (budget, budget_label, mem_prov) = match &gpu {
            Some(g) => (
                g.hbm_bytes(),
                g.hbm.clone(),
                Provenance::simulated(format!("{} row of the hardware table", g.name)),
            ),
            None => {
                let (_, avail) = lav_gpusim::machine::ram_bytes().unwrap_or((0.0, 0.0));
                (
                    avail,
                    format!("{:.1} GiB available RAM", avail / GIB),
                    Provenance::engine("this machine's /proc/meminfo".to_string()),
                )
            }
        };
        let kv = kv_token * context as f64 * batch as f64;
        let max_batch = ((budget - weights) / (kv_token * context as f64))
            .floor()
            .max(0.0);
        let over = weights + kv > budget;
        scene.push(bars(
            "memory",
            &format!("{name}: weights + KV for {batch} × {context} tokens, against {budget_label}"),
            mem_prov.clone(),
            "GiB",
            vec![
                bar("weights", weights / GIB, Role::Weight),
                bar(
                    format!("KV cache, batch {batch}"),
                    kv / GIB,
                    if over { Role::WhatIf } else { Role::Attention },
                ),
                bar(
                    format!("budget ({budget_label})"),
                    budget / GIB,
                    Role::Muted,
                ),
            ],
        ));
        let ai = 2.0 * batch as f64 * params / weights;
        scene.push(table(
            "wall",
            "Max batch ≈ (memory − weights) / (KV per token × context)",
            Provenance::computed(format!(
                "from the {name} shape; activations left out (a few % at these sizes)"
            )),
            &["", "value"],
            vec![
                vec![
                    "KV per token".into(),
                    format!("{:.1} KiB", kv_token / 1024.0),
                ],
                vec![
                    "KV per sequence".into(),
                    format!("{:.3} GiB", kv_token * context as f64 / GIB),
                ],
                vec![
                    "max batch at this context".into(),
                    format!("{max_batch:.0}"),
                ],
                vec![
                    format!("batch {batch}"),
                    if over {
                        "does not fit: past the KV wall".into()
                    } else {
                        format!("fits ({:.0}% of memory)", 100.0 * (weights + kv) / budget)
                    },
                ],
                vec![
                    "decode FLOP per weight byte".into(),
                    format!(
                        "{} (2 FLOPs × {batch} sequences per weight read once)",
                        sig(ai)
                    ),
                ],
            ],
        ));
        if let Some(g) = &gpu {
            let shape = published.clone().unwrap_or_else(|| ModelConfig {
                id: "own".into(),
                name: cfg.name.clone(),
                layers: cfg.num_layers,
                heads: cfg.num_heads,
                kv_heads: cfg.num_kv_heads,
                head_dim: cfg.head_dim,
                params: lav_model::card::parameters_from_config(cfg) as u64,
                context,
                source: "read from the GGUF metadata".into(),
            });
            let sm = StepModel::bf16(shape, g.clone());
            let top = (max_batch as usize).clamp(1, 512);
            let bs: Vec<usize> = (0..=9)
                .map(|k| 1usize << k)
                .filter(|&b| b <= top)
                .chain([top])
                .collect();
            let speed = |b: usize| {
                let c = sm.cost(&vec![SeqWork { new: 1, context }; b]);
                b as f64 / c.seconds
            };
            scene.push(Item::new(
                "simulated",
                format!(
                    "Decode tokens/s on {} until the KV wall at batch {top} (context {context})",
                    g.name
                ),
                Provenance::simulated(format!("{} row of the hardware table", g.name)),
                Primitive::Plot(Plot {
                    x_label: "batch".into(),
                    y_label: "tokens/s".into(),
                    x_log: true,
                    y_log: true,
                    series: vec![
                        Series {
                            name: "step-cost model".into(),
                            points: bs.iter().map(|&b| (b as f64, speed(b))).collect(),
                            line: true,
                            role: Role::Muted,
                        },
                        Series {
                            name: format!("batch {}", batch.min(top)),
                            points: vec![(batch.min(top) as f64, speed(batch.min(top)))],
                            line: false,
                            role: Role::Highlight,
                        },
                    ],
                }),
            ));
        }
        let engine = self.engine();
        let source = self.source.to_string();
        let (model_arc, tok, text) = (
            self.model.clone(),
            self.tokenizer.clone(),
            self.text.clone(),
        );
        match self
            .speeds
            .get(&(), move |p| measure_batches(&model_arc, &tok, &text, p))?
        {
            State::Running(p) => scene.push(progress_item(
                "progress",
                "Measuring decode at batch 1, 2, 4 and 8 on this machine (two rounds)",
                p,
            )),
            State::Ready(s) => {
                let base = s[0].1;
                scene.push(bars(
                    "measured",
                    &format!("{source}: decode tokens/s on this CPU by batch"),
                    engine,
                    "tokens/s",
                    s.iter()
                        .map(|&(b, t)| {
                            bar(
                                format!("batch {b} ({:.2}×)", t / base),
                                t,
                                if b == batch {
                                    Role::Highlight
                                } else {
                                    Role::Token
                                },
                            )
                        })
                        .collect(),
                ));
            }
        }
        Ok(scene)
    }

    fn invariance(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let b = v.usize(&self.c.companions).max(1);
        let chunked = v.flag(&self.c.chunked);
        let lens: Vec<usize> = (0..8)
            .map(|i| if i == 0 { 40 } else { 8 + 5 * i })
            .collect();
        let prompts = trace::prompts(&self.tokenizer, &self.text, &lens)?;
        let model = self.model.clone();
        let key = (b, chunked);
        if let State::Running(p) = self.same.get(&key, move |p| {
            compare(&model, &prompts[0], &prompts[1..b], chunked, 8, p)
        })? {
            scene.push(progress_item(
                "progress",
                "Running it alone, then in the batch",
                p,
            ));
            return Ok(scene);
        }
        let r = self.same.ready(&key).expect("ready");
        let decode = |ids: &[u32]| -> Vec<Chip> {
            ids.iter()
                .map(|&i| {
                    let t = String::from_utf8_lossy(&self.tokenizer.token_bytes(i)).into_owned();
                    lav_lab::items::chip(t, Some(i), Role::Token, false)
                })
                .collect()
        };
        let prov = self.source.prov(self.source.to_string());
        scene.push(lav_lab::items::strip(
            "alone",
            "Greedy continuation, alone",
            prov.clone(),
            decode(&r.alone),
        ));
        scene.push(lav_lab::items::strip(
            "batched",
            &format!("The same request among {} others", b - 1),
            prov.clone(),
            decode(&r.batched),
        ));
        let identical = r.max_diff == 0.0 && r.alone == r.batched;
        scene.push(table(
            "check",
            "Its logits, compared bit for bit at every step",
            prov,
            &["", "value"],
            vec![
                vec!["requests in the batch".into(), b.to_string()],
                vec![
                    "its prompt prefilled".into(),
                    if chunked {
                        format!(
                            "in two chunks ({} + {} tokens)",
                            r.split,
                            r.prompt - r.split
                        )
                    } else {
                        format!("whole ({} tokens)", r.prompt)
                    },
                ],
                vec![
                    "logits compared".into(),
                    format!("{} steps × {} = {}", r.steps, r.vocab, r.steps * r.vocab),
                ],
                vec!["largest |difference|".into(), format!("{:e}", r.max_diff)],
                vec![
                    "bit-identical".into(),
                    if identical { "yes".into() } else { "NO".into() },
                ],
            ],
        ));
        scene.push(text(
            "why",
            "Why it holds",
            Provenance::computed("lav's batched forward".to_string()),
            "Each row of the batch is computed in the same order whatever else is in the batch: the 8-token matmul tile reads the same weights for every row, attention reads each sequence's own blocks, and no reduction is split across rows. Engines that pick kernels by batch size do not promise this.",
        ));
        Ok(scene)
    }
}

/// Decode tokens/s of the real engine at each of [`MEASURED`] batch sizes: that many
/// 16-token prompts arriving together, 16 tokens each, timed over the decode steps.
/// Two rounds over the sizes, the better of each kept, so a burst of other work on
/// the machine (a window opening) does not land on one size only.
fn measure_batches(
    model: &Arc<Llama>,
    tok: &Tokenizer,
    text: &str,
    p: &Progress,
) -> Result<Vec<(usize, f64)>> {
    let mut best = vec![0f64; MEASURED.len()];
    for _round in 0..2 {
        for (i, &b) in MEASURED.iter().enumerate() {
            let reqs: Vec<Arrival> = trace::prompts(tok, text, &vec![16; b])?
                .into_iter()
                .map(|prompt| Arrival {
                    at: 0.0,
                    prompt,
                    max_tokens: 16,
                })
                .collect();
            let cfg = SchedulerConfig {
                max_num_seqs: b,
                num_blocks: 4 * b,
                ..Default::default()
            };
            let t = trace::serve(model, &reqs, cfg, p)?;
            let decode: Vec<_> = t
                .steps
                .iter()
                .filter(|s| s.batch.chunks.len() == b && s.batch.num_tokens() == b)
                .collect();
            let secs: f64 = decode.iter().map(|s| s.seconds).sum();
            best[i] = best[i].max((decode.len() * b) as f64 / secs.max(1e-9));
        }
    }
    Ok(MEASURED.iter().copied().zip(best).collect())
}

/// One request alone and among companions.
struct Invariance {
    alone: Vec<u32>,
    batched: Vec<u32>,
    max_diff: f32,
    steps: usize,
    vocab: usize,
    prompt: usize,
    split: usize,
}

fn argmax(l: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in l.iter().enumerate() {
        if x > l[best] {
            best = i;
        }
    }
    best as u32
}

/// Runs `target` alone, then in one batch with `others` (each at its own position),
/// its prompt whole or in two chunks, and greedy for `n` tokens; compares every
/// logit it got.
fn compare(
    model: &Llama,
    target: &[u32],
    others: &[Vec<u32>],
    chunked: bool,
    n: usize,
    p: &Progress,
) -> Result<Invariance> {
    let bs = 16;
    let per = (target
        .len()
        .max(others.iter().map(Vec::len).max().unwrap_or(0))
        + n
        + 2)
    .div_ceil(bs);
    let tables: Vec<Vec<u32>> = (0..=others.len())
        .map(|i| ((i * per) as u32..((i + 1) * per) as u32).collect())
        .collect();
    // Alone.
    p.set(0, 2, "alone");
    let mut pool = KvPool::new(&model.config, per, bs);
    let mut logits_alone = Vec::new();
    let mut l = model
        .forward_batch(
            &[BatchSeq {
                tokens: target,
                start: 0,
                block_table: &tables[0],
                logits: true,
            }],
            &mut pool,
        )
        .lab()?
        .remove(0);
    let mut alone = Vec::new();
    for k in 0..n {
        let t = argmax(&l);
        alone.push(t);
        logits_alone.push(l);
        p.check()?;
        l = model
            .forward_batch(
                &[BatchSeq {
                    tokens: &[t],
                    start: target.len() + k,
                    block_table: &tables[0],
                    logits: true,
                }],
                &mut pool,
            )
            .lab()?
            .remove(0);
    }
    // In the batch: the target is the last row, the others' prompts prefill beside it.
    p.set(1, 2, "in the batch");
    let mut pool = KvPool::new(&model.config, per * (others.len() + 1), bs);
    let split = if chunked {
        target.len() / 2
    } else {
        target.len()
    };
    let mut seqs: Vec<BatchSeq<'_>> = others
        .iter()
        .enumerate()
        .map(|(i, o)| BatchSeq {
            tokens: o,
            start: 0,
            block_table: &tables[i + 1],
            logits: true,
        })
        .collect();
    seqs.push(BatchSeq {
        tokens: &target[..split],
        start: 0,
        block_table: &tables[0],
        logits: !chunked,
    });
    let out = model.forward_batch(&seqs, &mut pool).lab()?;
    let mut next: Vec<u32> = out.iter().take(others.len()).map(|l| argmax(l)).collect();
    let mut pos: Vec<usize> = others.iter().map(Vec::len).collect();
    let mut l = if chunked {
        let mut seqs: Vec<BatchSeq<'_>> = (0..others.len())
            .map(|i| BatchSeq {
                tokens: std::slice::from_ref(&next[i]),
                start: pos[i],
                block_table: &tables[i + 1],
                logits: true,
            })
            .collect();
        seqs.push(BatchSeq {
            tokens: &target[split..],
            start: split,
            block_table: &tables[0],
            logits: true,
        });
        let mut out = model.forward_batch(&seqs, &mut pool).lab()?;
        for (i, l) in out.iter().take(others.len()).enumerate() {
            next[i] = argmax(l);
            pos[i] += 1;
        }
        out.pop().expect("the target's logits")
    } else {
        out.last().expect("the target's logits").clone()
    };
    let (mut batched, mut max_diff) = (Vec::new(), 0f32);
    for (k, solo) in logits_alone.iter().enumerate() {
        for (a, b) in solo.iter().zip(&l) {
            max_diff = max_diff.max((a - b).abs());
        }
        let t = argmax(&l);
        batched.push(t);
        p.check()?;
        let mut seqs: Vec<BatchSeq<'_>> = (0..others.len())
            .map(|i| BatchSeq {
                tokens: std::slice::from_ref(&next[i]),
                start: pos[i],
                block_table: &tables[i + 1],
                logits: true,
            })
            .collect();
        let tt = [t];
        seqs.push(BatchSeq {
            tokens: &tt,
            start: target.len() + k,
            block_table: &tables[0],
            logits: true,
        });
        let mut out = model.forward_batch(&seqs, &mut pool).lab()?;
        for (i, l) in out.iter().take(others.len()).enumerate() {
            next[i] = argmax(l);
            pos[i] += 1;
        }
        l = out.pop().expect("the target's logits");
    }
    Ok(Invariance {
        alone,
        batched,
        max_diff,
        steps: n,
        vocab: model.config.vocab_size,
        prompt: target.len(),
        split,
    })
}
