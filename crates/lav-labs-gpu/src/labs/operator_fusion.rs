//! operator-fusion: chains of operations run unfused (each op a kernel that reads and
//! writes HBM) and fused (one kernel per run of elementwise ops, a reduction ending
//! it), every tensor read and write counted, the outputs checked equal, and the
//! elementwise chain timed both ways on this CPU; then FlashAttention over the model's
//! real Q, K and V for one layer and head, tile by tile with the running max and sum,
//! against standard attention and against the model's own attention output.

use super::on_gpu::{self, Kept, Rate};
use super::{Context, commas, gpu_control, measured, pct, secs, selected, sim};
use lav_gpu_kernels::Measured;
use lav_gpusim::Table;
use lav_gpusim::flash::{self, Shape};
use lav_gpusim::fusion::{self, Op, Operands};
use lav_lab::items::{ModelSource, bar, bars, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values, published};
use lav_model::{Capture, Logits};
use lav_scene::*;
use std::sync::OnceLock;
use std::time::Instant;

const CHAINS: [&str; 4] = [
    "matmul → bias → ReLU",
    "matmul → bias → GELU → ×0.5",
    "matmul → ×0.125 → softmax → ×2 → GELU",
    "bias → ReLU → ×2 → GELU",
];
/// The prompt whose attention the flash step tiles.
const PROMPT: &str = "FlashAttention streams the keys and values through fast on-chip memory one tile at a time, so the full score matrix never has to be written out.";
/// Elements of the timed elementwise chain (64 MiB of f32, past any cache).
const TIMED: usize = 16 << 20;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let t = Table::load(&ctx.dir).lab()?;
    let model = ctx.loader.model().lab()?;
    let tok = ctx.loader.tokenizer().lab()?;
    let ids = tok.encode(PROMPT).lab()?;
    let mut cap = Capture::new();
    model
        .forward(&ids, &mut model.new_cache(), Logits::Last, Some(&mut cap))
        .lab()?;
    let cfg = &model.config;
    let flat = |t: &candle_core::Tensor| -> Result<Vec<f32>> {
        t.flatten_all().and_then(|t| t.to_vec1()).lab()
    };
    let mut layers = Vec::with_capacity(cap.layers.len());
    for lc in &cap.layers {
        layers.push(Qkv {
            q: flat(&lc.q)?,
            k: flat(&lc.k)?,
            v: flat(&lc.v)?,
            attn: flat(&lc.attn)?,
        });
    }
    let c = Controls {
        chain: Control::choice("chain", "Chain", &CHAINS, CHAINS[0]),
        rows: Control::slider("rows", "Rows (tokens)", 1.0, 512.0, 1.0, 64.0),
        gpu: gpu_control(&t, "H100 SXM 80GB"),
        layer: Control::slider("layer", "Layer", 0.0, (cfg.num_layers - 1) as f64, 1.0, 3.0),
        head: Control::slider(
            "head",
            "Query head",
            0.0,
            (cfg.num_heads - 1) as f64,
            1.0,
            0.0,
        ),
        tile: Control::choice("tile", "Tile (rows and columns)", &["4", "8", "16"], "8"),
        at: Control::slider("at", "Tile step", 1.0, 200.0, 1.0, 6.0),
    };
    let steps = vec![
        Step::new("chain", &[&c.chain, &c.rows, &c.gpu], Fusion::chain),
        Step::new(
            "flash",
            &[&c.layer, &c.head, &c.tile, &c.at, &c.gpu],
            Fusion::flash,
        ),
    ];
    Steps::lab(
        Fusion {
            c,
            t,
            facts: published::facts(&ctx.dir, "operator-fusion")?,
            source: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            n: ids.len(),
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            d: cfg.head_dim,
            layers,
            timed: Job::default(),
        },
        steps,
    )
}

struct Controls {
    chain: Control,
    rows: Control,
    gpu: Control,
    layer: Control,
    head: Control,
    tile: Control,
    at: Control,
}

/// One layer's captured tensors: q `(heads, n, d)`, k and v `(kv_heads, n, d)`, and the
/// heads' weighted values `(n, heads · d)`.
struct Qkv {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
}

/// The CPU chain (unfused s, fused s, outputs equal) and the GPU kernels.
type Chain = (f64, f64, bool, Kept<Vec<Measured>>);

