//! tensor-cores: D = A × B + C on a 4 × 4 tile of the model's real activations and
//! weights, with low-precision inputs and an FP32 or FP16 accumulator, and the error
//! of each on the model's real dot products; every number format bit by bit (the
//! model's weights rounded into each, with the error); alignment on real shapes; and
//! the generations, with each GPU's per-precision peaks from the table.

use super::{Context, commas, gpu_control, selected, sim};
use lav_gpusim::Table;
use lav_gpusim::formats::{self, Format};
use lav_gpusim::mma;
use lav_lab::items::{ModelSource, bar, bars, chip, strip, table, text};
use lav_lab::{Control, Lab, LabState, Result, ResultExt, Step, Steps, Values, published};
use lav_model::{Capture, Logits};
use lav_scene::*;

/// Weights sampled for the format errors: enough for stable statistics, few enough
/// that every format rounds them at open in a few milliseconds.
const SAMPLE: usize = 65_536;
/// Query rows whose dot products the accumulator comparison averages over.
const DOTS: usize = 64;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let t = Table::load(&ctx.dir).lab()?;
    let model = ctx.loader.model().lab()?;
    let tok = ctx.loader.tokenizer().lab()?;
    let source = ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if());
    let (rows, cols, w) = model.layers[0].wqkv.to_f32().ok_or_else(|| {
        lav_lab::LabError::Input(
            "tensor-cores reads the stored weights: open it without --weights".into(),
        )
    })?;
    // The real input of layer 0's Q/K/V projection: the RMS-normed embedding of a
    // short prompt, captured from the model's own forward pass.
    let ids = tok.encode("Tensor cores multiply small tiles").lab()?;
    let mut cap = Capture::new();
    model
        .forward(&ids, &mut model.new_cache(), Logits::Last, Some(&mut cap))
        .lab()?;
    let x: Vec<f32> = cap.layers[0]
        .attn_norm
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .lab()?;
    let names: Vec<&str> = formats::ALL.iter().map(|f| f.name).collect();
    let c = Controls {
        input: Control::choice(
            "input",
            "Input format",
            &["FP16", "BF16", "FP8 E4M3", "FP8 E5M2"],
            "FP16",
        ),
        acc: Control::choice("acc", "Accumulator", &["FP32", "FP16"], "FP32"),
        format: Control::choice("format", "Format", &names, "BF16"),
        weight: Control::slider("weight", "Weight index", 0.0, 575.0, 1.0, 7.0),
        dim: Control::choice(
            "dim",
            "Dimension",
            &[
                "49152 (SmolLM2 vocab)",
                "50257 (GPT-2 vocab)",
                "50304 (nanoGPT, padded)",
                "576 (SmolLM2 hidden)",
                "1000",
                "4095",
                "4096",
            ],
            "50257 (GPT-2 vocab)",
        ),
        dtype: Control::choice("dtype", "Data type", &["FP16", "INT8"], "FP16"),
        gpu: gpu_control(&t, "H100 SXM 80GB"),
    };
    let steps = vec![
        Step::new("mma", &[&c.input, &c.acc, &c.gpu], Tensor::mma),
        Step::new("formats", &[&c.format, &c.weight], Tensor::formats),
        Step::new("alignment", &[&c.dim, &c.dtype], Tensor::alignment),
        Step::new("generations", &[], Tensor::generations),
    ];
    let sample: Vec<f32> = w.iter().copied().take(SAMPLE).collect();
    let errors = formats::ALL
        .iter()
        .map(|f| formats::error(f, &sample))
        .collect();
    Steps::lab(
        Tensor {
            c,
            facts: published::facts(&ctx.dir, "tensor-cores")?,
            t,
            hidden: cols,
            rows,
            w,
            x,
            tokens: ids.len(),
            vocab: model.config.vocab_size,
            source,
            errors,
        },
        steps,
    )
}

struct Controls {
    input: Control,
    acc: Control,
    format: Control,
    weight: Control,
    dim: Control,
    dtype: Control,
    gpu: Control,
}

