//! lav's own llama forward pass on candle tensors.
//!
//! RMSNorm → attention (RoPE, grouped-query, causal softmax) → residual → RMSNorm →
//! SwiGLU MLP → residual, 30 times, then a final RMSNorm and the tied embedding as the
//! output head. Matrix products on the default path run lav's block kernels on the
//! stored quantized weights ([`crate::matmul`]); everything else is candle ops.

use crate::capture::{Capture, LayerCapture};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::kv_cache::KvCache;
use crate::matmul::{QData, QMatrix};
use crate::ops;
use crate::quant::{BlockQ4_1, BlockQ8_0, blocks_from_bytes, quantize_weights_q8_0};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use serde::Serialize;
use std::path::Path;

/// Hyper-parameters read from the GGUF metadata.
#[derive(Clone, Debug, Serialize)]
pub struct LlamaConfig {
    pub name: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f32,
    pub tied_embeddings: bool,
}

/// Which numbers the matrix products use. `Stored` is the file's own weights with
/// llama.cpp's arithmetic; the others re-quantize and so change the model's answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
pub enum WeightFormat {
    /// The weights as stored in the GGUF (Q4_1, embeddings Q8_0): the default.
    #[default]
    Stored,
    /// Every matrix re-quantized to Q8_0 (lav's kernels). Changes answers.
    Q8_0,
    /// Every matrix re-quantized to another GGML type (candle's quantizers and
    /// kernels). Changes answers.
    Requant(Quant),
    /// Every matrix dequantized to f32 (candle's GEMM). Changes answers.
    F32,
}

impl WeightFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "q4_1" | "stored" => Some(Self::Stored),
            "q8_0" => Some(Self::Q8_0),
            "f32" => Some(Self::F32),
            _ => Quant::parse(s).map(Self::from_quant),
        }
    }

    /// The format that re-quantizes every matrix to `q` (Q8_0 on lav's kernels).
    pub fn from_quant(q: Quant) -> Self {
        match q {
            Quant::Q8_0 => Self::Q8_0,
            q => Self::Requant(q),
        }
    }

    pub fn label(self) -> String {
        match self {
            Self::Stored => "stored (Q4_1 + Q8_0 embeddings), llama.cpp arithmetic".into(),
            Self::Q8_0 => "re-quantized to Q8_0 (changes the model's answers)".into(),
            Self::Requant(q) => {
                format!("re-quantized to {} (changes the model's answers)", q.name())
            }
            Self::F32 => "dequantized to f32 (changes the model's answers)".into(),
        }
    }
}

/// A GGML block type lav can re-quantize weights into, with candle's quantizers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Quant {
    F16,
    Q8_0,
    Q6K,
    Q5K,
    Q4K,
    Q4_1,
    Q4_0,
    Q3K,
    Q2K,
}

impl Quant {
    /// Every type, most bits first.
    pub const ALL: [Quant; 9] = [
        Quant::F16,
        Quant::Q8_0,
        Quant::Q6K,
        Quant::Q5K,
        Quant::Q4_1,
        Quant::Q4K,
        Quant::Q4_0,
        Quant::Q3K,
        Quant::Q2K,
    ];

    pub fn ggml(self) -> GgmlDType {
        match self {
            Quant::F16 => GgmlDType::F16,
            Quant::Q8_0 => GgmlDType::Q8_0,
            Quant::Q6K => GgmlDType::Q6K,
            Quant::Q5K => GgmlDType::Q5K,
            Quant::Q4K => GgmlDType::Q4K,
            Quant::Q4_1 => GgmlDType::Q4_1,
            Quant::Q4_0 => GgmlDType::Q4_0,
            Quant::Q3K => GgmlDType::Q3K,
            Quant::Q2K => GgmlDType::Q2K,
        }
    }

    /// GGML's name: `Q4_K`, `Q8_0`, `F16`.
    pub fn name(self) -> &'static str {
        ggml_name(self.ggml())
    }

    /// `q4_k`, `Q4K`, `q4k` and `Q4_K` all name Q4_K.
    pub fn parse(s: &str) -> Option<Quant> {
        let key = s.to_ascii_lowercase().replace('_', "");
        Quant::ALL
            .into_iter()
            .find(|q| q.name().to_ascii_lowercase().replace('_', "") == key)
    }

    /// Values per block (32, or 256 for the k-quants' super-blocks).
    pub fn block(self) -> usize {
        self.ggml().block_size()
    }

    /// Storage bits per weight, scales and minimums included: block bytes × 8 / block
    /// size, from candle's own type table.
    pub fn bits_per_weight(self) -> f64 {
        let t = self.ggml();
        t.type_size() as f64 * 8.0 / t.block_size() as f64
    }
}

