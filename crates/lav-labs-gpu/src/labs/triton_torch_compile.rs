//! triton-torch-compile: one softmax over the model's real logits written two ways,
//! as a thread-level program (CUDA style: a thread per row, run warp by warp by the
//! SIMT executor) and as a block-level program (Triton style: a program per row over
//! a masked block, run by the block-program emulator), both checked against candle's
//! softmax; and the torch.compile pipeline, with a graph break splitting a program
//! into two compiled regions (a static diagram of the published design).

use super::on_gpu::{self, Kept, Rate};
use super::{Context, commas, pct};
use lav_gpu_kernels::Measured;
use lav_gpusim::block_program::{self, Program};
use lav_gpusim::simt::{self, kernels};
use lav_lab::items::{ModelSource, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{
    Control, Lab, LabError, LabState, Result, ResultExt, Step, Steps, Values, published,
};
use lav_model::Logits;
use lav_scene::*;
use std::sync::{Arc, OnceLock};

const PROMPT: &str = "The compiler writes the kernel";

const CUDA_SOFTMAX: &str = "__global__ void softmax(const float *x, float *y, int rows, int cols) {
  int row = blockIdx.x * blockDim.x + threadIdx.x;   // one thread per row
  if (row >= rows) return;
  const float *r = x + row * cols;
  float m = -INFINITY, s = 0.f;
  for (int c = 0; c < cols; c++) m = fmaxf(m, r[c]);
  for (int c = 0; c < cols; c++) s += expf(r[c] - m);
  for (int c = 0; c < cols; c++) y[row * cols + c] = expf(r[c] - m) / s;
}";

const TRITON_SOFTMAX: &str = "@triton.jit
def softmax(x_ptr, y_ptr, cols, BLOCK: tl.constexpr):
    pid = tl.program_id(0)                      # one program per row
    offs = tl.arange(0, BLOCK)
    mask = offs < cols
    x = tl.load(x_ptr + pid * cols + offs, mask=mask, other=-float('inf'))
    e = tl.exp(x - tl.max(x, axis=0))
    tl.store(y_ptr + pid * cols + offs, e / tl.sum(e, axis=0), mask=mask)";

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let model = ctx.loader.model().lab()?;
    let tok = ctx.loader.tokenizer().lab()?;
    let ids = tok.encode(PROMPT).lab()?;
    let logits = model
        .forward(&ids, &mut model.new_cache(), Logits::All, None)
        .lab()?;
    let (rows, cols) = logits.dims2().lab()?;
    let x: Vec<f32> = logits.flatten_all().and_then(|t| t.to_vec1()).lab()?;
    // The reference: candle's softmax over the last dimension.
    let reference: Vec<f32> = candle_nn::ops::softmax_last_dim(&logits)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .lab()?;
    let (block_out, programs) = block_program::softmax(&x, rows, cols);
    let launch = simt::Launch {
        grid: 1,
        block_dim: rows.next_power_of_two().clamp(32, 1024),
    };
    let run = simt::run(
        &kernels::softmax_rows(rows, cols),
        launch,
        &[x.clone(), vec![0.0; rows * cols]],
        24,
    )
    .map_err(|e| LabError::Input(e.to_string()))?;
    let diff = |a: &[f32]| {
        a.iter()
            .zip(&reference)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max)
    };
    // An f64 softmax: which of the f32 results is closer to exact.
    let mut exact = Vec::with_capacity(x.len());
    for r in x.chunks(cols) {
        let m = r.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let s: f64 = r.iter().map(|&v| (v as f64 - m).exp()).sum();
        exact.extend(r.iter().map(|&v| (v as f64 - m).exp() / s));
    }
    let vs_exact = |a: &[f32]| {
        a.iter()
            .zip(&exact)
            .map(|(p, q)| (*p as f64 - q).abs())
            .fold(0.0f64, f64::max)
    };
    let c = Controls {
        pid: Control::slider("pid", "Program (row)", 0.0, (rows - 1) as f64, 1.0, 0.0),
        brk: Control::toggle("break", "Put a print() in the middle (graph break)", true),
        mode: Control::choice(
            "mode",
            "Mode",
            &["default", "reduce-overhead", "max-autotune"],
            "default",
        ),
    };
    let steps = vec![
        Step::new("softmax", &[&c.pid], Compile::softmax),
        Step::new("pipeline", &[&c.brk, &c.mode], Compile::pipeline),
    ];
    Steps::lab(
        Compile {
            c,
            facts: published::facts(&ctx.dir, "triton-torch-compile")?,
            source: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            tokens: ids
                .iter()
                .map(|&i| tok.decode(&[i]).unwrap_or_default())
                .collect(),
            rows,
            cols,
            block_err: diff(&block_out),
            thread_err: diff(&run.buffers[1]),
            exact_err: [
                vs_exact(&run.buffers[1]),
                vs_exact(&block_out),
                vs_exact(&reference),
            ],
            between: block_out
                .iter()
                .zip(&run.buffers[1])
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max),
            programs,
            issued: run.issued(),
            busy: run.warps.iter().map(|w| w.efficiency()).sum::<f64>() / run.warps.len() as f64,
            warps: run.warps.len(),
            block_dim: launch.block_dim,
            x: Arc::new(x),
            gpu: Job::default(),
        },
        steps,
    )
}