struct Tensor {
    c: Controls,
    facts: Vec<published::Fact>,
    t: Table,
    /// Layer 0's fused Q/K/V weight, `rows × hidden`, dequantized from the GGUF.
    rows: usize,
    hidden: usize,
    w: Vec<f32>,
    /// Layer 0's normed input, `tokens × hidden`.
    x: Vec<f32>,
    tokens: usize,
    vocab: usize,
    source: ModelSource,
    /// Each format's error on the first [`SAMPLE`] weights, in [`formats::ALL`] order.
    errors: Vec<formats::Error>,
}

impl LabState for Tensor {}

fn format(name: &str) -> Format {
    formats::ALL
        .iter()
        .copied()
        .find(|f| f.name == name)
        .unwrap_or(formats::FP16)
}

impl Tensor {
    fn prov(&self, what: &str) -> Provenance {
        self.source.prov(format!("{}: {what}", self.source))
    }

    fn mma(&mut self, v: &Values) -> Result<Scene> {
        let input = format(v.text(&self.c.input));
        let acc = format(v.text(&self.c.acc));
        let h = self.hidden;
        // A: 4 tokens × 4 channels of the real input; B: 4 channels × 4 output rows of
        // the real weight (transposed so B is k × n); C: zeros.
        let m = self.tokens.min(4);
        let a: Vec<f32> = (0..m).flat_map(|i| self.x[i * h..][..4].to_vec()).collect();
        let b: Vec<f32> = (0..4)
            .flat_map(|k| (0..4).map(move |j| (j, k)))
            .map(|(j, k)| self.w[j * h + k])
            .collect();
        let c0 = vec![0.0f32; m * 4];
        let d = mma::mma(&a, &b, &c0, (m, 4, 4), &input, &acc);
        let exact = mma::mma(&a, &b, &c0, (m, 4, 4), &formats::FP32, &formats::FP32);
        let mut s = Scene::new();
        s.push(table(
            "tile",
            &format!(
                "D = A × B + C on a {m}×4×4 tile: {} inputs, {} accumulator",
                input.name, acc.name
            ),
            self.prov(
                "layer 0's normed input (A) and Q/K/V weights (B), rounded by lav's format encoder",
            ),
            &[
                "row",
                "D[r][0]",
                "D[r][1]",
                "D[r][2]",
                "D[r][3]",
                "FP32 D[r][0]",
            ],
            (0..m)
                .map(|r| {
                    let mut row = vec![format!("token {r}")];
                    row.extend((0..4).map(|j| format!("{:.6}", d.get(r, j))));
                    row.push(format!("{:.6}", exact.get(r, 0)));
                    row
                })
                .collect(),
        ));
        // The full-length dot products: every query row of layer 0 against token 0.
        let x0 = &self.x[..h];
        let mut rows = Vec::new();
        for fa in [
            (input, formats::FP32),
            (input, formats::FP16),
            (formats::FP32, formats::FP32),
        ] {
            let (mut sum, mut worst) = (0.0f64, 0.0f64);
            for r in 0..DOTS.min(self.rows) {
                let wr = &self.w[r * h..][..h];
                let e = (mma::dot(wr, x0, &fa.0, &fa.1) - mma::dot_exact(wr, x0)).abs();
                sum += e;
                worst = worst.max(e);
            }
            let n = DOTS.min(self.rows) as f64;
            let hl = fa == (input, acc);
            rows.push(vec![
                format!(
                    "{} in, {} sum{}",
                    fa.0.name,
                    fa.1.name,
                    if hl { " (chosen)" } else { "" }
                ),
                format!("{:.2e}", sum / n),
                format!("{worst:.2e}"),
            ]);
        }
        s.push(table(
            "dots",
            &format!("Error of {DOTS} real {h}-long dot products (layer 0 query rows · token 0), against f64"),
            self.prov("the Q/K/V weights and normed input, summed in order with rounding after every add"),
            &["arithmetic", "mean |error|", "largest |error|"],
            rows,
        ));
        let g = selected(&self.t, &self.c.gpu, v);
        let mut peaks = vec![
            bar("FP32 (CUDA cores)", g.fp32_tflops, Role::Muted),
            bar("TF32 tensor", g.tf32_tflops, Role::Weight),
            bar("BF16/FP16 tensor", g.bf16_tflops, Role::Weight),
        ];
        if let Some(f8) = g.fp8_tflops {
            peaks.push(bar("FP8 tensor", f8, Role::Weight));
        }
        if let Some(f4) = g.fp4_tflops {
            peaks.push(bar("FP4 tensor", f4, Role::Weight));
        }
        s.push(bars(
            "peaks",
            &format!(
                "{}: dense peaks by precision (BF16 is {:.0}× FP32)",
                g.label(),
                g.bf16_tflops / g.fp32_tflops
            ),
            sim(g, "per-precision dense peaks"),
            "TFLOP/s",
            peaks,
        ));
        s.push(text(
            "teaching",
            "The teaching model",
            Provenance::computed("results per cycle: a CUDA core 1, a Tensor Core one 4×4 tile"),
            format!(
                "A CUDA core makes 1 result per cycle; a Tensor Core makes {} (a 4×4 tile) in the teaching model. The {}×{}×{} tile above is {} multiply-adds.",
                mma::results_per_cycle(4),
                m,
                4,
                4,
                m * 16
            ),
        ));
        s.push(published::table(
            "facts",
            "Published",
            &published::for_step(&self.facts, "mma"),
        ));
        Ok(s)
    }