/// Quantizes a row-major `rows × cols` matrix to `q`. Rows whose length is not a
/// multiple of the block are padded with zeros to the next multiple (k-quants need
/// 256; SmolLM2's 576-wide rows become 768): a padded sub-block is all zeros, so it
/// changes neither the real values' scales nor their codes. llama.cpp instead falls
/// back to another type for such tensors. Returns the tensor and the padded width.
pub fn quantize_matrix(w: &[f32], rows: usize, cols: usize, q: Quant) -> Result<(QTensor, usize)> {
    let block = q.block();
    let padded = cols.div_ceil(block) * block;
    let t = Tensor::from_vec(pad_rows(w, cols, padded), (rows, padded), &Device::Cpu)?;
    Ok((QTensor::quantize(&t, q.ggml())?, padded))
}

/// Row-major rows of width `cols` copied into rows of width `padded`, zero-filled.
fn pad_rows(x: &[f32], cols: usize, padded: usize) -> Vec<f32> {
    if padded == cols {
        return x.to_vec();
    }
    let mut p = vec![0f32; x.len() / cols * padded];
    for (dst, src) in p.chunks_exact_mut(padded).zip(x.chunks_exact(cols)) {
        dst[..cols].copy_from_slice(src);
    }
    p
}

/// `w` quantized to `q` and back: the values a re-quantized model computes with.
pub fn round_trip(w: &[f32], rows: usize, cols: usize, q: Quant) -> Result<Vec<f32>> {
    let (t, padded) = quantize_matrix(w, rows, cols, q)?;
    let d = t
        .dequantize(&Device::Cpu)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if padded == cols {
        return Ok(d);
    }
    Ok(d.chunks_exact(padded)
        .flat_map(|r| r[..cols].to_vec())
        .collect())
}

/// One weight matrix, `y = x Wᵀ`.
#[derive(Debug)]
pub enum Linear {
    /// lav's kernels on block-quantized weights.
    Blocks(QMatrix),
    /// candle's own quantized or float matmul (other formats, GPUs). `padded` is the
    /// stored row width when rows were zero-padded to whole blocks.
    Candle {
        m: QMatMul,
        dtype: GgmlDType,
        bytes: usize,
        cols: usize,
        padded: usize,
    },
}

impl Linear {
    /// `x` is `n × cols` row-major; returns `n × rows`.
    pub fn forward(&self, x: &[f32], n: usize) -> Result<Vec<f32>> {
        Ok(match self {
            Linear::Blocks(m) => m.matmul(x, n),
            Linear::Candle {
                m, cols, padded, ..
            } => {
                let t = Tensor::from_vec(pad_rows(x, *cols, *padded), (n, *padded), &Device::Cpu)?;
                m.forward(&t)?.flatten_all()?.to_vec1::<f32>()?
            }
        })
    }

    /// Storage type name and bytes, for the model card.
    pub fn storage(&self) -> (&'static str, usize) {
        match self {
            Linear::Blocks(m) => (m.ggml_type_name(), m.bytes()),
            Linear::Candle { dtype, bytes, .. } => (ggml_name(*dtype), *bytes),
        }
    }

    /// The matrix as floats (`rows`, `cols`, row-major values), from lav's blocks.
    pub fn to_f32(&self) -> Option<(usize, usize, Vec<f32>)> {
        match self {
            Linear::Blocks(m) => Some((m.rows, m.cols, m.to_f32())),
            Linear::Candle { .. } => None,
        }
    }

