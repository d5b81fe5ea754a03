//! forward-pass: the whole model as blocks in 3-D, laid out from its config, and one
//! prompt of the learner's followed through it stage by stage. Every coloured cell is
//! a value the real forward pass computed (the capture recorder); the last step is the
//! model's real next-token distribution.
//!
//! The layout ([`layout`]) is a pure function of the config and the prompt length, so
//! the attention and transformer-block labs place the same blocks ([`layer_blocks`]).

use super::Context;
use crate::control::{Control, Values};
use crate::error::Result;
use crate::lab::{Lab, StepSpec};
use crate::pass::{Pass, PassCache, values};
use lav_model::{Llama, LlamaConfig, Tokenizer};
use lav_scene::*;
use std::sync::Arc;

/// Layout units. Widths are to scale across channels (`CHANNELS` per unit) and tokens
/// (`TOKEN` per token); the vocabulary-sized blocks say they are not.
pub const CHANNELS: f32 = 64.0;
pub const TOKEN: f32 = 0.5;
const HEIGHT: f32 = 0.25;
const GAP: f32 = 1.5;
const HEAD_GAP: f32 = 0.25;
const GROUP_GAP: f32 = 0.75;
/// Vertical distance between layers.
pub const FLOOR: f32 = 6.0;
/// Depth drawn for a vocabulary-sized axis (not to scale: 49,152 rows would be 24,576 units).
const VOCAB_DEPTH: f32 = 12.0;

pub const UNIT: &str = "1 unit = 64 channels across, 2 tokens deep; layers 6 units apart";

/// The architecture: every block of the forward pass for a prompt of `n` tokens, and
/// how data flows between them. Token embeddings at the bottom, one floor per layer,
/// the final norm and the tied LM head on top.
pub fn layout(cfg: &LlamaConfig, n: usize) -> Blocks {
    let mut b = Builder::default();
    let depth = n.max(1) as f32 * TOKEN;
    let d = cfg.hidden_size;
    // Embeddings floor.
    let y = -FLOOR;
    let mut x = 0.0;
    let table = b.push(
        "embed.table",
        "token_embd (depth not to scale)",
        &mut x,
        y,
        [d as f32 / CHANNELS, VOCAB_DEPTH],
        Role::Weight,
        vec![cfg.vocab_size, d],
        &["token id", "channel"],
    );
    let embed = b.push(
        "embed",
        "embeddings",
        &mut x,
        y,
        [d as f32 / CHANNELS, depth],
        Role::Residual,
        vec![n, d],
        &["token", "channel"],
    );
    b.link(table, embed);
    let mut stream = embed;
    for l in 0..cfg.num_layers {
        stream = layer_into(&mut b, cfg, n, l, stream);
    }
    // Head floor.
    let y = cfg.num_layers as f32 * FLOOR;
    let mut x = 0.0;
    let norm = b.push(
        "final_norm",
        "final RMSNorm",
        &mut x,
        y,
        [d as f32 / CHANNELS, depth],
        Role::Norm,
        vec![n, d],
        &["token", "channel"],
    );
    b.link(stream, norm);
    let head_label = if cfg.tied_embeddings {
        "LM head = token_embd (tied; depth not to scale)"
    } else {
        "LM head (depth not to scale)"
    };
    let head = b.push(
        "lm_head",
        head_label,
        &mut x,
        y,
        [d as f32 / CHANNELS, VOCAB_DEPTH],
        Role::Weight,
        vec![cfg.vocab_size, d],
        &["token id", "channel"],
    );
    b.link(norm, head);
    let logits = b.push(
        "logits",
        "logits of the last token (width not to scale)",
        &mut x,
        y,
        [VOCAB_DEPTH, TOKEN],
        Role::Vocab,
        vec![1, cfg.vocab_size],
        &["token", "vocabulary"],
    );
    b.link(head, logits);
    Blocks {
        blocks: b.blocks,
        flow: b.flow,
        unit: UNIT.into(),
    }
}