struct Fusion {
    c: Controls,
    t: Table,
    facts: Vec<published::Fact>,
    source: ModelSource,
    n: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
    layers: Vec<Qkv>,
    /// The elementwise chain over [`TIMED`] floats: (unfused s, fused s, equal).
    timed: Job<(), Chain>,
}

impl LabState for Fusion {
    fn busy(&self) -> bool {
        self.timed.busy()
    }
}

fn parse_chain(s: &str) -> Vec<Op> {
    s.split(" → ")
        .map(|o| match o {
            "matmul" => Op::Matmul,
            "bias" => Op::Bias,
            "ReLU" => Op::Relu,
            "GELU" => Op::Gelu,
            "softmax" => Op::Softmax,
            x => Op::Scale(x.trim_start_matches('×').parse().unwrap_or(1.0)),
        })
        .collect()
}

/// bias → ReLU → ×2 → GELU over `x`, one pass per op (each a full read and write).
fn timed_unfused(x: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    x.iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v += bias[i % n]);
    x.iter_mut().for_each(|v| *v = v.max(0.0));
    x.iter_mut().for_each(|v| *v *= 2.0);
    x.iter_mut().for_each(|v| *v = gelu(*v));
}

/// The same chain in one pass: each value read once, kept in a register, written once.
fn timed_fused(x: &mut [f32], bias: &[f32]) {
    let n = bias.len();
    x.iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = gelu((*v + bias[i % n]).max(0.0) * 2.0));
}

fn gelu(x: f32) -> f32 {
    let c = (2.0 / std::f32::consts::PI).sqrt();
    0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
}