    fn formats(&mut self, v: &Values) -> Result<Scene> {
        let f = format(v.text(&self.c.format));
        let wi = v.usize(&self.c.weight).min(self.w.len() - 1);
        let x = self.w[wi];
        let code = f.encode(x);
        let fl = f.fields(code);
        let mut chips = vec![chip(format!("{}", fl.sign), None, Role::Highlight, false)];
        for i in (0..f.exponent_bits).rev() {
            chips.push(chip(
                format!("{}", fl.exponent >> i & 1),
                None,
                Role::Attention,
                false,
            ));
        }
        for i in (0..f.mantissa_bits).rev() {
            chips.push(chip(
                format!("{}", fl.mantissa >> i & 1),
                None,
                Role::Weight,
                false,
            ));
        }
        let back = f.decode(code);
        let mut s = Scene::new();
        s.push(strip(
            "bits",
            &format!(
                "Weight {wi} of layer 0's Q/K/V matrix, {x:e}, in {}: sign | {} exponent | {} mantissa bits",
                f.name, f.exponent_bits, f.mantissa_bits
            ),
            self.prov("a real weight, encoded bit-exactly by lav's format encoder"),
            chips,
        ));
        s.push(text(
            "value",
            "Read back",
            Provenance::computed("decode of the code above"),
            format!(
                "code {code:#x} = {back:e}; error {:.3e} ({:.3}% of the weight)",
                (back - x as f64).abs(),
                100.0 * (back - x as f64).abs() / (x as f64).abs().max(f64::MIN_POSITIVE)
            ),
        ));
        let rows = formats::ALL
            .iter()
            .zip(&self.errors)
            .map(|(g, e)| {
                vec![
                    g.name.to_string(),
                    format!("1/{}/{}", g.exponent_bits, g.mantissa_bits),
                    format_max(g.max()),
                    format!("{:.1e}", g.min_positive()),
                    format!("{:.2e}", e.mean_rel),
                    format!("{:.2e}", e.max_abs),
                    commas(e.flushed as u64),
                ]
            })
            .collect();
        s.push(table(
            "formats",
            &format!(
                "Every format on the first {} weights of layer 0's Q/K/V matrix",
                commas(SAMPLE as u64)
            ),
            self.prov("the real weights rounded into each format (round to nearest, ties to even)"),
            &[
                "format",
                "sign/exp/mantissa",
                "largest value",
                "smallest value",
                "mean relative error",
                "largest error",
                "flushed to 0",
            ],
            rows,
        ));
        s.push(published::table(
            "facts",
            "Published",
            &published::for_step(&self.facts, "formats"),
        ));
        Ok(s)
    }

