//! memory-hierarchy: registers, shared memory / L1, L2 and HBM with sizes from the
//! table for the selected GPU and both latency columns (teaching values labelled
//! illustrative, the measured ranges beside them); where the real model's weights,
//! KV cache and activations would live; and this CPU's own ladder, measured by
//! chasing pointers through growing working sets, beside its cache sizes from the OS.

use super::{Context, bytes, gpu_control, measured, selected, sim};
use lav_gpusim::machine::{self, Cache};
use lav_gpusim::{Gpu, Table, kv_bytes};
use lav_lab::items::{ModelSource, bar, bars, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values, published};
use lav_scene::*;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let t = Table::load(&ctx.dir).lab()?;
    let model = ctx.loader.model().lab()?;
    let cfg = &model.config;
    let weight_bytes: usize = model.tensors.iter().map(|x| x.3).sum();
    let c = Controls {
        gpu: gpu_control(&t, "H100 SXM 80GB"),
        what: Control::choice(
            "what",
            "Where does it live?",
            &["weights", "KV cache", "activations"],
            "weights",
        ),
        tokens: Control::slider("tokens", "Tokens in the cache", 1.0, 8192.0, 1.0, 2048.0),
        batch: Control::slider("batch", "Sequences", 1.0, 256.0, 1.0, 8.0),
    };
    let steps = vec![
        Step::new("levels", &[&c.gpu], Hierarchy::levels),
        Step::new(
            "where",
            &[&c.gpu, &c.what, &c.tokens, &c.batch],
            Hierarchy::place,
        ),
        Step::new("this-cpu", &[], Hierarchy::this_cpu),
    ];
    Steps::lab(
        Hierarchy {
            c,
            facts: published::facts(&ctx.dir, "memory-hierarchy")?,
            t,
            source: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            weight_bytes: weight_bytes as f64,
            kv_per_token: kv_bytes(cfg.num_layers, cfg.num_kv_heads, cfg.head_dim, 2.0, 1, 1),
            hidden: cfg.hidden_size,
            ffn: cfg.intermediate_size,
            ladder: Job::default(),
        },
        steps,
    )
}

struct Controls {
    gpu: Control,
    what: Control,
    tokens: Control,
    batch: Control,
}

/// (working-set bytes, ns per load), and the caches the OS reports.
type Ladder = (Vec<(usize, f64)>, Vec<Cache>);

struct Hierarchy {
    c: Controls,
    facts: Vec<published::Fact>,
    t: Table,
    source: ModelSource,
    /// The GGUF's tensor bytes as stored.
    weight_bytes: f64,
    /// 16-bit K and V for one token, every layer.
    kv_per_token: f64,
    hidden: usize,
    ffn: usize,
    ladder: Job<(), Ladder>,
}

impl LabState for Hierarchy {
    fn busy(&self) -> bool {
        self.ladder.busy()
    }
}

