//! roofline-model: attainable = min(peak, BW · AI) on a log-log plot for every GPU row
//! and for this machine (peak and bandwidth measured here), with presets placed by the
//! FLOPs and bytes their shapes imply; a batch slider that walks decode GEMV from the
//! memory roof toward the compute roof; and every operation of a real SmolLM2 forward
//! step, prefill or decode, placed by its FLOPs and bytes, with the model's decode
//! measured here against its bandwidth floor.

use super::{Context, bytes, flops, measured, sim};
use lav_gpusim::machine::{self, Machine};
use lav_gpusim::roofline::{
    self, Shapes, Widths, forward_ops, matmul_intensity, vector_add_intensity,
};
use lav_gpusim::{Gpu, ModelConfig, Table};
use lav_lab::items::{ModelSource, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values, published};
use lav_model::{Llama, Logits};
use lav_scene::*;
use std::sync::Arc;
use std::time::Instant;

const HERE: &str = "this CPU (measured)";
const OWN: &str = "SmolLM2 (this model)";
/// Tokens the decode measurement generates.
const DECODE: usize = 24;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let t = Table::load(&ctx.dir).lab()?;
    let configs = lav_gpusim::model_configs(&ctx.dir).lab()?;
    let model = ctx.loader.model().lab()?;
    let mut machines: Vec<&str> = t.gpu.iter().map(|g| g.name.as_str()).collect();
    machines.push(HERE);
    let mut models: Vec<&str> = vec![OWN];
    models.extend(configs.iter().map(|m| m.name.as_str()));
    let c = Controls {
        on: Control::choice("on", "Machine", &machines, "H100 SXM 80GB"),
        gpu: Control::choice(
            "gpu",
            "GPU",
            &machines[..machines.len() - 1],
            "H100 SXM 80GB",
        ),
        n: Control::slider("n", "Matmul size N", 16.0, 8192.0, 16.0, 1024.0),
        batch: Control::slider("batch", "Batch b", 1.0, 512.0, 1.0, 1.0),
        model: Control::choice("model", "Model", &models, "Llama-3-8B"),
        phase: Control::choice("phase", "Phase", &["decode", "prefill"], "decode"),
        tokens: Control::slider(
            "tokens",
            "Prompt or context tokens",
            1.0,
            2048.0,
            1.0,
            256.0,
        ),
    };
    let steps = vec![
        Step::new("roofline", &[&c.on, &c.n, &c.batch], Roofline::roofline),
        Step::new("decode", &[&c.gpu, &c.model, &c.batch], Roofline::decode),
        Step::new(
            "smollm2",
            &[&c.on, &c.phase, &c.tokens, &c.batch],
            Roofline::smollm2,
        ),
    ];
    let cfg = &model.config;
    let shapes = Shapes {
        hidden: cfg.hidden_size,
        layers: cfg.num_layers,
        heads: cfg.num_heads,
        kv_heads: cfg.num_kv_heads,
        head_dim: cfg.head_dim,
        ffn: cfg.intermediate_size,
        vocab: cfg.vocab_size,
    };
    let params: usize = model.tensors.iter().map(|x| x.2).sum();
    let weight_bytes: usize = model.tensors.iter().map(|x| x.3).sum();
    Steps::lab(
        Roofline {
            c,
            facts: published::facts(&ctx.dir, "roofline-model")?,
            t,
            configs,
            source: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            model,
            shapes,
            params: params as f64,
            weight_bytes: weight_bytes as f64,
            probe: Job::default(),
        },
        steps,
    )
}

struct Controls {
    on: Control,
    gpu: Control,
    n: Control,
    batch: Control,
    model: Control,
    phase: Control,
    tokens: Control,
}

/// This machine measured, and the model's decode timed here (tok/s).
type Probe = (Machine, f64);

struct Roofline {
    c: Controls,
    facts: Vec<published::Fact>,
    t: Table,
    configs: Vec<ModelConfig>,
    source: ModelSource,
    model: Arc<Llama>,
    shapes: Shapes,
    params: f64,
    weight_bytes: f64,
    probe: Job<(), Probe>,
}

impl LabState for Roofline {
    fn busy(&self) -> bool {
        self.probe.busy()
    }
}

/// A machine's two roofs: peak FLOP/s and bandwidth, with what they are.
struct Roofs {
    name: String,
    peak: f64,
    bw: f64,
    peak_label: &'static str,
    prov: Provenance,
}

