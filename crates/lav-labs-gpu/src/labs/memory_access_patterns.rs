//! memory-access-patterns: the exact addresses 32 threads generate for a stride or a
//! layout, fed to the address-level simulator (lines, sectors, transactions,
//! utilisation; shared-memory banks, conflicts, padding, broadcast), and the same
//! strides timed on this CPU with its cache-line size read from the OS.

use super::on_gpu::{self, Kept, Rate};
use super::{Context, commas, measured, pct};
use lav_gpu_kernels::Measured;
use lav_gpusim::Table;
use lav_gpusim::access::{Geometry, Pattern, banks, coalesce};
use lav_gpusim::machine;
use lav_lab::items::{bar, bars, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values};
use lav_scene::*;
use std::sync::OnceLock;

const STRIDED: &str = "strided";
const SCATTERED: &str = "scattered";
const BROADCAST: &str = "broadcast";
const COLUMN: &str = "column of float[32][32]";
const PADDED: &str = "column of float[32][33]";
/// The strides the CPU sweep times.
const SWEEP: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let t = Table::load(&ctx.dir).lab()?;
    let c = Controls {
        layout: Control::choice(
            "layout",
            "Pattern",
            &[STRIDED, SCATTERED, BROADCAST, COLUMN, PADDED],
            STRIDED,
        ),
        stride: Control::slider("stride", "Stride (floats)", 1.0, 64.0, 1.0, 1.0),
        offset: Control::slider("offset", "Start offset (floats)", 0.0, 31.0, 1.0, 0.0),
        col: Control::slider("col", "Column", 0.0, 31.0, 1.0, 0.0),
    };
    let steps = vec![
        Step::new(
            "coalescing",
            &[&c.layout, &c.stride, &c.offset, &c.col],
            Access::coalescing,
        ),
        Step::new("banks", &[&c.layout, &c.stride, &c.col], Access::banks),
        Step::new("measured", &[], Access::measured),
    ];
    Steps::lab(
        Access {
            c,
            g: Geometry::of(&t.common),
            sweep: Job::default(),
        },
        steps,
    )
}

struct Controls {
    layout: Control,
    stride: Control,
    offset: Control,
    col: Control,
}

/// Useful bytes/s by stride on this CPU, and the OS's line size.
type Sweep = (Vec<(usize, f64)>, Option<u64>, Kept<Vec<Measured>>);

/// Floats each GPU read kernel copies (the strided ones read 32× as far).
const GPU_FLOATS: usize = 1 << 19;

struct Access {
    c: Controls,
    g: Geometry,
    /// (stride, useful bytes/s) on this CPU, and the OS's line size.
    sweep: Job<(), Sweep>,
}

impl LabState for Access {
    fn busy(&self) -> bool {
        self.sweep.busy()
    }
}

impl Access {
    fn pattern(&self, v: &Values, with_offset: bool) -> Pattern {
        let col = v.num(&self.c.col) as u64;
        match v.text(&self.c.layout) {
            SCATTERED => Pattern::Scattered { seed: 7 },
            BROADCAST => Pattern::Broadcast,
            COLUMN => Pattern::Column { pitch: 32, col },
            PADDED => Pattern::Column { pitch: 33, col },
            _ => Pattern::Strided {
                stride: v.num(&self.c.stride) as u64,
                offset: if with_offset {
                    v.num(&self.c.offset) as u64
                } else {
                    0
                },
            },
        }
    }

    fn prov(&self) -> Provenance {
        Provenance::simulated(format!(
            "the address-level simulator, {} B lines of {} B sectors (hardware table, common to every row)",
            self.g.line, self.g.sector
        ))
    }

