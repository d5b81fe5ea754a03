//! forward-pass: the whole model as blocks in 3-D, laid out from its config, and one
//! prompt of the learner's followed through it stage by stage. Every coloured cell is
//! a value the real forward pass computed (the capture recorder); the last step is the
//! model's real next-token distribution. The blocks come from [`crate::layout`].

use super::Context;
use crate::layout::{BlockId, Part, attention_blocks, block_mut, layout, paint, split_heads};
use crate::pass::{Pass, PassCache, values};
use lav_lab::items::ModelSource;
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values};
use lav_model::{Llama, LlamaConfig, Tokenizer};
use lav_scene::*;
use std::sync::Arc;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let model = ctx.loader.model().lab()?;
    let cfg = &model.config;
    let c = Controls {
        prompt: Control::text("prompt", "Prompt", 200, "The capital of France is"),
        layer: Control::slider("layer", "Layer", 0.0, (cfg.num_layers - 1) as f64, 1.0, 0.0),
    };
    let (p, pl) = ([&c.prompt], [&c.prompt, &c.layer]);
    let steps = vec![
        Step::new("overview", &p, ForwardPass::overview),
        Step::new("embed", &p, ForwardPass::embed),
        Step::new("norm", &pl, ForwardPass::norm),
        Step::new("qkv", &pl, ForwardPass::qkv),
        Step::new("attention", &pl, ForwardPass::attention),
        Step::new("residual", &pl, ForwardPass::residual),
        Step::new("mlp", &pl, ForwardPass::mlp),
        Step::new("layers", &p, ForwardPass::layers),
        Step::new("next-token", &p, ForwardPass::next_token),
    ];
    let lab = ForwardPass {
        tokenizer: ctx.loader.tokenizer().lab()?,
        model_name: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
        model,
        c,
        pass: PassCache::default(),
    };
    Steps::lab(lab, steps)
}

/// A per-head part of the layout (`Part::Q`, `Part::K`, `Part::V`).
type HeadPart = fn(usize) -> Part;

struct Controls {
    prompt: Control,
    layer: Control,
}

struct ForwardPass {
    c: Controls,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    model_name: ModelSource,
    pass: PassCache,
}

impl LabState for ForwardPass {}

/// What every step reads: the config, the pass over the learner's prompt, its rows
/// (the tokens as text) and the chosen layer.
struct Frame<'a> {
    cfg: &'a LlamaConfig,
    pass: &'a Pass,
    rows: Vec<String>,
    layer: usize,
    tokenizer: &'a Tokenizer,
    model_name: &'a ModelSource,
}

impl Frame<'_> {
    fn l(&self, p: Part) -> BlockId {
        BlockId::Layer(self.layer, p)
    }

    /// Paints `t`'s captured values on block `id`, coloured on their own signed scale.
    fn paint_signed(&self, arch: &mut Blocks, id: BlockId, t: &candle_core::Tensor) -> Result<()> {
        let x = values(t)?;
        let scale = ColorScale::fit_signed(&x);
        paint(arch, id, self.rows.clone(), x, scale);
        Ok(())
    }
}

/// What a step adds to the common picture: where in the model it is, a note on the
/// colour scale, and items beside the blocks.
#[derive(Default)]
struct Painted {
    where_: Option<String>,
    saturation: Option<String>,
    extra: Vec<Item>,
}

impl ForwardPass {
    /// The step's scene: the prompt's tokens and the whole-model layout, on which
    /// `step` paints the values it is about.
    fn draw(
        &mut self,
        v: &Values,
        step: impl FnOnce(&Frame<'_>, &mut Blocks) -> Result<Painted>,
    ) -> Result<Scene> {
        let model = self.model.clone();
        let tokenizer = self.tokenizer.clone();
        let cfg = &model.config;
        let pass = self.pass.get(&model, &tokenizer, v.text(&self.c.prompt))?;
        let n = pass.tokens.len();
        let frame = Frame {
            cfg,
            pass: &pass,
            rows: pass.pieces.clone(),
            layer: v.usize(&self.c.layer).min(cfg.num_layers - 1),
            tokenizer: &tokenizer,
            model_name: &self.model_name,
        };
        let mut arch = layout(cfg, n);
        let painted = step(&frame, &mut arch)?;
        let where_ = painted
            .where_
            .unwrap_or_else(|| format!("layer {}", frame.layer));
        let prov = self
            .model_name
            .prov(format!("{}: {where_}", self.model_name));
        let mut scene = Scene::new()
            .with(Item::new(
                "tokens",
                "Your prompt, as the model's tokens",
                self.model_name.prov(self.model_name.to_string()),
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
                    "{}'s forward pass, {n} tokens{}",
                    cfg.name,
                    painted.saturation.unwrap_or_default()
                ),
                prov,
                Primitive::Blocks(arch),
            ));
        for i in painted.extra {
            scene.push(i);
        }
        Ok(scene)
    }

    fn overview(&mut self, v: &Values) -> Result<Scene> {
        let total: usize = self.model.tensors.iter().map(|t| t.2).sum();
        self.draw(v, |f, arch| {
            let cfg = f.cfg;
            Ok(Painted {
                where_: Some("the whole model".into()),
                extra: vec![Item::new(
                    "facts",
                    "The model, from its config and tensor shapes",
                    Provenance::model(f.model_name.to_string()),
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
                )],
                ..Painted::default()
            })
        })
    }