/// One layer's blocks alone (for the labs that zoom into a layer), at its floor.
pub fn layer_blocks(cfg: &LlamaConfig, n: usize, l: usize) -> Blocks {
    let mut b = Builder::default();
    // A stand-in for the stream entering the layer, so the residual links have a source.
    // It sits one floor down, where the previous layer's output is in the full layout.
    let mut x = 0.0;
    let depth = n.max(1) as f32 * TOKEN;
    let input = b.push(
        &format!("L{l}.resid_in"),
        "residual stream in",
        &mut x,
        (l as f32 - 1.0) * FLOOR,
        [cfg.hidden_size as f32 / CHANNELS, depth],
        Role::Residual,
        vec![n, cfg.hidden_size],
        &["token", "channel"],
    );
    layer_into(&mut b, cfg, n, l, input);
    Blocks {
        blocks: b.blocks,
        flow: b.flow,
        unit: UNIT.into(),
    }
}

/// Adds layer `l`'s blocks, fed by block `input`; returns its output block.
fn layer_into(b: &mut Builder, cfg: &LlamaConfig, n: usize, l: usize, input: usize) -> usize {
    let y = l as f32 * FLOOR;
    let depth = n.max(1) as f32 * TOKEN;
    let d = cfg.hidden_size as f32 / CHANNELS;
    let hd = cfg.head_dim as f32 / CHANNELS;
    let ff = cfg.intermediate_size as f32 / CHANNELS;
    let group = cfg.num_heads / cfg.num_kv_heads.max(1);
    let tok_ch = ["token", "channel"];
    let id = |s: &str| format!("L{l}.{s}");
    let mut x = b.next_x;
    let norm = b.push(
        &id("attn_norm"),
        "RMSNorm",
        &mut x,
        y,
        [d, depth],
        Role::Norm,
        vec![n, cfg.hidden_size],
        &tok_ch,
    );
    b.link(input, norm);
    // Query heads in groups that share a K/V head (grouped-query attention).
    let heads = |b: &mut Builder, x: &mut f32, name: &str, count: usize, role: Role| {
        (0..count)
            .map(|h| {
                let i = b.push_tight(
                    &id(&format!("{name}.{h}")),
                    &format!("{name} head {h}"),
                    x,
                    y,
                    [hd, depth],
                    role,
                    vec![n, cfg.head_dim],
                    &tok_ch,
                    if name == "q" && (h + 1) % group == 0 {
                        GROUP_GAP
                    } else {
                        HEAD_GAP
                    },
                );
                b.link(norm, i);
                i
            })
            .collect::<Vec<_>>()
    };
    let q = heads(b, &mut x, "q", cfg.num_heads, Role::Head);
    x += GAP - GROUP_GAP;
    let k = heads(b, &mut x, "k", cfg.num_kv_heads, Role::Position);
    x += GAP - HEAD_GAP;
    let v = heads(b, &mut x, "v", cfg.num_kv_heads, Role::Channel);
    x += GAP - HEAD_GAP;
    let attn: Vec<usize> = (0..cfg.num_heads)
        .map(|h| {
            let i = b.push_tight(
                &id(&format!("attn.{h}")),
                &format!("attention head {h} (K/V head {})", h / group),
                &mut x,
                y,
                [depth, depth],
                Role::Attention,
                vec![n, n],
                &["query", "key"],
                HEAD_GAP,
            );
            b.link(q[h], i);
            b.link(k[h / group], i);
            b.link(v[h / group], i);
            i
        })
        .collect();
    x += GAP - HEAD_GAP;
    let o = b.push(
        &id("o_proj"),
        "o_proj",
        &mut x,
        y,
        [d, depth],
        Role::Activation,
        vec![n, cfg.hidden_size],
        &tok_ch,
    );
    for a in attn {
        b.link(a, o);
    }
    let mid = b.push(
        &id("resid_mid"),
        "x + attention",
        &mut x,
        y,
        [d, depth],
        Role::Residual,
        vec![n, cfg.hidden_size],
        &tok_ch,
    );
    b.link(o, mid);
    b.link(input, mid);
    let norm2 = b.push(
        &id("ffn_norm"),
        "RMSNorm 2",
        &mut x,
        y,
        [d, depth],
        Role::Norm,
        vec![n, cfg.hidden_size],
        &tok_ch,
    );
    b.link(mid, norm2);
    let ffs = ["gate", "up", "act"].map(|name| {
        b.push(
            &id(name),
            match name {
                "gate" => "gate",
                "up" => "up",
                _ => "silu(gate) · up",
            },
            &mut x,
            y,
            [ff, depth],
            Role::Activation,
            vec![n, cfg.intermediate_size],
            &tok_ch,
        )
    });
    b.link(norm2, ffs[0]);
    b.link(norm2, ffs[1]);
    b.link(ffs[0], ffs[2]);
    b.link(ffs[1], ffs[2]);
    let down = b.push(
        &id("down"),
        "down",
        &mut x,
        y,
        [d, depth],
        Role::Activation,
        vec![n, cfg.hidden_size],
        &tok_ch,
    );
    b.link(ffs[2], down);
    let out = b.push(
        &id("resid_out"),
        "x + MLP",
        &mut x,
        y,
        [d, depth],
        Role::Residual,
        vec![n, cfg.hidden_size],
        &tok_ch,
    );
    b.link(down, out);
    b.link(mid, out);
    out
}