/// The roof line from AI = 0.01 to 10⁴ FLOP/B.
fn roof_points(peak: f64, bw: f64) -> Vec<(f64, f64)> {
    let ridge = roofline::ridge(peak, bw);
    let mut xs: Vec<f64> = (-2..=4).map(|e| 10f64.powi(e)).collect();
    xs.push(ridge);
    xs.sort_by(f64::total_cmp);
    xs.into_iter()
        .map(|x| (x, roofline::attainable(x, bw, peak)))
        .collect()
}

fn roof_series(r: &Roofs) -> Series {
    Series {
        name: format!("{} {} roof", r.name, r.peak_label),
        points: roof_points(r.peak, r.bw),
        line: true,
        role: Role::Weight,
    }
}

fn point(name: &str, ai: f64, r: &Roofs, role: Role) -> Series {
    Series {
        name: name.into(),
        points: vec![(ai, roofline::attainable(ai, r.bw, r.peak))],
        line: false,
        role,
    }
}

impl Roofline {
    fn gpu_roofs(g: &Gpu, bf16: bool) -> Roofs {
        Roofs {
            name: g.label(),
            peak: if bf16 { g.bf16() } else { g.fp32_tflops * 1e12 },
            bw: g.bandwidth(),
            peak_label: if bf16 { "BF16 tensor" } else { "FP32" },
            prov: sim(g, "dense peak and HBM bandwidth"),
        }
    }

    /// The selected machine's roofs, or `None` with a progress item while this CPU is
    /// measured.
    fn roofs(&mut self, v: &Values, s: &mut Scene, bf16: bool) -> Result<Option<Roofs>> {
        let on = v.text(&self.c.on).to_string();
        if on != HERE {
            let g = self
                .t
                .gpu
                .iter()
                .find(|g| g.name == on)
                .unwrap_or(&self.t.gpu[0]);
            return Ok(Some(Self::gpu_roofs(g, bf16)));
        }
        let model = self.model.clone();
        match self.probe.get(&(), move |p| {
            p.set(0, 2, "measuring bandwidth and f32 peak");
            let m = machine::get().clone();
            p.set(1, 2, "timing the model's decode");
            let mut cache = model.new_cache();
            let mut tok = 1u32;
            model
                .forward(&[tok], &mut cache, Logits::Last, None)
                .lab()?;
            let t0 = Instant::now();
            for i in 0..DECODE {
                p.check()?;
                tok = 100 + i as u32;
                model
                    .forward(&[tok], &mut cache, Logits::Last, None)
                    .lab()?;
            }
            Ok((m, DECODE as f64 / t0.elapsed().as_secs_f64()))
        })? {
            State::Running(p) => {
                s.push(progress_item(
                    "progress",
                    "Measuring this CPU once (about two seconds)",
                    p,
                ));
                Ok(None)
            }
            State::Ready((m, _)) => Ok(Some(Roofs {
                name: "this CPU".into(),
                peak: m.peak_flops.best,
                bw: m.read_bytes_s.best,
                peak_label: "f32",
                prov: measured(&format!(
                    "{} ({} cores): f32 peak from a timed candle matmul, bandwidth from a timed streaming read",
                    m.cpu, m.cores
                )),
            })),
        }
    }

