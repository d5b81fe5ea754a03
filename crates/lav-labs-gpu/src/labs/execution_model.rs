//! execution-model: one thread per element (vector add run by the SIMT executor,
//! which computes idx for every simulated thread, checked against a plain loop); the
//! host/device flow with transfer times from the table's link bandwidth; the
//! occupancy calculator over the per-SM limits; and a divergent branch, a reduction
//! and a softmax run warp by warp with the active mask of every instruction.

use super::{Context, commas, gpu_control, pct, secs, selected, sim};
use lav_gpusim::Table;
use lav_gpusim::occupancy::{Launch, occupancy};
use lav_gpusim::simt::{self, Kernel, WARP, kernels};
use lav_lab::items::{bar, bars, table, text};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values};
use lav_scene::*;

const BRANCHY: &str = "branchy (x > 0 ? 2x : −x/2)";
const VECADD: &str = "vector add";
const REDUCE: &str = "block sum (shared-memory tree)";
const SOFTMAX: &str = "softmax, a thread per row";

/// The CUDA C source of the vector add, shown beside lav's pseudocode.
const CUDA_VECADD: &str = "__global__ void add(const float *a, const float *b, float *c, int n) {
  int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx < n) {
    c[idx] = a[idx] + b[idx];
  }
}
// host: add<<<(n + 255) / 256, 256>>>(d_a, d_b, d_c, n);";

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let t = Table::load(&ctx.dir).lab()?;
    let c = Controls {
        n: Control::slider("n", "Elements N", 1.0, 4096.0, 1.0, 1000.0),
        block: Control::choice(
            "block",
            "Threads per block",
            &["32", "64", "128", "256", "512", "1024"],
            "256",
        ),
        cuda: Control::toggle("cuda", "Show CUDA C (else lav's pseudocode)", false),
        gpu: gpu_control(&t, "H100 SXM 80GB"),
        mb: Control::slider(
            "mb",
            "Array size (MB, each of a, b, c)",
            1.0,
            4096.0,
            1.0,
            1000.0,
        ),
        threads: Control::slider("threads", "Threads per block", 32.0, 1024.0, 32.0, 256.0),
        regs: Control::slider("regs", "Registers per thread", 16.0, 255.0, 1.0, 64.0),
        shared: Control::slider(
            "shared",
            "Shared memory per block (KiB)",
            0.0,
            227.0,
            1.0,
            0.0,
        ),
        kernel: Control::choice(
            "kernel",
            "Kernel",
            &[BRANCHY, VECADD, REDUCE, SOFTMAX],
            BRANCHY,
        ),
        data: Control::choice(
            "data",
            "Input signs",
            &[
                "alternating",
                "first half positive",
                "all positive",
                "seeded random",
            ],
            "alternating",
        ),
        warp: Control::slider("warp", "Warp", 0.0, 7.0, 1.0, 0.0),
    };
    let steps = vec![
        Step::new("hierarchy", &[&c.n, &c.block, &c.cuda], Exec::hierarchy),
        Step::new("host-device", &[&c.gpu, &c.mb], Exec::host_device),
        Step::new(
            "occupancy",
            &[&c.gpu, &c.threads, &c.regs, &c.shared],
            Exec::occupancy,
        ),
        Step::new(
            "divergence",
            &[&c.kernel, &c.data, &c.warp, &c.gpu],
            Exec::divergence,
        ),
    ];
    Steps::lab(Exec { c, t }, steps)
}

struct Controls {
    n: Control,
    block: Control,
    cuda: Control,
    gpu: Control,
    mb: Control,
    threads: Control,
    regs: Control,
    shared: Control,
    kernel: Control,
    data: Control,
    warp: Control,
}

struct Exec {
    c: Controls,
    t: Table,
}

impl LabState for Exec {}

fn emulator() -> Provenance {
    Provenance::computed(
        "lav's SIMT executor: every simulated thread computes its own idx, warps of 32 in lockstep",
    )
}

/// Seeded inputs for the divergence kernels.
fn inputs(kind: &str, n: usize) -> Vec<f32> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n)
        .map(|i| {
            let mag = 0.5 + (i % 7) as f32 * 0.25;
            let positive = match kind {
                "first half positive" => i % WARP < WARP / 2,
                "all positive" => true,
                "seeded random" => {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x & 1 == 1
                }
                _ => i % 2 == 0,
            };
            if positive { mag } else { -mag }
        })
        .collect()
}