#[derive(Default)]
struct Builder {
    blocks: Vec<Block>,
    flow: Vec<(usize, usize)>,
    /// Where a layer's floor starts along x (0: floors line up).
    next_x: f32,
}

impl Builder {
    /// Places a block of footprint `[width, depth]` at `x` on floor `y`; moves `x` past it.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        id: &str,
        label: &str,
        x: &mut f32,
        y: f32,
        footprint: [f32; 2],
        role: Role,
        shape: Vec<usize>,
        axes: &[&str],
    ) -> usize {
        self.push_tight(id, label, x, y, footprint, role, shape, axes, GAP)
    }

    #[allow(clippy::too_many_arguments)]
    fn push_tight(
        &mut self,
        id: &str,
        label: &str,
        x: &mut f32,
        y: f32,
        [w, depth]: [f32; 2],
        role: Role,
        shape: Vec<usize>,
        axes: &[&str],
        gap: f32,
    ) -> usize {
        self.blocks.push(Block {
            id: id.into(),
            label: label.into(),
            center: [*x + w / 2.0, y, 0.0],
            size: [w, HEIGHT, depth],
            role,
            shape,
            axes: axes.iter().map(|s| s.to_string()).collect(),
            values: None,
            active: false,
        });
        *x += w + gap;
        self.blocks.len() - 1
    }

    fn link(&mut self, from: usize, to: usize) {
        self.flow.push((from, to));
    }
}

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let model = ctx.loader.model()?;
    let cfg = &model.config;
    let c = Controls {
        prompt: Control::text("prompt", "Prompt", 200, "The capital of France is"),
        layer: Control::slider("layer", "Layer", 0.0, (cfg.num_layers - 1) as f64, 1.0, 0.0),
    };
    let p = || vec![c.prompt.clone()];
    let pl = || vec![c.prompt.clone(), c.layer.clone()];
    let steps = vec![
        StepSpec {
            id: "overview",
            controls: p(),
        },
        StepSpec {
            id: "embed",
            controls: p(),
        },
        StepSpec {
            id: "norm",
            controls: pl(),
        },
        StepSpec {
            id: "qkv",
            controls: pl(),
        },
        StepSpec {
            id: "attention",
            controls: pl(),
        },
        StepSpec {
            id: "residual",
            controls: pl(),
        },
        StepSpec {
            id: "mlp",
            controls: pl(),
        },
        StepSpec {
            id: "layers",
            controls: p(),
        },
        StepSpec {
            id: "next-token",
            controls: p(),
        },
    ];
    Ok(Box::new(ForwardPass {
        steps,
        c,
        model: model.clone(),
        tokenizer: ctx.loader.tokenizer()?,
        model_name: ctx.loader.model_name(),
        pass: PassCache::default(),
    }))
}

struct Controls {
    prompt: Control,
    layer: Control,
}

struct ForwardPass {
    steps: Vec<StepSpec>,
    c: Controls,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    model_name: String,
    pass: PassCache,
}

/// Layer `l`'s blocks (as the forward-pass lab lays them out) with every attention
/// head painted with its real weights for `pass`: what the attention lab shows beside
/// its single head.
pub fn attention_blocks(cfg: &LlamaConfig, pass: &Pass, l: usize) -> Result<Blocks> {
    let n = pass.tokens.len();
    let mut arch = layer_blocks(cfg, n, l);
    let probs = values(&pass.capture.layers[l].probs)?;
    let scale = ColorScale::Sequential { min: 0.0, max: 1.0 };
    for (h, vals) in split_heads(&probs, cfg.num_heads).into_iter().enumerate() {
        let id = format!("L{l}.attn.{h}");
        paint(&mut arch, &id, pass.pieces.clone(), vals, scale);
        if let Some(hm) = arch
            .blocks
            .iter_mut()
            .find(|b| b.id == id)
            .and_then(|b| b.values.as_mut())
        {
            hm.cols = pass.pieces.clone();
        }
    }
    Ok(arch)
}