    fn roofline(&mut self, v: &Values) -> Result<Scene> {
        let mut s = Scene::new();
        let Some(r) = self.roofs(v, &mut s, true)? else {
            return Ok(s);
        };
        let n = v.usize(&self.c.n).max(1);
        let b = v.num(&self.c.batch);
        let mm = matmul_intensity(n, n, n, 4.0);
        let va = vector_add_intensity(4.0);
        // Decode GEMV at batch b with 16-bit weights: 2b FLOPs per 2-byte weight.
        let gemv = b;
        let ridge = roofline::ridge(r.peak, r.bw);
        let mut series = vec![roof_series(&r)];
        for (name, ai, role) in [
            (format!("matmul {n}×{n} FP32"), mm, Role::Attention),
            ("vector add FP32".to_string(), va, Role::Activation),
            (format!("decode GEMV, batch {b}"), gemv, Role::Highlight),
        ] {
            series.push(point(&name, ai, &r, role));
        }
        s.push(Item::new(
            "plot",
            format!(
                "{}: attainable = min(peak, BW · AI); ridge at {ridge:.0} FLOP/B",
                r.name
            ),
            r.prov.clone(),
            Primitive::Plot(Plot {
                x_label: "arithmetic intensity (FLOP/byte)".into(),
                y_label: "attainable FLOP/s".into(),
                x_log: true,
                y_log: true,
                series,
            }),
        ));
        let row = |name: String, fl: f64, by: f64| {
            let ai = fl / by;
            vec![
                name,
                format!("{:.3e}", fl),
                bytes(by),
                format!("{ai:.3}"),
                flops(roofline::attainable(ai, r.bw, r.peak)),
                roofline::bound(ai, ridge).into(),
            ]
        };
        let nf = n as f64;
        let h = 4096.0;
        s.push(table(
            "kernels",
            "The presets, from their shapes",
            Provenance::computed(
                "FLOPs and bytes from each kernel's shape; attainable from the roofs above",
            ),
            &[
                "kernel",
                "FLOPs",
                "bytes moved",
                "AI (FLOP/B)",
                "attainable",
                "bound",
            ],
            vec![
                row(
                    format!("matmul {n}×{n}×{n}, FP32"),
                    2.0 * nf.powi(3),
                    3.0 * nf * nf * 4.0,
                ),
                row("vector add, 1M FP32".into(), 1e6, 12e6),
                row(
                    format!("decode GEMV 4096×4096 BF16, batch {b}"),
                    2.0 * b * h * h,
                    2.0 * h * h + 2.0 * b * 2.0 * h,
                ),
            ],
        ));
        s.push(published::table(
            "facts",
            "Published",
            &published::for_step(&self.facts, "roofline"),
        ));
        Ok(s)
    }

    fn decode(&mut self, v: &Values) -> Result<Scene> {
        let name = v.text(&self.c.gpu);
        let g = self
            .t
            .gpu
            .iter()
            .find(|g| g.name == name)
            .unwrap_or(&self.t.gpu[0]);
        let r = Self::gpu_roofs(g, true);
        let b = v.num(&self.c.batch);
        let m = v.text(&self.c.model);
        let (label, params) = match self.configs.iter().find(|c| c.name == m) {
            Some(c) => (c.name.clone(), c.params as f64),
            None => (self.source.name.clone(), self.params),
        };
        let weights = 2.0 * params;
        // A decode step reads every weight once for the whole batch: 2·params·b FLOPs.
        let ai = 2.0 * params * b / weights;
        let floor = weights / g.bandwidth();
        let step = (2.0 * params * b / g.bf16()).max(floor);
        let mut s = Scene::new();
        let ridge = g.ridge_bf16();
        let series = vec![
            roof_series(&r),
            point(&format!("decode, batch {b}"), ai, &r, Role::Highlight),
            point("batch 1", 1.0, &r, Role::Muted),
        ];
        s.push(Item::new(
            "plot",
            format!(
                "Decode of {label} at batch {b} on {}: AI ≈ b = {ai:.0} FLOP/B (ridge {ridge:.0})",
                g.label()
            ),
            r.prov.clone(),
            Primitive::Plot(Plot {
                x_label: "arithmetic intensity (FLOP/byte)".into(),
                y_label: "attainable FLOP/s".into(),
                x_log: true,
                y_log: true,
                series,
            }),
        ));
        s.push(table(
            "floor",
            &format!("{label} in BF16 on {}", g.label()),
            sim(g, "HBM bandwidth and BF16 peak; time is a lower bound"),
            &["measure", "value"],
            vec![
                vec![
                    "weights (2 B per parameter)".into(),
                    format!("{:.2} GB", weights / 1e9),
                ],
                vec![
                    "decode floor per step = weights / BW".into(),
                    format!("{:.2} ms", floor * 1e3),
                ],
                vec![
                    "best tok/s per sequence".into(),
                    format!("{:.0}", 1.0 / floor),
                ],
                vec![
                    format!("step time at batch {b}"),
                    format!("{:.2} ms", step * 1e3),
                ],
                vec![
                    format!("tok/s for the batch of {b}"),
                    format!("{:.0}", b / step),
                ],
                vec!["bound".into(), roofline::bound(ai, ridge).into()],
                vec![
                    "batch where compute takes over".into(),
                    format!("≈{:.0}", ridge),
                ],
            ],
        ));
        Ok(s)
    }