    /// This matrix re-quantized to `q` (Q8_0 on lav's kernels, the rest on candle's).
    pub fn requantized(&self, q: Quant) -> Result<Linear> {
        let (rows, cols, w) = self.to_f32().ok_or_else(|| {
            ModelError::Sampling(
                "only the stored model can be re-quantized: load it without --weights".into(),
            )
        })?;
        if q == Quant::Q8_0 {
            return Ok(Linear::Blocks(QMatrix {
                rows,
                cols,
                data: QData::Q8_0(quantize_weights_q8_0(&w)),
            }));
        }
        let (t, padded) = quantize_matrix(&w, rows, cols, q)?;
        if q == Quant::Q4_1 {
            // The stored type: lav's own kernels, as for the file's weights.
            let data = QData::Q4_1(blocks_from_bytes::<BlockQ4_1>(&t.data()?));
            return Ok(Linear::Blocks(QMatrix { rows, cols, data }));
        }
        Ok(Linear::Candle {
            dtype: t.dtype(),
            bytes: t.storage_size_in_bytes(),
            m: QMatMul::from_qtensor(t)?,
            cols,
            padded,
        })
    }
}

pub(crate) fn ggml_name(t: GgmlDType) -> &'static str {
    match t {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

pub struct Layer {
    pub attn_norm: Vec<f32>,
    /// Q, K and V projections stacked into one matrix (rows `[q | k | v]`), so one
    /// threaded pass reads the normed input once. Row values are the stored ones.
    pub wqkv: Linear,
    pub wo: Linear,
    pub ffn_norm: Vec<f32>,
    /// MLP gate and up projections stacked (rows `[gate | up]`).
    pub w_gate_up: Linear,
    pub w_down: Linear,
}

/// The model: weights plus the RoPE tables. Immutable once loaded; per-sequence state
/// lives in a [`KvCache`].
pub struct Llama {
    pub config: LlamaConfig,
    pub format: WeightFormat,
    /// Token embeddings in their stored format; rows are dequantized on lookup.
    pub embeddings: QMatrix,
    pub layers: Vec<Layer>,
    pub final_norm: Vec<f32>,
    pub lm_head: Linear,
    /// Raw GGUF tensor facts for the model card: (name, ggml type, elements, bytes).
    pub tensors: Vec<(String, &'static str, usize, usize)>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    device: Device,
}

/// Which positions get logits from a forward call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position (generation).
    Last,
    /// Every position of the call (scoring, labs).
    All,
}

impl Llama {
    pub fn load(path: &Path, format: WeightFormat) -> Result<Self> {
        let mut gguf = GgufFile::open(path)?;
        let arch = gguf.string("general.architecture")?;
        if arch != "llama" {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("architecture `{arch}`"),
            });
        }
        let hidden_size = gguf.u32("llama.embedding_length")? as usize;
        let num_heads = gguf.u32("llama.attention.head_count")? as usize;
        let num_kv_heads = if gguf.has("llama.attention.head_count_kv") {
            gguf.u32("llama.attention.head_count_kv")? as usize
        } else {
            num_heads
        };
        if num_heads == 0
            || num_kv_heads == 0
            || !num_heads.is_multiple_of(num_kv_heads)
            || !hidden_size.is_multiple_of(num_heads)
        {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                reason: format!(
                    "{num_heads} heads over {num_kv_heads} KV heads, width {hidden_size}"
                ),
            });
        }
        let head_dim = hidden_size / num_heads;
        let rope_theta = if gguf.has("llama.rope.freq_base") {
            gguf.f32("llama.rope.freq_base")?
        } else {
            10_000.0
        };
        let tied = !gguf.content.tensor_infos.contains_key("output.weight");
        let embd_info = gguf
            .content
            .tensor_infos
            .get("token_embd.weight")
            .ok_or_else(|| ModelError::Corrupt {
                path: path.to_path_buf(),
                reason: "tensor `token_embd.weight` is missing".into(),
            })?;
        let vocab_size = embd_info.shape.dims()[0];
        let config = LlamaConfig {
            name: gguf
                .string("general.name")
                .unwrap_or_else(|_| "llama".into()),
            vocab_size,
            hidden_size,
            intermediate_size: gguf.u32("llama.feed_forward_length")? as usize,
            num_layers: gguf.u32("llama.block_count")? as usize,
            num_heads,
            num_kv_heads,
            head_dim,
            context_length: gguf.u32("llama.context_length")? as usize,
            rope_theta,
            rms_norm_eps: gguf.f32("llama.attention.layer_norm_rms_epsilon")?,
            tied_embeddings: tied,
        };

        let mut tensors = Vec::new();
        let mut names: Vec<String> = gguf.content.tensor_infos.keys().cloned().collect();
        names.sort();
        for n in names {
            let info = &gguf.content.tensor_infos[&n];
            let elems = info.shape.elem_count();
            let bytes = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
            tensors.push((n.clone(), ggml_name(info.ggml_dtype), elems, bytes));
        }

        let device = Device::Cpu;
        let embd_q = gguf.tensor("token_embd.weight")?;
        let embeddings = to_blocks(&embd_q, path)?;
        let lm_head = if tied {
            linear(&embd_q, format, path)?
        } else {
            let q = gguf.tensor("output.weight")?;
            linear(&q, format, path)?
        };
        let vector = |gguf: &mut GgufFile, n: &str| -> Result<Vec<f32>> {
            let t = gguf.tensor(n)?.dequantize(&device)?;
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            if v.len() != hidden_size {
                return Err(ModelError::Corrupt {
                    path: path.to_path_buf(),
                    reason: format!("`{n}` has {} values, expected {hidden_size}", v.len()),
                });
            }
            Ok(v)
        };
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let mut get = |n: &str| gguf.tensor(&format!("blk.{i}.{n}.weight"));
            let (q, k, v) = (get("attn_q")?, get("attn_k")?, get("attn_v")?);
            let wqkv = linear(&stack_rows(&[q, k, v], path)?, format, path)?;
            let wo = linear(&get("attn_output")?, format, path)?;
            let (g, u) = (get("ffn_gate")?, get("ffn_up")?);
            let w_gate_up = linear(&stack_rows(&[g, u], path)?, format, path)?;
            let w_down = linear(&get("ffn_down")?, format, path)?;
            layers.push(Layer {
                attn_norm: vector(&mut gguf, &format!("blk.{i}.attn_norm.weight"))?,
                wqkv,
                wo,
                ffn_norm: vector(&mut gguf, &format!("blk.{i}.ffn_norm.weight"))?,
                w_gate_up,
                w_down,
            });
        }
        let final_norm = vector(&mut gguf, "output_norm.weight")?;
        let (cos, sin) = rope_tables(&config);
        Ok(Self {
            config,
            format,
            embeddings,
            layers,
            final_norm,
            lm_head,
            tensors,
            cos,
            sin,
            device,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A copy of this model with every matrix product (attention, MLP and the output
    /// head) re-quantized to `q`: what-if weights that change the answers. The token
    /// embedding lookup keeps the stored rows. Matrices are quantized in parallel;
    /// `progress(done, total)` is called as each finishes, and returning `false` stops
    /// the rest with an error.
    pub fn requantized(
        &self,
        q: Quant,
        progress: impl Fn(usize, usize) -> bool + Sync,
    ) -> Result<Llama> {
        self.map_matrices(WeightFormat::from_quant(q), progress, |l| l.requantized(q))
    }

    /// A copy whose matrices are `f(rows, cols, stored values)`, computed in f32 with
    /// candle's GEMM: for quantization schemes lav implements outside GGML (the labs'
    /// INT and NF4), applied to the whole model. Same progress contract as
    /// [`Llama::requantized`].
    pub fn with_f32_weights(
        &self,
        f: impl Fn(usize, usize, &[f32]) -> Vec<f32> + Sync,
        progress: impl Fn(usize, usize) -> bool + Sync,
    ) -> Result<Llama> {
        self.map_matrices(WeightFormat::F32, progress, |l| {
            let (rows, cols, w) = l.to_f32().ok_or_else(|| {
                ModelError::Sampling(
                    "only the stored model can be re-quantized: load it without --weights".into(),
                )
            })?;
            let t = Tensor::from_vec(f(rows, cols, &w), (rows, cols), &Device::Cpu)?;
            Ok(Linear::Candle {
                m: QMatMul::Tensor(t),
                dtype: GgmlDType::F32,
                bytes: rows * cols * 4,
                cols,
                padded: cols,
            })
        })
    }

    /// Every matrix through `map`, in parallel, into a new model of `format`.
    fn map_matrices(
        &self,
        format: WeightFormat,
        progress: impl Fn(usize, usize) -> bool + Sync,
        map: impl Fn(&Linear) -> Result<Linear> + Sync,
    ) -> Result<Llama> {
        use rayon::prelude::*;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let mut mats: Vec<&Linear> = Vec::with_capacity(4 * self.layers.len() + 1);
        for l in &self.layers {
            mats.extend([&l.wqkv, &l.wo, &l.w_gate_up, &l.w_down]);
        }
        mats.push(&self.lm_head);
        let total = mats.len();
        let (done, stop) = (AtomicUsize::new(0), AtomicBool::new(false));
        let out: Vec<Result<Linear>> = mats
            .par_iter()
            .map(|l| {
                if stop.load(Ordering::Relaxed) {
                    return Err(ModelError::Sampling("re-quantization cancelled".into()));
                }
                let r = map(l);
                if !progress(done.fetch_add(1, Ordering::Relaxed) + 1, total) {
                    stop.store(true, Ordering::Relaxed);
                }
                r
            })
            .collect();
        let mut it = out.into_iter();
        let mut next = || it.next().expect("one result per matrix");
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            layers.push(Layer {
                attn_norm: l.attn_norm.clone(),
                wqkv: next()?,
                wo: next()?,
                ffn_norm: l.ffn_norm.clone(),
                w_gate_up: next()?,
                w_down: next()?,
            });
        }
        let lm_head = next()?;
        Ok(Llama {
            config: self.config.clone(),
            format,
            embeddings: self.embeddings.clone(),
            layers,
            final_norm: self.final_norm.clone(),
            lm_head,
            tensors: self.tensors.clone(),
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            device: self.device.clone(),
        })
    }

    /// A KV cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(&self.config)
    }

    /// Embedding rows for `tokens`, dequantized from the stored format: `L × hidden`.
    pub fn embed_rows(&self, tokens: &[u32]) -> Result<Vec<f32>> {
        let h = self.config.hidden_size;
        let mut out = vec![0f32; tokens.len() * h];
        for (t, o) in tokens.iter().zip(out.chunks_exact_mut(h)) {
            let t = *t as usize;
            if t >= self.config.vocab_size {
                return Err(ModelError::Tokenizer(format!(
                    "token id {t} is outside the vocabulary ({})",
                    self.config.vocab_size
                )));
            }
            self.embeddings.row_f32(t, o);
        }
        Ok(out)
    }

    /// Embedding rows for `tokens` as a tensor `(1, L, hidden)`.
    pub fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
        let rows = self.embed_rows(tokens)?;
        Ok(Tensor::from_vec(
            rows,
            (1, tokens.len(), self.config.hidden_size),
            &self.device,
        )?)
    }

    /// Runs `tokens` at positions `cache.len()..`, appending their K and V to the
    /// cache. Returns logits `(n, vocab)` for the requested positions. With a
    /// `capture`, every intermediate is recorded; without one nothing extra is kept.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: Logits,
        capture: Option<&mut Capture>,
    ) -> Result<Tensor> {
        let (out, rows) = self.forward_rows(tokens, cache, logits, capture)?;
        let vocab = self.config.vocab_size;
        Ok(Tensor::from_vec(out, (rows, vocab), &self.device)?)
    }

    /// Logits for the last position as a plain vector.
    pub fn next_logits(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        Ok(self.forward_rows(tokens, cache, Logits::Last, None)?.0)
    }

    fn forward_rows(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: Logits,
        mut capture: Option<&mut Capture>,
    ) -> Result<(Vec<f32>, usize)> {
        let cfg = &self.config;
        let l = tokens.len();
        let pos = cache.len();
        if l == 0 {
            return Err(ModelError::Tokenizer("no tokens to run".into()));
        }
        if pos + l > cfg.context_length {
            return Err(ModelError::ContextOverflow {
                tokens: pos + l,
                context: cfg.context_length,
            });
        }
        let (h, nh, nkv, hd) = (
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.head_dim,
        );
        let (qd, inter) = (nh * hd, cfg.intermediate_size);
        let eps = cfg.rms_norm_eps;
        let shape = ops::AttnShape {
            tokens: l,
            pos,
            heads: nh,
            kv_heads: nkv,
            head_dim: hd,
        };
        let total = shape.total();
        let mut x = self.embed_rows(tokens)?;
        if let Some(c) = capture.as_deref_mut() {
            c.begin(tokens, pos, self.tensor(&x, &[1, l, h])?);
        }
        for (li, layer) in self.layers.iter().enumerate() {
            let resid_in = capture.is_some().then(|| x.clone());
            let xn = ops::rms_norm(&x, &layer.attn_norm, eps);
            let mut record = capture
                .is_some()
                .then(|| (vec![0f32; l * nh * total], vec![0f32; l * nh * total]));
            let rec = record.as_mut().map(|(s, p)| ops::AttnRecord {
                scores: s,
                probs: p,
            });
            let AttnParts {
                q,
                k,
                v,
                attn,
                out: attn_out,
            } = self.attention_block(li, &xn, cache, shape, rec)?;
            add_in_place(&mut x, &attn_out);
            let resid_mid = capture.is_some().then(|| x.clone());

            let xn2 = ops::rms_norm(&x, &layer.ffn_norm, eps);
            let (gate_up, act, mlp_out) = self.mlp_block(layer, &xn2, l)?;
            add_in_place(&mut x, &mlp_out);

            if let Some(c) = capture.as_deref_mut() {
                let (scores, probs) = record.take().unwrap_or_default();
                let heads = |v: Vec<f32>, n: usize| -> Result<Tensor> {
                    // (L, heads, d) → (1, heads, L, d)
                    Ok(Tensor::from_vec(v, (1, l, n, hd), &self.device)?
                        .transpose(1, 2)?
                        .contiguous()?)
                };
                let per_head = |v: Vec<f32>| -> Result<Tensor> {
                    Ok(Tensor::from_vec(v, (1, l, nh, total), &self.device)?
                        .transpose(1, 2)?
                        .contiguous()?)
                };
                let (mut gate, mut up) =
                    (Vec::with_capacity(l * inter), Vec::with_capacity(l * inter));
                for row in gate_up.chunks_exact(2 * inter) {
                    gate.extend_from_slice(&row[..inter]);
                    up.extend_from_slice(&row[inter..]);
                }
                c.layers.push(LayerCapture {
                    resid_in: self.tensor(&resid_in.unwrap_or_default(), &[1, l, h])?,
                    attn_norm: self.tensor(&xn, &[1, l, h])?,
                    q: heads(q, nh)?,
                    k: heads(k, nkv)?,
                    v: heads(v, nkv)?,
                    scores: per_head(scores)?,
                    probs: per_head(probs)?,
                    attn: self.tensor(&attn, &[1, l, qd])?,
                    attn_out: self.tensor(&attn_out, &[1, l, h])?,
                    resid_mid: self.tensor(&resid_mid.unwrap_or_default(), &[1, l, h])?,
                    ffn_norm: self.tensor(&xn2, &[1, l, h])?,
                    gate: self.tensor(&gate, &[1, l, inter])?,
                    up: self.tensor(&up, &[1, l, inter])?,
                    act: self.tensor(&act, &[1, l, inter])?,
                    mlp_out: self.tensor(&mlp_out, &[1, l, h])?,
                    resid_out: self.tensor(&x, &[1, l, h])?,
                });
            }
        }
        cache.advance(l);
        let (first, rows) = match logits {
            Logits::Last => (l - 1, 1),
            Logits::All => (0, l),
        };
        let normed = ops::rms_norm(&x[first * h..], &self.final_norm, eps);
        let out = self.lm_head.forward(&normed, rows)?;
        if let Some(c) = capture {
            let all = match logits {
                Logits::All => normed.clone(),
                Logits::Last => ops::rms_norm(&x, &self.final_norm, eps),
            };
            c.final_norm = Some(self.tensor(&all, &[1, l, h])?);
            c.logits = Some(self.tensor(&out, &[rows, cfg.vocab_size])?);
        }
        Ok((out, rows))
    }

    /// Self-attention on normed rows `xn` of the call described by `shape`: projects
    /// Q, K and V, rotates Q and K, appends K and V to the cache (visible after
    /// `advance`), attends, and applies the output projection.
    fn attention_block(
        &self,
        li: usize,
        xn: &[f32],
        cache: &mut KvCache,
        shape: ops::AttnShape,
        rec: Option<ops::AttnRecord<'_>>,
    ) -> Result<AttnParts> {
        let cfg = &self.config;
        let (l, pos, hd) = (shape.tokens, shape.pos, cfg.head_dim);
        let (qd, kd) = (cfg.num_heads * hd, cfg.num_kv_heads * hd);
        let layer = &self.layers[li];
        let qkv = layer.wqkv.forward(xn, l)?;
        let (mut q, mut k, mut v) = (
            Vec::with_capacity(l * qd),
            Vec::with_capacity(l * kd),
            Vec::with_capacity(l * kd),
        );
        for row in qkv.chunks_exact(qd + 2 * kd) {
            q.extend_from_slice(&row[..qd]);
            k.extend_from_slice(&row[qd..qd + kd]);
            v.extend_from_slice(&row[qd + kd..]);
        }
        ops::rope(&mut q, hd, pos, &self.cos, &self.sin, qd);
        ops::rope(&mut k, hd, pos, &self.cos, &self.sin, kd);
        cache.append(li, &k, &v);
        let (k_all, v_all) = cache.layer(li, shape.total());
        let attn = ops::attention(&q, k_all, v_all, shape, rec);
        let out = layer.wo.forward(&attn, l)?;
        Ok(AttnParts { q, k, v, attn, out })
    }

    /// The SwiGLU MLP on normed rows: `([gate | up], silu(gate)·up, down(·))`.
    fn mlp_block(
        &self,
        layer: &Layer,
        xn: &[f32],
        l: usize,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let gate_up = layer.w_gate_up.forward(xn, l)?;
        let act = ops::swiglu(&gate_up, self.config.intermediate_size);
        let out = layer.w_down.forward(&act, l)?;
        Ok((gate_up, act, out))
    }

    /// The residual stream of a fresh sequence entering every layer and leaving the
    /// last, `(layers + 1)` rows of `L × hidden`, with the norms where `placement`
    /// puts them. `Pre` is the model's own computation (the same numbers as the
    /// capture); `Post` is a what-if for the labs on the same weights:
    /// `h = Norm(x + Attn(x))`, `y = Norm(h + FFN(h))`, each Norm with the layer's own
    /// weights (attention norm, then MLP norm).
    pub fn residual_stream(
        &self,
        tokens: &[u32],
        placement: NormPlacement,
    ) -> Result<Vec<Vec<f32>>> {
        let cfg = &self.config;
        let l = tokens.len();
        if l == 0 || l > cfg.context_length {
            return Err(ModelError::ContextOverflow {
                tokens: l,
                context: cfg.context_length,
            });
        }
        let eps = cfg.rms_norm_eps;
        let shape = ops::AttnShape {
            tokens: l,
            pos: 0,
            heads: cfg.num_heads,
            kv_heads: cfg.num_kv_heads,
            head_dim: cfg.head_dim,
        };
        let mut cache = self.new_cache();
        let mut x = self.embed_rows(tokens)?;
        let mut stream = vec![x.clone()];
        for (li, layer) in self.layers.iter().enumerate() {
            match placement {
                NormPlacement::Pre => {
                    let xn = ops::rms_norm(&x, &layer.attn_norm, eps);
                    let a = self.attention_block(li, &xn, &mut cache, shape, None)?;
                    add_in_place(&mut x, &a.out);
                    let xn2 = ops::rms_norm(&x, &layer.ffn_norm, eps);
                    add_in_place(&mut x, &self.mlp_block(layer, &xn2, l)?.2);
                }
                NormPlacement::Post => {
                    let a = self.attention_block(li, &x, &mut cache, shape, None)?;
                    add_in_place(&mut x, &a.out);
                    let h = ops::rms_norm(&x, &layer.attn_norm, eps);
                    let mut y = h.clone();
                    add_in_place(&mut y, &self.mlp_block(layer, &h, l)?.2);
                    x = ops::rms_norm(&y, &layer.ffn_norm, eps);
                }
            }
            stream.push(x.clone());
        }
        Ok(stream)
    }

    fn tensor(&self, v: &[f32], shape: &[usize]) -> Result<Tensor> {
        Ok(Tensor::from_slice(v, shape, &self.device)?)
    }
}