/// The levels' capacities on `g`: per SM and for the chip, bytes.
fn capacities(g: &Gpu) -> [(&'static str, f64, f64); 4] {
    let sms = g.sms as f64;
    let regs = g.registers_per_sm as f64 * 4.0;
    let l1 = g.l1_shared_kb_per_sm as f64 * 1024.0;
    [
        ("Registers", regs, regs * sms),
        ("Shared memory / L1", l1, l1 * sms),
        ("L2", f64::NAN, g.l2_mb * 1024.0 * 1024.0),
        ("HBM", f64::NAN, g.hbm_bytes()),
    ]
}

impl Hierarchy {
    fn levels(&mut self, v: &Values) -> Result<Scene> {
        let g = selected(&self.t, &self.c.gpu, v);
        let caps = capacities(g);
        let rows = caps
            .iter()
            .zip(&self.t.level)
            .zip([
                "the desk",
                "the supply room",
                "the floor closet",
                "the warehouse across town",
            ])
            .map(|(((name, per_sm, chip), lv), analogy)| {
                vec![
                    name.to_string(),
                    if per_sm.is_nan() {
                        "shared by all SMs".into()
                    } else {
                        bytes(*per_sm)
                    },
                    if *name == "HBM" {
                        g.hbm.clone()
                    } else {
                        bytes(*chip)
                    },
                    format!("≈{} (illustrative)", lv.teaching_cycles),
                    lv.measured.clone(),
                    analogy.into(),
                ]
            })
            .collect();
        let mut s = Scene::new();
        s.push(table(
            "levels",
            &format!("{}: the memory levels", g.label()),
            sim(g, "sizes; latencies from the table's latency section"),
            &[
                "level",
                "per SM",
                "whole chip",
                "teaching latency (cycles)",
                "measured latency (cycles)",
                "analogy",
            ],
            rows,
        ));
        s.push(Item::new(
            "latency",
            "Teaching latencies (illustrative, the \"400× gap\"), log scale",
            Provenance::computed(format!(
                "the table's illustrative column; measured ranges: {}",
                self.t.latency_source.measured
            )),
            Primitive::Bars(Bars {
                bars: self
                    .t
                    .level
                    .iter()
                    .map(|l| bar(&l.name, l.teaching_cycles.max(1.0), Role::Weight))
                    .collect(),
                unit: "cycles (illustrative; registers shown as 1)".into(),
                log: true,
            }),
        ));
        s.push(text(
            "bandwidth",
            "Bandwidth",
            sim(g, "HBM bandwidth and host link"),
            format!(
                "HBM feeds the chip at {} TB/s; the host link ({}) moves ≈{} GB/s each way, and {} joins GPUs at {} GB/s in all. The table gives no on-chip bandwidths, so none are shown. Beyond HBM is another city: host memory or another GPU.",
                g.bandwidth_tb_s, g.pcie, g.pcie_gb_s_per_direction, g.nvlink, g.nvlink_gb_s_total
            ),
        ));
        s.push(published::table(
            "facts",
            "Published",
            &published::for_step(&self.facts, "levels"),
        ));
        Ok(s)
    }

    fn place(&mut self, v: &Values) -> Result<Scene> {
        let g = selected(&self.t, &self.c.gpu, v);
        let tokens = v.num(&self.c.tokens);
        let batch = v.num(&self.c.batch);
        let kv = self.kv_per_token * tokens * batch;
        // One decode step's live activations per sequence: the residual, the normed
        // input and the MLP's gate and up rows, in f32.
        let act = batch * (2 * self.hidden + 2 * self.ffn) as f64 * 4.0;
        let tile = 2.0 * 64.0 * 64.0 * 2.0;
        let caps = capacities(g);
        let what = v.text(&self.c.what);
        let (size, lives, why) = match what {
            "KV cache" => (
                kv,
                "HBM",
                "it grows with every token of every sequence and is read whole each step",
            ),
            "activations" => (
                act,
                "registers and shared memory",
                "a step's live values are small and used at once; only what crosses kernels goes to HBM",
            ),
            _ => (
                self.weight_bytes,
                "HBM",
                "every step reads all of them; only the tile being worked on sits in shared memory and registers",
            ),
        };
        let mut s = Scene::new();
        s.push(bars(
            "sizes",
            &format!("{}'s data beside {}'s levels (log scale)", self.source, g.label()),
            self.source.prov(format!(
                "{}: GGUF tensor bytes; 16-bit KV per token from its config ({}); level sizes from the {} row",
                self.source,
                bytes(self.kv_per_token),
                g.label()
            )),
            "bytes",
            vec![
                bar("weights (GGUF)", self.weight_bytes, if what == "weights" { Role::Highlight } else { Role::Weight }),
                bar(format!("KV cache ({tokens:.0} tokens × {batch:.0})"), kv, if what == "KV cache" { Role::Highlight } else { Role::Attention }),
                bar("activations (one step)", act, if what == "activations" { Role::Highlight } else { Role::Activation }),
                bar("one 64×64 BF16 K/V tile pair", tile, Role::Muted),
                bar("registers (chip)", caps[0].2, Role::Muted),
                bar("shared / L1 (chip)", caps[1].2, Role::Muted),
                bar("L2", caps[2].2, Role::Muted),
                bar("HBM", caps[3].2, Role::Muted),
            ],
        ));
        if let Some(Item {
            primitive: Primitive::Bars(b),
            ..
        }) = s.items.last_mut()
        {
            b.log = true;
        }
        let fits = caps
            .iter()
            .find(|(_, _, chip)| size <= *chip)
            .map_or("nowhere on one GPU", |c| c.0);
        s.push(text(
            "answer",
            &format!("Where do the {what} live?"),
            sim(g, "capacities"),
            format!(
                "{}: {}. In {lives}: {why}. Size alone would fit it first in {fits}.",
                what,
                bytes(size),
            ),
        ));
        Ok(s)
    }

    fn this_cpu(&mut self, _: &Values) -> Result<Scene> {
        let mut s = Scene::new();
        let (ladder, caches) = match self.ladder.get(&(), |p| {
            let l = machine::latency_ladder(&|i, n| p.set(i as u64, n as u64, "chasing pointers"));
            Ok((l, machine::caches()))
        })? {
            State::Running(p) => {
                s.push(progress_item(
                    "progress",
                    "Measuring this CPU's latency ladder",
                    p,
                ));
                return Ok(s);
            }
            State::Ready(r) => r.clone(),
        };
        let prov = measured(
            "pointer chasing through a random cycle, one load depending on the last, best of 3",
        );
        s.push(Item::new(
            "ladder",
            "Latency per load by working-set size on this CPU",
            prov.clone(),
            Primitive::Plot(Plot {
                x_label: "working set (KiB)".into(),
                y_label: "ns per load".into(),
                x_log: true,
                y_log: true,
                series: vec![Series {
                    name: "measured".into(),
                    points: ladder
                        .iter()
                        .map(|(b, ns)| (*b as f64 / 1024.0, *ns))
                        .collect(),
                    line: true,
                    role: Role::Weight,
                }],
            }),
        ));
        s.push(table(
            "ladder-table",
            "The ladder",
            prov,
            &["working set", "ns per load", "× the smallest"],
            ladder
                .iter()
                .map(|(b, ns)| {
                    vec![
                        bytes(*b as f64),
                        format!("{ns:.1}"),
                        format!("{:.1}×", ns / ladder[0].1),
                    ]
                })
                .collect(),
        ));
        let rows = if caches.is_empty() {
            vec![vec![
                "unknown".into(),
                "the OS does not report caches".into(),
                String::new(),
            ]]
        } else {
            caches
                .iter()
                .map(|c| {
                    vec![
                        format!("L{} {}", c.level, c.kind),
                        bytes(c.bytes as f64),
                        c.line_bytes.map_or("unknown".into(), |l| format!("{l} B")),
                    ]
                })
                .collect()
        };
        s.push(table(
            "caches",
            "This CPU's caches (per core or shared, as the OS reports them)",
            measured("read from /sys/devices/system/cpu/cpu0/cache"),
            &["cache", "size", "line"],
            rows,
        ));
        Ok(s)
    }
}