    fn smollm2(&mut self, v: &Values) -> Result<Scene> {
        let mut s = Scene::new();
        let here = v.text(&self.c.on) == HERE;
        let Some(r) = self.roofs(v, &mut s, !here)? else {
            return Ok(s);
        };
        let tokens = v.usize(&self.c.tokens).max(1);
        let b = v.usize(&self.c.batch).max(1);
        let decode = v.text(&self.c.phase) == "decode";
        let (new, ctx) = if decode {
            (b, tokens)
        } else {
            (tokens, tokens)
        };
        // On a GPU row the model runs in BF16; here it runs its GGUF weights, read at
        // their stored size, with f32 activations.
        let w = if here {
            Widths {
                weight: self.weight_bytes / self.params,
                activation: 4.0,
                kv: 4.0,
            }
        } else {
            Widths {
                weight: 2.0,
                activation: 2.0,
                kv: 2.0,
            }
        };
        let ops = forward_ops(&self.shapes, new, ctx, w);
        let ridge = roofline::ridge(r.peak, r.bw);
        let mut series = vec![roof_series(&r)];
        for (i, o) in ops.iter().enumerate() {
            series.push(Series {
                name: o.name.into(),
                points: vec![(
                    o.intensity(),
                    roofline::attainable(o.intensity(), r.bw, r.peak),
                )],
                line: false,
                role: if o.name.contains("projection") || o.name == "LM head" {
                    Role::Weight
                } else if i % 2 == 0 {
                    Role::Attention
                } else {
                    Role::Activation
                },
            });
        }
        let phase = if decode {
            format!("decode, batch {b}, context {tokens}")
        } else {
            format!("prefill of {tokens} tokens")
        };
        s.push(Item::new(
            "plot",
            format!(
                "Every op of one {} step ({phase}) on {}",
                self.source, r.name
            ),
            r.prov.clone(),
            Primitive::Plot(Plot {
                x_label: "arithmetic intensity (FLOP/byte)".into(),
                y_label: "attainable FLOP/s".into(),
                x_log: true,
                y_log: true,
                series,
            }),
        ));
        let mut total_t = 0.0;
        let rows = ops
            .iter()
            .map(|o| {
                let t = o.flops / roofline::attainable(o.intensity(), r.bw, r.peak);
                total_t += t;
                vec![
                    format!(
                        "{}{}",
                        o.name,
                        if o.per_layer {
                            format!(" ×{}", self.shapes.layers)
                        } else {
                            String::new()
                        }
                    ),
                    format!("{:.3e}", o.flops),
                    bytes(o.bytes),
                    format!("{:.2}", o.intensity()),
                    roofline::bound(o.intensity(), ridge).into(),
                    format!("{:.1} µs", t * 1e6),
                ]
            })
            .collect();
        s.push(table(
            "ops",
            "The ops, from the model's real shapes (all layers together)",
            self.source.prov(format!(
                "{}: shapes from its GGUF config ({} layers, hidden {}, {} heads / {} KV heads, MLP {}, vocab {}); time at the roof, a lower bound",
                self.source, self.shapes.layers, self.shapes.hidden, self.shapes.heads, self.shapes.kv_heads, self.shapes.ffn, self.shapes.vocab
            )),
            &["op", "FLOPs", "bytes", "AI", "bound", "time at the roof"],
            rows,
        ));
        if here && let Some((m, tok_s)) = self.probe.ready(&()) {
            let floor = self.weight_bytes / m.read_bytes_s.best;
            s.push(table(
                "decode-here",
                "The model's decode on this CPU against its bandwidth floor",
                measured(&format!(
                    "{DECODE} decode steps timed; bandwidth from a streaming read"
                )),
                &["measure", "value"],
                vec![
                    vec!["GGUF weight bytes".into(), bytes(self.weight_bytes)],
                    vec![
                        "measured read bandwidth".into(),
                        format!("{:.1} GB/s", m.read_bytes_s.best / 1e9),
                    ],
                    vec![
                        "floor per token = bytes / bandwidth".into(),
                        format!("{:.2} ms", floor * 1e3),
                    ],
                    vec![
                        "bandwidth-bound ceiling".into(),
                        format!("{:.0} tok/s", 1.0 / floor),
                    ],
                    vec!["measured decode".into(), format!("{tok_s:.1} tok/s")],
                    vec![
                        "share of the ceiling reached".into(),
                        format!("{:.0}%", 100.0 * tok_s * floor),
                    ],
                ],
            ));
        } else if !here {
            s.push(text(
                "sum",
                "The step at the roof",
                r.prov.clone(),
                format!(
                    "{:.1} µs in all at peak rates: a lower bound on one step of {phase}.",
                    total_t * 1e6
                ),
            ));
        }
        Ok(s)
    }
}