impl Fusion {
    fn chain(&mut self, v: &Values) -> Result<Scene> {
        let name = v.text(&self.c.chain).to_string();
        let chain = parse_chain(&name);
        let rows = v.usize(&self.c.rows).max(1);
        let cols = 64;
        let o = Operands::new(cols);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| ((i as f32) * 0.37).cos())
            .collect();
        let (a, ta) = fusion::unfused(&x, &chain, &o);
        let (b, tb) = fusion::fused(&x, &chain, &o);
        let same = a == b;
        let counted = Provenance::computed(format!(
            "the chain run on this CPU over a {rows}×{cols} tensor, every tensor read and write counted"
        ));
        let mut s = Scene::new();
        let groups = fusion::groups(&chain);
        let mut nodes = vec![Node {
            id: "in".into(),
            label: "HBM: input".into(),
            role: Role::Muted,
            layer: 0,
        }];
        let mut edges = Vec::new();
        let mut prev = "in".to_string();
        for (i, op) in chain.iter().enumerate() {
            let id = format!("op{i}");
            let g = groups.iter().scan(0, |n, g| {
                *n += g.len();
                Some(*n)
            });
            let kernel = g.take_while(|&end| end <= i).count();
            nodes.push(Node {
                id: id.clone(),
                label: format!("{} (fused kernel {})", op.name(), kernel + 1),
                role: if op.is_barrier() {
                    Role::Attention
                } else {
                    Role::Activation
                },
                layer: i + 1,
            });
            edges.push(Edge {
                from: prev.clone(),
                to: id.clone(),
                label: "unfused: HBM write + read".into(),
            });
            prev = id;
        }
        nodes.push(Node {
            id: "out".into(),
            label: "HBM: output".into(),
            role: Role::Muted,
            layer: chain.len() + 1,
        });
        edges.push(Edge {
            from: prev,
            to: "out".into(),
            label: String::new(),
        });
        s.push(Item::new(
            "chain",
            format!(
                "{name}: {} fused kernel(s); a reduction (orange) ends a kernel",
                groups.len()
            ),
            Provenance::computed("the chain cut at its barriers"),
            Primitive::Graph(Graph { nodes, edges }),
        ));
        s.push(table(
            "counters",
            "HBM traffic of the activation tensor",
            counted.clone(),
            &["measure", "unfused", "fused"],
            vec![
                vec![
                    "kernels launched".into(),
                    ta.kernels.to_string(),
                    tb.kernels.to_string(),
                ],
                vec![
                    "tensor reads".into(),
                    ta.reads.to_string(),
                    tb.reads.to_string(),
                ],
                vec![
                    "tensor writes".into(),
                    ta.writes.to_string(),
                    tb.writes.to_string(),
                ],
                vec![
                    "HBM accesses".into(),
                    ta.accesses().to_string(),
                    tb.accesses().to_string(),
                ],
                vec![
                    "elements moved".into(),
                    commas(ta.elements as u64),
                    commas(tb.elements as u64),
                ],
                vec![
                    "outputs equal".into(),
                    if same { "yes, bit for bit" } else { "NO" }.into(),
                    String::new(),
                ],
            ],
        ));
        let g = selected(&self.t, &self.c.gpu, v);
        let t_un = (ta.elements * 2) as f64 / g.bandwidth();
        let t_fu = (tb.elements * 2) as f64 / g.bandwidth();
        s.push(bars(
            "gpu",
            &format!(
                "Time moving the tensor at BF16 on {} (a lower bound: bytes / bandwidth)",
                g.label()
            ),
            sim(g, "HBM bandwidth"),
            "µs",
            vec![
                bar("unfused", t_un * 1e6, Role::WhatIf),
                bar("fused", t_fu * 1e6, Role::Weight),
            ],
        ));
        match self.timed.get(&(), |p| {
            p.set(0, 2, "unfused");
            let bias: Vec<f32> = (0..576).map(|i| (i as f32 * 0.01).sin()).collect();
            let base: Vec<f32> = (0..TIMED)
                .map(|i| ((i % 977) as f32 * 0.37).cos())
                .collect();
            let (mut best_u, mut best_f) = (f64::INFINITY, f64::INFINITY);
            let (mut xu, mut xf) = (base.clone(), base.clone());
            for _ in 0..3 {
                p.check()?;
                xu.copy_from_slice(&base);
                let t0 = Instant::now();
                timed_unfused(&mut xu, &bias);
                best_u = best_u.min(t0.elapsed().as_secs_f64());
                p.set(1, 2, "fused");
                xf.copy_from_slice(&base);
                let t0 = Instant::now();
                timed_fused(&mut xf, &bias);
                best_f = best_f.min(t0.elapsed().as_secs_f64());
            }
            p.set(2, 3, "the same chain on your GPU");
            static GPU: OnceLock<Kept<Vec<Measured>>> = OnceLock::new();
            let gpu = on_gpu::once(&GPU, |g| {
                [false, true]
                    .iter()
                    .map(|&f| lav_gpu_kernels::chain(g, 1 << 22, f, 3))
                    .collect()
            });
            Ok((best_u, best_f, xu == xf, gpu))
        })? {
            State::Running(p) => {
                s.push(progress_item("progress", "Timing the chain on this CPU", p))
            }
            State::Ready((u, f, eq, gpu)) => {
                for item in on_gpu::panel(
                    "gpu-chain",
                    "The same chain over 4,194,304 floats as WGSL kernels on your GPU",
                    gpu,
                    Rate::Bytes,
                ) {
                    s.push(item);
                }
                s.push(table(
                    "cpu",
                    "bias → ReLU → ×2 → GELU over 64 MiB on this CPU",
                    measured(
                        "one thread, best of 3; the fused pass reads and writes each value once",
                    ),
                    &["run", "time", "speed-up", "outputs equal"],
                    vec![
                        vec![
                            "unfused (4 passes)".into(),
                            secs(*u),
                            "1.00×".into(),
                            String::new(),
                        ],
                        vec![
                            "fused (1 pass)".into(),
                            secs(*f),
                            format!("{:.2}×", u / f),
                            if *eq { "yes" } else { "NO" }.into(),
                        ],
                    ],
                ));
            }
        }
        Ok(s)
    }

    fn flash(&mut self, v: &Values) -> Result<Scene> {
        let (n, d) = (self.n, self.d);
        let layer = v.usize(&self.c.layer).min(self.layers.len() - 1);
        let h = v.usize(&self.c.head).min(self.heads - 1);
        let kvh = h / (self.heads / self.kv_heads);
        let tile: usize = v.text(&self.c.tile).parse().unwrap_or(8);
        let l = &self.layers[layer];
        let q = &l.q[h * n * d..][..n * d];
        let k = &l.k[kvh * n * d..][..n * d];
        let vv = &l.v[kvh * n * d..][..n * d];
        let shape = Shape { n, d, causal: true };
        let (std_out, std_t) = flash::standard(q, k, vv, shape);
        let run = flash::flash(q, k, vv, shape, tile, tile);
        let vs_std = flash::max_abs_diff(&std_out, &run.out);
        // The model's own output for this head: columns h·d.. of its weighted values.
        let own: Vec<f32> = (0..n)
            .flat_map(|i| l.attn[i * self.heads * d + h * d..][..d].to_vec())
            .collect();
        let vs_model = flash::max_abs_diff(&own, &run.out);
        let at = v.usize(&self.c.at).clamp(1, run.steps.len());
        let cur = &run.steps[at - 1];
        let tiles = n.div_ceil(tile);
        let model_prov = self.source.prov(format!(
            "{}: layer {layer}, query head {h} (KV head {kvh}), {n} tokens, captured Q/K/V",
            self.source
        ));
        let mut s = Scene::new();
        let mut cells = Vec::new();
        for qi in 0..tiles {
            for kj in 0..tiles {
                let idx = run
                    .steps
                    .iter()
                    .position(|st| st.q_tile == qi && st.k_tile == kj);
                let owner = match idx {
                    None => None,
                    Some(i) if i + 1 == at => Some(1),
                    Some(i) if i + 1 < at => Some(0),
                    Some(_) => Some(2),
                };
                cells.push(Cell {
                    owner,
                    label: match idx {
                        None => format!("Q{qi}×K{kj}: masked, never loaded"),
                        Some(i) => format!("Q{qi}×K{kj}: step {}", i + 1),
                    },
                });
            }
        }
        s.push(Item::new(
            "tiles",
            format!(
                "Score tiles ({tile}×{tile}): step {at} of {} streams K/V tile {} past query tile {}",
                run.steps.len(),
                cur.k_tile,
                cur.q_tile
            ),
            model_prov.clone(),
            Primitive::BlockGrid(BlockGrid { columns: tiles, cells }),
        ));
        let r0 = cur.q_tile * tile;
        s.push(table(
            "running",
            &format!(
                "Running max m and sum ℓ of query tile {} after step {at}",
                cur.q_tile
            ),
            model_prov.clone(),
            &["query position", "m (running max)", "ℓ (running sum)"],
            cur.m
                .iter()
                .zip(&cur.l)
                .enumerate()
                .map(|(r, (m, l))| vec![(r0 + r).to_string(), format!("{m:.4}"), format!("{l:.4}")])
                .collect(),
        ));
        s.push(table(
            "check",
            "The tiled result",
            model_prov,
            &["compared with", "largest |difference|"],
            vec![
                vec![
                    "standard attention (S and P in full)".into(),
                    format!("{vs_std:.2e}"),
                ],
                vec![
                    "the model's own attention output".into(),
                    format!("{vs_model:.2e}"),
                ],
            ],
        ));
        let g = selected(&self.t, &self.c.gpu, v);
        let m_elems = (g.shared_kb_per_block as usize * 1024) / 2;
        let (br, _) = flash::tiles_for_sram(m_elems, d);
        let long = 4096u64;
        s.push(table(
            "traffic",
            "HBM traffic (elements)",
            sim(g, &format!("counted here at N = {n}; formulas at N = {long} with M = {} KiB of shared memory as FP16", g.shared_kb_per_block)),
            &["", "standard", "FlashAttention", "ratio"],
            vec![
                vec![
                    format!("counted, N = {n}, tile {tile}"),
                    commas(std_t.total()),
                    commas(run.traffic.total()),
                    format!("{:.1}×", std_t.total() as f64 / run.traffic.total() as f64),
                ],
                vec![
                    format!("formula, N = {long}, Br = {br}"),
                    commas(flash::standard_traffic(long, d as u64)),
                    commas(flash::flash_traffic(long, d as u64, br as u64)),
                    format!(
                        "{:.1}×",
                        flash::standard_traffic(long, d as u64) as f64
                            / flash::flash_traffic(long, d as u64, br as u64) as f64
                    ),
                ],
                vec![
                    "extra memory".into(),
                    format!("N² scores: {}", commas(long * long)),
                    format!("m and ℓ per row: {}", commas(2 * long)),
                    pct(2.0 / long as f64),
                ],
            ],
        ));
        if run.traffic.total() > std_t.total() {
            s.push(text(
                "short",
                "Short prompts",
                Provenance::computed("the counts above"),
                format!(
                    "At N = {n} the tiles re-read K and V more often than the N × N matrices cost: FlashAttention pays off once N is large beside d and the tiles are as big as shared memory allows."
                ),
            ));
        }
        s.push(published::table(
            "facts",
            "Published",
            &published::for_step(&self.facts, "flash"),
        ));
        Ok(s)
    }
}
