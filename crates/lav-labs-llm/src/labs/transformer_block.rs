//! transformer-block: one real layer stage by stage with its vectors and norms, the
//! residual stream across all layers, parameter counts from the GGUF's tensor shapes,
//! and post-norm as a what-if rerun of the same weights.

use super::Context;
use crate::layout::{Part, layer_with_active};
use crate::linalg::norm;
use crate::pass::{PassCache, values};
use lav_lab::items::ModelSource;
use lav_lab::published::{self, Fact};
use lav_lab::{Control, Values};
use lav_lab::{Lab, LabState, ResultExt, Step, Steps};
use lav_lab::{LabError, Result};
use lav_model::{Llama, NormPlacement, Tokenizer};
use lav_scene::*;
use std::sync::Arc;

/// Channels of a stage's vector drawn as cells.
const SHOWN: usize = 64;

/// The stages of a block, in the order the data flows, with the formula each shows.
/// `{heads}`, `{kv}`, `{hd}`, `{d}` and `{ff}` are filled from the loaded model's
/// config (see [`formula`]), so the text is true for any model `--model` loads.
const STAGES: &[(&str, &str)] = &[
    ("x", "x: the residual stream entering the block"),
    ("RMSNorm", "x̂ = x / rms(x) · γ, rms(x) = √(mean(x²) + ε)"),
    (
        "q",
        "q = W_q x̂, then rotated by RoPE ({heads} heads × {hd})",
    ),
    (
        "k",
        "k = W_k x̂, then rotated by RoPE ({kv} K/V heads × {hd})",
    ),
    ("v", "v = W_v x̂ ({kv} K/V heads × {hd})"),
    (
        "attention",
        "Σ_j p_j v_j per head, heads side by side ({heads} × {hd})",
    ),
    ("o_proj", "W_o · attention: back to the {d}-channel stream"),
    ("x + attn", "h = x + Attn(Norm(x)): the first residual add"),
    ("RMSNorm 2", "ĥ = h / rms(h) · γ₂"),
    ("gate", "g = W_gate ĥ ({ff} channels)"),
    ("silu(gate)·up", "a = silu(g) ⊙ (W_up ĥ) ({ff} channels)"),
    ("down", "W_down a: back to {d} channels"),
    ("x + mlp", "y = h + FFN(Norm(h)): the block's output"),
];

/// Stage `stage`'s formula with the model's sizes filled in.
fn formula(stage: usize, cfg: &lav_model::LlamaConfig) -> String {
    STAGES[stage]
        .1
        .replace("{heads}", &cfg.num_heads.to_string())
        .replace("{kv}", &cfg.num_kv_heads.to_string())
        .replace("{hd}", &cfg.head_dim.to_string())
        .replace("{d}", &cfg.hidden_size.to_string())
        .replace("{ff}", &cfg.intermediate_size.to_string())
}

/// Whether layout part `p` belongs to stage `stage` (the heads' stages light every head).
fn stage_block(stage: usize, p: Part) -> bool {
    match stage {
        0 => p == Part::ResidIn,
        1 => p == Part::AttnNorm,
        2 => matches!(p, Part::Q(_)),
        3 => matches!(p, Part::K(_)),
        4 => matches!(p, Part::V(_)),
        5 => matches!(p, Part::Attn(_)),
        6 => p == Part::OProj,
        7 => p == Part::ResidMid,
        8 => p == Part::FfnNorm,
        9 => p == Part::Gate,
        10 => p == Part::Act,
        11 => p == Part::Down,
        12 => p == Part::ResidOut,
        _ => false,
    }
}

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
        token: Control::slider(
            "token",
            "Token",
            0.0,
            (crate::pass::MAX_TOKENS - 1) as f64,
            1.0,
            1.0,
        ),
        stage: Control::slider("stage", "Stage", 0.0, (STAGES.len() - 1) as f64, 1.0, 0.0),
    };
    let steps = vec![
        Step::new(
            "stages",
            &[&c.prompt, &c.layer, &c.token, &c.stage],
            Block::stages,
        ),
        Step::new("residual", &[&c.prompt, &c.token], Block::residual),
        Step::new("params", &[], Block::params_step),
        Step::new("postnorm", &[&c.prompt], Block::postnorm),
    ];
    let lab = Block {
        c,
        model: model.clone(),
        tokenizer: ctx.loader.tokenizer().lab()?,
        model_name: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
        pass: PassCache::default(),
        post: None,
        facts: published::facts(&ctx.dir, "transformer-block")?,
    };
    Steps::lab(lab, steps)
}

struct Controls {
    prompt: Control,
    layer: Control,
    token: Control,
    stage: Control,
}

