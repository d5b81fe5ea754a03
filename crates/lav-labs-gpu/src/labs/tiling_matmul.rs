//! tiling-matmul: naive and shared-memory-tiled matrix multiply run on this CPU the
//! way a GPU kernel is written, every global read counted by the simulation (exact
//! counts, checked against 2N³ and 2N³/T by the tests), the C cells that share a row
//! of A or a column of B, and both kernels timed here in an uncounted build.

use super::on_gpu::{self, Kept, Rate};
use super::{Context, commas, measured, secs};
use lav_gpu_kernels::Measured;
use lav_gpusim::tiling::{self, Count, NoCount};
use lav_lab::items::{bar, bars, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, Step, Steps, Values};
use lav_scene::*;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

/// The largest C drawn cell by cell.
const DRAWN: usize = 32;
/// Sizes timed on this CPU.
const TIMED: [usize; 2] = [256, 512];

pub fn open(_: &Context) -> Result<Box<dyn Lab>> {
    let c = Controls {
        n: Control::choice("n", "Matrix size N", &["16", "32", "64", "128"], "32"),
        tile: Control::choice("tile", "Tile T", &["1", "2", "4", "8", "16", "32"], "8"),
        row: Control::slider("row", "C row", 0.0, 127.0, 1.0, 3.0),
        col: Control::slider("col", "C column", 0.0, 127.0, 1.0, 5.0),
    };
    let steps = vec![
        Step::new("naive", &[&c.n, &c.row, &c.col], Tiling::naive),
        Step::new("tiled", &[&c.n, &c.tile, &c.row, &c.col], Tiling::tiled),
        Step::new("measured", &[], Tiling::measured),
    ];
    Steps::lab(
        Tiling {
            c,
            counts: HashMap::new(),
            timed: Job::default(),
        },
        steps,
    )
}

struct Controls {
    n: Control,
    tile: Control,
    row: Control,
    col: Control,
}

/// One size's timings: (n, naive s, [(tile, tiled s)], largest difference).
type Timing = (usize, f64, Vec<(usize, f64)>, f32);

struct Tiling {
    c: Controls,
    /// Simulated read counts by (n, tile); tile 0 is the naive kernel.
    counts: HashMap<(usize, usize), Count>,
    timed: Job<(), (Vec<Timing>, Kept<Vec<Measured>>)>,
}

impl LabState for Tiling {
    fn busy(&self) -> bool {
        self.timed.busy()
    }
}

fn operands(n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..n * n)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
        .collect();
    let b = (0..n * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
        .collect();
    (a, b)
}

fn sim() -> Provenance {
    Provenance::simulated(
        "the kernel run on this CPU thread by thread, every global-memory read counted (a GPU-independent count)",
    )
}

impl Tiling {
    fn count(&mut self, n: usize, t: usize) -> &Count {
        self.counts.entry((n, t)).or_insert_with(|| {
            let (a, b) = operands(n);
            let mut c = Count::new(n);
            if t == 0 {
                tiling::naive(&a, &b, n, &mut c);
            } else {
                tiling::tiled(&a, &b, n, t, &mut c);
            }
            c
        })
    }

    fn n(&self, v: &Values) -> usize {
        v.text(&self.c.n).parse().unwrap_or(32)
    }

    fn cell(&self, v: &Values, n: usize) -> (usize, usize) {
        (
            v.usize(&self.c.row).min(n - 1),
            v.usize(&self.c.col).min(n - 1),
        )
    }

