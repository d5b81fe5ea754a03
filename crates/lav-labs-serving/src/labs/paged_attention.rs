//! paged-attention: the engine's real block allocator while it serves the model on a
//! seeded trace, next to the same trace replayed through a contiguous allocator that
//! reserves prompt + max_tokens up front; the live block tables; a fork (two samples
//! of one prompt, drawn by the model) sharing blocks until the first write copies
//! one; and the KV waste of both, step by step.

use super::{Context, pct, prompt_text};
use crate::trace::{self, Arrival, Snapshot, Trace};
use lav_engine::block_manager::{BlockManager, CopyBlock, SeqId};
use lav_engine::scheduler::SchedulerConfig;
use lav_engine::sequence::{SamplingParams, Sequence};
use lav_engine::workload::Lengths;
use lav_lab::items::{ModelSource, chip, strip, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values, published};
use lav_model::{Llama, Tokenizer};
use lav_scene::*;
use std::collections::HashMap;
use std::sync::Arc;

const BS: usize = lav_engine::block_manager::BLOCK_SIZE;
/// Tokens each of the two forked samples draws.
const FORK_TOKENS: usize = 24;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let c = Controls {
        pool: Control::slider("pool", "KV blocks in the pool", 16.0, 64.0, 1.0, 24.0),
        moment: Control::slider(
            "moment",
            "Moment in the run (% of its steps)",
            1.0,
            100.0,
            1.0,
            40.0,
        ),
        seq: Control::slider("seq", "Running sequence", 0.0, 15.0, 1.0, 0.0),
        prompt: Control::text(
            "prompt",
            "Prompt to fork",
            300,
            "A kitchen at dinner time is a good picture of a computer running a language model. The recipe book is the set of weights: it never changes while the cooks work. Each order that comes in is",
        ),
        written: Control::slider(
            "written",
            "Tokens each sample has written",
            0.0,
            FORK_TOKENS as f64,
            1.0,
            3.0,
        ),
    };
    let steps = vec![
        Step::new("allocator", &[&c.pool, &c.moment], Paged::allocator),
        Step::new(
            "block-table",
            &[&c.pool, &c.moment, &c.seq],
            Paged::block_table,
        ),
        Step::new("fork", &[&c.prompt, &c.written], Paged::fork),
        Step::new("waste", &[&c.pool], Paged::waste),
    ];
    Steps::lab(
        Paged {
            c,
            text: prompt_text(&ctx.dir)?,
            facts: published::facts(&ctx.dir, "paged-attention")?,
            tokenizer: ctx.loader.tokenizer().lab()?,
            source: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            model: ctx.loader.model().lab()?,
            run: Job::default(),
            samples: Job::default(),
        },
        steps,
    )
}

struct Controls {
    pool: Control,
    moment: Control,
    seq: Control,
    prompt: Control,
    written: Control,
}

struct Paged {
    c: Controls,
    text: String,
    facts: Vec<published::Fact>,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    source: ModelSource,
    /// The served trace and its contiguous replay, keyed by the pool size.
    run: Job<usize, (Trace, Vec<Contiguous>)>,
    /// The prompt's tokens and two sampled continuations, keyed by the prompt.
    samples: Job<String, (Vec<u32>, [Vec<u32>; 2])>,
}

impl LabState for Paged {
    fn busy(&self) -> bool {
        self.run.busy() || self.samples.busy()
    }
}

/// The trace: ten requests of mixed lengths arriving fast, so the pool fills.
fn requests(tok: &Tokenizer, text: &str) -> Result<Vec<Arrival>> {
    trace::arrivals(
        tok,
        text,
        25.0,
        10,
        Lengths::Uniform { min: 8, max: 60 },
        Lengths::Uniform { min: 8, max: 40 },
        11,
    )
}

/// The contiguous allocator after one step of the replay: which request holds each
/// 16-position granule, and who could not be placed.
#[derive(Clone, Debug)]
struct Contiguous {
    /// Per granule: (request, positions of the granule it has filled).
    cells: Vec<Option<(SeqId, usize)>>,
    /// Requests admitted by the paged engine that found no contiguous gap.
    refused: Vec<SeqId>,
    used: usize,
    reserved: usize,
    largest_gap: usize,
}

