//! kv-cache: why past keys and values are kept. A decode timed on this machine with
//! and without the cache (with the real K/V projection counter and a bit-for-bit
//! check that cached logits equal recomputed ones), the model's real cached K and V,
//! a memory calculator over real and published configs against the GPU table, and
//! prefill vs decode on the roofline of this CPU (measured) and an H100 (simulated).

use super::Context;
use crate::bpe::show_bytes;
use crate::pass::values;
use lav_engine::{Decode, decode_both, measure_speeds, per_token_cost};
use lav_gpusim::machine::Machine;
use lav_gpusim::roofline;
use lav_gpusim::{Gpu, ModelConfig, kv_bytes};
use lav_lab::items::ModelSource;
use lav_lab::items::{bar, bars, sig, table, text};
use lav_lab::job::{Job, Progress, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values};
use lav_model::{Llama, Logits, Tokenizer};
use lav_scene::*;
use std::sync::Arc;

const KIB: f64 = 1024.0;
const GIB: f64 = KIB * KIB * KIB;
/// The dtypes the calculator offers, with bytes per value.
const DTYPES: &[(&str, f64)] = &[
    ("fp32", 4.0),
    ("fp16/bf16", 2.0),
    ("fp8/int8", 1.0),
    ("int4", 0.5),
];
/// The loaded model's own shape, whatever `--model` loaded (its name is shown from
/// the GGUF metadata).
const PRESET_OWN: &str = "this model";

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let model = ctx.loader.model().lab()?;
    let published = lav_gpusim::model_configs(&ctx.dir).lab()?;
    let mut presets = vec![PRESET_OWN.to_string()];
    presets.extend(published.iter().map(|m| m.name.clone()));
    presets.push("custom".into());
    let preset_refs: Vec<&str> = presets.iter().map(String::as_str).collect();
    let cfg = &model.config;
    let c = Controls {
        prompt: Control::text(
            "prompt",
            "Prompt",
            300,
            "The quick brown fox jumps over the lazy dog.",
        ),
        tokens: Control::slider("tokens", "Tokens to generate", 4.0, 64.0, 1.0, 32.0),
        cache: Control::toggle("cache", "KV cache", true),
        layer: Control::slider("layer", "Layer", 0.0, (cfg.num_layers - 1) as f64, 1.0, 0.0),
        kv_head: Control::slider(
            "kv_head",
            "KV head",
            0.0,
            (cfg.num_kv_heads - 1) as f64,
            1.0,
            0.0,
        ),
        which: Control::choice("which", "Tensor", &["K", "V"], "K"),
        preset: Control::choice("preset", "Model", &preset_refs, PRESET_OWN),
        layers: Control::slider("layers", "Layers (custom)", 1.0, 160.0, 1.0, 32.0),
        heads: Control::slider("heads", "Query heads (custom)", 1.0, 128.0, 1.0, 32.0),
        kv_heads: Control::slider(
            "kv_heads",
            "KV heads (0 = as published; = heads is MHA; 1 is MQA)",
            0.0,
            128.0,
            1.0,
            0.0,
        ),
        head_dim: Control::slider("head_dim", "Head dim (custom)", 16.0, 256.0, 16.0, 128.0),
        dtype: Control::choice(
            "dtype",
            "Cache dtype",
            &DTYPES.iter().map(|d| d.0).collect::<Vec<_>>(),
            "fp16/bf16",
        ),
        context: Control::slider(
            "context",
            "Context (tokens)",
            512.0,
            131072.0,
            512.0,
            8192.0,
        ),
        batch: Control::slider("batch", "Batch (sequences)", 1.0, 256.0, 1.0, 1.0),
        prefill: Control::slider(
            "prefill",
            "Prompt tokens in the prefill",
            1.0,
            256.0,
            1.0,
            64.0,
        ),
    };
    let steps = vec![
        Step::new(
            "recompute",
            &[&c.prompt, &c.tokens, &c.cache],
            KvLab::recompute,
        ),
        Step::new(
            "tensors",
            &[&c.prompt, &c.layer, &c.kv_head, &c.which],
            KvLab::tensors,
        ),
        Step::new(
            "memory",
            &[
                &c.preset,
                &c.dtype,
                &c.context,
                &c.batch,
                &c.kv_heads,
                &c.layers,
                &c.heads,
                &c.head_dim,
            ],
            KvLab::memory,
        ),
        Step::new("roofline", &[&c.prefill], KvLab::roofline),
    ];
    Steps::lab(
        KvLab {
            c,
            tokenizer: ctx.loader.tokenizer().lab()?,
            model_name: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            published,
            h100: lav_gpusim::gpu(&ctx.dir, "h100").lab()?,
            h200: lav_gpusim::gpu(&ctx.dir, "h200").lab()?,
            model,
            prefill: None,
            decode: Job::default(),
            speeds: Job::default(),
        },
        steps,
    )
}

