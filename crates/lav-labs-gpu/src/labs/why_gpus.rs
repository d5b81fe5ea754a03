//! why-gpus: this CPU as the OS reports it beside a GPU row; 32 tasks timed on this
//! machine's real cores beside the same tasks on a GPU simulated from the table's SM
//! and lane counts; the same matmul raced on this CPU (one thread scalar, one thread
//! SIMD through candle, all threads), on the learner's GPU through WGSL and, built with
//! `--features cuda` on a machine with a device, through candle's CUDA backend, beside
//! the GPU row's peak; and the software stack.

use super::on_cuda;
use super::on_gpu::{self, Kept, Rate};
use super::{Context, flops, gpu_control, measured, secs, selected, sim};
use lav_gpu_kernels::Measured;
use lav_gpusim::{Table, machine};
use lav_lab::items::{bar, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values, published};
use lav_scene::*;
use std::sync::OnceLock;
use std::time::Instant;

/// Tasks in the race.
const TASKS: usize = 32;
/// The matmul raced: N × N by N × N, f32.
const N: usize = 384;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let t = Table::load(&ctx.dir).lab()?;
    let c = Controls {
        gpu: gpu_control(&t, "H100 SXM 80GB"),
        start: Control::button("start", "Start", 1000),
        work: Control::slider(
            "work",
            "Work per task (million multiply-adds)",
            1.0,
            64.0,
            1.0,
            8.0,
        ),
        eight: Control::toggle("eight", "What if this CPU had 8 cores", false),
    };
    let steps = vec![
        Step::new("design", &[&c.gpu], Why::design),
        Step::new("race", &[&c.gpu, &c.start, &c.work, &c.eight], Why::race),
        Step::new("matmul", &[&c.gpu], Why::matmul),
        Step::new("stack", &[], Why::stack),
    ];
    Steps::lab(
        Why {
            c,
            facts: published::facts(&ctx.dir, "why-gpus")?,
            t,
            race: Job::default(),
            mm: Job::default(),
        },
        steps,
    )
}

struct Controls {
    gpu: Control,
    start: Control,
    work: Control,
    eight: Control,
}

/// Each task's (core, start s, end s) on this machine, and the cores used.
type Race = (Vec<(usize, f64, f64)>, usize);

/// (name, seconds, largest difference from the scalar result).
type Timed = (
    Vec<(String, f64, f32)>,
    Kept<Vec<Measured>>,
    Kept<on_cuda::Run>,
);

struct Why {
    c: Controls,
    facts: Vec<published::Fact>,
    t: Table,
    race: Job<(u64, usize), Race>,
    mm: Job<(), Timed>,
}

impl LabState for Why {
    fn busy(&self) -> bool {
        self.race.busy() || self.mm.busy()
    }
}

/// f32 lanes of one core's widest SIMD unit.
fn simd_lanes(simd: &[&str]) -> usize {
    if simd.contains(&"AVX-512F") {
        16
    } else if simd.contains(&"AVX2") {
        8
    } else if simd.contains(&"NEON") {
        4
    } else {
        1
    }
}

/// One task: `m` million dependent multiply-adds (serial work a core must do in order).
fn task(m: usize, seed: f32) -> f32 {
    let mut x = seed;
    for _ in 0..m * 1_000_000 {
        x = x * 0.999_999 + 0.5;
    }
    x
}

/// C = A · B one output at a time, a plain sum per cell: f32 addition is not
/// associative, so the compiler keeps this scalar.
fn scalar_matmul(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut s = 0.0f32;
            for k in 0..n {
                s += a[i * n + k] * b[k * n + j];
            }
            c[i * n + j] = s;
        }
    }
    c
}