/// Layer `l`'s blocks with the ones whose id ends in one of `suffixes` active.
pub fn layer_with_active(cfg: &LlamaConfig, n: usize, l: usize, suffixes: &[&str]) -> Blocks {
    let mut arch = layer_blocks(cfg, n, l);
    for b in &mut arch.blocks {
        let local = b.id.split_once('.').map_or("", |(_, r)| r);
        b.active = suffixes
            .iter()
            .any(|s| local == *s || (s.ends_with('.') && local.starts_with(s)));
    }
    arch
}

/// Puts real values on block `id`: `vals` is `rows × cols` row-major.
fn paint(arch: &mut Blocks, id: &str, rows: Vec<String>, vals: Vec<f32>, scale: ColorScale) {
    let Some(b) = arch.blocks.iter_mut().find(|b| b.id == id) else {
        return;
    };
    let cols = vals.len() / rows.len().max(1);
    b.values = Some(Heatmap {
        rows,
        cols: (0..cols).map(|c| c.to_string()).collect(),
        values: vals,
        scale,
        selected: None,
        row_axis: b.axes.first().cloned().unwrap_or_default(),
        col_axis: b.axes.get(1).cloned().unwrap_or_default(),
    });
    b.active = true;
}

/// Splits head-major `(heads, n, w)` values into one `n × w` matrix per head.
fn split_heads(vals: &[f32], heads: usize) -> Vec<Vec<f32>> {
    let per = vals.len() / heads.max(1);
    vals.chunks(per).map(<[f32]>::to_vec).collect()
}

impl Lab for ForwardPass {
    fn steps(&self) -> &[StepSpec] {
        &self.steps
    }