struct Controls {
    pid: Control,
    brk: Control,
    mode: Control,
}

struct Compile {
    c: Controls,
    facts: Vec<published::Fact>,
    source: ModelSource,
    tokens: Vec<String>,
    rows: usize,
    cols: usize,
    block_err: f32,
    thread_err: f32,
    /// The two programs' outputs against each other.
    between: f32,
    /// Thread program, block program and candle against an f64 softmax.
    exact_err: [f64; 3],
    programs: Vec<Program>,
    issued: usize,
    busy: f64,
    warps: usize,
    block_dim: usize,
    /// The logits, for the GPU kernels.
    x: Arc<Vec<f32>>,
    gpu: Job<(), Kept<Vec<Measured>>>,
}

impl LabState for Compile {
    fn busy(&self) -> bool {
        self.gpu.busy()
    }
}

impl Compile {
    fn softmax(&mut self, v: &Values) -> Result<Scene> {
        let pid = v.usize(&self.c.pid).min(self.rows - 1);
        let p = &self.programs[pid];
        let prov = self.source.prov(format!(
            "{}: its logits for \"{PROMPT}\", {} positions × {} vocabulary",
            self.source,
            self.rows,
            commas(self.cols as u64)
        ));
        let mut s = Scene::new();
        s.push(text(
            "cuda",
            "Thread-level (CUDA style): you map rows to threads",
            Provenance::computed("the program lav's SIMT executor runs, as CUDA C"),
            CUDA_SOFTMAX,
        ));
        s.push(text(
            "triton",
            "Block-level (Triton style): you write one program per row",
            Provenance::computed("the program lav's block emulator runs, as Triton"),
            TRITON_SOFTMAX,
        ));
        s.push(table(
            "program",
            &format!(
                "Program {pid} (row {pid}, after \"{}\")",
                self.tokens.get(pid).map_or("", |t| t.trim())
            ),
            prov.clone(),
            &["measure", "value"],
            vec![
                vec![
                    "BLOCK (next power of two ≥ cols)".into(),
                    commas(p.block as u64),
                ],
                vec![
                    "offsets masked past the row end".into(),
                    commas(p.masked as u64),
                ],
                vec![
                    "tl.max(x): the row's largest logit".into(),
                    format!("{:.4}", p.row_max),
                ],
                vec!["tl.sum(e)".into(), format!("{:.4}", p.row_sum)],
            ],
        ));
        s.push(table(
            "check",
            &format!(
                "Both programs against candle's softmax (the two differ by {:.1e}: a loop's running sum vs a tree's)",
                self.between
            ),
            prov,
            &["program", "ran as", "largest |difference| from candle", "from an f64 softmax"],
            vec![
                vec![
                    "thread per row".into(),
                    format!(
                        "{} warp(s) of a {}-thread block, {} instructions issued, {} of lanes busy",
                        self.warps,
                        self.block_dim,
                        commas(self.issued as u64),
                        pct(self.busy)
                    ),
                    format!("{:.1e}", self.thread_err),
                    format!("{:.1e}", self.exact_err[0]),
                ],
                vec![
                    "program per row".into(),
                    format!("{} programs × BLOCK {}", self.rows, commas(p.block as u64)),
                    format!("{:.1e}", self.block_err),
                    format!("{:.1e}", self.exact_err[1]),
                ],
                vec![
                    "candle's softmax".into(),
                    "the reference".into(),
                    "0".into(),
                    format!("{:.1e}", self.exact_err[2]),
                ],
            ],
        ));
        let (x, rows, cols) = (self.x.clone(), self.rows, self.cols);
        match self.gpu.get(&(), move |p| {
            p.set(0, 1, "both softmaxes on your GPU");
            static GPU: OnceLock<Kept<Vec<Measured>>> = OnceLock::new();
            Ok(on_gpu::once(&GPU, |g| {
                [false, true]
                    .iter()
                    .map(|&w| lav_gpu_kernels::softmax(g, &x, rows, cols, w, 3).map(|r| r.0))
                    .collect()
            }))
        })? {
            State::Running(p) => s.push(progress_item(
                "progress",
                "Running both softmaxes as WGSL kernels",
                p,
            )),
            State::Ready(g) => {
                for item in on_gpu::panel(
                    "gpu",
                    "Thread per row vs workgroup per row as WGSL kernels on your GPU",
                    g,
                    Rate::Bytes,
                ) {
                    s.push(item);
                }
            }
        }
        s.push(published::table(
            "facts",
            "Published",
            &published::for_step(&self.facts, "softmax"),
        ));
        Ok(s)
    }