impl Why {
    fn design(&mut self, v: &Values) -> Result<Scene> {
        let g = selected(&self.t, &self.c.gpu, v);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let simd = machine::simd();
        let lanes = simd_lanes(&simd);
        let mut s = Scene::new();
        s.push(table(
            "compare",
            "Latency-oriented vs throughput-oriented",
            measured("cores, model name and SIMD features as the OS reports them"),
            &["", "this CPU (measured)", &g.label()],
            vec![
                vec!["model".into(), machine::cpu_name(), g.arch.clone()],
                vec!["cores / SMs".into(), cores.to_string(), g.sms.to_string()],
                vec![
                    "f32 lanes per core / SM".into(),
                    format!(
                        "{lanes} ({})",
                        if simd.is_empty() {
                            "no SIMD reported".to_string()
                        } else {
                            simd.join(", ")
                        }
                    ),
                    g.fp32_lanes_per_sm.to_string(),
                ],
                vec![
                    "f32 lanes in all".into(),
                    (cores * lanes).to_string(),
                    g.fp32_lanes().to_string(),
                ],
                vec![
                    "Tensor Cores".into(),
                    "none".into(),
                    g.tensor_cores(&self.t.common).to_string(),
                ],
            ],
        ));
        if let Some(Item { provenance, .. }) = s.items.last_mut() {
            *provenance = Provenance::computed(format!(
                "this CPU measured by the OS; the GPU column from the {} row of the hardware table",
                g.label()
            ));
        }
        s.push(text(
            "where-cpus-win",
            "Where a CPU wins",
            Provenance::computed("the design difference"),
            "A CPU core spends its transistors on making one thread fast: branch prediction, out-of-order execution, big caches. It wins on branchy, serial, irregular code. A GPU spends them on many simple lanes and hides memory latency by switching warps: it wins when the same arithmetic runs over many independent elements, as in a matmul.",
        ));
        s.push(published::table(
            "facts",
            "A teaching CPU",
            &published::for_step(&self.facts, "design"),
        ));
        Ok(s)
    }