/// Where the RMSNorms sit in a block (see [`Llama::residual_stream`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormPlacement {
    /// Before each sub-layer, inside the residual branch: what this model does.
    Pre,
    /// After each residual add (the original Transformer): a what-if.
    Post,
}

/// One attention sub-block's outputs.
struct AttnParts {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    out: Vec<f32>,
}

fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// cos/sin tables `(context, head_dim/2)` computed as llama.cpp does: the angle for
/// pair `i` is `pos · θ^(-2i/d)`, built by repeated multiplication in f32.
fn rope_tables(cfg: &LlamaConfig) -> (Vec<f32>, Vec<f32>) {
    let half = cfg.head_dim / 2;
    let theta_scale = cfg.rope_theta.powf(-2.0 / cfg.head_dim as f32);
    let mut cos = Vec::with_capacity(cfg.context_length * half);
    let mut sin = Vec::with_capacity(cfg.context_length * half);
    for p in 0..cfg.context_length {
        let mut theta = p as f32;
        for _ in 0..half {
            cos.push(theta.cos());
            sin.push(theta.sin());
            theta *= theta_scale;
        }
    }
    (cos, sin)
}

/// Stacks matrices with the same column count and type into one, rows in order.
/// Block formats store each row as whole blocks, so this is a byte concatenation.
fn stack_rows(parts: &[QTensor], path: &Path) -> Result<QTensor> {
    let dtype = parts[0].dtype();
    let (_, cols) = parts[0].shape().dims2()?;
    let mut rows = 0;
    let mut bytes = Vec::new();
    for p in parts {
        let (r, c) = p.shape().dims2()?;
        if c != cols || p.dtype() != dtype {
            return Err(ModelError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("projection shapes or types disagree: {c} vs {cols} columns"),
            });
        }
        rows += r;
        bytes.extend_from_slice(&p.data()?);
    }
    let storage = candle_core::quantized::QStorage::from_data(bytes.into(), &Device::Cpu, dtype)?;
    Ok(QTensor::new(storage, (rows, cols))?)
}