    /// C drawn cell by cell: the selected cell, cells sharing its row of A, its column
    /// of B, and (tiled) the rest of its tile.
    fn grid(n: usize, (r, c): (usize, usize), tile: usize) -> Item {
        let d = n.min(DRAWN);
        let mut cells = Vec::with_capacity(d * d);
        for i in 0..d {
            for j in 0..d {
                let same_tile = tile > 1 && i / tile == r / tile && j / tile == c / tile;
                let owner = if (i, j) == (r, c) {
                    Some(0)
                } else if same_tile {
                    Some(3)
                } else if i == r {
                    Some(1)
                } else if j == c {
                    Some(2)
                } else {
                    None
                };
                cells.push(Cell {
                    owner,
                    label: format!("C[{i}][{j}]"),
                });
            }
        }
        let shown = if n > DRAWN {
            format!(" (top-left {DRAWN}×{DRAWN} of {n}×{n})")
        } else {
            String::new()
        };
        Item::new(
            "c-grid",
            format!(
                "C{shown}: the selected cell, its row (shares A's row {r}), its column (shares B's column {c}){}",
                if tile > 1 { ", its tile" } else { "" }
            ),
            Provenance::computed("which C cells read the same A row or B column"),
            Primitive::BlockGrid(BlockGrid { columns: d, cells }),
        )
    }

    fn naive(&mut self, v: &Values) -> Result<Scene> {
        let n = self.n(v);
        let rc = self.cell(v, n);
        let cnt = self.count(n, 0).clone();
        let mut s = Scene::new();
        s.push(Self::grid(n, rc, 1));
        let (r, c) = rc;
        let max_a = cnt.per_a.iter().max().copied().unwrap_or(0);
        s.push(table(
            "reads",
            "Global-memory reads of the naive kernel (one thread per C cell)",
            sim(),
            &["measure", "value"],
            vec![
                vec!["reads counted".into(), commas(cnt.reads)],
                vec![
                    "distinct elements (A and B)".into(),
                    commas(2 * (n * n) as u64),
                ],
                vec![
                    format!("times A[{r}][0] was read"),
                    cnt.per_a[r * n].to_string(),
                ],
                vec![
                    format!("times B[0][{c}] was read"),
                    cnt.per_b[c].to_string(),
                ],
                vec!["most reads of one element".into(), max_a.to_string()],
            ],
        ));
        s.push(text(
            "formula",
            "The count against the formula",
            Provenance::computed("2N³ (each of N² threads reads 2N values)"),
            format!(
                "2N³ at N = {n} is {}; the simulation counted {}. At N = 1024 the formula gives {} reads for {} distinct values.",
                commas(2 * (n as u64).pow(3)),
                commas(cnt.reads),
                commas(2 * 1024u64.pow(3)),
                commas(2 * 1024u64 * 1024),
            ),
        ));
        Ok(s)
    }

    fn tiled(&mut self, v: &Values) -> Result<Scene> {
        let n = self.n(v);
        let t: usize = v.text(&self.c.tile).parse().unwrap_or(8);
        let rc = self.cell(v, n);
        let mut s = Scene::new();
        if t > n {
            s.push(text(
                "too-big",
                "Tile larger than the matrix",
                Provenance::computed("the tile must divide N"),
                format!("A {t}×{t} tile does not fit a {n}×{n} matrix: pick T ≤ {n}."),
            ));
            return Ok(s);
        }
        s.push(Self::grid(n, rc, t));
        let naive = self.count(n, 0).reads;
        let tiled = self.count(n, t).reads;
        let f = tiling::tile_facts(t);
        s.push(table(
            "reads",
            &format!("Global-memory reads, naive vs {t}×{t} tiles"),
            sim(),
            &["kernel", "reads counted", "formula", "reads per element"],
            vec![
                vec![
                    "naive".into(),
                    commas(naive),
                    format!("2N³ = {}", commas(2 * (n as u64).pow(3))),
                    n.to_string(),
                ],
                vec![
                    format!("tiled, T = {t}"),
                    commas(tiled),
                    format!("2N³/T = {}", commas(2 * (n as u64).pow(3) / t as u64)),
                    (n / t).to_string(),
                ],
            ],
        ));
        s.push(table(
            "tile",
            "One block of the tiled kernel",
            Provenance::computed(
                "from T: T² threads, 2T² floats per phase, 2T FLOPs per 8 B loaded per thread",
            ),
            &["measure", "value"],
            vec![
                vec!["threads per block".into(), f.threads.to_string()],
                vec![
                    "floats loaded per phase".into(),
                    f.floats_per_phase.to_string(),
                ],
                vec![
                    "shared memory per block".into(),
                    format!("{} B", commas(f.shared_bytes as u64)),
                ],
                vec!["phases".into(), (n / t).to_string()],
                vec![
                    "FP32 intensity (T/4)".into(),
                    format!("{} FLOP/B", f.intensity),
                ],
                vec![
                    "order per phase".into(),
                    "load both tiles → __syncthreads() → T multiply-adds → __syncthreads()".into(),
                ],
            ],
        ));
        let mut bs = Vec::new();
        for tt in [1usize, 2, 4, 8, 16, 32].into_iter().filter(|&x| x <= n) {
            let r = self.count(n, tt).reads;
            let role = if tt == t {
                Role::Highlight
            } else {
                Role::Weight
            };
            bs.push(bar(format!("T = {tt}"), r as f64, role));
        }
        s.push(bars(
            "by-tile",
            "Reads counted by tile size",
            sim(),
            "global reads",
            bs,
        ));
        Ok(s)
    }

