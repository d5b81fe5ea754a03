//! attention: the learner's prompt through the real model; per-layer, per-head scores
//! and probabilities; the causal mask and the √d scale as what-ifs recomputed from the
//! real q and k; grouped-query heads; the n² cost.

use super::Context;
use crate::pass::{Pass, PassCache, values};
use lav_lab::Result;
use lav_lab::items::ModelSource;
use lav_lab::published::{self, Fact};
use lav_lab::{Control, Values};
use lav_lab::{Lab, LabState, ResultExt, Step, Steps};
use lav_model::{Llama, Tokenizer};
use lav_scene::*;
use std::sync::Arc;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let model = ctx.loader.model().lab()?;
    let cfg = &model.config;
    let c = Controls {
        prompt: Control::text(
            "prompt",
            "Prompt",
            300,
            "The cat sat on the mat because it was tired.",
        ),
        layer: Control::slider("layer", "Layer", 0.0, (cfg.num_layers - 1) as f64, 1.0, 0.0),
        head: Control::slider(
            "head",
            "Query head",
            0.0,
            (cfg.num_heads - 1) as f64,
            1.0,
            0.0,
        ),
        query: Control::slider(
            "query",
            "Query token",
            0.0,
            (crate::pass::MAX_TOKENS - 1) as f64,
            1.0,
            5.0,
        ),
        key: Control::slider(
            "key",
            "Key token",
            0.0,
            (crate::pass::MAX_TOKENS - 1) as f64,
            1.0,
            1.0,
        ),
        causal: Control::toggle("causal", "Causal mask", true),
        scaled: Control::toggle("scaled", "Divide by √d", true),
    };
    let pick = [&c.prompt, &c.layer, &c.head];
    let steps = vec![
        Step::new(
            "scores",
            &[pick.as_slice(), &[&c.query, &c.key]].concat(),
            Attention::scores,
        ),
        Step::new(
            "softmax",
            &[pick.as_slice(), &[&c.query]].concat(),
            Attention::softmax,
        ),
        Step::new(
            "mask",
            &[pick.as_slice(), &[&c.causal]].concat(),
            Attention::mask,
        ),
        Step::new(
            "scale",
            &[pick.as_slice(), &[&c.scaled]].concat(),
            Attention::scale,
        ),
        Step::new("heads", &[&c.prompt, &c.head], Attention::heads),
        Step::new("cost", &[&c.prompt], Attention::cost),
    ];
    let lab = Attention {
        c,
        model: model.clone(),
        tokenizer: ctx.loader.tokenizer().lab()?,
        model_name: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
        pass: PassCache::default(),
        facts: published::facts(&ctx.dir, "attention")?,
    };
    Steps::lab(lab, steps)
}

struct Controls {
    prompt: Control,
    layer: Control,
    head: Control,
    query: Control,
    key: Control,
    causal: Control,
    scaled: Control,
}

struct Attention {
    c: Controls,
    /// Published figures to compare with (`labs/data/published.toml`).
    facts: Vec<Fact>,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    model_name: ModelSource,
    pass: PassCache,
}

/// One head's matrices for the prompt, `n × n` row-major.
struct HeadView {
    n: usize,
    pieces: Vec<String>,
    /// Real scaled scores, −∞ above the diagonal.
    scores: Vec<f32>,
    /// Real probabilities.
    probs: Vec<f32>,
    /// Unscaled, unmasked q·k from the real q and k (for the what-ifs).
    raw: Vec<f64>,
    kv_head: usize,
}