    fn embed(&mut self, v: &Values) -> Result<Scene> {
        self.draw(v, |f, arch| {
            let e = f.pass.capture.embeddings.as_ref().expect("captured");
            f.paint_signed(arch, BlockId::Embed, e)?;
            if let Some(t) = block_mut(arch, BlockId::EmbedTable) {
                t.active = true;
            }
            Ok(Painted::default())
        })
    }

    fn norm(&mut self, v: &Values) -> Result<Scene> {
        self.draw(v, |f, arch| {
            let lc = &f.pass.capture.layers[f.layer];
            f.paint_signed(arch, f.l(Part::AttnNorm), &lc.attn_norm)?;
            Ok(Painted::default())
        })
    }

    fn qkv(&mut self, v: &Values) -> Result<Scene> {
        self.draw(v, |f, arch| {
            let lc = &f.pass.capture.layers[f.layer];
            let parts: [(HeadPart, _, _); 3] = [
                (Part::Q, &lc.q, f.cfg.num_heads),
                (Part::K, &lc.k, f.cfg.num_kv_heads),
                (Part::V, &lc.v, f.cfg.num_kv_heads),
            ];
            for (part, t, heads) in parts {
                let all = values(t)?;
                let scale = ColorScale::fit_signed(&all);
                for (h, vals) in split_heads(&all, heads).into_iter().enumerate() {
                    paint(arch, f.l(part(h)), f.rows.clone(), vals, scale);
                }
            }
            Ok(Painted::default())
        })
    }

    fn attention(&mut self, v: &Values) -> Result<Scene> {
        self.draw(v, |f, arch| {
            // The same blocks as the full layout's floor, painted; swap them in.
            let painted = attention_blocks(f.cfg, f.pass, f.layer)?;
            for p in painted.blocks.into_iter().filter(|b| b.active) {
                if let Some(b) = arch.blocks.iter_mut().find(|b| b.id == p.id) {
                    *b = p;
                }
            }
            Ok(Painted::default())
        })
    }

    fn residual(&mut self, v: &Values) -> Result<Scene> {
        self.draw(v, |f, arch| {
            let lc = &f.pass.capture.layers[f.layer];
            f.paint_signed(arch, f.l(Part::OProj), &lc.attn_out)?;
            f.paint_signed(arch, f.l(Part::ResidMid), &lc.resid_mid)?;
            Ok(Painted::default())
        })
    }

    fn mlp(&mut self, v: &Values) -> Result<Scene> {
        self.draw(v, |f, arch| {
            let lc = &f.pass.capture.layers[f.layer];
            for (part, t) in [
                (Part::FfnNorm, &lc.ffn_norm),
                (Part::Gate, &lc.gate),
                (Part::Up, &lc.up),
                (Part::Act, &lc.act),
                (Part::Down, &lc.mlp_out),
                (Part::ResidOut, &lc.resid_out),
            ] {
                f.paint_signed(arch, f.l(part), t)?;
            }
            Ok(Painted::default())
        })
    }

    fn layers(&mut self, v: &Values) -> Result<Scene> {
        self.draw(v, |f, arch| {
            // One scale for the whole stream, so growth across layers is visible.
            let outs: Vec<Vec<f32>> = f
                .pass
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
            for (i, x) in outs.into_iter().enumerate() {
                paint(
                    arch,
                    BlockId::Layer(i, Part::ResidOut),
                    f.rows.clone(),
                    x,
                    scale,
                );
            }
            Ok(Painted {
                where_: Some("every layer's output".into()),
                saturation: Some(format!(
                    "; colours saturate at |x| = {} (99th percentile; the largest is {})",
                    text::num(p99),
                    text::num(max as f64)
                )),
                extra: vec![],
            })
        })
    }

    fn next_token(&mut self, v: &Values) -> Result<Scene> {
        self.draw(v, |f, arch| {
            let x = f.pass.capture.final_norm.as_ref().expect("captured");
            f.paint_signed(arch, BlockId::FinalNorm, x)?;
            let logits = values(f.pass.capture.logits.as_ref().expect("captured"))?;
            let last = &logits[logits.len() - f.cfg.vocab_size..];
            for id in [BlockId::LmHead, BlockId::Logits] {
                if let Some(b) = block_mut(arch, id) {
                    b.active = true;
                }
            }
            Ok(Painted {
                where_: Some("the head".into()),
                saturation: None,
                extra: vec![next_token(f.tokenizer, f.model_name, last)],
            })
        })
    }
}

/// The real next-token distribution: softmax of the last position's logits.
fn next_token(tokenizer: &Tokenizer, model_name: &ModelSource, last: &[f32]) -> Item {
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
            format!(
                "Next token: the 10 most likely of {} (softmax of the real logits)",
                lav_scene::text::group_digits(last.len() as u64)
            ),
            model_name.prov(model_name.to_string()),
            Primitive::Bars(Bars {
                bars,
                unit: "%".into(),
                log: false,
            }),
        )
    }
}