struct Block {
    c: Controls,
    /// Published figures to compare with (`labs/data/published.toml`).
    facts: Vec<Fact>,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    model_name: ModelSource,
    pass: PassCache,
    /// The post-norm what-if's residual norms, keyed by prompt.
    post: Option<(String, Vec<Vec<f64>>)>,
}

impl LabState for Block {}

impl Block {
    fn params_step(&mut self, _: &Values) -> Result<Scene> {
        self.params()
    }
}

/// Row `t` of a `(…, L, w)` tensor's values, or for head-split tensors `(heads, L, hd)`
/// the token's heads side by side.
fn token_row(vals: &[f32], heads: usize, n: usize, t: usize) -> Vec<f32> {
    let w = vals.len() / (heads * n);
    (0..heads)
        .flat_map(|h| vals[(h * n + t) * w..][..w].to_vec())
        .collect()
}

impl Block {
    /// Each stage's vector for the selected token, the token's text, its index, and the
    /// prompt's length in tokens.
    fn stage_vectors(&mut self, v: &Values) -> Result<(Vec<Vec<f32>>, String, usize, usize)> {
        let model = self.model.clone();
        let cfg = &model.config;
        let layer = v.usize(&self.c.layer);
        let pass = self
            .pass
            .get(&model, &self.tokenizer, v.text(&self.c.prompt))?;
        let n = pass.tokens.len();
        let t = v.usize(&self.c.token).min(n - 1);
        let lc = &pass.capture.layers[layer];
        let flat =
            |x: &candle_core::Tensor| -> Result<Vec<f32>> { Ok(token_row(&values(x)?, 1, n, t)) };
        let heads = |x: &candle_core::Tensor, h: usize| -> Result<Vec<f32>> {
            Ok(token_row(&values(x)?, h, n, t))
        };
        let vecs = vec![
            flat(&lc.resid_in)?,
            flat(&lc.attn_norm)?,
            heads(&lc.q, cfg.num_heads)?,
            heads(&lc.k, cfg.num_kv_heads)?,
            heads(&lc.v, cfg.num_kv_heads)?,
            flat(&lc.attn)?,
            flat(&lc.attn_out)?,
            flat(&lc.resid_mid)?,
            flat(&lc.ffn_norm)?,
            flat(&lc.gate)?,
            flat(&lc.act)?,
            flat(&lc.mlp_out)?,
            flat(&lc.resid_out)?,
        ];
        Ok((vecs, pass.pieces[t].clone(), t, n))
    }

    fn stages(&mut self, v: &Values) -> Result<Scene> {
        let layer = v.usize(&self.c.layer);
        let stage = v.usize(&self.c.stage).min(STAGES.len() - 1);
        let (vecs, piece, t, n) = self.stage_vectors(v)?;
        // Where the stage sits in the layer, in the forward-pass lab's blocks.
        let arch = layer_with_active(&self.model.config, n, layer, |p| stage_block(stage, p));
        let prov = self.model_name.prov(format!(
            "{}: layer {layer}, token {t} \"{piece}\"",
            self.model_name
        ));
        let cur = &vecs[stage];
        let shown: Vec<f32> = cur.iter().copied().take(SHOWN).collect();
        let x = &vecs[0];
        let rms = (x.iter().map(|&a| a as f64 * a as f64).sum::<f64>() / x.len() as f64).sqrt();
        Ok(Scene::new()
            .with(Item::new(
                "norms",
                "‖vector‖ at each stage (▶ the current one)",
                prov.clone(),
                Primitive::Bars(Bars {
                    bars: STAGES
                        .iter()
                        .zip(&vecs)
                        .enumerate()
                        .map(|(i, ((name, _), vec))| Bar {
                            label: if i == stage {
                                format!("▶ {name}")
                            } else {
                                name.to_string()
                            },
                            value: norm(vec),
                            role: if i == stage {
                                Role::Highlight
                            } else if i == 0 || i == 7 || i == 12 {
                                Role::Residual
                            } else {
                                Role::Activation
                            },
                        })
                        .collect(),
                    unit: "".into(),
                    log: false,
                }),
            ))
            .with(Item::new(
                "vector",
                format!(
                    "{} ({} values; first {} shown)",
                    STAGES[stage].0,
                    cur.len(),
                    shown.len()
                ),
                prov.clone(),
                Primitive::Heatmap(Heatmap {
                    rows: vec![STAGES[stage].0.into()],
                    cols: (0..shown.len()).map(|c| c.to_string()).collect(),
                    scale: ColorScale::fit_signed(&shown),
                    values: shown,
                    selected: None,
                    row_axis: "stage".into(),
                    col_axis: "channel".into(),
                }),
            ))
            .with(Item::new(
                "formula",
                "What this stage computes",
                prov,
                Primitive::Text(Text {
                    body: format!(
                        "{}\n‖x‖ entering the block = {:.4}, rms(x) = {rms:.4}",
                        formula(stage, &self.model.config),
                        norm(x)
                    ),
                    style: TextStyle::Callout,
                }),
            ))
            .with(Item::new(
                "layer",
                format!("Where the stage sits in layer {layer}"),
                Provenance::model(format!("{} config", self.model_name)),
                Primitive::Blocks(arch),
            )))
    }