fn view(pass: &Pass, model: &Llama, layer: usize, head: usize) -> Result<HeadView> {
    let cfg = &model.config;
    let n = pass.tokens.len();
    let hd = cfg.head_dim;
    let lc = &pass.capture.layers[layer];
    let all_scores = values(&lc.scores)?;
    let all_probs = values(&lc.probs)?;
    let q = values(&lc.q)?;
    let k = values(&lc.k)?;
    let kv_head = head / (cfg.num_heads / cfg.num_kv_heads);
    let at = |h: usize| h * n * n..(h + 1) * n * n;
    let mut raw = vec![0f64; n * n];
    for i in 0..n {
        let qi = &q[(head * n + i) * hd..][..hd];
        for j in 0..n {
            let kj = &k[(kv_head * n + j) * hd..][..hd];
            raw[i * n + j] = crate::linalg::dot(qi, kj);
        }
    }
    Ok(HeadView {
        n,
        pieces: pass.pieces.clone(),
        scores: all_scores[at(head)].to_vec(),
        probs: all_probs[at(head)].to_vec(),
        raw,
        kv_head,
    })
}

fn softmax_rows(scores: &[f64], n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * n];
    for i in 0..n {
        let row = &scores[i * n..(i + 1) * n];
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = row.iter().map(|s| (s - m).exp()).sum();
        for j in 0..n {
            out[i * n + j] = ((row[j] - m).exp() / z) as f32;
        }
    }
    out
}

fn entropy(row: &[f32]) -> f64 {
    -row.iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p as f64 * (p as f64).ln())
        .sum::<f64>()
}

fn heatmap(
    v: &HeadView,
    values: Vec<f32>,
    scale: ColorScale,
    selected: Option<(usize, usize)>,
) -> Primitive {
    Primitive::Heatmap(Heatmap {
        rows: v.pieces.clone(),
        cols: v.pieces.clone(),
        values,
        scale,
        selected,
        row_axis: "query token".into(),
        col_axis: "key token".into(),
    })
}

/// What every step reads: the chosen layer and head, the pass over the prompt, the
/// head's matrices, and the chosen query and key (clamped to the prompt).
struct Frame {
    layer: usize,
    head: usize,
    model: Arc<Llama>,
    pass: Arc<Pass>,
    prov: Provenance,
    hv: HeadView,
    n: usize,
    qi: usize,
    kj: usize,
    scale: f64,
}

impl LabState for Attention {}

impl Attention {
    fn frame(&mut self, v: &Values) -> Result<Frame> {
        let (layer, head) = (v.usize(&self.c.layer), v.usize(&self.c.head));
        let model = self.model.clone();
        let name = self.model_name.clone();
        let pass = self
            .pass
            .get(&model, &self.tokenizer, v.text(&self.c.prompt))?;
        let cfg = &model.config;
        let prov = name.prov(format!("{name}: layer {layer}, head {head}"));
        let hv = view(&pass, &model, layer, head)?;
        let n = hv.n;
        let qi = v.usize(&self.c.query).min(n - 1);
        let kj = v.usize(&self.c.key).min(n - 1);
        let scale = 1.0 / (cfg.head_dim as f64).sqrt();
        Ok(Frame {
            layer,
            head,
            model,
            pass,
            prov,
            hv,
            n,
            qi,
            kj,
            scale,
        })
    }

    fn scores(&mut self, v: &Values) -> Result<Scene> {
        let Frame {
            model,
            prov,
            hv,
            n,
            qi,
            kj,
            scale,
            ..
        } = self.frame(v)?;
        let cfg = &model.config;

        let raw = hv.raw[qi * n + kj];
        let body = if kj > qi {
            format!(
                "\"{}\" (token {qi}) may not look at \"{}\" (token {kj}): it comes later, so its score is −∞ and its weight 0.",
                hv.pieces[qi], hv.pieces[kj]
            )
        } else {
            format!(
                "q·k = {raw:.4}\n÷ √{} = {raw:.4} × {scale} = {:.4} (the model's own score: {:.4})\nafter softmax: probability {:.4}",
                cfg.head_dim,
                raw * scale,
                hv.scores[qi * n + kj],
                hv.probs[qi * n + kj]
            )
        };
        let finite: Vec<f32> = hv
            .scores
            .iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect();
        Ok(Scene::new()
            .with(Item::new(
                "scores",
                "Scores q·k/√d (grey: masked, −∞)",
                prov.clone(),
                heatmap(
                    &hv,
                    hv.scores.clone(),
                    ColorScale::fit_signed(&finite),
                    Some((qi, kj)),
                ),
            ))
            .with(Item::new(
                "cell",
                format!(
                    "Query \"{}\" · key \"{}\" (keys from K/V head {})",
                    hv.pieces[qi], hv.pieces[kj], hv.kv_head
                ),
                prov,
                Primitive::Text(Text {
                    body,
                    style: TextStyle::Callout,
                }),
            )))
    }