    fn alignment(&mut self, v: &Values) -> Result<Scene> {
        let dim: usize = v
            .text(&self.c.dim)
            .split_whitespace()
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(50257);
        let unit = if v.text(&self.c.dtype) == "INT8" {
            16
        } else {
            8
        };
        let mut s = Scene::new();
        let rows = [unit, 64]
            .iter()
            .map(|&m| {
                let padded = dim.div_ceil(m) * m;
                vec![
                    format!("multiple of {m}"),
                    if dim.is_multiple_of(m) {
                        "yes".into()
                    } else {
                        "no".into()
                    },
                    commas(padded as u64),
                    format!("{:.2}%", 100.0 * (padded - dim) as f64 / dim as f64),
                ]
            })
            .collect();
        s.push(table(
            "align",
            &format!(
                "{} as a {} matrix dimension",
                commas(dim as u64),
                v.text(&self.c.dtype)
            ),
            Provenance::computed("divisibility and the padding to the next multiple"),
            &["rule", "holds", "padded size", "extra work"],
            rows,
        ));
        // Tile the dimension in MMA k-steps of `unit`: a ragged last step is the
        // misalignment penalty at its smallest (real kernels may fall back further).
        let steps = dim.div_ceil(unit);
        let used = dim as f64 / (steps * unit) as f64;
        s.push(bars(
            "tiles",
            &format!(
                "{} MMA steps of {unit}: lanes doing real work",
                commas(steps as u64)
            ),
            Provenance::computed("the dimension cut into tensor-core steps"),
            "% of tile lanes used",
            vec![
                bar(
                    "this dimension",
                    100.0 * used,
                    if used < 1.0 {
                        Role::WhatIf
                    } else {
                        Role::Weight
                    },
                ),
                bar("aligned", 100.0, Role::Muted),
            ],
        ));
        s.push(text(
            "model",
            "The model's own shape",
            self.prov("the vocabulary size from the GGUF"),
            format!(
                "SmolLM2's vocabulary is {} = {} × 64: {}",
                commas(self.vocab as u64),
                self.vocab / 64,
                if self.vocab.is_multiple_of(64) {
                    "no padding needed"
                } else {
                    "it would need padding"
                }
            ),
        ));
        s.push(published::table(
            "facts",
            "Published",
            &published::for_step(&self.facts, "alignment"),
        ));
        Ok(s)
    }

    fn generations(&mut self, _: &Values) -> Result<Scene> {
        let mut s = Scene::new();
        let facts = published::for_step(&self.facts, "generations");
        s.push(Item::new(
            "timeline",
            "Tensor Core generations",
            Provenance::computed("the published facts below, drawn in order"),
            Primitive::Timeline(Timeline {
                lanes: vec!["generation".into()],
                spans: facts
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Span {
                        lane: 0,
                        start: i as f64,
                        end: i as f64 + 0.9,
                        label: format!("{}: {}", f.label, f.value),
                        role: Role::Weight,
                    })
                    .collect(),
                unit: "generation".into(),
            }),
        ));
        let rows = self
            .t
            .gpu
            .iter()
            .map(|g| {
                let opt = |x: Option<f64>| x.map_or("none".to_string(), |f| format!("{f}"));
                vec![
                    g.label(),
                    g.arch.clone(),
                    format!("{}", g.tf32_tflops),
                    format!("{}", g.bf16_tflops),
                    opt(g.fp8_tflops),
                    opt(g.fp4_tflops),
                    commas(g.tensor_cores(&self.t.common) as u64),
                ]
            })
            .collect();
        s.push(table(
            "peaks",
            "Dense tensor peaks by GPU (TFLOP/s)",
            Provenance::simulated("the hardware table's rows"),
            &[
                "GPU",
                "architecture",
                "TF32",
                "BF16",
                "FP8",
                "FP4",
                "Tensor Cores",
            ],
            rows,
        ));
        s.push(published::table("facts", "Published", &facts));
        Ok(s)
    }
}

fn format_max(m: f64) -> String {
    if m >= 1e6 {
        format!("{m:.2e}")
    } else {
        commas(m as u64)
    }
}