    fn pipeline(&mut self, v: &Values) -> Result<Scene> {
        let brk = v.flag(&self.c.brk);
        let mode = v.text(&self.c.mode);
        let program = [
            "h = linear(x)",
            "h = relu(h)",
            "print(h.sum())",
            "y = softmax(h)",
        ];
        let mut nodes = Vec::new();
        let mut edges = Vec::new();
        let mut region = 1;
        for (i, line) in program.iter().enumerate() {
            let breaks = brk && line.starts_with("print");
            if !brk && line.starts_with("print") {
                continue;
            }
            nodes.push(Node {
                id: format!("op{i}"),
                label: if breaks {
                    format!("{line}: graph break, runs in Python")
                } else {
                    format!("{line}: compiled region {region}")
                },
                role: if breaks { Role::WhatIf } else { Role::Weight },
                layer: i,
            });
            if breaks {
                region += 1;
            }
            if let Some(prev) = nodes.len().checked_sub(2).map(|k| nodes[k].id.clone()) {
                edges.push(Edge {
                    from: prev,
                    to: format!("op{i}"),
                    label: String::new(),
                });
            }
        }
        let regions = region;
        let mut s = Scene::new();
        s.push(Item::new(
            "program",
            format!("The program: {regions} compiled region(s)"),
            Provenance::scripted("an example program; regions follow torch.compile's documented rule that unsupported Python breaks the graph"),
            Primitive::Graph(Graph { nodes, edges }),
        ));
        let backend = match mode {
            "reduce-overhead" => "Triton kernels replayed as CUDA graphs",
            "max-autotune" => "Triton kernels, autotuned over many configurations",
            _ => "Triton kernels (GPU) / C++ (CPU)",
        };
        let stages = [
            ("Python frame", "your function"),
            (
                "Dynamo",
                "PEP 523 frame hook: captures bytecode into an FX graph, adds guards",
            ),
            ("AOTAutograd", "traces the backward pass ahead of time"),
            ("Inductor", "fuses and schedules the graph's ops"),
            ("backend", backend),
        ];
        s.push(Item::new(
            "stages",
            format!("torch.compile, mode = {mode} (each region goes through every stage)"),
            Provenance::computed("the published stages below, drawn as a graph"),
            Primitive::Graph(Graph {
                nodes: stages
                    .iter()
                    .enumerate()
                    .map(|(i, (n, what))| Node {
                        id: format!("s{i}"),
                        label: format!("{n}: {what}"),
                        role: Role::Weight,
                        layer: i,
                    })
                    .collect(),
                edges: (0..stages.len() - 1)
                    .map(|i| Edge {
                        from: format!("s{i}"),
                        to: format!("s{}", i + 1),
                        label: String::new(),
                    })
                    .collect(),
            }),
        ));
        s.push(published::table(
            "facts",
            "Published",
            &published::for_step(&self.facts, "pipeline"),
        ));
        Ok(s)
    }
}