    fn softmax(&mut self, v: &Values) -> Result<Scene> {
        let Frame {
            prov, hv, n, qi, ..
        } = self.frame(v)?;

        let sums: Vec<f64> = hv
            .probs
            .chunks(n)
            .map(|r| r.iter().map(|&p| p as f64).sum())
            .collect();
        let worst = sums.iter().map(|s| (s - 1.0).abs()).fold(0.0, f64::max);
        let above = (0..n)
            .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .map(|(i, j)| hv.probs[i * n + j])
            .fold(0f32, f32::max);
        Ok(Scene::new()
            .with(Item::new(
                "probs",
                "Attention weights softmax(scores): each row sums to 1",
                prov.clone(),
                heatmap(
                    &hv,
                    hv.probs.clone(),
                    ColorScale::Sequential { min: 0.0, max: 1.0 },
                    Some((qi, qi)),
                ),
            ))
            .with(Item::new(
                "row",
                format!("Where \"{}\" (token {qi}) looks", hv.pieces[qi]),
                prov.clone(),
                Primitive::Bars(Bars {
                    bars: (0..=qi)
                        .map(|j| Bar {
                            label: format!("{j} {}", hv.pieces[j]),
                            value: hv.probs[qi * n + j] as f64,
                            role: Role::Attention,
                        })
                        .collect(),
                    unit: "".into(),
                    log: false,
                }),
            ))
            .with(Item::new(
                "checks",
                "Checks on the real weights",
                prov,
                Primitive::Table(Table {
                    columns: vec!["check".into(), "value".into()],
                    rows: vec![
                        vec!["largest |row sum − 1|".into(), format!("{worst:.2e}")],
                        vec![
                            "largest weight above the diagonal".into(),
                            format!("{above}"),
                        ],
                    ],
                }),
            )))
    }

    fn mask(&mut self, v: &Values) -> Result<Scene> {
        let Frame {
            layer,
            model,
            pass,
            prov,
            hv,
            n,
            scale,
            ..
        } = self.frame(v)?;
        let cfg = &model.config;

        let causal = v.flag(&self.c.causal);
        let (vals, p, title) = if causal {
            (
                hv.probs.clone(),
                prov.clone(),
                "Causal: each token sees itself and earlier tokens only",
            )
        } else {
            let s: Vec<f64> = hv.raw.iter().map(|x| x * scale).collect();
            (
                softmax_rows(&s, n),
                Provenance::what_if(
                    "no causal mask: softmax over every position, recomputed from the real q and k",
                ),
                "Without the mask, early tokens read the future",
            )
        };
        let future: f64 = (0..n)
            .map(|i| ((i + 1)..n).map(|j| vals[i * n + j] as f64).sum::<f64>())
            .sum::<f64>()
            / n as f64;
        // Every head of the layer, in the forward-pass lab's blocks: the real
        // (always causal) weights, each an n × n triangle.
        let arch = crate::layout::attention_blocks(cfg, &pass, layer)?;
        Ok(Scene::new()
            .with(Item::new("probs", title, p.clone(), heatmap(&hv, vals, ColorScale::Sequential { min: 0.0, max: 1.0 }, None)))
            .with(Item::new(
                "future",
                "Average weight on later tokens",
                p,
                Primitive::Text(Text { body: format!("{future:.4} per row (the model needs 0: at generation time the later tokens do not exist yet)"), style: TextStyle::Callout }),
            ))
            .with(Item::new(
                "layer",
                format!("All {} heads of layer {layer}, as the model computes them (causal)", cfg.num_heads),
                prov.clone(),
                Primitive::Blocks(arch),
            )))
    }