    fn coalescing(&mut self, v: &Values) -> Result<Scene> {
        let p = self.pattern(v, true);
        let addrs = p.addresses(4, self.g);
        let c = coalesce(&addrs, 4, self.g);
        let lines: Vec<u64> = c.lines.iter().copied().collect();
        let line_of = |a: u64| lines.iter().position(|&l| l == a / self.g.line);
        let mut s = Scene::new();
        s.push(text(
            "pattern",
            "32 threads of one warp load a float each",
            self.prov(),
            format!(
                "{}: thread i reads address {}. Every address is generated and counted; \
                 colours group the threads that share a 128 B line.",
                p.describe(),
                match p {
                    Pattern::Strided { stride, offset } => {
                        format!("4 × ({offset} + {stride} · i)")
                    }
                    Pattern::Column { pitch, col } => format!("4 × (i · {pitch} + {col})"),
                    Pattern::Broadcast => "0 for every i".into(),
                    Pattern::Scattered { .. } => "in a line of its own".into(),
                }
            ),
        ));
        s.push(Item::new(
            "lanes",
            "Threads and the line each one's address falls in",
            self.prov(),
            Primitive::BlockGrid(BlockGrid {
                columns: 16,
                cells: addrs
                    .iter()
                    .enumerate()
                    .map(|(i, a)| Cell {
                        owner: a.and_then(line_of),
                        label: format!("t{i} @{}", a.unwrap_or(0)),
                    })
                    .collect(),
            }),
        ));
        // Each touched line as its four sectors: used or fetched for nothing.
        let shown = lines.len().min(8);
        let mut cells = Vec::new();
        for (li, l) in lines.iter().take(shown).enumerate() {
            for k in 0..self.g.line / self.g.sector {
                let sector = l * (self.g.line / self.g.sector) + k;
                let used = c.sectors.contains(&sector);
                cells.push(Cell {
                    owner: used.then_some(li),
                    label: format!("line {l} sector {k}"),
                });
            }
        }
        s.push(Item::new(
            "sectors",
            format!(
                "Lines fetched, as 32 B sectors ({shown} of {} shown; grey sectors carry nothing asked for)",
                lines.len()
            ),
            self.prov(),
            Primitive::BlockGrid(BlockGrid {
                columns: (self.g.line / self.g.sector) as usize,
                cells,
            }),
        ));
        s.push(table(
            "cost",
            "What the load costs",
            self.prov(),
            &["measure", "value"],
            vec![
                vec![
                    "transactions (128 B lines)".into(),
                    c.transactions().to_string(),
                ],
                vec![
                    "bytes fetched".into(),
                    format!("{} B", commas(c.fetched_bytes())),
                ],
                vec!["bytes used".into(), format!("{} B", commas(c.useful_bytes))],
                vec!["utilisation".into(), pct(c.utilisation())],
                vec!["32 B sectors touched".into(), c.sectors.len().to_string()],
                vec!["sector utilisation".into(), pct(c.sector_utilisation())],
            ],
        ));
        // Utilisation over the strides, computed for each by the same simulator.
        let mut bs = Vec::new();
        for st in [1u64, 2, 4, 8, 16, 32] {
            let a = Pattern::Strided {
                stride: st,
                offset: 0,
            }
            .addresses(4, self.g);
            let u = coalesce(&a, 4, self.g).utilisation();
            let role = if p
                == (Pattern::Strided {
                    stride: st,
                    offset: 0,
                }) {
                Role::Highlight
            } else {
                Role::Weight
            };
            bs.push(bar(format!("stride {st}"), 100.0 * u, role));
        }
        s.push(bars(
            "by-stride",
            "Utilisation by stride",
            self.prov(),
            "%",
            bs,
        ));
        Ok(s)
    }