    fn scene(&mut self, step: &str, v: &Values) -> Result<Scene> {
        let model = self.model.clone();
        let tokenizer = self.tokenizer.clone();
        let cfg = &model.config;
        let pass = self.pass.get(&model, &tokenizer, v.text(&self.c.prompt))?;
        let n = pass.tokens.len();
        let rows = pass.pieces.clone();
        let layer = v.usize(&self.c.layer).min(cfg.num_layers - 1);
        let mut arch = layout(cfg, n);
        let signed = |x: &[f32]| ColorScale::fit_signed(x);
        let lc = &pass.capture.layers[layer];
        let mut extra: Vec<Item> = Vec::new();
        let l = |s: &str| format!("L{layer}.{s}");
        let mut where_ = format!("layer {layer}");
        let mut saturation: Option<String> = None;
        match step {
            "overview" => {
                where_ = "the whole model".into();
                let total: usize = model.tensors.iter().map(|t| t.2).sum();
                extra.push(Item::new(
                    "facts",
                    "The model, from its config and tensor shapes",
                    Provenance::model(self.model_name.clone()),
                    Primitive::Table(Table {
                        columns: vec!["what".into(), "value".into()],
                        rows: vec![
                            vec!["layers".into(), cfg.num_layers.to_string()],
                            vec!["hidden size".into(), cfg.hidden_size.to_string()],
                            vec![
                                "query heads / K-V heads".into(),
                                format!("{} / {}", cfg.num_heads, cfg.num_kv_heads),
                            ],
                            vec!["head size".into(), cfg.head_dim.to_string()],
                            vec!["MLP size".into(), cfg.intermediate_size.to_string()],
                            vec!["vocabulary".into(), cfg.vocab_size.to_string()],
                            vec!["parameters".into(), text::group_digits(total as u64)],
                            vec!["blocks drawn".into(), arch.blocks.len().to_string()],
                        ],
                    }),
                ));
            }
            "embed" => {
                let e = values(pass.capture.embeddings.as_ref().expect("captured"))?;
                paint(&mut arch, "embed", rows.clone(), e.clone(), signed(&e));
                if let Some(t) = arch.blocks.iter_mut().find(|b| b.id == "embed.table") {
                    t.active = true;
                }
            }
            "norm" => {
                let x = values(&lc.attn_norm)?;
                paint(
                    &mut arch,
                    &l("attn_norm"),
                    rows.clone(),
                    x.clone(),
                    signed(&x),
                );
            }
            "qkv" => {
                for (name, t, heads) in [
                    ("q", &lc.q, cfg.num_heads),
                    ("k", &lc.k, cfg.num_kv_heads),
                    ("v", &lc.v, cfg.num_kv_heads),
                ] {
                    let all = values(t)?;
                    let scale = signed(&all);
                    for (h, vals) in split_heads(&all, heads).into_iter().enumerate() {
                        paint(
                            &mut arch,
                            &l(&format!("{name}.{h}")),
                            rows.clone(),
                            vals,
                            scale,
                        );
                    }
                }
            }
            "attention" => {
                // The same blocks as the full layout's floor, painted; swap them in.
                let painted = attention_blocks(cfg, pass, layer)?;
                for p in painted.blocks.into_iter().filter(|b| b.active) {
                    if let Some(b) = arch.blocks.iter_mut().find(|b| b.id == p.id) {
                        *b = p;
                    }
                }
            }
            "residual" => {
                for (id, t) in [("o_proj", &lc.attn_out), ("resid_mid", &lc.resid_mid)] {
                    let x = values(t)?;
                    paint(&mut arch, &l(id), rows.clone(), x.clone(), signed(&x));
                }
            }
            "mlp" => {
                for (id, t) in [
                    ("ffn_norm", &lc.ffn_norm),
                    ("gate", &lc.gate),
                    ("up", &lc.up),
                    ("act", &lc.act),
                    ("down", &lc.mlp_out),
                    ("resid_out", &lc.resid_out),
                ] {
                    let x = values(t)?;
                    paint(&mut arch, &l(id), rows.clone(), x.clone(), signed(&x));
                }
            }
            "layers" => {
                where_ = "every layer's output".into();
                // One scale for the whole stream, so growth across layers is visible.
                let outs: Vec<Vec<f32>> = pass
                    .capture
                    .layers
                    .iter()
                    .map(|c| values(&c.resid_out))
                    .collect::<Result<_>>()?;
                // A few channels grow huge (hundreds) while most stay near zero; a
                // scale fitted to the extremes would paint nearly every cell white. The
                // colours saturate at the 99th percentile of |x| instead (hover still
                // reads the true value), and the title says so.
                let mut mags: Vec<f32> = outs.iter().flatten().map(|v| v.abs()).collect();
                mags.sort_by(f32::total_cmp);
                let p99 = mags[(mags.len() * 99 / 100).min(mags.len() - 1)].max(1e-6) as f64;
                let max = mags.last().copied().unwrap_or(0.0);
                let scale = ColorScale::Diverging {
                    min: -p99,
                    center: 0.0,
                    max: p99,
                };
                saturation = Some(format!(
                    "; colours saturate at |x| = {} (99th percentile; the largest is {})",
                    text::num(p99),
                    text::num(max as f64)
                ));
                for (i, x) in outs.into_iter().enumerate() {
                    paint(
                        &mut arch,
                        &format!("L{i}.resid_out"),
                        rows.clone(),
                        x,
                        scale,
                    );
                }
            }
            "next-token" => {
                where_ = "the head".into();
                let x = values(pass.capture.final_norm.as_ref().expect("captured"))?;
                paint(&mut arch, "final_norm", rows.clone(), x.clone(), signed(&x));
                let logits = values(pass.capture.logits.as_ref().expect("captured"))?;
                let last = &logits[logits.len() - cfg.vocab_size..];
                for id in ["lm_head", "logits"] {
                    if let Some(b) = arch.blocks.iter_mut().find(|b| b.id == id) {
                        b.active = true;
                    }
                }
                extra.push(next_token(&tokenizer, &self.model_name, last));
            }
            _ => unreachable!("Session checks step ids"),
        }
        let prov = Provenance::model(format!("{}: {where_}", self.model_name));
        let mut scene = Scene::new()
            .with(Item::new(
                "tokens",
                "Your prompt, as the model's tokens",
                Provenance::model(self.model_name.clone()),
                Primitive::TokenStrip(TokenStrip {
                    tokens: pass
                        .pieces
                        .iter()
                        .zip(&pass.tokens)
                        .map(|(p, &id)| Chip {
                            text: p.clone(),
                            id: Some(id),
                            role: Role::Token,
                            highlight: false,
                        })
                        .collect(),
                }),
            ))
            .with(Item::new(
                "arch",
                format!(
                    "SmolLM2's forward pass, {n} tokens{}",
                    saturation.unwrap_or_default()
                ),
                prov,
                Primitive::Blocks(arch),
            ));
        for i in extra {
            scene.push(i);
        }
        Ok(scene)
    }
}