    fn measured(&mut self, _: &Values) -> Result<Scene> {
        let mut s = Scene::new();
        let rows = match self.timed.get(&(), |p| {
            let mut out = Vec::new();
            for (i, &n) in TIMED.iter().enumerate() {
                p.check()?;
                p.set(i as u64, TIMED.len() as u64, format!("N = {n}"));
                let (a, b) = operands(n);
                let t0 = Instant::now();
                let c0 = tiling::naive(&a, &b, n, &mut NoCount);
                let naive = t0.elapsed().as_secs_f64();
                let mut tiles = Vec::new();
                let mut worst = 0.0f32;
                for t in [8usize, 16, 32] {
                    let t0 = Instant::now();
                    let c1 = tiling::tiled(&a, &b, n, t, &mut NoCount);
                    tiles.push((t, t0.elapsed().as_secs_f64()));
                    let d = c0
                        .iter()
                        .zip(&c1)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f32::max);
                    worst = worst.max(d);
                }
                out.push((n, naive, tiles, worst));
            }
            p.set(
                TIMED.len() as u64,
                TIMED.len() as u64 + 1,
                "the same kernels on your GPU",
            );
            static GPU: OnceLock<Kept<Vec<Measured>>> = OnceLock::new();
            let gpu = on_gpu::once(&GPU, |g| {
                [false, true]
                    .iter()
                    .map(|&t| lav_gpu_kernels::matmul(g, 256, t, 3))
                    .collect()
            });
            Ok((out, gpu))
        })? {
            State::Running(p) => {
                s.push(progress_item(
                    "progress",
                    "Timing both kernels on one CPU core",
                    p,
                ));
                return Ok(s);
            }
            State::Ready(r) => r.clone(),
        };
        let (rows, gpu) = rows;
        let mut table_rows = Vec::new();
        let mut bs = Vec::new();
        for (n, naive, tiles, worst) in &rows {
            table_rows.push(vec![
                n.to_string(),
                "naive".into(),
                secs(*naive),
                "1.00×".into(),
                format!("{worst:.1e}"),
            ]);
            bs.push(bar(format!("N={n} naive"), *naive * 1e3, Role::Muted));
            for (t, secs_t) in tiles {
                table_rows.push(vec![
                    n.to_string(),
                    format!("tiled T={t}"),
                    secs(*secs_t),
                    format!("{:.2}×", naive / secs_t),
                    format!("{worst:.1e}"),
                ]);
                bs.push(bar(format!("N={n} T={t}"), secs_t * 1e3, Role::Weight));
            }
        }
        let prov =
            measured("both kernels, uncounted, on one core; outputs compared element by element");
        s.push(table(
            "cpu",
            "Naive vs tiled on this CPU",
            prov.clone(),
            &[
                "N",
                "kernel",
                "time",
                "speed-up",
                "largest difference from naive",
            ],
            table_rows,
        ));
        s.push(bars("cpu-bars", "Time per kernel", prov, "ms", bs));
        for item in on_gpu::panel(
            "gpu",
            "256×256 naive vs 16×16-tiled WGSL kernels on your GPU",
            &gpu,
            Rate::Flops,
        ) {
            s.push(item);
        }
        Ok(s)
    }
}
