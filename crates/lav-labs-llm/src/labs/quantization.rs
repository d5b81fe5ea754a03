//! quantization: the real weights of SmolLM2, dequantized from the stored Q4_1 and
//! re-quantized into candle's GGML types and the project's own INT8/INT4/NF4 schemes;
//! the grid over the histogram, the error and the bits it costs; and what
//! re-quantizing the whole model does to its answers (KL, perplexity on a held text
//! the project wrote, greedy text, bytes and decode speed, all measured here).

use super::Context;
use crate::bpe::show_bytes;
use crate::quantize::{
    Granularity, IntQuant, Scheme, histogram, inject_outlier, nf4, nf4_bits_per_weight, rmse,
};
use lav_lab::items::ModelSource;
use lav_lab::items::{bar, bars, sig, styled, table, text};
use lav_lab::job::{Job, Progress, State, progress_item};
use lav_lab::published;
use lav_lab::{Control, Lab, LabError, LabState, Result, ResultExt, Step, Steps, Values};
use lav_model::model::round_trip;
use lav_model::sampler::{argmax, softmax};
use lav_model::score::{all_logits, kl_divergence, mean_kl, perplexity};
use lav_model::{Llama, ModelCard, Quant, Tokenizer};
use lav_scene::*;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

const MATRICES: &[&str] = &["q", "k", "v", "o", "gate", "up", "down"];
const OWN: &[&str] = &["INT8 sym", "INT8 asym", "INT4 sym", "INT4 asym", "NF4"];
const GRANULARITY: &[&str] = &["per-tensor", "per-channel", "group"];
/// Tokens of greedy text each model writes in the side-by-side.
const CONTINUE: usize = 16;
/// How far an injected outlier sits from the rest: × the matrix's largest |w|.
const OUTLIER: f32 = 20.0;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let model = ctx.loader.model().lab()?;
    if model.layers[0].wqkv.to_f32().is_none() {
        return Err(LabError::Input(
            "the quantization lab re-quantizes the stored weights: run it without --weights".into(),
        ));
    }
    let ggml: Vec<&str> = Quant::ALL.iter().map(|q| q.name()).collect();
    let mut all = ggml.clone();
    all.extend(OWN);
    let cfg = &model.config;
    let c = Controls {
        layer: Control::slider("layer", "Layer", 0.0, (cfg.num_layers - 1) as f64, 1.0, 0.0),
        matrix: Control::choice("matrix", "Matrix", MATRICES, "q"),
        format: Control::choice("format", "Format", &all, "Q4_K"),
        granularity: Control::choice("granularity", "Scales (INT formats)", GRANULARITY, "group"),
        group: Control::slider("group", "Group size (INT, NF4)", 16.0, 576.0, 16.0, 128.0),
        outlier: Control::toggle(
            "outlier",
            "Inject an outlier (×20 the largest weight)",
            false,
        ),
        model_format: Control::choice("model_format", "Re-quantize the model to", &all, "Q4_K"),
        prompt: Control::text("prompt", "Prompt", 300, "The capital of France is"),
        gguf: Control::text("gguf", "GGUF type name", 24, "Q4_K_M"),
    };
    let pick = [
        &c.layer,
        &c.matrix,
        &c.format,
        &c.granularity,
        &c.group,
        &c.outlier,
    ];
    let steps = vec![
        Step::new("memory", &[], Quantization::memory),
        Step::new("weights", &pick, Quantization::weights),
        Step::new(
            "formats",
            &[&c.layer, &c.matrix, &c.granularity, &c.group, &c.outlier],
            Quantization::formats,
        ),
        Step::new(
            "model",
            &[&c.model_format, &c.granularity, &c.group, &c.prompt],
            Quantization::model,
        ),
        Step::new("background", &[&c.gguf], Quantization::background),
    ];
    let tokenizer = ctx.loader.tokenizer().lab()?;
    Steps::lab(
        Quantization {
            c,
            model_name: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
            held: tokenizer.encode(&heldout(&ctx.dir)?).lab()?,
            tokenizer,
            dir: ctx.dir.clone(),
            model,
            weights: HashMap::new(),
            table: Job::default(),
            reference: Arc::new(Mutex::new(None)),
            job: Job::default(),
        },
        steps,
    )
}