    fn scale(&mut self, v: &Values) -> Result<Scene> {
        let Frame { prov, hv, n, .. } = self.frame(v)?;
        let scaled = v.flag(&self.c.scaled);
        let masked = |x: Vec<f64>| -> Vec<f64> {
            (0..n * n)
                .map(|i| {
                    if i % n > i / n {
                        f64::NEG_INFINITY
                    } else {
                        x[i]
                    }
                })
                .collect()
        };
        let unscaled = softmax_rows(&masked(hv.raw.clone()), n);
        let (vals, p) = if scaled {
            (hv.probs.clone(), prov.clone())
        } else {
            (
                unscaled.clone(),
                Provenance::what_if("no 1/√d: softmax(q·k) recomputed from the real q and k"),
            )
        };
        let ent = |m: &[f32]| -> Vec<f64> { m.chunks(n).map(entropy).collect() };
        let (e_s, e_u) = (ent(&hv.probs), ent(&unscaled));
        let series = |name: &str, e: &[f64], role| Series {
            name: name.into(),
            points: e.iter().enumerate().map(|(i, &x)| (i as f64, x)).collect(),
            line: true,
            role,
        };
        Ok(Scene::new()
            .with(Item::new(
                "probs",
                if scaled {
                    "Weights with the 1/√d scale (the model)"
                } else {
                    "Weights without it: rows collapse toward one key"
                },
                p,
                heatmap(
                    &hv,
                    vals,
                    ColorScale::Sequential { min: 0.0, max: 1.0 },
                    None,
                ),
            ))
            .with(Item::new(
                "entropy",
                "Spread of each row (entropy in nats): higher means attention is shared",
                Provenance::what_if(
                    "the unscaled line is recomputed; the scaled one is the model's",
                ),
                Primitive::Plot(Plot {
                    x_label: "query token".into(),
                    y_label: "entropy (nats)".into(),
                    x_log: false,
                    y_log: false,
                    series: vec![
                        series("with 1/√d (model)", &e_s, Role::Attention),
                        series("without (what-if)", &e_u, Role::WhatIf),
                    ],
                }),
            )))
    }

    fn heads(&mut self, v: &Values) -> Result<Scene> {
        let Frame { head, .. } = self.frame(v)?;

        let prompt = v.text(&self.c.prompt).to_string();
        self.heads_scene(&prompt, head)
    }

    fn cost(&mut self, v: &Values) -> Result<Scene> {
        let Frame { n, model, .. } = self.frame(v)?;
        let cfg = &model.config;

        Ok(cost_scene(n, cfg.hidden_size))
    }
}

