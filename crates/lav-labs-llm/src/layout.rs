//! The forward-pass layout: the whole model as blocks in 3-D, a pure function of the
//! model's config and the prompt length. Token embeddings at the bottom, one floor per
//! layer (RMSNorm, 9 query / 3 K/V heads, 9 attention heads, o_proj, the residual adds,
//! SwiGLU), the final norm and the tied LM head on top. Every block is named by a
//! typed [`BlockId`]; scenes carry its text form (`L3.q.0`), which camera files and
//! hover read. The forward-pass, attention and transformer-block labs all place the
//! same blocks from here.

use crate::pass::{Pass, values};
use lav_lab::Result;
use lav_model::LlamaConfig;
use lav_scene::*;
use std::fmt;
use std::str::FromStr;

/// A block of the layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockId {
    /// The token-embedding table (`embed.table`).
    EmbedTable,
    /// The prompt's embeddings (`embed`).
    Embed,
    /// Part of layer `l` (`L{l}.{part}`).
    Layer(usize, Part),
    FinalNorm,
    LmHead,
    Logits,
}

/// The blocks of one layer, in the order the data flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// A stand-in for the stream entering a zoomed layer (only in [`layer_blocks`]).
    ResidIn,
    AttnNorm,
    Q(usize),
    K(usize),
    V(usize),
    /// Attention weights of query head h.
    Attn(usize),
    OProj,
    ResidMid,
    FfnNorm,
    Gate,
    Up,
    Act,
    Down,
    ResidOut,
}

impl Part {
    /// The part's name inside its layer, as in `L3.<name>`.
    fn name(self) -> String {
        match self {
            Part::ResidIn => "resid_in".into(),
            Part::AttnNorm => "attn_norm".into(),
            Part::Q(h) => format!("q.{h}"),
            Part::K(h) => format!("k.{h}"),
            Part::V(h) => format!("v.{h}"),
            Part::Attn(h) => format!("attn.{h}"),
            Part::OProj => "o_proj".into(),
            Part::ResidMid => "resid_mid".into(),
            Part::FfnNorm => "ffn_norm".into(),
            Part::Gate => "gate".into(),
            Part::Up => "up".into(),
            Part::Act => "act".into(),
            Part::Down => "down".into(),
            Part::ResidOut => "resid_out".into(),
        }
    }

    fn parse(s: &str) -> Option<Part> {
        let head = |p: &str| s.strip_prefix(p).and_then(|h| h.parse().ok());
        Some(match s {
            "resid_in" => Part::ResidIn,
            "attn_norm" => Part::AttnNorm,
            "o_proj" => Part::OProj,
            "resid_mid" => Part::ResidMid,
            "ffn_norm" => Part::FfnNorm,
            "gate" => Part::Gate,
            "up" => Part::Up,
            "act" => Part::Act,
            "down" => Part::Down,
            "resid_out" => Part::ResidOut,
            _ => {
                if let Some(h) = head("q.") {
                    Part::Q(h)
                } else if let Some(h) = head("k.") {
                    Part::K(h)
                } else if let Some(h) = head("v.") {
                    Part::V(h)
                } else {
                    Part::Attn(head("attn.")?)
                }
            }
        })
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockId::EmbedTable => f.write_str("embed.table"),
            BlockId::Embed => f.write_str("embed"),
            BlockId::Layer(l, p) => write!(f, "L{l}.{}", p.name()),
            BlockId::FinalNorm => f.write_str("final_norm"),
            BlockId::LmHead => f.write_str("lm_head"),
            BlockId::Logits => f.write_str("logits"),
        }
    }
}

impl FromStr for BlockId {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<BlockId, String> {
        let bad = || format!("`{s}` is not a block of the forward-pass layout");
        Ok(match s {
            "embed.table" => BlockId::EmbedTable,
            "embed" => BlockId::Embed,
            "final_norm" => BlockId::FinalNorm,
            "lm_head" => BlockId::LmHead,
            "logits" => BlockId::Logits,
            _ => {
                let (l, part) = s
                    .strip_prefix('L')
                    .and_then(|r| r.split_once('.'))
                    .ok_or_else(bad)?;
                let l = l.parse().map_err(|_| bad())?;
                BlockId::Layer(l, Part::parse(part).ok_or_else(bad)?)
            }
        })
    }
}