struct Controls {
    layer: Control,
    matrix: Control,
    format: Control,
    granularity: Control,
    group: Control,
    outlier: Control,
    model_format: Control,
    prompt: Control,
    gguf: Control,
}

type TableKey = (usize, String, bool, String, usize);
/// What a whole-model run depends on: format, scale granularity, group, prompt.
type ModelKey = (String, String, usize, String);
/// Rows of the formats table and its bars.
type FormatsTable = (Vec<Vec<String>>, Vec<Bar>);
/// A dequantized stored matrix: rows, cols, row-major values, its stored GGML type.
type Matrix = (usize, usize, Arc<Vec<f32>>, &'static str);

struct Quantization {
    c: Controls,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    model_name: ModelSource,
    dir: PathBuf,
    /// The held text perplexity is measured on, as tokens (read once).
    held: Vec<u32>,
    /// Dequantized stored matrices by (layer, matrix): rows, cols, values.
    weights: HashMap<(usize, String), Matrix>,
    /// The formats table for the last matrix and settings.
    table: Job<TableKey, FormatsTable>,
    /// The stored model's scores, computed once and shared with every job.
    reference: Arc<Mutex<Option<Arc<Scores>>>>,
    job: Job<ModelKey, Compared>,
}

/// The stored model and a re-quantized one side by side, with everything the model
/// step shows computed in the job: a control change then only lays the scene out.
struct Compared {
    stored: Arc<Scores>,
    quant: Scores,
    kl_next: f64,
    kl_held: f64,
    /// The eight most likely next tokens and their probabilities.
    top_stored: Vec<(u32, f32)>,
    top_quant: Vec<(u32, f32)>,
}

/// The `n` most likely tokens after `logits`, most likely first.
fn top_tokens(logits: &[f32], n: usize) -> Vec<(u32, f32)> {
    let p = softmax(logits);
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    idx.iter().take(n).map(|&i| (i as u32, p[i])).collect()
}

impl LabState for Quantization {
    fn busy(&self) -> bool {
        self.job.busy() || self.table.busy()
    }
}

/// One model measured on the held text and the learner's prompt.
pub struct Scores {
    pub label: String,
    pub bits_per_weight: f64,
    pub bytes: usize,
    pub perplexity: f64,
    /// Logits for every position of the held text.
    pub heldout_logits: Vec<f32>,
    pub next_logits: Vec<f32>,
    pub greedy: Vec<u32>,
    pub decode_tok_s: f64,
}

/// The text perplexity is measured on: the project's own writing, never trained on.
pub fn heldout(dir: &std::path::Path) -> Result<String> {
    let p = dir.join("data/heldout.txt");
    std::fs::read_to_string(&p)
        .map_err(|e| LabError::Lesson(format!("cannot read {}: {e}", p.display())))
}

/// Scores `model`: perplexity on the held text, the prompt's next-token logits, and
/// greedy text with its decode speed.
pub fn score(model: &Llama, label: String, heldout: &[u32], prompt: &[u32]) -> Result<Scores> {
    let v = model.config.vocab_size;
    let heldout_logits = all_logits(model, heldout).lab()?;
    let mut cache = model.new_cache();
    let next_logits = model.next_logits(prompt, &mut cache).lab()?;
    let mut greedy = vec![argmax(&next_logits).0];
    let t = Instant::now();
    for _ in 1..CONTINUE {
        let l = model
            .next_logits(&[*greedy.last().expect("one")], &mut cache)
            .lab()?;
        greedy.push(argmax(&l).0);
    }
    let decode_tok_s = (CONTINUE - 1) as f64 / t.elapsed().as_secs_f64();
    let card = ModelCard::of(model);
    let bytes: usize = card.compute_bytes_by_type.values().sum();
    let params = {
        let p = &card.parameters;
        p.attention
            + p.mlp
            + if p.output_head == 0 {
                p.embeddings
            } else {
                p.output_head
            }
    };
    Ok(Scores {
        label,
        bits_per_weight: bytes as f64 * 8.0 / params as f64,
        bytes,
        perplexity: perplexity(&heldout_logits, heldout, v),
        heldout_logits,
        next_logits,
        greedy,
        decode_tok_s,
    })
}

/// What one format does to one matrix: the values it computes with, and its bits.
struct Applied {
    name: String,
    deq: Vec<f32>,
    bits: f64,
    /// The levels one group (the first of row 0) can take, for the grid.
    grid: Vec<f32>,
}

fn own(name: &str, granularity: &str, group: usize) -> Option<IntQuant> {
    let bits = if name.starts_with("INT8") { 8 } else { 4 };
    let scheme = if name.ends_with("asym") {
        Scheme::Asymmetric
    } else {
        Scheme::Symmetric
    };
    let g = match granularity {
        "per-tensor" => Granularity::PerTensor,
        "per-channel" => Granularity::PerChannel,
        _ => Granularity::Group(group),
    };
    name.starts_with("INT")
        .then(|| IntQuant::new(bits, scheme, g))
}

fn apply(
    w: &[f32],
    rows: usize,
    cols: usize,
    format: &str,
    granularity: &str,
    group: usize,
) -> Result<Applied> {
    if let Some(q) = Quant::parse(format).filter(|_| format.starts_with(['Q', 'F'])) {
        let deq = round_trip(w, rows, cols, q).lab()?;
        let block = q.block().min(cols);
        let mut grid: Vec<f32> = deq[..block].to_vec();
        grid.sort_by(f32::total_cmp);
        grid.dedup();
        return Ok(Applied {
            name: q.name().into(),
            deq,
            bits: q.bits_per_weight(),
            grid,
        });
    }
    if format == "NF4" {
        let qd = nf4(w, rows, cols, group);
        let (s, _) = qd.params[0];
        let grid = crate::quantize::nf4_levels()
            .iter()
            .map(|l| l * s)
            .collect();
        return Ok(Applied {
            name: own_label(format, granularity, group),
            deq: qd.dequantized,
            bits: nf4_bits_per_weight(group),
            grid,
        });
    }
    let iq = own(format, granularity, group)
        .ok_or_else(|| LabError::Input(format!("unknown format `{format}`")))?;
    let qd = iq.quantize(w, rows, cols);
    let first = match iq.granularity {
        Granularity::PerTensor => w.to_vec(),
        Granularity::PerChannel => w[..cols].to_vec(),
        Granularity::Group(g) => w[..g.min(cols)].to_vec(),
    };
    let (lo, hi) = first
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    let label = own_label(format, granularity, group);
    Ok(Applied {
        name: label,
        deq: qd.dequantized,
        bits: iq.bits_per_weight(cols, rows),
        grid: iq.grid(lo, hi),
    })
}

impl Quantization {
    fn prov(&self) -> Provenance {
        self.model_name.prov(self.model_name.to_string())
    }

    /// The stored matrix as floats, with the outlier injected if asked.
    fn matrix(&mut self, v: &Values) -> Result<(usize, usize, Arc<Vec<f32>>, String)> {
        let layer = v.usize(&self.c.layer).min(self.model.config.num_layers - 1);
        let name = v.text(&self.c.matrix).to_string();
        let key = (layer, name.clone());
        if !self.weights.contains_key(&key) {
            let cfg = &self.model.config;
            let l = &self.model.layers[layer];
            let (qd, kd) = (
                cfg.num_heads * cfg.head_dim,
                cfg.num_kv_heads * cfg.head_dim,
            );
            let inter = cfg.intermediate_size;
            let (lin, range) = match name.as_str() {
                "q" => (&l.wqkv, 0..qd),
                "k" => (&l.wqkv, qd..qd + kd),
                "v" => (&l.wqkv, qd + kd..qd + 2 * kd),
                "o" => (&l.wo, 0..cfg.hidden_size),
                "gate" => (&l.w_gate_up, 0..inter),
                "up" => (&l.w_gate_up, inter..2 * inter),
                _ => (&l.w_down, 0..cfg.hidden_size),
            };
            let (_, cols, all) = lin.to_f32().expect("checked at open");
            let rows = range.len();
            let w = all[range.start * cols..range.end * cols].to_vec();
            self.weights
                .insert(key.clone(), (rows, cols, Arc::new(w), lin.storage().0));
        }
        let (rows, cols, w, stored) = self.weights[&key].clone();
        let title = format!("layer {layer}, {name} ({rows} × {cols}, stored {stored})");
        if v.flag(&self.c.outlier) {
            let mut w2 = (*w).clone();
            inject_outlier(&mut w2, 0, OUTLIER);
            return Ok((
                rows,
                cols,
                Arc::new(w2),
                format!("{title}, outlier at [0, 0]"),
            ));
        }
        Ok((rows, cols, w, title))
    }

    fn settings(&self, v: &Values, cols: usize) -> (String, usize, Vec<String>) {
        let mut notes = Vec::new();
        let mut group = v.usize(&self.c.group).max(16);
        if group > cols {
            notes.push(format!("group {group} clamped to the row length {cols}"));
            group = cols;
        }
        (v.text(&self.c.granularity).to_string(), group, notes)
    }
}

impl Quantization {
    fn memory(&mut self, _: &Values) -> Result<Scene> {
        let prov = self.prov();
        let mut scene = Scene::new();
        let per = [
            ("FP32", 32.0),
            ("FP16 / BF16", 16.0),
            ("INT8", 8.0),
            ("INT4", 4.0),
        ];
        scene.push(table(
            "precisions",
            "Bytes per parameter, and a 7B-parameter model's weights",
            Provenance::computed("bits / 8 × 7·10⁹ parameters"),
            &["precision", "bytes / parameter", "7B model"],
            per.iter()
                .map(|(n, b)| vec![n.to_string(), sig(b / 8.0), format!("{} GB", b / 8.0 * 7.0)])
                .collect(),
        ));
        let card = ModelCard::of(&self.model);
        let rows: Vec<Vec<String>> = card
            .file_bytes_by_type
            .iter()
            .map(|(t, b)| {
                let bits = Quant::parse(t).map_or("—".into(), |q| sig(q.bits_per_weight()));
                vec![
                    t.clone(),
                    card.file_tensors_by_type[t].to_string(),
                    format!("{:.2} MiB", *b as f64 / 1048576.0),
                    bits,
                ]
            })
            .collect();
        scene.push(table(
            "file",
            "This model's file, by GGML type (from the GGUF tensor table)",
            prov.clone(),
            &["type", "tensors", "bytes", "bits / weight"],
            rows,
        ));
        let q = Quant::Q4_1;
        scene.push(text(
            "q4_1",
            "Q4_1, the format of the layers",
            Provenance::computed("from candle's GGML type table"),
            format!(
                "Blocks of {} weights, each with an f16 scale d, an f16 minimum m and {} bytes of 4-bit codes: {} B per {} weights = {} bits/weight; ŵ = d·q + m.",
                q.block(),
                q.block() / 2,
                q.bits_per_weight() * q.block() as f64 / 8.0,
                q.block(),
                q.bits_per_weight()
            ),
        ));
        Ok(scene)
    }

    fn weights(&mut self, v: &Values) -> Result<Scene> {
        let prov = self.prov();
        let mut scene = Scene::new();
        let (rows, cols, w, title) = self.matrix(v)?;
        let (gran, group, notes) = self.settings(v, cols);
        let format = v.text(&self.c.format).to_string();
        let a = apply(&w, rows, cols, &format, &gran, group)?;
        let m = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        let bins = 61;
        let h = histogram(&w, bins, -m, m);
        let width = 2.0 * m / bins as f32;
        let peak = *h.iter().max().unwrap_or(&1) as f64;
        let hist: Vec<(f64, f64)> = h
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0) // empty bins have no place on a log axis
            .map(|(i, &c)| ((-m + (i as f32 + 0.5) * width) as f64, c as f64))
            .collect();
        scene.push(Item::new(
            "histogram",
            format!(
                "Weights of {title}, with the levels one block of {} can take",
                a.name
            ),
            prov.clone(),
            Primitive::Plot(Plot {
                x_label: "weight".into(),
                y_label: "count".into(),
                x_log: false,
                y_log: true,
                series: vec![
                    Series {
                        name: "real weights".into(),
                        points: hist,
                        line: true,
                        role: Role::Weight,
                    },
                    Series {
                        name: format!("{} levels of the first block ({})", a.grid.len(), a.name),
                        points: a.grid.iter().map(|&g| (g as f64, peak)).collect(),
                        line: false,
                        role: Role::Highlight,
                    },
                ],
            }),
        ));
        let (er, ec) = (rows.min(32), cols.min(64));
        let err: Vec<f32> = (0..er)
            .flat_map(|r| (0..ec).map(move |c| (r, c)))
            .map(|(r, c)| a.deq[r * cols + c] - w[r * cols + c])
            .collect();
        let em = err.iter().fold(1e-9f32, |m, x| m.max(x.abs())) as f64;
        scene.push(Item::new(
            "error",
            format!("Error ŵ − w, rows 0–{} × columns 0–{}", er - 1, ec - 1),
            Provenance::computed(format!("{} applied to the model's weights", a.name)),
            Primitive::Heatmap(Heatmap {
                rows: (0..er).map(|r| r.to_string()).collect(),
                cols: (0..ec).map(|c| c.to_string()).collect(),
                values: err,
                scale: ColorScale::Diverging {
                    min: -em,
                    center: 0.0,
                    max: em,
                },
                selected: None,
                row_axis: "output row".into(),
                col_axis: "input column".into(),
            }),
        ));
        let std = (w.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        let e = rmse(&w, &a.deq);
        let mut rowsv = vec![
            vec!["format".into(), a.name.clone()],
            vec!["bits per weight, scales included".into(), sig(a.bits)],
            vec!["RMSE".into(), sig(e)],
            vec!["RMSE / RMS of the weights".into(), sig(e / std)],
            vec![
                "largest |error|".into(),
                sig(crate::quantize::max_abs_err(&w, &a.deq)),
            ],
        ];
        if v.flag(&self.c.outlier) {
            let rest = rmse(&w[1..], &a.deq[1..]);
            rowsv.push(vec!["RMSE on the other weights".into(), sig(rest)]);
        }
        scene.push(table(
            "numbers",
            "The cost of this format on this matrix",
            Provenance::computed(format!("{} on {title}", a.name)),
            &["", "value"],
            rowsv,
        ));
        if !notes.is_empty() {
            scene.push(styled(
                "notes",
                "Adjusted",
                Provenance::computed("the lab's input checks"),
                notes.join("\n"),
                TextStyle::Warning,
            ));
        }
        Ok(scene)
    }

    fn formats(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let (rows, cols, w, title) = self.matrix(v)?;
        let (gran, group, _) = self.settings(v, cols);
        let key: TableKey = (
            v.usize(&self.c.layer),
            v.text(&self.c.matrix).to_string(),
            v.flag(&self.c.outlier),
            gran.clone(),
            group,
        );
        // Fourteen quantizations of the matrix: a background job with progress.
        let work = move |p: &Progress| -> Result<FormatsTable> {
            let names: Vec<&str> = Quant::ALL
                .iter()
                .map(|q| q.name())
                .chain(OWN.iter().copied())
                .collect();
            let mut out: Vec<Applied> = Vec::new();
            for (i, f) in names.iter().enumerate() {
                p.check()?;
                p.set(i as u64, names.len() as u64, format!("quantizing to {f}"));
                out.push(apply(&w, rows, cols, f, &gran, group)?);
            }
            out.sort_by(|a, b| b.bits.total_cmp(&a.bits));
            let rows_t = out
                .iter()
                .map(|a| vec![a.name.clone(), sig(a.bits), sig(rmse(&w, &a.deq))])
                .collect();
            let bars_v = out
                .iter()
                .map(|a| {
                    let role = if a.name.starts_with(['Q', 'F']) {
                        Role::Weight
                    } else {
                        Role::Highlight
                    };
                    bar(
                        format!("{} ({} b/w)", a.name, sig(a.bits)),
                        rmse(&w, &a.deq),
                        role,
                    )
                })
                .collect();
            Ok((rows_t, bars_v))
        };
        if let State::Running(p) = self.table.get(&key, work)? {
            scene.push(progress_item(
                "progress",
                "Quantizing the matrix into every format",
                p,
            ));
            return Ok(scene);
        }
        let (rows_t, bars_v) = self.table.ready(&key).expect("ready");
        let method = Provenance::computed(format!(
            "candle's GGML quantizers and lav's own INT/NF4 on {title}"
        ));
        scene.push(bars(
            "rmse",
            &format!("RMSE on {title}, most bits first"),
            method.clone(),
            "RMSE",
            bars_v.clone(),
        ));
        scene.push(table(
            "formats",
            "Every format on this matrix",
            method,
            &["format", "bits / weight", "RMSE"],
            rows_t.clone(),
        ));
        Ok(scene)
    }

    fn model(&mut self, v: &Values) -> Result<Scene> {
        let prov = self.prov();
        let mut scene = Scene::new();
        let fmt = v.text(&self.c.model_format).to_string();
        let q = Quant::parse(&fmt).filter(|_| fmt.starts_with(['Q', 'F']));
        // GGML types ignore the scale settings, so changing them reruns nothing.
        let (gran, group) = match q {
            Some(_) => (String::new(), 0),
            None => {
                let (g, n, _) = self.settings(v, self.model.config.hidden_size);
                (g, n)
            }
        };
        let label = match q {
            Some(q) => q.name().to_string(),
            None if OWN.contains(&fmt.as_str()) => own_label(&fmt, &gran, group),
            None => return Err(LabError::Input(format!("unknown format `{fmt}`"))),
        };
        let prompt = v.text(&self.c.prompt).to_string();
        let ids = self.tokenizer.encode(&prompt).lab()?;
        if ids.is_empty() {
            return Err(LabError::Input(
                "the prompt is empty: type a few words".into(),
            ));
        }
        let held = self.held.clone();
        let key = (fmt.clone(), gran.clone(), group, prompt.clone());
        let (model, reference, name) = (
            self.model.clone(),
            self.reference.clone(),
            self.model_name.clone(),
        );
        let lbl = label.clone();
        let vocab = self.model.config.vocab_size;
        let work = move |p: &Progress| -> Result<Compared> {
            let cached = reference.lock().expect("reference").clone();
            let r = match cached.filter(|r| r.label == format!("{name}|{:?}", ids)) {
                Some(r) => r,
                None => {
                    p.set(0, 3, "scoring the stored model");
                    let r = Arc::new(score(&model, format!("{name}|{:?}", ids), &held, &ids)?);
                    *reference.lock().expect("reference") = Some(r.clone());
                    r
                }
            };
            p.check()?;
            let total = 4 * model.layers.len() + 1;
            let tick = |d: usize, t: usize| {
                p.set(
                    d as u64,
                    t as u64 + 1,
                    format!("re-quantizing to {lbl}: matrix {d} of {total}"),
                );
                !p.cancelled()
            };
            let requant = match q {
                Some(q) => model.requantized(q, tick).lab()?,
                None => model
                    .with_f32_weights(
                        |rows, cols, w| {
                            apply(w, rows, cols, &fmt, &gran, group.min(cols))
                                .map(|a| a.deq)
                                .unwrap_or_else(|_| w.to_vec())
                        },
                        tick,
                    )
                    .lab()?,
            };
            p.set(
                total as u64,
                total as u64 + 1,
                format!("scoring the {lbl} model"),
            );
            let mut s = score(&requant, format!("{lbl}|{:?}", ids), &held, &ids)?;
            if q.is_none() {
                // Computed in f32; report what the format itself would store.
                let (bits, params) = own_storage(&model, &fmt, &gran, group);
                s.bits_per_weight = bits / params;
                s.bytes = (bits / 8.0) as usize;
            }
            Ok(Compared {
                kl_next: kl_divergence(&r.next_logits, &s.next_logits),
                kl_held: mean_kl(&r.heldout_logits, &s.heldout_logits, vocab),
                top_stored: top_tokens(&r.next_logits, 8),
                top_quant: top_tokens(&s.next_logits, 8),
                stored: r,
                quant: s,
            })
        };
        if let State::Running(p) = self.job.get(&key, work)? {
            scene.push(progress_item(
                "progress",
                &format!("Re-quantizing the whole model to {label}"),
                p,
            ));
            return Ok(scene);
        }
        let c = self.job.ready(&key).expect("ready");
        let (r, s) = (&c.stored, &c.quant);
        let computed_in = match q {
            Some(_) => "candle's quantized kernels (lav's for Q8_0 and Q4_1)".to_string(),
            None => format!(
                "f32 copies of the {label} values (candle's GEMM); bits and bytes are what {label} would store"
            ),
        };
        let stored = self.model.stored_formats();
        let what_if = Provenance::what_if(format!(
            "every matrix re-quantized to {label} on this machine; the model ships as {stored}"
        ));
        let (kl_next, kl_held) = (c.kl_next, c.kl_held);
        scene.push(table(
            "consequences",
            &format!(
                "Stored model vs re-quantized to {}, measured on this machine",
                label
            ),
            what_if.clone(),
            &["", &format!("stored ({stored})"), label.as_str()],
            vec![
                vec![
                    "bits per weight (matrices, scales included)".into(),
                    sig(r.bits_per_weight),
                    sig(s.bits_per_weight),
                ],
                vec![
                    "matrix bytes".into(),
                    format!("{:.1} MiB", r.bytes as f64 / 1048576.0),
                    format!("{:.1} MiB", s.bytes as f64 / 1048576.0),
                ],
                vec![
                    "perplexity on the held text".into(),
                    sig(r.perplexity),
                    sig(s.perplexity),
                ],
                vec![
                    "KL(stored ‖ this), mean over the held text (nats)".into(),
                    "0".into(),
                    sig(kl_held),
                ],
                vec![
                    "KL on the prompt's next token (nats)".into(),
                    "0".into(),
                    sig(kl_next),
                ],
                vec![
                    "computed with".into(),
                    "lav's Q4_1 and Q8_0 kernels".into(),
                    computed_in,
                ],
                vec![
                    "decode speed (tokens/s)".into(),
                    sig(r.decode_tok_s),
                    sig(s.decode_tok_s),
                ],
            ],
        ));
        let top = |t: &[(u32, f32)], role: Role| -> Vec<Bar> {
            t.iter()
                .map(|&(i, p)| bar(show_bytes(&self.tokenizer.token_bytes(i)), p as f64, role))
                .collect()
        };
        scene.push(bars(
            "next_stored",
            "Next token, stored model",
            prov.clone(),
            "probability",
            top(&c.top_stored, Role::Vocab),
        ));
        scene.push(bars(
            "next_quant",
            &format!("Next token, {}", label),
            what_if.clone(),
            "probability",
            top(&c.top_quant, Role::WhatIf),
        ));
        let (a, b) = (
            self.tokenizer.decode(&r.greedy).lab()?,
            self.tokenizer.decode(&s.greedy).lab()?,
        );
        scene.push(text(
            "greedy_stored",
            "Greedy continuation, stored model",
            prov.clone(),
            format!("{prompt}{a}"),
        ));
        scene.push(text(
            "greedy_quant",
            &format!("Greedy continuation, {}", label),
            what_if,
            format!("{prompt}{b}"),
        ));
        if q.is_some_and(|q| q.block() == 256) && !self.model.config.hidden_size.is_multiple_of(256)
        {
            scene.push(text(
                "padding",
                "A note on k-quants here",
                Provenance::computed("lav's re-quantizer"),
                format!(
                    "k-quants work in super-blocks of 256; this model's {}-wide rows are padded with zeros to {} for them (the padding is stored, so the bytes above include it). llama.cpp instead keeps such tensors in another type.",
                    self.model.config.hidden_size,
                    self.model.config.hidden_size.div_ceil(256) * 256
                ),
            ));
        }
        Ok(scene)
    }

    fn background(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let name = v.text(&self.c.gguf).to_string();
        scene.push(table(
            "decoder",
            &format!("Reading the GGUF type name {name:?}"),
            Provenance::computed("llama.cpp's naming scheme; bits from candle's type table"),
            &["part", "meaning"],
            decode_gguf_name(&name)?,
        ));
        let facts = published::facts(&self.dir, "quantization")?;
        scene.push(published::table(
            "methods",
            "Methods and figures from the literature",
            &facts,
        ));
        Ok(scene)
    }
}

/// How the project's own formats are named on screen.
fn own_label(format: &str, granularity: &str, group: usize) -> String {
    if format == "NF4" {
        format!("NF4, blocks of {group}")
    } else if granularity == "group" {
        format!("{format}, groups of {group}")
    } else {
        format!("{format}, {granularity}")
    }
}

/// Storage of the model's matrices in one of the project's own formats: (total bits,
/// parameters), from each matrix's shape and the format's bits per weight.
fn own_storage(model: &Llama, fmt: &str, gran: &str, group: usize) -> (f64, f64) {
    let c = &model.config;
    let (h, qd, kd, i) = (
        c.hidden_size,
        c.num_heads * c.head_dim,
        c.num_kv_heads * c.head_dim,
        c.intermediate_size,
    );
    let per_layer = [(qd + 2 * kd, h), (h, qd), (2 * i, h), (h, i)];
    let shapes = per_layer
        .iter()
        .cycle()
        .take(4 * c.num_layers)
        .copied()
        .chain([(c.vocab_size, h)]);
    let (mut bits, mut params) = (0.0, 0.0);
    for (rows, cols) in shapes {
        let b = if fmt == "NF4" {
            nf4_bits_per_weight(group.min(cols))
        } else {
            own(fmt, gran, group.min(cols)).map_or(32.0, |q| q.bits_per_weight(cols, rows))
        };
        let n = (rows * cols) as f64;
        bits += b * n;
        params += n;
    }
    (bits, params)
}

/// Explains a llama.cpp type name such as `Q4_K_M`, `Q8_0` or `F16`, part by part.
pub fn decode_gguf_name(name: &str) -> Result<Vec<Vec<String>>> {
    let up = name.trim().to_ascii_uppercase();
    let bad = || {
        LabError::Input(format!(
            "`{name}` is not a GGUF type name: try Q4_K_M, Q5_K_S, Q8_0, Q4_1 or F16"
        ))
    };
    let parts: Vec<&str> = up.split('_').collect();
    let mut rows = Vec::new();
    let base = match parts.as_slice() {
        [f] if *f == "F16" || *f == "BF16" || *f == "F32" => {
            rows.push(vec![
                f.to_string(),
                "plain floating point, no blocks or scales".into(),
            ]);
            return Ok(rows);
        }
        [q, kind, ..] if q.starts_with('Q') => {
            let bits: u32 = q[1..].parse().map_err(|_| bad())?;
            rows.push(vec![q.to_string(), format!("{bits}-bit codes")]);
            match *kind {
                "0" => rows.push(vec!["0".into(), "blocks of 32 with one scale: ŵ = d·q (symmetric)".into()]),
                "1" => rows.push(vec!["1".into(), "blocks of 32 with a scale and a minimum: ŵ = d·q + m (asymmetric)".into()]),
                "K" => rows.push(vec!["K".into(), "k-quant: super-blocks of 256 split into sub-blocks, whose scales are themselves quantized".into()]),
                _ => return Err(bad()),
            }
            format!("{q}_{kind}")
        }
        _ => return Err(bad()),
    };
    match parts.get(2).copied() {
        None => {}
        Some(size @ ("S" | "M" | "L")) => {
            let word = match size {
                "S" => "small",
                "M" => "medium",
                _ => "large",
            };
            rows.push(vec![size.into(), format!("{word} mix: llama.cpp's recipe keeps some tensors (e.g. attention V, parts of the FFN down projection, the output head) at a higher type; larger mixes keep more")]);
        }
        Some(_) => return Err(bad()),
    }
    match Quant::parse(&base) {
        Some(q) => rows.push(vec![
            "base type size".into(),
            format!(
                "{} bits/weight for {} itself (block of {}, scales included)",
                sig(q.bits_per_weight()),
                q.name(),
                q.block()
            ),
        ]),
        None => rows.push(vec![
            "base type size".into(),
            format!("{base} is not one of the types lav can build; see llama.cpp"),
        ]),
    }
    Ok(rows)
}