fn to_blocks(q: &QTensor, path: &Path) -> Result<QMatrix> {
    let dims = q.shape().dims();
    let (rows, cols) = match dims {
        [r, c] => (*r, *c),
        _ => {
            return Err(ModelError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("expected a matrix, found shape {dims:?}"),
            });
        }
    };
    let bytes = q.data()?;
    let data = match q.dtype() {
        GgmlDType::Q4_1 => QData::Q4_1(blocks_from_bytes::<BlockQ4_1>(&bytes)),
        GgmlDType::Q8_0 => QData::Q8_0(blocks_from_bytes::<BlockQ8_0>(&bytes)),
        // Other stored types (other GGUF files) are looked up as floats.
        _ => QData::F32(
            q.dequantize(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?,
        ),
    };
    Ok(QMatrix { rows, cols, data })
}

fn linear(q: &QTensor, format: WeightFormat, path: &Path) -> Result<Linear> {
    let candle = |t: QTensor| -> Result<Linear> {
        let (_, cols) = t.shape().dims2()?;
        Ok(Linear::Candle {
            dtype: t.dtype(),
            bytes: t.storage_size_in_bytes(),
            m: QMatMul::from_qtensor(t)?,
            cols,
            padded: cols,
        })
    };
    let floats = |q: &QTensor| -> Result<(usize, usize, Vec<f32>)> {
        let (rows, cols) = q.shape().dims2()?;
        let w = q
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok((rows, cols, w))
    };
    match format {
        WeightFormat::Stored => match q.dtype() {
            GgmlDType::Q4_1 | GgmlDType::Q8_0 => Ok(Linear::Blocks(to_blocks(q, path)?)),
            // Other GGUF files (`--model PATH`): candle's kernels on the stored type.
            _ => candle(clone_qtensor(q)?),
        },
        WeightFormat::Q8_0 => {
            let (rows, cols, w) = floats(q)?;
            Ok(Linear::Blocks(QMatrix {
                rows,
                cols,
                data: QData::Q8_0(quantize_weights_q8_0(&w)),
            }))
        }
        WeightFormat::Requant(quant) => {
            let (rows, cols, w) = floats(q)?;
            let (t, padded) = quantize_matrix(&w, rows, cols, quant)?;
            Ok(Linear::Candle {
                dtype: t.dtype(),
                bytes: t.storage_size_in_bytes(),
                m: QMatMul::from_qtensor(t)?,
                cols,
                padded,
            })
        }
        WeightFormat::F32 => {
            let t = q.dequantize(&Device::Cpu)?.to_dtype(DType::F32)?;
            let (_, cols) = t.dims2()?;
            let bytes = t.elem_count() * 4;
            Ok(Linear::Candle {
                m: QMatMul::Tensor(t),
                dtype: GgmlDType::F32,
                bytes,
                cols,
                padded: cols,
            })
        }
    }
}

fn clone_qtensor(q: &QTensor) -> candle_core::Result<QTensor> {
    let data = q.data()?;
    let storage = candle_core::quantized::QStorage::from_data(data, &Device::Cpu, q.dtype())?;
    QTensor::new(storage, q.shape().clone())
}