/// The block `id` of `arch`, mutably.
pub fn block_mut(arch: &mut Blocks, id: BlockId) -> Option<&mut Block> {
    let id = id.to_string();
    arch.blocks.iter_mut().find(|b| b.id == id)
}

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
        BlockId::EmbedTable,
        "token_embd (depth not to scale)",
        &mut x,
        y,
        [d as f32 / CHANNELS, VOCAB_DEPTH],
        Role::Weight,
        vec![cfg.vocab_size, d],
        &["token id", "channel"],
    );
    let embed = b.push(
        BlockId::Embed,
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
        BlockId::FinalNorm,
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
        BlockId::LmHead,
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
        BlockId::Logits,
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
        BlockId::Layer(l, Part::ResidIn),
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
    let id = |p: Part| BlockId::Layer(l, p);
    let mut x = b.next_x;
    let norm = b.push(
        id(Part::AttnNorm),
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
                let part = match name {
                    "q" => Part::Q(h),
                    "k" => Part::K(h),
                    _ => Part::V(h),
                };
                let i = b.push_tight(
                    id(part),
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
                id(Part::Attn(h)),
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
        id(Part::OProj),
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
        id(Part::ResidMid),
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
        id(Part::FfnNorm),
        "RMSNorm 2",
        &mut x,
        y,
        [d, depth],
        Role::Norm,
        vec![n, cfg.hidden_size],
        &tok_ch,
    );
    b.link(mid, norm2);
    let ffs = [Part::Gate, Part::Up, Part::Act].map(|part| {
        b.push(
            id(part),
            match part {
                Part::Gate => "gate",
                Part::Up => "up",
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
        id(Part::Down),
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
        id(Part::ResidOut),
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
        id: BlockId,
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
        id: BlockId,
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
            id: id.to_string(),
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

/// Layer `l`'s blocks (as the forward-pass lab lays them out) with every attention
/// head painted with its real weights for `pass`: what the attention lab shows beside
/// its single head.
pub fn attention_blocks(cfg: &LlamaConfig, pass: &Pass, l: usize) -> Result<Blocks> {
    let n = pass.tokens.len();
    let mut arch = layer_blocks(cfg, n, l);
    let probs = values(&pass.capture.layers[l].probs)?;
    let scale = ColorScale::Sequential { min: 0.0, max: 1.0 };
    for (h, vals) in split_heads(&probs, cfg.num_heads).into_iter().enumerate() {
        let id = BlockId::Layer(l, Part::Attn(h));
        paint(&mut arch, id, pass.pieces.clone(), vals, scale);
        if let Some(hm) = block_mut(&mut arch, id).and_then(|b| b.values.as_mut()) {
            hm.cols = pass.pieces.clone();
        }
    }
    Ok(arch)
}

/// Layer `l`'s blocks with the parts for which `active` holds lit.
pub fn layer_with_active(
    cfg: &LlamaConfig,
    n: usize,
    l: usize,
    active: impl Fn(Part) -> bool,
) -> Blocks {
    let mut arch = layer_blocks(cfg, n, l);
    for b in &mut arch.blocks {
        b.active = match b.id.parse() {
            Ok(BlockId::Layer(_, p)) => active(p),
            _ => false,
        };
    }
    arch
}

/// Puts real values on block `id`: `vals` is `rows × cols` row-major.
pub fn paint(arch: &mut Blocks, id: BlockId, rows: Vec<String>, vals: Vec<f32>, scale: ColorScale) {
    let Some(b) = block_mut(arch, id) else {
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
pub fn split_heads(vals: &[f32], heads: usize) -> Vec<Vec<f32>> {
    let per = vals.len() / heads.max(1);
    vals.chunks(per).map(<[f32]>::to_vec).collect()
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
        assert_eq!(one.blocks[0].id, "L4.resid_in");
        for x in one.blocks.iter().filter(|x| x.id != "L4.resid_in") {
            assert_eq!(x.size, b(&x.id).size, "{}", x.id);
            assert_eq!(x.center[1], b(&x.id).center[1]);
        }
    }

    #[test]
    fn every_block_id_reads_back_as_itself() {
        let a = layout(&smollm2(), 3);
        for b in &a.blocks {
            let id: BlockId = b.id.parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(id.to_string(), b.id);
        }
        assert_eq!(BlockId::Layer(3, Part::Q(0)).to_string(), "L3.q.0");
        assert!("L3.nope".parse::<BlockId>().is_err());
        assert!("Lx.q.0".parse::<BlockId>().is_err());
    }
}