impl Exec {
    fn hierarchy(&mut self, v: &Values) -> Result<Scene> {
        let n = v.usize(&self.c.n).max(1);
        let bd: usize = v.text(&self.c.block).parse().unwrap_or(256);
        let grid = n.div_ceil(bd);
        let k = kernels::vector_add(n);
        let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..n).map(|i| 1000.0 - i as f32).collect();
        let run = simt::run(
            &k,
            simt::Launch {
                grid,
                block_dim: bd,
            },
            &[a.clone(), b.clone(), vec![0.0; n]],
            16,
        )
        .map_err(|e| lav_lab::LabError::Input(e.to_string()))?;
        let plain: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let same = run.buffers[2] == plain;
        let launched = grid * bd;
        let mut s = Scene::new();
        let code = if v.flag(&self.c.cuda) {
            CUDA_VECADD.to_string()
        } else {
            k.listing().join("\n")
        };
        s.push(text(
            "code",
            "The kernel",
            Provenance::computed("the program the executor runs"),
            code,
        ));
        // What a tooltip on each name would say, filled in with this launch's values.
        let cuda = v.flag(&self.c.cuda);
        let mut terms: Vec<Vec<String>> = Vec::new();
        if cuda {
            terms.push(vec![
                "__global__".into(),
                "runs on the GPU, one copy per thread; launched from the host".into(),
            ]);
        } else {
            terms.push(vec![
                "r0, r1, …".into(),
                format!(
                    "each thread's own registers ({} per thread in this kernel)",
                    k.registers
                ),
            ]);
        }
        terms.extend([
            vec![
                "blockIdx.x".into(),
                format!("which block this thread is in: 0 … {}", grid - 1),
            ],
            vec!["blockDim.x".into(), format!("threads per block: {bd}")],
            vec![
                "threadIdx.x".into(),
                format!("this thread's place in its block: 0 … {}", bd - 1),
            ],
            vec![
                if cuda {
                    "idx < n".into()
                } else {
                    format!("r0 < {n}")
                },
                format!(
                    "the guard: {} launched threads have no element and do nothing",
                    commas((launched - n) as u64)
                ),
            ],
        ]);
        if cuda {
            terms.push(vec![
                "<<<grid, block>>>".into(),
                format!("the launch: {grid} blocks of {bd} threads, chosen by the host"),
            ]);
        }
        s.push(table(
            "terms",
            "What each name means (the code's tooltips)",
            Provenance::computed("filled in from this launch"),
            &["name", "means"],
            terms,
        ));
        s.push(table(
            "launch",
            &format!("add<<<{grid}, {bd}>>> over N = {n}"),
            emulator(),
            &["measure", "value"],
            vec![
                vec!["grid = ⌈N / blockDim.x⌉".into(), format!("{grid} blocks")],
                vec!["warps per block".into(), bd.div_ceil(WARP).to_string()],
                vec!["threads launched".into(), commas(launched as u64)],
                vec![
                    "threads stopped by idx < N".into(),
                    commas((launched - n) as u64),
                ],
                vec!["warps issued".into(), run.warps.len().to_string()],
                vec![
                    "c equals a plain loop".into(),
                    if same { "yes, every element" } else { "NO" }.into(),
                ],
            ],
        ));
        // The last block's threads: which pass the guard, grouped by warp.
        let last = grid - 1;
        let cells = (0..bd)
            .map(|t| {
                let idx = last * bd + t;
                Cell {
                    owner: (idx < n).then_some(t / WARP),
                    label: format!("thread {t}: idx {idx}"),
                }
            })
            .collect();
        s.push(Item::new(
            "last-block",
            format!("Block {last}'s threads by warp (grey: idx ≥ N, masked by the guard)"),
            emulator(),
            Primitive::BlockGrid(BlockGrid { columns: 32, cells }),
        ));
        let blocks: Vec<TreeNode> = (0..grid.min(3))
            .map(|b| TreeNode {
                label: format!("block {b}"),
                value: Some(format!("threads {}..{}", b * bd, (b + 1) * bd - 1)),
                children: (0..bd.div_ceil(WARP).min(2))
                    .map(|w| TreeNode {
                        label: format!("warp {w}"),
                        value: Some(format!(
                            "32 threads in lockstep, idx {}..",
                            b * bd + w * WARP
                        )),
                        children: Vec::new(),
                    })
                    .collect(),
            })
            .collect();
        s.push(Item::new(
            "tree",
            "Grid → blocks → warps → threads (first few)",
            emulator(),
            Primitive::Tree(Tree {
                root: TreeNode {
                    label: "grid".into(),
                    value: Some(format!("{grid} blocks × {bd} threads")),
                    children: blocks,
                },
            }),
        ));
        Ok(s)
    }

    fn host_device(&mut self, v: &Values) -> Result<Scene> {
        let g = selected(&self.t, &self.c.gpu, v);
        let bytes = v.num(&self.c.mb) * 1e6;
        let link = g.pcie_gb_s_per_direction * 1e9;
        let h2d = 2.0 * bytes / link;
        let kernel = 3.0 * bytes / g.bandwidth();
        let d2h = bytes / link;
        let prov = sim(
            g,
            &format!(
                "{} at {} GB/s per direction; HBM {} TB/s",
                g.pcie, g.pcie_gb_s_per_direction, g.bandwidth_tb_s
            ),
        );
        let phases = [
            ("cudaMalloc ×3", 0.0),
            ("copy a, b host → device", h2d),
            ("add<<<grid, block>>>", kernel),
            ("copy c device → host", d2h),
        ];
        let mut t0 = 0.0;
        let spans = phases
            .iter()
            .enumerate()
            .map(|(i, (name, d))| {
                let sp = Span {
                    lane: 0,
                    start: t0 * 1e3,
                    end: (t0 + d) * 1e3,
                    label: name.to_string(),
                    role: if i == 2 { Role::Highlight } else { Role::Muted },
                };
                t0 += d;
                sp
            })
            .collect();
        let mut s = Scene::new();
        s.push(Item::new(
            "flow",
            "Host ↔ device: the data crosses the link twice",
            Provenance::computed("the order of a CUDA program"),
            Primitive::Graph(Graph {
                nodes: [
                    "host arrays",
                    "cudaMalloc",
                    "H2D copy",
                    "kernel",
                    "D2H copy",
                    "host result",
                ]
                .iter()
                .enumerate()
                .map(|(i, l)| Node {
                    id: format!("n{i}"),
                    label: l.to_string(),
                    role: if i == 3 {
                        Role::Highlight
                    } else {
                        Role::Weight
                    },
                    layer: i,
                })
                .collect(),
                edges: (0..5)
                    .map(|i| Edge {
                        from: format!("n{i}"),
                        to: format!("n{}", i + 1),
                        label: match i {
                            1 | 3 => g.pcie.clone(),
                            _ => String::new(),
                        },
                    })
                    .collect(),
            }),
        ));
        s.push(Item::new(
            "timeline",
            "One vector add, start to finish (lower bounds at peak rates)",
            prov.clone(),
            Primitive::Timeline(Timeline {
                lanes: vec!["GPU program".into()],
                spans,
                unit: "ms".into(),
            }),
        ));
        s.push(table(
            "times",
            "Where the time goes",
            prov,
            &["phase", "bytes", "time"],
            vec![
                vec![
                    "copy a, b in".into(),
                    format!("{:.0} MB", 2.0 * bytes / 1e6),
                    secs(h2d),
                ],
                vec![
                    "kernel (read a, b; write c)".into(),
                    format!("{:.0} MB", 3.0 * bytes / 1e6),
                    secs(kernel),
                ],
                vec![
                    "copy c out".into(),
                    format!("{:.0} MB", bytes / 1e6),
                    secs(d2h),
                ],
                vec![
                    "share spent on the link".into(),
                    String::new(),
                    pct((h2d + d2h) / (h2d + kernel + d2h)),
                ],
            ],
        ));
        Ok(s)
    }

    fn occupancy(&mut self, v: &Values) -> Result<Scene> {
        let g = selected(&self.t, &self.c.gpu, v);
        let common = &self.t.common;
        let launch = Launch {
            threads_per_block: v.num(&self.c.threads) as u32,
            registers_per_thread: v.num(&self.c.regs) as u32,
            shared_bytes_per_block: (v.num(&self.c.shared) * 1024.0) as u32,
        };
        let prov = sim(g, "CUDA's occupancy calculator over the per-SM limits");
        let mut s = Scene::new();
        let o = match occupancy(g, common, launch) {
            Ok(o) => o,
            Err(e) => {
                s.push(text(
                    "refused",
                    "This launch cannot run",
                    prov,
                    e.to_string(),
                ));
                return Ok(s);
            }
        };
        s.push(table(
            "occupancy",
            &format!("Occupancy: {}", pct(o.fraction())),
            prov.clone(),
            &["measure", "value"],
            vec![
                vec!["warps per block".into(), o.warps_per_block.to_string()],
                vec![
                    "registers per block".into(),
                    commas(o.registers_per_block as u64),
                ],
                vec![
                    "shared memory per block (with 1 KiB reserved)".into(),
                    format!("{} B", commas(o.shared_per_block as u64)),
                ],
                vec!["blocks per SM".into(), o.active_blocks.to_string()],
                vec![
                    "active warps / warp slots".into(),
                    format!("{} / {}", o.active_warps, o.max_warps),
                ],
                vec![
                    "active threads per SM".into(),
                    commas(o.active_threads(common) as u64),
                ],
                vec!["occupancy".into(), pct(o.fraction())],
                vec!["limited by".into(), o.limiter.name().into()],
            ],
        ));
        s.push(bars(
            "limits",
            "Blocks per SM each limit allows (the least wins)",
            prov.clone(),
            "blocks",
            vec![
                bar(
                    format!("threads ({} per SM)", g.max_threads_per_sm),
                    o.by_threads as f64,
                    Role::Weight,
                ),
                bar(
                    format!("block slots ({})", g.max_blocks_per_sm),
                    o.by_blocks as f64,
                    Role::Weight,
                ),
                bar(
                    format!("registers ({})", commas(g.registers_per_sm as u64)),
                    o.by_registers as f64,
                    Role::Weight,
                ),
                bar(
                    format!("shared memory ({} KiB)", g.shared_kb_per_sm),
                    o.by_shared as f64,
                    Role::Weight,
                ),
            ]
            .into_iter()
            .map(|mut b| {
                if b.value as u32 == o.active_blocks {
                    b.role = Role::Highlight;
                }
                b
            })
            .collect(),
        ));
        let curve = (1..=32u32)
            .filter_map(|k| {
                let l = Launch {
                    threads_per_block: 32 * k,
                    ..launch
                };
                occupancy(g, common, l)
                    .ok()
                    .map(|o| ((32 * k) as f64, 100.0 * o.fraction()))
            })
            .collect();
        s.push(Item::new(
            "curve",
            "Occupancy by block size at these registers and shared memory",
            prov,
            Primitive::Plot(Plot {
                x_label: "threads per block".into(),
                y_label: "occupancy %".into(),
                x_log: false,
                y_log: false,
                series: vec![Series {
                    name: format!("{} registers", launch.registers_per_thread),
                    points: curve,
                    line: true,
                    role: Role::Weight,
                }],
            }),
        ));
        Ok(s)
    }

    fn divergence(&mut self, v: &Values) -> Result<Scene> {
        let kind = v.text(&self.c.kernel).to_string();
        let data = v.text(&self.c.data);
        let (k, launch, bufs, want): (Kernel, simt::Launch, Vec<Vec<f32>>, Vec<f32>) =
            match kind.as_str() {
                VECADD => {
                    let n = 200;
                    let a = inputs(data, n);
                    let b: Vec<f32> = (0..n).map(|i| i as f32).collect();
                    let want = a.iter().zip(&b).map(|(x, y)| x + y).collect();
                    (
                        kernels::vector_add(n),
                        simt::Launch {
                            grid: 2,
                            block_dim: 128,
                        },
                        vec![a, b, vec![0.0; n]],
                        want,
                    )
                }
                REDUCE => {
                    let (n, bd) = (500, 128);
                    let x = inputs(data, n);
                    let want = x.chunks(bd).map(|c| c.iter().sum()).collect();
                    let grid = n.div_ceil(bd);
                    (
                        kernels::reduce_sum(n, bd),
                        simt::Launch {
                            grid,
                            block_dim: bd,
                        },
                        vec![x, vec![0.0; grid]],
                        want,
                    )
                }
                SOFTMAX => {
                    let (rows, cols) = (48, 24);
                    let x = inputs(data, rows * cols);
                    let mut want = Vec::new();
                    for r in x.chunks(cols) {
                        let m = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let s: f32 = r.iter().map(|v| (v - m).exp()).sum();
                        want.extend(r.iter().map(|v| (v - m).exp() / s));
                    }
                    (
                        kernels::softmax_rows(rows, cols),
                        simt::Launch {
                            grid: 1,
                            block_dim: 64,
                        },
                        vec![x, vec![0.0; rows * cols]],
                        want,
                    )
                }
                _ => {
                    let n = 256;
                    let x = inputs(data, n);
                    let want = x
                        .iter()
                        .map(|&v| if v > 0.0 { v * 2.0 } else { -v * 0.5 })
                        .collect();
                    (
                        kernels::branchy(n),
                        simt::Launch {
                            grid: 2,
                            block_dim: 128,
                        },
                        vec![x, vec![0.0; n]],
                        want,
                    )
                }
            };
        let run = simt::run(&k, launch, &bufs, 200)
            .map_err(|e| lav_lab::LabError::Input(e.to_string()))?;
        let out = run.buffers.last().expect("an output buffer");
        let err = out
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let wi = v.usize(&self.c.warp).min(run.warps.len() - 1);
        let w = &run.warps[wi];
        let listing = k.listing();
        let shown: Vec<&(usize, u32)> = w.issued.iter().take(48).collect();
        let mut s = Scene::new();
        s.push(Item::new(
            "masks",
            format!(
                "Warp {} of block {}: each issued instruction and its active lanes",
                w.warp, w.block
            ),
            emulator(),
            Primitive::Heatmap(Heatmap {
                rows: shown
                    .iter()
                    .map(|(pc, _)| listing[*pc].trim().to_string())
                    .collect(),
                cols: (0..WARP).map(|l| format!("lane {l}")).collect(),
                values: shown
                    .iter()
                    .flat_map(|(_, m)| (0..WARP).map(move |l| (m >> l & 1) as f32))
                    .collect(),
                scale: ColorScale::Sequential { min: 0.0, max: 1.0 },
                selected: None,
                row_axis: "instruction, in issue order".into(),
                col_axis: "lane".into(),
            }),
        ));
        s.push(text(
            "code",
            &format!("{} as the executor runs it", k.name),
            Provenance::computed("lav's kernel form"),
            listing.join("\n"),
        ));
        s.push(table(
            "warps",
            "Every warp: instructions issued and lane slots that did work",
            emulator(),
            &["block", "warp", "instructions issued", "lanes busy"],
            run.warps
                .iter()
                .map(|w| {
                    vec![
                        w.block.to_string(),
                        w.warp.to_string(),
                        w.issued.len().to_string(),
                        pct(w.efficiency()),
                    ]
                })
                .collect(),
        ));
        s.push(text(
            "check",
            "The result against a plain loop",
            Provenance::computed("the same computation written as an ordinary Rust loop"),
            format!("largest difference: {err:.1e} over {} outputs", want.len()),
        ));
        // Where the blocks of a bigger launch of this kernel would run.
        let g = selected(&self.t, &self.c.gpu, v);
        let o = occupancy(
            g,
            &self.t.common,
            Launch {
                threads_per_block: launch.block_dim as u32,
                registers_per_thread: k.registers as u32,
                shared_bytes_per_block: (k.shared * 4) as u32,
            },
        )
        .map_err(|e| lav_lab::LabError::Input(e.to_string()))?;
        let blocks = (g.sms * o.active_blocks) as usize + g.sms as usize / 2;
        let place = simt::schedule(blocks, g.sms as usize, o.active_blocks as usize);
        let waves = place.last().map_or(1, |p| p.wave + 1);
        s.push(text(
            "waves",
            "Blocks onto SMs",
            sim(g, "blocks placed on SMs up to the occupancy limit"),
            format!(
                "A launch of {blocks} such blocks on {}: {} SMs × {} resident blocks each, so {waves} waves; block {} waits for a free slot on SM {}.",
                g.label(),
                g.sms,
                o.active_blocks,
                blocks - 1,
                place.last().map_or(0, |p| p.sm)
            ),
        ));
        Ok(s)
    }
}