/// The real next-token distribution: softmax of the last position's logits.
fn next_token(tokenizer: &Tokenizer, model_name: &str, last: &[f32]) -> Item {
    {
        let max = last.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let z: f64 = last.iter().map(|&x| (x as f64 - max).exp()).sum();
        let mut idx: Vec<usize> = (0..last.len()).collect();
        idx.sort_by(|&a, &b| last[b].total_cmp(&last[a]));
        let bars = idx
            .iter()
            .take(10)
            .enumerate()
            .map(|(rank, &i)| Bar {
                label: format!(
                    "{:?} ({i})",
                    crate::bpe::show_bytes(&tokenizer.token_bytes(i as u32))
                ),
                value: ((last[i] as f64 - max).exp() / z) * 100.0,
                role: if rank == 0 {
                    Role::Highlight
                } else {
                    Role::Vocab
                },
            })
            .collect();
        Item::new(
            "next",
            "Next token: the 10 most likely of 49,152 (softmax of the real logits)",
            Provenance::model(model_name),
            Primitive::Bars(Bars {
                bars,
                unit: "%".into(),
                log: false,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2() -> LlamaConfig {
        LlamaConfig {
            name: "SmolLM2-135M".into(),
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            context_length: 8192,
            rope_theta: 100000.0,
            rms_norm_eps: 1e-5,
            tied_embeddings: true,
        }
    }

    #[test]
    fn layout_follows_the_config() {
        let cfg = smollm2();
        let a = layout(&cfg, 7);
        // 2 embedding blocks, 3 head blocks, and per layer: 2 norms, 9 q + 3 k + 3 v,
        // 9 attention heads, o_proj, 2 residual adds, gate, up, act, down.
        let per_layer = 2 + 9 + 3 + 3 + 9 + 1 + 2 + 4;
        assert_eq!(a.blocks.len(), 2 + 30 * per_layer + 3);
        let b = |id: &str| a.block(id).unwrap_or_else(|| panic!("no block {id}"));
        // Widths to scale: 576 channels = 9 units, a head = 1, the MLP = 24.
        assert_eq!(b("L0.attn_norm").size[0], 9.0);
        assert_eq!(b("L0.q.8").size[0], 1.0);
        assert_eq!(b("L0.gate").size[0], 24.0);
        assert_eq!(b("L0.attn.0").size, [3.5, HEIGHT, 3.5]);
        assert_eq!(b("L12.up").shape, vec![7, 1536]);
        // Floors stack upwards, one per layer, the head on top.
        assert_eq!(b("L29.resid_out").center[1], 29.0 * FLOOR);
        assert!(b("lm_head").center[1] > b("L29.down").center[1]);
        assert!(b("embed").center[1] < b("L0.attn_norm").center[1]);
        // Grouped-query attention: head h reads K/V head h / 3.
        let idx = |id: &str| a.blocks.iter().position(|x| x.id == id).unwrap();
        for h in 0..9 {
            let to = idx(&format!("L3.attn.{h}"));
            let kv: Vec<&str> = a
                .flow
                .iter()
                .filter(|(_, t)| *t == to)
                .map(|(f, _)| a.blocks[*f].id.as_str())
                .collect();
            assert!(kv.contains(&format!("L3.k.{}", h / 3).as_str()), "{kv:?}");
            assert!(kv.contains(&format!("L3.v.{}", h / 3).as_str()));
        }
        // Blocks on one floor do not overlap along x.
        let mut floor0: Vec<&Block> = a
            .blocks
            .iter()
            .filter(|x| x.id.starts_with("L0."))
            .collect();
        floor0.sort_by(|p, q| p.center[0].total_cmp(&q.center[0]));
        for w in floor0.windows(2) {
            let end = w[0].center[0] + w[0].size[0] / 2.0;
            let start = w[1].center[0] - w[1].size[0] / 2.0;
            assert!(end < start, "{} overlaps {}", w[0].id, w[1].id);
        }
        // The residual skip: layer 1's first add reads layer 0's output.
        let (from, to) = (idx("L0.resid_out"), idx("L1.resid_mid"));
        assert!(a.flow.contains(&(from, to)));
        // A zoomed layer has the same blocks as the full layout's floor.
        let one = layer_blocks(&cfg, 7, 4);
        for x in one.blocks.iter().filter(|x| x.id != "L4.resid_in") {
            assert_eq!(x.size, b(&x.id).size, "{}", x.id);
            assert_eq!(x.center[1], b(&x.id).center[1]);
        }
    }
}