    fn race(&mut self, v: &Values) -> Result<Scene> {
        let g = selected(&self.t, &self.c.gpu, v);
        let work = v.usize(&self.c.work).max(1);
        let key = (v.num(&self.c.start) as u64, work);
        let mut s = Scene::new();
        let (tasks, cores) = match self.race.get(&key, move |p| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(cores)
                .build()
                .map_err(|e| lav_lab::LabError::Input(e.to_string()))?;
            let t0 = Instant::now();
            let done = std::sync::atomic::AtomicUsize::new(0);
            let spans: Vec<(usize, f64, f64)> = pool.install(|| {
                use rayon::prelude::*;
                (0..TASKS)
                    .into_par_iter()
                    .map(|i| {
                        let a = t0.elapsed().as_secs_f64();
                        std::hint::black_box(task(work, i as f32));
                        let b = t0.elapsed().as_secs_f64();
                        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        p.set(d as u64, TASKS as u64, "tasks done");
                        (rayon::current_thread_index().unwrap_or(0), a, b)
                    })
                    .collect()
            });
            Ok((spans, cores))
        })? {
            State::Running(p) => {
                s.push(progress_item(
                    "progress",
                    "Running 32 tasks on this CPU's cores",
                    p,
                ));
                return Ok(s);
            }
            State::Ready(r) => r.clone(),
        };
        let eight = v.flag(&self.c.eight);
        let ms = |x: f64| x * 1e3;
        let cpu_spans: Vec<Span> = if eight {
            // What-if: the measured task times dealt onto 8 cores in turn.
            let mut free = [0.0f64; 8];
            tasks
                .iter()
                .map(|(_, a, b)| {
                    let core = (0..8)
                        .min_by(|&x, &y| free[x].total_cmp(&free[y]))
                        .unwrap_or(0);
                    let start = free[core];
                    free[core] += b - a;
                    Span {
                        lane: core,
                        start: ms(start),
                        end: ms(free[core]),
                        label: String::new(),
                        role: Role::WhatIf,
                    }
                })
                .collect()
        } else {
            tasks
                .iter()
                .map(|(core, a, b)| Span {
                    lane: *core,
                    start: ms(*a),
                    end: ms(*b),
                    label: String::new(),
                    role: Role::Weight,
                })
                .collect()
        };
        let lanes = if eight { 8 } else { cores };
        let cpu_end = cpu_spans.iter().map(|s| s.end).fold(0.0, f64::max);
        s.push(Item::new(
            "cpu",
            format!(
                "This CPU: {TASKS} tasks on {lanes} cores, done at {:.0} ms",
                cpu_end
            ),
            if eight {
                Provenance::what_if(
                    "the tasks' measured times dealt onto 8 cores; this machine does not have them",
                )
            } else {
                measured(&format!(
                    "{TASKS} tasks of {work} million dependent multiply-adds, timed on each core"
                ))
            },
            Primitive::Timeline(Timeline {
                lanes: (0..lanes).map(|c| format!("core {c}")).collect(),
                spans: cpu_spans,
                unit: "ms".into(),
            }),
        ));
        // The GPU: each task's multiply-adds spread over one SM's lanes at the chip's
        // FP32 peak per SM; 32 tasks fit on the SMs at once.
        let per_sm = g.fp32_tflops * 1e12 / g.sms as f64;
        let task_s = 2.0 * work as f64 * 1e6 / per_sm;
        let shown = TASKS.min(g.sms as usize);
        let waves = TASKS.div_ceil(g.sms as usize);
        s.push(Item::new(
            "gpu",
            format!("{}: {TASKS} tasks on {} SMs, done at {}", g.label(), g.sms, secs(task_s * waves as f64)),
            sim(g, "FP32 peak ÷ SMs per task, a lower bound that assumes each task splits over an SM's lanes"),
            Primitive::Timeline(Timeline {
                lanes: (0..shown).map(|i| format!("SM {i}")).collect(),
                spans: (0..TASKS)
                    .map(|i| Span {
                        lane: i % shown,
                        start: ms(task_s * (i / shown) as f64),
                        end: ms(task_s * (i / shown + 1) as f64),
                        label: String::new(),
                        role: Role::Attention,
                    })
                    .collect(),
                unit: "ms".into(),
            }),
        ));
        s.push(text(
            "note",
            "Fair?",
            Provenance::computed("what each side assumes"),
            "These tasks are serial chains: on a real GPU one thread would run each at a few GHz, far slower than a CPU core. The GPU line assumes each task splits into independent pieces over an SM's lanes, which is what GPU work looks like. Press Start again to rerun the CPU side.",
        ));
        Ok(s)
    }

    fn matmul(&mut self, v: &Values) -> Result<Scene> {
        let g = selected(&self.t, &self.c.gpu, v);
        let mut s = Scene::new();
        let timed = match self.mm.get(&(), |p| {
            let n = N;
            let a: Vec<f32> = (0..n * n)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
                .collect();
            let b: Vec<f32> = (0..n * n)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
                .collect();
            p.set(0, 4, "one thread, scalar");
            let t0 = Instant::now();
            let c0 = scalar_matmul(&a, &b, n);
            let scalar = t0.elapsed().as_secs_f64();
            let dev = candle_core::Device::Cpu;
            let ta = candle_core::Tensor::from_slice(&a, (n, n), &dev).lab()?;
            let tb = candle_core::Tensor::from_slice(&b, (n, n), &dev).lab()?;
            let run = || -> Result<(f64, f32)> {
                let _ = ta.matmul(&tb).lab()?; // warm
                let mut best = f64::INFINITY;
                let mut out = Vec::new();
                for _ in 0..3 {
                    let t0 = Instant::now();
                    let c = ta.matmul(&tb).lab()?;
                    best = best.min(t0.elapsed().as_secs_f64());
                    out = c.flatten_all().and_then(|t| t.to_vec1::<f32>()).lab()?;
                }
                let d = out
                    .iter()
                    .zip(&c0)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0f32, f32::max);
                Ok((best, d))
            };
            p.check()?;
            p.set(1, 4, "one thread, SIMD");
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .map_err(|e| lav_lab::LabError::Input(e.to_string()))?;
            let (simd, d1) = one.install(run)?;
            p.set(2, 4, "all threads, SIMD");
            let (all, d2) = run()?;
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            static GPU: OnceLock<Kept<Vec<Measured>>> = OnceLock::new();
            let gpu = on_gpu::once(&GPU, |g| {
                [false, true]
                    .iter()
                    .map(|&t| lav_gpu_kernels::matmul(g, N, t, 3))
                    .collect()
            });
            static CUDA: OnceLock<Kept<on_cuda::Run>> = OnceLock::new();
            p.set(3, 4, "CUDA, where there is a device");
            let cuda = CUDA.get_or_init(|| on_cuda::matmul(&a, &b, n, &c0)).clone();
            Ok((
                vec![
                    ("1 thread, scalar".to_string(), scalar, 0.0),
                    ("1 thread, SIMD (candle)".to_string(), simd, d1),
                    (format!("{cores} threads, SIMD (candle)"), all, d2),
                ],
                gpu,
                cuda,
            ))
        })? {
            State::Running(p) => {
                s.push(progress_item(
                    "progress",
                    &format!("Racing a {N}×{N} matmul on this CPU"),
                    p,
                ));
                return Ok(s);
            }
            State::Ready(t) => t.clone(),
        };
        let (timed, gpu, cuda) = timed;
        let fl = 2.0 * (N as f64).powi(3);
        let mut rows: Vec<Vec<String>> = timed
            .iter()
            .map(|(name, t, d)| {
                vec![
                    name.clone(),
                    secs(*t),
                    flops(fl / t),
                    format!("{:.1}×", timed[0].1 / t),
                    format!("{d:.1e}"),
                ]
            })
            .collect();
        if let Ok(r) = &cuda {
            rows.push(vec![
                format!("{} (candle, CUDA)", r.device.name),
                secs(r.seconds),
                flops(fl / r.seconds),
                format!("{:.0}×", timed[0].1 / r.seconds),
                format!("{:.1e}", r.max_diff),
            ]);
        }
        let gpu_fp32 = fl / (g.fp32_tflops * 1e12);
        let gpu_bf16 = fl / g.bf16();
        for (name, t) in [
            (format!("{} FP32 cores (simulated)", g.label()), gpu_fp32),
            (
                format!("{} BF16 Tensor Cores (simulated)", g.label()),
                gpu_bf16,
            ),
        ] {
            rows.push(vec![
                name,
                secs(t),
                flops(fl / t),
                format!("{:.0}×", timed[0].1 / t),
                "—".into(),
            ]);
        }
        s.push(table(
            "race",
            &format!("The same {N}×{N}×{N} f32 matmul ({:.0} MFLOP)", fl / 1e6),
            measured(
                "timed here, best of 3 for candle (on CUDA too where built and present); the simulated rows are the table's peaks, a lower bound",
            ),
            &["where", "time", "rate", "vs scalar", "largest difference from scalar"],
            rows,
        ));
        let mut bs: Vec<Bar> = timed
            .iter()
            .map(|(n, t, _)| bar(n.clone(), fl / t / 1e9, Role::Weight))
            .collect();
        bs.push(bar(
            format!("{} FP32 peak", g.label()),
            g.fp32_tflops * 1e3,
            Role::Attention,
        ));
        s.push(Item::new(
            "rates",
            "Rates (log scale)",
            sim(g, "peak beside this CPU's measured rates"),
            Primitive::Bars(Bars {
                bars: bs,
                unit: "GFLOP/s".into(),
                log: true,
            }),
        ));
        s.push(match &cuda {
            Ok(r) => {
                on_cuda::device_table("cuda", &r.device, self.t.row_for_device(&r.device.name))
            }
            Err(e) => text(
                "cuda",
                "CUDA: not in the race",
                Provenance::computed("no CUDA measurement in this build or on this machine"),
                format!("No CUDA row: {e}."),
            ),
        });
        for item in on_gpu::panel(
            "gpu",
            &format!("The same {N}×{N} matmul as WGSL kernels on your GPU"),
            &gpu,
            Rate::Flops,
        ) {
            s.push(item);
        }
        Ok(s)
    }

    fn stack(&mut self, _: &Values) -> Result<Scene> {
        let layers = [
            ("PyTorch", "your model code"),
            ("cuBLAS", "matmuls"),
            ("cuDNN", "convolutions, attention, norms"),
            ("NCCL", "communication between GPUs"),
            ("CUDA runtime / driver", "memory, launches, streams"),
            ("GPU", "SMs, Tensor Cores, HBM"),
        ];
        let layer_of = [0, 1, 1, 1, 2, 3];
        let nodes = layers
            .iter()
            .enumerate()
            .map(|(i, (n, what))| Node {
                id: format!("l{i}"),
                label: format!("{n}: {what}"),
                role: Role::Weight,
                layer: layer_of[i],
            })
            .collect();
        let edges = [(0, 1), (0, 2), (0, 3), (1, 4), (2, 4), (3, 4), (4, 5)]
            .iter()
            .map(|(a, b)| Edge {
                from: format!("l{a}"),
                to: format!("l{b}"),
                label: String::new(),
            })
            .collect();
        let facts = published::for_step(&self.facts, "stack");
        let mut s = Scene::new();
        s.push(Item::new(
            "stack",
            "The CUDA software stack",
            Provenance::computed("the published stack below, drawn as a graph"),
            Primitive::Graph(Graph { nodes, edges }),
        ));
        s.push(published::table("facts", "Published", &facts));
        Ok(s)
    }
}