/// Replays the trace's admissions through a first-fit contiguous allocator of the
/// same capacity: a request reserves prompt + max_tokens positions (rounded up to
/// granules) when the paged engine first runs it, and frees them when it finishes.
fn replay(t: &Trace) -> Vec<Contiguous> {
    let n = t.cfg.num_blocks;
    let mut owner: Vec<Option<SeqId>> = vec![None; n];
    let mut placed: HashMap<SeqId, (usize, usize)> = HashMap::new();
    let mut refused: Vec<SeqId> = Vec::new();
    let mut out = Vec::new();
    for s in &t.steps {
        let running: Vec<SeqId> = s.running.iter().map(|q| q.id).collect();
        for (id, &(at, len)) in placed.clone().iter() {
            if !running.contains(id) {
                owner[at..at + len].iter_mut().for_each(|o| *o = None);
                placed.remove(id);
            }
        }
        for q in &s.running {
            if placed.contains_key(&q.id) || refused.contains(&q.id) {
                continue;
            }
            let need = (q.prompt + q.max_tokens).div_ceil(BS);
            match first_fit(&owner, need) {
                Some(at) => {
                    owner[at..at + need]
                        .iter_mut()
                        .for_each(|o| *o = Some(q.id));
                    placed.insert(q.id, (at, need));
                }
                None => refused.push(q.id),
            }
        }
        let held: HashMap<SeqId, usize> = s.running.iter().map(|q| (q.id, q.held)).collect();
        let cells = (0..n)
            .map(|i| {
                owner[i].map(|id| {
                    let (at, _) = placed[&id];
                    let h = held.get(&id).copied().unwrap_or(0);
                    (id, h.saturating_sub((i - at) * BS).min(BS))
                })
            })
            .collect::<Vec<_>>();
        let used = cells.iter().flatten().map(|c| c.1).sum();
        let reserved = owner.iter().flatten().count() * BS;
        out.push(Contiguous {
            cells,
            refused: refused.clone(),
            used,
            reserved,
            largest_gap: largest_gap(&owner),
        });
    }
    out
}

fn first_fit(owner: &[Option<SeqId>], need: usize) -> Option<usize> {
    let mut run = 0;
    for (i, o) in owner.iter().enumerate() {
        run = if o.is_none() { run + 1 } else { 0 };
        if run == need {
            return Some(i + 1 - need);
        }
    }
    None
}