    fn residual(&mut self, v: &Values) -> Result<Scene> {
        let model = self.model.clone();
        let pass = self
            .pass
            .get(&model, &self.tokenizer, v.text(&self.c.prompt))?;
        let n = pass.tokens.len();
        let t = v.usize(&self.c.token).min(n - 1);
        let h = model.config.hidden_size;
        let mut per_layer: Vec<Vec<f32>> = Vec::new();
        for lc in &pass.capture.layers {
            per_layer.push(values(&lc.resid_in)?);
        }
        if let Some(last) = pass.capture.layers.last() {
            per_layer.push(values(&last.resid_out)?);
        }
        let tok: Vec<(f64, f64)> = per_layer
            .iter()
            .enumerate()
            .map(|(l, x)| (l as f64, norm(&x[t * h..(t + 1) * h])))
            .collect();
        let mean: Vec<(f64, f64)> = per_layer
            .iter()
            .enumerate()
            .map(|(l, x)| (l as f64, x.chunks(h).map(norm).sum::<f64>() / n as f64))
            .collect();
        let prov = self.model_name.prov(self.model_name.to_string());
        Ok(Scene::new()
            .with(Item::new(
                "stream",
                format!(
                    "‖x‖ entering each of the {} layers (and leaving the last)",
                    model.config.num_layers
                ),
                prov.clone(),
                Primitive::Plot(Plot {
                    x_label: "layer".into(),
                    y_label: "‖x‖".into(),
                    x_log: false,
                    y_log: false,
                    series: vec![
                        Series {
                            name: format!("token {t} \"{}\"", pass.pieces[t]),
                            points: tok.clone(),
                            line: true,
                            role: Role::Residual,
                        },
                        Series {
                            name: "mean over the prompt".into(),
                            points: mean,
                            line: true,
                            role: Role::Token,
                        },
                    ],
                }),
            ))
            .with(Item::new(
                "table",
                "Selected layers",
                prov,
                Primitive::Table(Table {
                    columns: vec!["layer".into(), "‖x‖".into()],
                    rows: tok
                        .iter()
                        .enumerate()
                        .filter(|(l, _)| l % 5 == 0 || *l == tok.len() - 1)
                        .map(|(_, p)| p)
                        .map(|(l, v)| vec![format!("{l}"), format!("{v:.3}")])
                        .collect(),
                }),
            )))
    }