impl Attention {
    fn heads_scene(&mut self, prompt: &str, head: usize) -> Result<Scene> {
        let model = self.model.clone();
        let cfg = &model.config;
        let pass = self.pass.get(&model, &self.tokenizer, prompt)?;
        let n = pass.tokens.len();
        let group = cfg.num_heads / cfg.num_kv_heads;
        // How far back each head looks, on average over the prompt's tokens.
        let mut dist = Vec::with_capacity(cfg.num_layers * cfg.num_heads);
        for lc in &pass.capture.layers {
            let probs = values(&lc.probs)?;
            for h in 0..cfg.num_heads {
                let m = &probs[h * n * n..(h + 1) * n * n];
                let d: f64 = (0..n)
                    .map(|i| {
                        (0..=i)
                            .map(|j| m[i * n + j] as f64 * (i - j) as f64)
                            .sum::<f64>()
                    })
                    .sum::<f64>()
                    / n as f64;
                dist.push(d as f32);
            }
        }
        let prov = self.model_name.prov(self.model_name.to_string());
        let mut nodes: Vec<Node> = (0..cfg.num_heads)
            .map(|h| Node {
                id: format!("q{h}"),
                label: format!("query head {h}"),
                role: if h == head {
                    Role::Highlight
                } else {
                    Role::Head
                },
                layer: 0,
            })
            .collect();
        nodes.extend((0..cfg.num_kv_heads).map(|k| Node {
            id: format!("kv{k}"),
            label: format!("K/V head {k}"),
            role: Role::Head,
            layer: 1,
        }));
        let edges = (0..cfg.num_heads)
            .map(|h| Edge {
                from: format!("q{h}"),
                to: format!("kv{}", h / group),
                label: String::new(),
            })
            .collect();
        Ok(Scene::new()
            .with(Item::new(
                "distance",
                format!("Every layer × head: average distance looked back (tokens), on your {n}-token prompt"),
                prov.clone(),
                Primitive::Heatmap(Heatmap {
                    rows: (0..cfg.num_layers).map(|l| format!("L{l}")).collect(),
                    cols: (0..cfg.num_heads).map(|h| format!("h{h}")).collect(),
                    scale: ColorScale::fit(&dist),
                    values: dist,
                    selected: None,
                    row_axis: "layer".into(),
                    col_axis: "query head".into(),
                }),
            ))
            .with(Item::new("gqa", format!("Grouped-query attention: {} query heads share {} K/V heads, {group} each", cfg.num_heads, cfg.num_kv_heads), prov.clone(), Primitive::Graph(Graph { nodes, edges })))
            .with(Item::new(
                "dims",
                "Sizes",
                prov,
                Primitive::Table(Table {
                    columns: vec!["quantity".into(), "value".into()],
                    rows: vec![
                        vec!["d (hidden)".into(), cfg.hidden_size.to_string()],
                        vec!["query heads h".into(), cfg.num_heads.to_string()],
                        vec!["d_k = d / h".into(), (cfg.hidden_size / cfg.num_heads).to_string()],
                        vec!["K/V heads".into(), cfg.num_kv_heads.to_string()],
                        vec!["query heads per K/V head".into(), group.to_string()],
                    ],
                }),
            ))
            .with(published::table("gpt2", "For comparison", &self.facts)))
    }
}

/// 4·n²·d FLOPs per layer: QKᵀ and the weighted sum of V, 2·n²·d each.
fn cost_scene(n: usize, d: usize) -> Scene {
    let flops = |n: f64| 4.0 * n * n * d as f64;
    let pts: Vec<(f64, f64)> = (0..=14)
        .map(|i| 2f64.powi(i + 3))
        .map(|x| (x, flops(x)))
        .collect();
    let prov = Provenance::computed(format!("4·n²·d with d = {d}"));
    Scene::new()
        .with(Item::new(
            "curve",
            "Attention FLOPs per layer grow with the square of the length",
            prov.clone(),
            Primitive::Plot(Plot {
                x_label: "tokens n".into(),
                y_label: "FLOPs per layer".into(),
                x_log: true,
                y_log: true,
                series: vec![
                    Series {
                        name: "4·n²·d".into(),
                        points: pts,
                        line: true,
                        role: Role::Attention,
                    },
                    Series {
                        name: "your prompt".into(),
                        points: vec![(n as f64, flops(n as f64))],
                        line: false,
                        role: Role::Highlight,
                    },
                ],
            }),
        ))
        .with(Item::new(
            "table",
            "Doubling the length quadruples the work",
            prov,
            Primitive::Table(Table {
                columns: vec!["n".into(), "FLOPs per layer".into()],
                rows: [n, 2 * n, 1024, 8192]
                    .iter()
                    .map(|&m| vec![m.to_string(), format!("{:.3e}", flops(m as f64))])
                    .collect(),
            }),
        ))
}