fn largest_gap(owner: &[Option<SeqId>]) -> usize {
    let (mut best, mut run) = (0, 0);
    for o in owner {
        run = if o.is_none() { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

/// Who holds each physical block after a step, and how many positions it holds.
fn paged_cells(s: &Snapshot, num_blocks: usize) -> Vec<Option<(SeqId, usize, usize)>> {
    let mut cells: Vec<Option<(SeqId, usize, usize)>> = vec![None; num_blocks];
    for q in &s.running {
        for (i, &b) in q.blocks.iter().enumerate() {
            let fill = q.held.saturating_sub(i * BS).min(BS);
            let c = &mut cells[b as usize];
            match c {
                Some((_, _, refs)) => *refs += 1,
                None => *c = Some((q.id, fill, 1)),
            }
        }
    }
    cells
}

impl Paged {
    fn engine(&self) -> Provenance {
        Provenance::engine(format!(
            "lav's engine serving {}, its block manager read after each step",
            self.source
        ))
    }

    /// The served trace for this pool size (a progress scene while it runs).
    fn served(&mut self, v: &Values, scene: &mut Scene) -> Result<Option<usize>> {
        let pool = v.usize(&self.c.pool);
        let reqs = requests(&self.tokenizer, &self.text)?;
        let model = self.model.clone();
        let cfg = SchedulerConfig {
            max_num_seqs: 8,
            max_num_batched_tokens: 256,
            num_blocks: pool,
            ..Default::default()
        };
        if let State::Running(p) = self.run.get(&pool, move |p| {
            let t = trace::serve(&model, &reqs, cfg, p)?;
            let c = replay(&t);
            Ok((t, c))
        })? {
            scene.push(progress_item(
                "progress",
                &format!("Serving ten requests with a pool of {pool} blocks"),
                p,
            ));
            return Ok(None);
        }
        Ok(Some(pool))
    }

    fn moment(&self, v: &Values, t: &Trace) -> usize {
        let n = t.steps.len();
        ((v.num(&self.c.moment) / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1
    }

    fn allocator(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let Some(pool) = self.served(v, &mut scene)? else {
            return Ok(scene);
        };
        let (t, cont) = self.run.ready(&pool).expect("ready");
        let k = self.moment(v, t);
        let s = &t.steps[k];
        let c = &cont[k];
        let cells = paged_cells(s, pool);
        scene.push(Item::new(
            "paged",
            format!(
                "Paged, step {} of {}: request, positions filled",
                k + 1,
                t.steps.len()
            ),
            self.engine(),
            Primitive::BlockGrid(BlockGrid {
                columns: 8,
                cells: cells
                    .iter()
                    .map(|c| match c {
                        Some((id, fill, refs)) => Cell {
                            owner: Some(*id as usize),
                            label: if *refs > 1 {
                                format!("r{id} {fill} ×{refs}")
                            } else {
                                format!("r{id} {fill}")
                            },
                        },
                        None => Cell {
                            owner: None,
                            label: String::new(),
                        },
                    })
                    .collect(),
            }),
        ));
        scene.push(Item::new(
            "contiguous",
            format!("Contiguous, same moment: {} not placed", c.refused.len()),
            Provenance::computed(
                "the same trace replayed through a first-fit contiguous allocator of the same size",
            ),
            Primitive::BlockGrid(BlockGrid {
                columns: 8,
                cells: c
                    .cells
                    .iter()
                    .map(|x| match x {
                        Some((id, fill)) => Cell {
                            owner: Some(*id as usize),
                            label: format!("r{id} {fill}"),
                        },
                        None => Cell {
                            owner: None,
                            label: String::new(),
                        },
                    })
                    .collect(),
            }),
        ));
        let free_now = s.free_blocks;
        scene.push(table(
            "state",
            "Both allocators at this moment",
            self.engine(),
            &["", "paged", "contiguous"],
            vec![
                vec![
                    "sequences holding memory".into(),
                    s.running.len().to_string(),
                    (s.running.len()
                        - s.running
                            .iter()
                            .filter(|q| c.refused.contains(&q.id))
                            .count())
                    .to_string(),
                ],
                vec![
                    "positions holding K/V".into(),
                    s.usage.used.to_string(),
                    c.used.to_string(),
                ],
                vec![
                    "positions set aside".into(),
                    s.usage.allocated.to_string(),
                    c.reserved.to_string(),
                ],
                vec![
                    "wasted".into(),
                    pct(s.usage.paged_waste()),
                    pct(if c.reserved == 0 {
                        0.0
                    } else {
                        1.0 - c.used as f64 / c.reserved as f64
                    }),
                ],
                vec![
                    "free blocks".into(),
                    format!("{free_now} (any will do)"),
                    format!(
                        "{} (largest run {})",
                        pool - c.cells.iter().flatten().count(),
                        c.largest_gap
                    ),
                ],
                vec![
                    "requests refused so far".into(),
                    "0".into(),
                    c.refused.len().to_string(),
                ],
            ],
        ));
        Ok(scene)
    }

    fn block_table(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let Some(pool) = self.served(v, &mut scene)? else {
            return Ok(scene);
        };
        let (t, _) = self.run.ready(&pool).expect("ready");
        let k = self.moment(v, t);
        let s = &t.steps[k];
        if s.running.is_empty() {
            scene.push(text(
                "empty",
                "Nothing running",
                self.engine(),
                format!(
                    "No sequence holds blocks after step {}: move the moment.",
                    k + 1
                ),
            ));
            return Ok(scene);
        }
        let i = v.usize(&self.c.seq).min(s.running.len() - 1);
        let q = &s.running[i];
        let cells = paged_cells(s, pool);
        scene.push(table(
            "table",
            &format!(
                "Block table of request {} at step {}: logical block → physical block",
                q.id,
                k + 1
            ),
            self.engine(),
            &["logical", "physical", "positions", "filled", "holders"],
            q.blocks
                .iter()
                .enumerate()
                .map(|(j, &b)| {
                    let fill = q.held.saturating_sub(j * BS).min(BS);
                    vec![
                        j.to_string(),
                        b.to_string(),
                        format!("{}–{}", j * BS, j * BS + BS - 1),
                        format!("{fill}/{BS}"),
                        cells[b as usize].map_or(1, |c| c.2).to_string(),
                    ]
                })
                .collect(),
        ));
        scene.push(table(
            "running",
            &format!(
                "Every running sequence after step {} (sequence {i} selected)",
                k + 1
            ),
            self.engine(),
            &[
                "request",
                "positions",
                "blocks",
                "empty slots in its last block",
            ],
            s.running
                .iter()
                .map(|q| {
                    vec![
                        format!("r{}", q.id),
                        q.held.to_string(),
                        q.blocks.len().to_string(),
                        (q.blocks.len() * BS - q.held).to_string(),
                    ]
                })
                .collect(),
        ));
        scene.push(text(
            "lookup",
            "Where position p lives",
            Provenance::computed("the block table".to_string()),
            format!(
                "Position p of request {} is slot p mod {BS} of physical block table[p / {BS}]: its last position, {}, is slot {} of block {}. Attention reads K and V through this table, so the blocks need not be next to each other.",
                q.id,
                q.held.saturating_sub(1),
                q.held.saturating_sub(1) % BS,
                q.blocks.last().copied().unwrap_or(0)
            ),
        ));
        Ok(scene)
    }

    fn fork(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let prompt = v.text(&self.c.prompt).to_string();
        let written = v.usize(&self.c.written);
        let (model, tok) = (self.model.clone(), self.tokenizer.clone());
        if let State::Running(p) = self.samples.get(&prompt.clone(), move |p| {
            let ids = tok.encode(&prompt).lab()?;
            if ids.is_empty() {
                return Err(lav_lab::LabError::Input(
                    "the prompt is empty: type a few words".into(),
                ));
            }
            let mut r = lav_engine::runner::Runner::new(
                model,
                SchedulerConfig {
                    num_blocks: 32,
                    ..Default::default()
                },
            );
            for seed in [1, 2] {
                let params = SamplingParams {
                    temperature: 0.8,
                    seed,
                    max_tokens: FORK_TOKENS,
                    ..Default::default()
                };
                r.add(Sequence::new(seed, ids.clone(), params)).lab()?;
            }
            let mut out = [Vec::new(), Vec::new()];
            while !r.is_idle() {
                p.check()?;
                for (id, t) in r.step().lab()?.tokens {
                    out[id as usize - 1].push(t);
                }
                p.set(
                    out[0].len() as u64,
                    FORK_TOKENS as u64,
                    "sampling two answers",
                );
            }
            Ok((ids, out))
        })? {
            scene.push(progress_item("progress", "Sampling two answers", p));
            return Ok(scene);
        }
        let (ids, [a, b]) = self
            .samples
            .ready(&v.text(&self.c.prompt).to_string())
            .expect("ready");
        // Replay the fork on a block manager: the parent's prompt, a child sharing it,
        // then each writing its own tokens.
        let mut bm = BlockManager::new(32, BS);
        bm.allocate(0, ids).lab()?;
        bm.fork(0, 1).lab()?;
        let shared_at_fork = bm.table(0).map_or(0, <[u32]>::len);
        let mut copies: Vec<(usize, SeqId, CopyBlock)> = Vec::new();
        for k in 0..written.min(a.len()).min(b.len()) {
            for (seq, tok) in [(0, a[k]), (1, b[k])] {
                if let Some(c) = bm.append(seq, tok).lab()? {
                    copies.push((k, seq, c));
                }
            }
        }
        let show = |toks: &[u32], other: &[u32]| -> Vec<Chip> {
            toks.iter()
                .take(written)
                .enumerate()
                .map(|(k, &t)| {
                    let s = String::from_utf8_lossy(&self.tokenizer.token_bytes(t)).into_owned();
                    chip(s, Some(t), Role::Token, other.get(k) != Some(&t))
                })
                .collect()
        };
        let prov = self
            .source
            .prov(format!("{}, temperature 0.8, seeds 1 and 2", self.source));
        scene.push(strip(
            "sample-a",
            "Sample 1 (seed 1)",
            prov.clone(),
            show(a, b),
        ));
        scene.push(strip("sample-b", "Sample 2 (seed 2)", prov, show(b, a)));
        let (ta, tb) = (bm.table(0).unwrap_or(&[]), bm.table(1).unwrap_or(&[]));
        let rows = (0..ta.len().max(tb.len()))
            .map(|j| {
                let (x, y) = (ta.get(j), tb.get(j));
                let shared = x.is_some() && x == y;
                vec![
                    j.to_string(),
                    x.map_or("–".into(), |b| b.to_string()),
                    y.map_or("–".into(), |b| b.to_string()),
                    if shared {
                        format!("shared (holders {})", bm.ref_count(*x.expect("some")))
                    } else {
                        "private".into()
                    },
                ]
            })
            .collect();
        let bm_prov =
            Provenance::engine("lav's block manager (fork, append, copy-on-write)".to_string());
        scene.push(table(
            "tables",
            &format!(
                "Block tables after {written} tokens each (prompt: {} tokens in {shared_at_fork} blocks)",
                ids.len()
            ),
            bm_prov.clone(),
            &["logical", "sample 1", "sample 2", ""],
            rows,
        ));
        let alone = ta.len() + tb.len();
        let used = bm.num_used();
        let cow = if copies.is_empty() {
            if ids.len() % BS == 0 {
                "no copy: the prompt filled its last block exactly, so each sample's first token opened a new block of its own".to_string()
            } else {
                "no copy yet: slide the tokens written above 0".to_string()
            }
        } else {
            copies
                .iter()
                .map(|(k, seq, c)| {
                    format!(
                        "copy-on-write at token {} of sample {}: block {} copied to {} before the write",
                        k + 1,
                        seq + 1,
                        c.from,
                        c.to
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        scene.push(table(
            "saving",
            "Memory with sharing",
            bm_prov,
            &["", "value"],
            vec![
                vec!["blocks in use, shared".into(), used.to_string()],
                vec!["blocks without sharing".into(), alone.to_string()],
                vec![
                    "saved by sharing".into(),
                    pct(1.0 - used as f64 / alone.max(1) as f64),
                ],
                vec!["copies made".into(), cow],
            ],
        ));
        Ok(scene)
    }

    fn waste(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let Some(pool) = self.served(v, &mut scene)? else {
            return Ok(scene);
        };
        let (t, cont) = self.run.ready(&pool).expect("ready");
        let points = |f: &dyn Fn(usize) -> Option<f64>| -> Vec<(f64, f64)> {
            (0..t.steps.len())
                .filter_map(|k| f(k).map(|w| ((k + 1) as f64, 100.0 * w)))
                .collect()
        };
        let busy = |k: usize| t.steps[k].usage.allocated > 0;
        scene.push(Item::new(
            "per-step",
            format!("KV memory wasted at each step, pool of {pool} blocks"),
            self.engine(),
            Primitive::Plot(Plot {
                x_label: "engine step".into(),
                y_label: "% wasted".into(),
                x_log: false,
                y_log: false,
                series: vec![
                    Series {
                        name: "paged (16-token blocks)".into(),
                        points: points(&|k| busy(k).then(|| t.steps[k].usage.paged_waste())),
                        line: true,
                        role: Role::Highlight,
                    },
                    Series {
                        name: "reserved up front (prompt + max_tokens)".into(),
                        points: points(&|k| busy(k).then(|| t.steps[k].usage.reserved_waste())),
                        line: true,
                        role: Role::WhatIf,
                    },
                ],
            }),
        ));
        let (paged, reserved) = t.waste();
        let refused = cont.last().map_or(0, |c| c.refused.len());
        scene.push(table(
            "measured",
            "Waste over the run (mean of its steps)",
            self.engine(),
            &["", "value"],
            vec![
                vec!["paged".into(), pct(paged)],
                vec!["contiguous, reserved up front".into(), pct(reserved)],
                vec![
                    "most a sequence can waste, paged".into(),
                    format!("{} slots (block − 1)", BS - 1),
                ],
                vec![
                    "requests the contiguous replay could not place".into(),
                    refused.to_string(),
                ],
                vec!["preemptions, paged".into(), t.preemptions().to_string()],
            ],
        ));
        scene.push(published::table(
            "published",
            "vLLM's paper and launch, as published",
            &self.facts,
        ));
        Ok(scene)
    }
}