struct Controls {
    prompt: Control,
    tokens: Control,
    cache: Control,
    layer: Control,
    kv_head: Control,
    which: Control,
    preset: Control,
    layers: Control,
    heads: Control,
    kv_heads: Control,
    head_dim: Control,
    dtype: Control,
    context: Control,
    batch: Control,
    prefill: Control,
}

struct KvLab {
    c: Controls,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    model_name: ModelSource,
    published: Vec<ModelConfig>,
    h100: Gpu,
    h200: Gpu,
    /// The prompt's cache after prefill: (prompt, tokens, cache).
    prefill: Option<(String, Vec<u32>, lav_model::KvCache)>,
    decode: Job<(String, usize), Decode>,
    speeds: Job<usize, Measured>,
}

impl LabState for KvLab {
    fn busy(&self) -> bool {
        self.decode.busy() || self.speeds.busy()
    }
}

/// The engine's view of a job's progress: how far it got, and whether it is still
/// wanted.
struct JobProgress<'a>(&'a Progress);

impl lav_engine::Progress for JobProgress<'_> {
    fn set(&self, d: u64, t: u64, l: &str) {
        self.0.set(d, t, l)
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

/// Prefill and decode throughput measured on this machine, with the machine's own
/// bandwidth and compute peak.
struct Measured {
    machine: Machine,
    speeds: lav_engine::Speeds,
}

/// Measures this machine, then the model's prefill and decode speeds on it.
fn measure(model: &Llama, tok: &Tokenizer, n: usize, p: &Progress) -> Result<Measured> {
    p.set(0, 3, "measuring this machine's bandwidth and f32 peak");
    let machine = lav_gpusim::machine::get().clone();
    p.check()?;
    let speeds = measure_speeds(model, tok, n, &JobProgress(p)).lab()?;
    Ok(Measured { machine, speeds })
}

/// One model shape for the calculator.
#[derive(Clone, Debug)]
struct Shape {
    name: String,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    source: String,
}

impl KvLab {
    fn prov(&self) -> Provenance {
        self.model_name.prov(self.model_name.to_string())
    }

    fn prompt_tokens(&self, prompt: &str) -> Result<Vec<u32>> {
        crate::pass::prompt_tokens(&self.tokenizer, prompt)
    }

    /// The calculator's shape from the preset and sliders, with notes on any value
    /// that had to be clamped or snapped.
    fn shape(&self, v: &Values, notes: &mut Vec<String>) -> Shape {
        let preset = v.text(&self.c.preset);
        let cfg = &self.model.config;
        let mut s = if preset == PRESET_OWN {
            Shape {
                name: format!("{} (this model)", cfg.name),
                layers: cfg.num_layers,
                heads: cfg.num_heads,
                kv_heads: cfg.num_kv_heads,
                head_dim: cfg.head_dim,
                source: "read from the GGUF metadata".into(),
            }
        } else if let Some(m) = self.published.iter().find(|m| m.name == preset) {
            Shape {
                name: m.name.clone(),
                layers: m.layers,
                heads: m.heads,
                kv_heads: m.kv_heads,
                head_dim: m.head_dim,
                source: m.source.clone(),
            }
        } else {
            let heads = v.usize(&self.c.heads).max(1);
            Shape {
                name: "custom".into(),
                layers: v.usize(&self.c.layers).max(1),
                heads,
                kv_heads: heads,
                head_dim: v.usize(&self.c.head_dim).max(1),
                source: "your sliders".into(),
            }
        };
        let want = v.usize(&self.c.kv_heads);
        if want > 0 {
            let mut k = want;
            if k > s.heads {
                notes.push(format!(
                    "KV heads {want} clamped to {} (there are only {} query heads)",
                    s.heads, s.heads
                ));
                k = s.heads;
            }
            if !s.heads.is_multiple_of(k) {
                // Every KV head must serve the same number of query heads.
                let snapped = (1..=s.heads)
                    .filter(|d| s.heads.is_multiple_of(*d))
                    .min_by_key(|d| d.abs_diff(k))
                    .unwrap_or(1);
                notes.push(format!(
                    "KV heads {k} snapped to {snapped}, a divisor of {} query heads",
                    s.heads
                ));
                k = snapped;
            }
            s.kv_heads = k;
        }
        s
    }
}

/// A table row: a measurement's best, median and worst, divided by `unit`.
fn spread(label: &str, s: &lav_gpusim::machine::Spread, unit: f64) -> Vec<String> {
    vec![
        label.to_string(),
        sig(s.best / unit),
        sig(s.median / unit),
        sig(s.worst / unit),
    ]
}

fn attention_kind(heads: usize, kv: usize) -> String {
    if kv == heads {
        "MHA".into()
    } else if kv == 1 {
        "MQA".into()
    } else {
        format!("GQA ({} query heads per KV head)", heads / kv)
    }
}

fn bytes_label(b: f64) -> String {
    if b >= GIB {
        format!("{:.2} GiB", b / GIB)
    } else if b >= KIB * KIB {
        format!("{:.2} MiB", b / KIB / KIB)
    } else {
        format!("{:.1} KiB", b / KIB)
    }
}

impl KvLab {
    fn recompute(&mut self, v: &Values) -> Result<Scene> {
        let prov = self.prov();
        let mut scene = Scene::new();
        let prompt = v.text(&self.c.prompt).to_string();
        let n = v.usize(&self.c.tokens);
        let ids = self.prompt_tokens(&prompt)?;
        let model = self.model.clone();
        let key = (prompt.clone(), n);
        if let State::Running(p) = self.decode.get(&key, move |p| {
            decode_both(&model, &ids, n, &JobProgress(p)).lab()
        })? {
            scene.push(progress_item(
                "progress",
                "Decoding with and without the cache",
                p,
            ));
            return Ok(scene);
        }
        let d = self.decode.ready(&key).expect("ready");
        let on = v.flag(&self.c.cache);
        let engine = Provenance::engine(format!(
            "lav on {}, measured on this machine",
            self.model_name
        ));
        let (ms, other) = if on {
            (&d.cached_ms, &d.uncached_ms)
        } else {
            (&d.uncached_ms, &d.cached_ms)
        };
        let series = |name: &str, ms: &[f64], role| Series {
            name: name.into(),
            points: ms
                .iter()
                .enumerate()
                .map(|(i, &m)| ((i + 1) as f64, m))
                .collect(),
            line: true,
            role,
        };
        let (this, that) = if on {
            ("with the cache", "recomputing everything")
        } else {
            ("recomputing everything", "with the cache")
        };
        scene.push(Item::new(
            "timing",
            format!("Time per generated token, {this} (the other run dimmed)"),
            engine.clone(),
            Primitive::Plot(Plot {
                x_label: "generated token".into(),
                y_label: "ms".into(),
                x_log: false,
                y_log: false,
                series: vec![
                    series(this, ms, Role::Highlight),
                    series(that, other, Role::Muted),
                ],
            }),
        ));
        let (p, g) = (d.prompt_len, d.tokens.len());
        let (proj, formula) = if on {
            (d.cached_projections, p + g - 1)
        } else {
            (d.uncached_projections, g * p + g * (g - 1) / 2)
        };
        scene.push(bars(
            "projections",
            "K/V projections computed per layer (counted by the cache)",
            engine.clone(),
            "projections",
            vec![
                bar(
                    "with the cache",
                    d.cached_projections as f64,
                    if on { Role::Highlight } else { Role::Muted },
                ),
                bar(
                    "without",
                    d.uncached_projections as f64,
                    if on { Role::Muted } else { Role::Highlight },
                ),
            ],
        ));
        let sum = |x: &[f64]| x.iter().sum::<f64>();
        scene.push(table(
            "counter",
            "The cost, counted and timed",
            engine,
            &["", "with the cache", "recomputing"],
            vec![
                vec![
                    "prompt tokens P / generated n".into(),
                    format!("{p} / {g}"),
                    format!("{p} / {g}"),
                ],
                vec![
                    "K/V projections per layer (counted)".into(),
                    d.cached_projections.to_string(),
                    d.uncached_projections.to_string(),
                ],
                vec![
                    "formula".into(),
                    format!("P + n − 1 = {}", p + g - 1),
                    format!("nP + n(n−1)/2 = {}", g * p + g * (g - 1) / 2),
                ],
                vec![
                    "from a 1-token prompt".into(),
                    format!("n = {g}"),
                    format!("n(n+1)/2 = {}", g * (g + 1) / 2),
                ],
                vec![
                    "total time".into(),
                    format!("{:.0} ms", sum(&d.cached_ms)),
                    format!("{:.0} ms", sum(&d.uncached_ms)),
                ],
                vec![
                    "last token".into(),
                    format!("{:.1} ms", d.cached_ms[g - 1]),
                    format!("{:.1} ms", d.uncached_ms[g - 1]),
                ],
            ],
        ));
        let check = if d.max_logit_diff == 0.0 {
            format!(
                "cached logits = uncached logits: yes, bit for bit, over all {g} steps × {} logits",
                self.model.config.vocab_size
            )
        } else {
            format!(
                "cached vs uncached logits differ by at most {:e}",
                d.max_logit_diff
            )
        };
        scene.push(text(
            "check",
            "Same answer either way",
            prov,
            format!("{check}. Shown: {this}; {proj} projections (formula {formula})."),
        ));
        let text_out = self.tokenizer.decode(&d.tokens).lab()?;
        scene.push(text(
            "output",
            "What was generated (greedy)",
            self.prov(),
            format!("{prompt}{text_out}"),
        ));
        Ok(scene)
    }

    fn tensors(&mut self, v: &Values) -> Result<Scene> {
        let prov = self.prov();
        let mut scene = Scene::new();
        let prompt = v.text(&self.c.prompt).to_string();
        if self.prefill.as_ref().is_none_or(|(p, _, _)| *p != prompt) {
            let ids = self.prompt_tokens(&prompt)?;
            let mut cache = self.model.new_cache();
            self.model
                .forward(&ids, &mut cache, Logits::Last, None)
                .lab()?;
            self.prefill = Some((prompt.clone(), ids, cache));
        }
        let (_, ids, cache) = self.prefill.as_ref().expect("just set");
        let cfg = &self.model.config;
        let layer = v.usize(&self.c.layer).min(cfg.num_layers - 1);
        let head = v.usize(&self.c.kv_head).min(cfg.num_kv_heads - 1);
        let is_k = v.text(&self.c.which) == "K";
        let t = if is_k {
            cache.keys(layer).lab()?
        } else {
            cache.values(layer).lab()?
        };
        let all = values(&t)?;
        let (n, hd) = (ids.len(), cfg.head_dim);
        let slab = all[head * n * hd..(head + 1) * n * hd].to_vec();
        scene.push(Item::new(
            "cache",
            "The cache: layers × KV heads × positions × head dim, for K and again for V",
            prov.clone(),
            Primitive::TensorBlock(TensorBlock {
                shape: vec![cfg.num_layers, cfg.num_kv_heads, n, hd],
                axes: vec![
                    "layer".into(),
                    "kv head".into(),
                    "position".into(),
                    "dim".into(),
                ],
                role: Role::Attention,
                highlight: vec![(layer, layer + 1), (head, head + 1), (0, n), (0, hd)],
            }),
        ));
        let name = if is_k { "K (after RoPE)" } else { "V" };
        let amax = slab.iter().fold(1e-6f64, |m, x| m.max(x.abs() as f64));
        scene.push(Item::new(
            "kv",
            format!("{name}, layer {layer}, KV head {head}: one row per prompt token, as cached"),
            self.model_name.prov(format!(
                "{}: layer {layer}, KV head {head}",
                self.model_name
            )),
            Primitive::Heatmap(Heatmap {
                rows: ids
                    .iter()
                    .map(|&i| show_bytes(&self.tokenizer.token_bytes(i)))
                    .collect(),
                cols: (0..hd).map(|d| d.to_string()).collect(),
                values: slab,
                scale: ColorScale::Diverging {
                    min: -amax,
                    center: 0.0,
                    max: amax,
                },
                selected: None,
                row_axis: "position".into(),
                col_axis: "dim".into(),
            }),
        ));
        let per_token = 2 * cfg.num_layers * cfg.num_kv_heads * hd;
        scene.push(table(
            "size",
            "What one token adds to the cache",
            Provenance::computed("from the model's config"),
            &["", "value"],
            vec![
                vec![
                    "values per token".into(),
                    format!(
                        "2 × {} layers × {} KV heads × {hd} = {per_token}",
                        cfg.num_layers, cfg.num_kv_heads
                    ),
                ],
                vec![
                    "bytes per token at 16-bit".into(),
                    format!(
                        "{} B = {}",
                        per_token * 2,
                        bytes_label((per_token * 2) as f64)
                    ),
                ],
                vec![
                    "bytes per token at f32 (lav stores f32)".into(),
                    format!(
                        "{} B = {}",
                        per_token * 4,
                        bytes_label((per_token * 4) as f64)
                    ),
                ],
                vec![
                    "this prompt in lav's cache".into(),
                    format!("{n} tokens = {}", bytes_label(cache.bytes_used() as f64)),
                ],
                vec![
                    "query heads sharing each KV head".into(),
                    format!(
                        "{} (GQA: {} query heads over {} KV heads)",
                        cfg.num_heads / cfg.num_kv_heads,
                        cfg.num_heads,
                        cfg.num_kv_heads
                    ),
                ],
            ],
        ));
        Ok(scene)
    }

    fn memory(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let mut notes = Vec::new();
        let s = self.shape(v, &mut notes);
        let dtype = v.text(&self.c.dtype).to_string();
        let bpv = DTYPES.iter().find(|d| d.0 == dtype).map_or(2.0, |d| d.1);
        let (ctx_len, batch) = (v.usize(&self.c.context), v.usize(&self.c.batch));
        let per_token = kv_bytes(s.layers, s.kv_heads, s.head_dim, bpv, 1, 1);
        let total = kv_bytes(s.layers, s.kv_heads, s.head_dim, bpv, ctx_len, batch);
        let calc = Provenance::computed(format!(
            "2 · L · n_kv · d_head · bytes · tokens · batch; {} config: {}",
            s.name, s.source
        ));
        scene.push(table(
            "calculator",
            "KV-cache size = 2 · L · n_kv · d_head · bytes per value · tokens · batch",
            calc.clone(),
            &["", "value"],
            vec![
                vec!["model".into(), s.name.clone()],
                vec!["layers L".into(), s.layers.to_string()],
                vec![
                    "KV heads n_kv".into(),
                    format!(
                        "{} of {} query heads: {}",
                        s.kv_heads,
                        s.heads,
                        attention_kind(s.heads, s.kv_heads)
                    ),
                ],
                vec!["head dim d_head".into(), s.head_dim.to_string()],
                vec!["bytes per value".into(), format!("{bpv} ({dtype})")],
                vec!["per token".into(), bytes_label(per_token)],
                vec!["tokens × batch".into(), format!("{ctx_len} × {batch}")],
                vec![
                    "total".into(),
                    format!("{} ({:.2} GB)", bytes_label(total), total / 1e9),
                ],
            ],
        ));
        if !notes.is_empty() {
            scene.push(lav_scene::Item::new(
                "notes",
                "Adjusted",
                Provenance::computed("the lab's input checks"),
                Primitive::Text(Text {
                    body: notes.join("\n"),
                    style: TextStyle::Warning,
                }),
            ));
        }
        let mut gqa = vec![s.heads, s.kv_heads, 1];
        gqa.dedup();
        scene.push(bars(
            "sharing",
            &format!("MHA → GQA → MQA for {}: cache per token at {dtype}", s.name),
            calc.clone(),
            "KiB/token",
            gqa.iter()
                .map(|&k| {
                    let role = if k == s.kv_heads {
                        Role::Highlight
                    } else {
                        Role::Attention
                    };
                    let kind = attention_kind(s.heads, k);
                    let kind = kind.split(' ').next().unwrap_or("");
                    let label = if k == s.heads {
                        format!("{kind} ({k} KV heads)")
                    } else {
                        format!("{kind} ({k} KV heads, {}× smaller than MHA)", s.heads / k)
                    };
                    bar(
                        label,
                        kv_bytes(s.layers, k, s.head_dim, bpv, 1, 1) / KIB,
                        role,
                    )
                })
                .collect(),
        ));
        let gpus = [&self.h100, &self.h200];
        scene.push(bars(
            "gpu",
            &format!("Share of one GPU's HBM this cache takes ({ctx_len} tokens × batch {batch})"),
            Provenance::simulated(format!(
                "{} and {} rows of the hardware table",
                self.h100.name, self.h200.name
            )),
            "% of HBM",
            gpus.iter()
                .map(|g| {
                    let pct = 100.0 * total / g.hbm_bytes();
                    let role = if pct > 100.0 {
                        Role::WhatIf
                    } else {
                        Role::Highlight
                    };
                    bar(format!("{} ({})", g.label(), g.hbm), pct, role)
                })
                .collect(),
        ));
        let fits: Vec<String> = gpus
            .iter()
            .map(|g| {
                let seqs = (g.hbm_bytes() / kv_bytes(s.layers, s.kv_heads, s.head_dim, bpv, ctx_len, 1)).floor();
                format!("{}: {seqs:.0} sequences of {ctx_len} tokens if the cache had the whole {} (weights need room too)", g.name, g.hbm)
            })
            .collect();
        scene.push(text(
            "fits",
            "How many sequences fit",
            calc,
            fits.join("\n"),
        ));
        Ok(scene)
    }

    fn roofline(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let n = v.usize(&self.c.prefill).max(1);
        let (model, tok) = (self.model.clone(), self.tokenizer.clone());
        if let State::Running(p) = self.speeds.get(&n, move |p| measure(&model, &tok, n, p))? {
            scene.push(progress_item("progress", "Measuring this machine", p));
            return Ok(scene);
        }
        let got = self.speeds.ready(&n).expect("ready");
        let (m, sp) = (&got.machine, &got.speeds);
        let (flops, bytes) = per_token_cost(&self.model);
        // Weights are read once per forward call whatever its token count, so
        // FLOPs per byte grow with the tokens in the call.
        let ai_decode = flops / bytes;
        let ai_prefill = flops * n as f64 / bytes;
        let got_prefill = flops * n as f64 / sp.prefill_s;
        let got_decode = flops * sp.decode_tokens as f64 / sp.decode_s;
        let (bw, peak) = (m.read_bytes_s.best, m.peak_flops.best);
        let xs: Vec<f64> = (0..=40)
            .map(|i| 10f64.powf(-1.0 + i as f64 * 0.125))
            .collect();
        let measured = Provenance::engine(format!(
            "measured on this machine: {} ({} cores)",
            m.cpu, m.cores
        ));
        scene.push(Item::new(
            "cpu_roofline",
            "This CPU: attainable GFLOP/s = min(peak, intensity × bandwidth), with the model's measured prefill and decode",
            measured.clone(),
            Primitive::Plot(Plot {
                x_label: "arithmetic intensity (FLOP per weight byte)".into(),
                y_label: "GFLOP/s".into(),
                x_log: true,
                y_log: true,
                series: vec![
                    Series { name: "roof (measured streaming read and f32 matmul)".into(), points: xs.iter().map(|&x| (x, roofline::attainable(x, bw, peak) / 1e9)).collect(), line: true, role: Role::Muted },
                    Series { name: format!("prefill, {n} tokens (measured)"), points: vec![(ai_prefill, got_prefill / 1e9)], line: false, role: Role::Highlight },
                    Series { name: "decode, 1 token (measured)".into(), points: vec![(ai_decode, got_decode / 1e9)], line: false, role: Role::Attention },
                ],
            }),
        ));
        // The same model on an H100 in BF16: a what-if computed from the table.
        let h = &self.h100;
        let bf16_bytes = flops; // 2 bytes per weight, 2 FLOPs per weight
        let (h_dec, h_pre) = (flops / bf16_bytes, flops * n as f64 / bf16_bytes);
        let hx: Vec<f64> = (0..=48)
            .map(|i| 10f64.powf(-1.0 + i as f64 * 0.125))
            .collect();
        scene.push(Item::new(
            "gpu_roofline",
            format!(
                "{} (simulated, weights in BF16): ridge at {:.0} FLOP/B",
                h.name,
                h.ridge_bf16()
            ),
            Provenance::simulated(format!("{} row of the hardware table", h.name)),
            Primitive::Plot(Plot {
                x_label: "arithmetic intensity (FLOP per weight byte)".into(),
                y_label: "TFLOP/s".into(),
                x_log: true,
                y_log: true,
                series: vec![
                    Series {
                        name: "roof (datasheet)".into(),
                        points: hx
                            .iter()
                            .map(|&x| (x, roofline::attainable(x, h.bandwidth(), h.bf16()) / 1e12))
                            .collect(),
                        line: true,
                        role: Role::Muted,
                    },
                    Series {
                        name: format!("prefill, {n} tokens"),
                        points: vec![(
                            h_pre,
                            roofline::attainable(h_pre, h.bandwidth(), h.bf16()) / 1e12,
                        )],
                        line: false,
                        role: Role::Highlight,
                    },
                    Series {
                        name: "decode, 1 token".into(),
                        points: vec![(
                            h_dec,
                            roofline::attainable(h_dec, h.bandwidth(), h.bf16()) / 1e12,
                        )],
                        line: false,
                        role: Role::Attention,
                    },
                ],
            }),
        ));
        let ridge = m.ridge();
        scene.push(table(
            "numbers",
            "Prefill vs decode",
            measured,
            &["", "prefill", "decode"],
            vec![
                vec!["tokens per forward call".into(), n.to_string(), "1".into()],
                vec![
                    "FLOP per weight byte (stored Q4_1 weights)".into(),
                    sig(ai_prefill),
                    sig(ai_decode),
                ],
                vec![
                    format!("on this CPU (ridge {ridge:.1} FLOP/B)"),
                    roofline::bound(ai_prefill, ridge).into(),
                    roofline::bound(ai_decode, ridge).into(),
                ],
                vec![
                    "measured tokens/s".into(),
                    sig(n as f64 / sp.prefill_s),
                    sig(sp.decode_tokens as f64 / sp.decode_s),
                ],
                vec![
                    "measured GFLOP/s".into(),
                    sig(got_prefill / 1e9),
                    sig(got_decode / 1e9),
                ],
                vec![
                    "decode floor: weight bytes / bandwidth".into(),
                    String::new(),
                    format!(
                        "{:.2} ms/token ({} at {:.1} GB/s)",
                        bytes / bw * 1e3,
                        bytes_label(bytes),
                        bw / 1e9
                    ),
                ],
                vec![
                    format!("{} (simulated, BF16, ridge {:.0})", h.name, h.ridge_bf16()),
                    roofline::bound(h_pre, h.ridge_bf16()).into(),
                    roofline::bound(h_dec, h.ridge_bf16()).into(),
                ],
            ],
        ));
        scene.push(table(
            "machine",
            "This machine, measured (best of several runs; spread shown)",
            Provenance::engine("measured on this machine".to_string()),
            &["", "best", "median", "worst"],
            vec![
                spread(
                    "memory bandwidth, streaming read (GB/s)",
                    &m.read_bytes_s,
                    1e9,
                ),
                spread("memory bandwidth, triad (GB/s)", &m.bandwidth_bytes_s, 1e9),
                spread(
                    &format!("f32 matmul, {} threads (GFLOP/s)", lav_model::threads()),
                    &m.peak_flops,
                    1e9,
                ),
                spread(
                    "f32 matmul, 1 thread (GFLOP/s)",
                    &m.peak_flops_one_thread,
                    1e9,
                ),
                vec![
                    "SIMD".into(),
                    m.simd.join(", "),
                    String::new(),
                    String::new(),
                ],
            ],
        ));
        Ok(scene)
    }
}