    fn params(&mut self) -> Result<Scene> {
        let cfg = &self.model.config;
        let d = cfg.hidden_size as f64;
        let count = |suffix: &str| -> usize {
            self.model
                .tensors
                .iter()
                .filter(|(n, ..)| n.starts_with("blk.0.") && n.ends_with(suffix))
                .map(|t| t.2)
                .sum()
        };
        let parts = [
            ("W_q", "attn_q.weight"),
            ("W_k", "attn_k.weight"),
            ("W_v", "attn_v.weight"),
            ("W_o", "attn_output.weight"),
            ("W_gate", "ffn_gate.weight"),
            ("W_up", "ffn_up.weight"),
            ("W_down", "ffn_down.weight"),
            ("attention norm γ", "attn_norm.weight"),
            ("MLP norm γ", "ffn_norm.weight"),
        ];
        let rows: Vec<(String, usize)> = parts
            .iter()
            .map(|(l, s)| (l.to_string(), count(s)))
            .collect();
        if rows.iter().any(|r| r.1 == 0) {
            return Err(LabError::Input(
                "this GGUF does not name its tensors the llama way (blk.N.attn_q.weight …)".into(),
            ));
        }
        let attn: usize = rows[..4].iter().map(|r| r.1).sum();
        let mlp: usize = rows[4..7].iter().map(|r| r.1).sum();
        let norms: usize = rows[7..].iter().map(|r| r.1).sum();
        let layer = attn + mlp + norms;
        let total: usize = self.model.tensors.iter().map(|t| t.2).sum();
        let emb: usize = self
            .model
            .tensors
            .iter()
            .filter(|(n, ..)| n == "token_embd.weight")
            .map(|t| t.2)
            .sum();
        let prov = Provenance::model(format!("{} tensor shapes", self.model_name));
        let fmt = |n: usize| text::group_digits(n as u64);
        let mut table_rows: Vec<Vec<String>> = rows
            .iter()
            .map(|(l, n)| vec![l.clone(), fmt(*n), format!("{:.3} d²", *n as f64 / (d * d))])
            .collect();
        table_rows.push(vec![
            "attention".into(),
            fmt(attn),
            format!("{:.3} d²", attn as f64 / (d * d)),
        ]);
        table_rows.push(vec![
            "SwiGLU MLP".into(),
            fmt(mlp),
            format!("{:.3} d²", mlp as f64 / (d * d)),
        ]);
        table_rows.push(vec![
            "one layer".into(),
            fmt(layer),
            format!("{:.2} d²", layer as f64 / (d * d)),
        ]);
        table_rows.push(vec![
            format!("{} layers", cfg.num_layers),
            fmt(layer * cfg.num_layers),
            String::new(),
        ]);
        table_rows.push(vec![
            if cfg.tied_embeddings {
                "embedding (also the LM head)".into()
            } else {
                "embedding".into()
            },
            fmt(emb),
            format!("{:.0} % of the model", 100.0 * emb as f64 / total as f64),
        ]);
        table_rows.push(vec!["model total".into(), fmt(total), String::new()]);
        Ok(Scene::new()
            .with(Item::new(
                "counts",
                "Parameters of one block, read from the GGUF's tensor shapes",
                prov.clone(),
                Primitive::Table(Table {
                    columns: vec!["part".into(), "parameters".into(), "in units of d²".into()],
                    rows: table_rows,
                }),
            ))
            .with(Item::new(
                "compare",
                format!(
                    "Why {:.2} d² and not the textbook 12 d²",
                    layer as f64 / (d * d)
                ),
                prov,
                Primitive::Bars(Bars {
                    bars: vec![
                        Bar {
                            label: "this block: attention".into(),
                            value: attn as f64 / (d * d),
                            role: Role::Attention,
                        },
                        Bar {
                            label: "textbook: attention (4 d²)".into(),
                            value: 4.0,
                            role: Role::Muted,
                        },
                        Bar {
                            label: "this block: SwiGLU".into(),
                            value: mlp as f64 / (d * d),
                            role: Role::Activation,
                        },
                        Bar {
                            label: "textbook: 4d FFN (8 d²)".into(),
                            value: 8.0,
                            role: Role::Muted,
                        },
                    ],
                    unit: "d²".into(),
                    log: false,
                }),
            ))
            .with(published::table(
                "published",
                "For comparison",
                &published::for_step(&self.facts, "params"),
            )))
    }

    fn postnorm(&mut self, v: &Values) -> Result<Scene> {
        let prompt = v.text(&self.c.prompt).to_string();
        let model = self.model.clone();
        let h = model.config.hidden_size;
        let pass = self.pass.get(&model, &self.tokenizer, &prompt)?;
        let tokens = pass.tokens.clone();
        let mean_norms = |stream: &[Vec<f32>]| -> Vec<f64> {
            stream
                .iter()
                .map(|x| x.chunks(h).map(norm).sum::<f64>() / tokens.len() as f64)
                .collect()
        };
        if self.post.as_ref().is_none_or(|(p, _)| *p != prompt) {
            let pre = model.residual_stream(&tokens, NormPlacement::Pre).lab()?;
            let post = model.residual_stream(&tokens, NormPlacement::Post).lab()?;
            self.post = Some((prompt.clone(), vec![mean_norms(&pre), mean_norms(&post)]));
        }
        let (_, norms) = self.post.as_ref().expect("just set");
        let pts = |v: &[f64]| {
            v.iter()
                .enumerate()
                .map(|(l, &x)| (l as f64, x))
                .collect::<Vec<_>>()
        };
        Ok(Scene::new()
            .with(Item::new(
                "pre",
                "Pre-norm (the model): mean ‖x‖ entering each layer",
                self.model_name.prov(self.model_name.to_string()),
                Primitive::Plot(Plot { x_label: "layer".into(), y_label: "mean ‖x‖".into(), x_log: false, y_log: false, series: vec![Series { name: "pre-norm".into(), points: pts(&norms[0]), line: true, role: Role::Residual }] }),
            ))
            .with(Item::new(
                "post",
                "Post-norm on the same weights: mean ‖x‖ entering each layer",
                Provenance::what_if("post-norm blocks h = Norm(x + Attn(x)), y = Norm(h + FFN(h)) with this model's weights, which were trained pre-norm"),
                Primitive::Plot(Plot { x_label: "layer".into(), y_label: "mean ‖x‖".into(), x_log: false, y_log: false, series: vec![Series { name: "post-norm (what-if)".into(), points: pts(&norms[1]), line: true, role: Role::WhatIf }] }),
            ))
            .with(published::table(
                "formulas",
                "Where the norm sits",
                &published::for_step(&self.facts, "postnorm"),
            )))
    }
}