    fn banks(&mut self, v: &Values) -> Result<Scene> {
        let p = self.pattern(v, false);
        let addrs = p.addresses(4, self.g);
        let b = banks(&addrs, self.g);
        let nb = self.g.banks as usize;
        // One row per pass: row r shows, in each bank, the r-th distinct word asked of it.
        let mut cells = Vec::new();
        for r in 0..b.ways.max(1) {
            for (bank, lanes) in b.lanes.iter().enumerate() {
                let mut words: Vec<u64> = lanes.iter().map(|(_, w)| *w).collect();
                words.dedup();
                words.sort_unstable();
                words.dedup();
                let cell = words.get(r).map(|w| {
                    let who: Vec<String> = lanes
                        .iter()
                        .filter(|(_, x)| x == w)
                        .map(|(l, _)| format!("t{l}"))
                        .collect();
                    Cell {
                        owner: Some(bank),
                        label: format!("word {w}: {}", who.join(" ")),
                    }
                });
                cells.push(cell.unwrap_or(Cell {
                    owner: None,
                    label: format!("bank {bank}"),
                }));
            }
        }
        let prov = Provenance::simulated(format!(
            "the bank simulator: {} banks × {} B, bank = (byte address / {}) mod {} (hardware table)",
            nb, self.g.bank_bytes, self.g.bank_bytes, nb
        ));
        let mut s = Scene::new();
        s.push(Item::new(
            "bank-grid",
            format!(
                "{}: one column per bank, one row per pass the warp needs",
                p.describe()
            ),
            prov.clone(),
            Primitive::BlockGrid(BlockGrid { columns: nb, cells }),
        ));
        let verdict = if b.ways <= 1 && b.broadcast {
            "no conflict: lanes reading one word share a single read (broadcast)".to_string()
        } else if b.ways <= 1 {
            "no conflict: every lane's word sits in a bank of its own".to_string()
        } else {
            format!(
                "{}-way conflict: one bank must serve {} different words, one per pass",
                b.ways, b.ways
            )
        };
        s.push(table(
            "conflict",
            "What the load costs in shared memory",
            prov,
            &["measure", "value"],
            vec![
                vec!["passes (ways)".into(), b.ways.max(1).to_string()],
                vec![
                    "banks used".into(),
                    b.lanes.iter().filter(|l| !l.is_empty()).count().to_string(),
                ],
                vec![
                    "broadcast".into(),
                    if b.broadcast { "yes" } else { "no" }.into(),
                ],
                vec!["verdict".into(), verdict],
            ],
        ));
        Ok(s)
    }

    fn measured(&mut self, _: &Values) -> Result<Scene> {
        let mut s = Scene::new();
        let (sweep, line, gpu) = match self.sweep.get(&(), |p| {
            let mut out = Vec::new();
            for (i, &st) in SWEEP.iter().enumerate() {
                p.check()?;
                p.set(i as u64, SWEEP.len() as u64 + 1, format!("stride {st}"));
                out.push((st, machine::strided_read(st, 3)));
            }
            p.set(
                SWEEP.len() as u64,
                SWEEP.len() as u64 + 1,
                "the same reads on your GPU",
            );
            static GPU: OnceLock<Kept<Vec<Measured>>> = OnceLock::new();
            let gpu = on_gpu::once(&GPU, |g| {
                [1, 2, 4, 8, 16, 32]
                    .iter()
                    .map(|&st| lav_gpu_kernels::strided_read(g, GPU_FLOATS, st, 3))
                    .collect()
            });
            Ok((out, machine::line_bytes(), gpu))
        })? {
            State::Running(p) => {
                s.push(progress_item(
                    "progress",
                    "Timing strided reads over 256 MiB on this CPU",
                    p,
                ));
                return Ok(s);
            }
            State::Ready(r) => r.clone(),
        };
        let line_txt = line.map_or("unknown (the OS does not say)".to_string(), |l| {
            format!("{l} B")
        });
        let base = sweep[0].1;
        s.push(bars(
            "cpu-strides",
            &format!("Useful bytes per second by stride on this CPU (cache line {line_txt})"),
            measured(
                "one thread reads one float every `stride` floats of a 256 MiB array, best of 3",
            ),
            "GB/s of floats actually used",
            sweep
                .iter()
                .map(|(st, b)| bar(format!("stride {st}"), b / 1e9, Role::Weight))
                .collect(),
        ));
        let rows = sweep
            .iter()
            .map(|(st, b)| {
                let floats_per_line = line.map(|l| l as usize / 4);
                vec![
                    st.to_string(),
                    format!("{:.2} GB/s", b / 1e9),
                    format!("{:.2}×", base / b),
                    floats_per_line.map_or("unknown".into(), |f| {
                        format!("{:.0}%", 100.0 / (*st).min(f) as f64)
                    }),
                ]
            })
            .collect();
        s.push(table(
            "cpu-table",
            "Strided reads on this CPU",
            measured("timed here; the share of each line used is computed from the OS's line size"),
            &[
                "stride",
                "useful GB/s",
                "slower than stride 1",
                "share of each line used",
            ],
            rows,
        ));
        for item in on_gpu::panel(
            "gpu",
            "The same strides as WGSL kernels on your GPU (each copies 524,288 floats)",
            &gpu,
            Rate::Bytes,
        ) {
            s.push(item);
        }
        Ok(s)
    }
}
