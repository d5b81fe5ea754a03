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
use crate::quant::{BlockQ4_1, BlockQ8_0, blocks_from_bytes, quantize_weights_q8_0};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, D, DType, Device, Layout, Module, Shape, Tensor};
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
    /// Every matrix re-quantized to Q4_0 (candle's kernels). Changes answers.
    Q4_0,
    /// Every matrix dequantized to f32 (candle's GEMM). Changes answers.
    F32,
}

impl WeightFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "q4_1" | "stored" => Some(Self::Stored),
            "q8_0" => Some(Self::Q8_0),
            "q4_0" => Some(Self::Q4_0),
            "f32" => Some(Self::F32),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored (Q4_1 + Q8_0 embeddings), llama.cpp arithmetic",
            Self::Q8_0 => "re-quantized to Q8_0 (changes the model's answers)",
            Self::Q4_0 => "re-quantized to Q4_0 (changes the model's answers)",
            Self::F32 => "dequantized to f32 (changes the model's answers)",
        }
    }
}

/// One weight matrix, `y = x Wᵀ`.
#[derive(Debug)]
pub enum Linear {
    /// lav's kernels on block-quantized weights.
    Blocks(QMatrix),
    /// candle's own quantized or float matmul (other formats, GPUs).
    Candle(QMatMul, GgmlDType, usize),
}

impl Linear {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Linear::Blocks(m) => x.apply_op1_no_bwd(m)?,
            Linear::Candle(m, _, _) => m.forward(x)?,
        })
    }

    /// Storage type name and bytes, for the model card.
    pub fn storage(&self) -> (&'static str, usize) {
        match self {
            Linear::Blocks(m) => (m.ggml_type_name(), m.bytes()),
            Linear::Candle(_, t, bytes) => (ggml_name(*t), *bytes),
        }
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

impl candle_core::CustomOp1 for QMatrix {
    fn name(&self) -> &'static str {
        "lav-qmatmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("lav-qmatmul expects f32 activations");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("lav-qmatmul expects contiguous activations");
        };
        let dims = layout.dims();
        let cols = *dims.last().unwrap_or(&0);
        if cols != self.cols {
            candle_core::bail!("lav-qmatmul: input has {cols} columns, weight {}", self.cols);
        }
        let n_tok = (end - start) / cols;
        let out = self.matmul(&data[start..end], n_tok);
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().unwrap() = self.rows;
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

pub struct Layer {
    pub attn_norm: Tensor,
    pub wq: Linear,
    pub wk: Linear,
    pub wv: Linear,
    pub wo: Linear,
    pub ffn_norm: Tensor,
    pub w_gate: Linear,
    pub w_up: Linear,
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
    pub final_norm: Tensor,
    pub lm_head: Linear,
    /// Raw GGUF tensor facts for the model card: (name, ggml type, elements, bytes).
    pub tensors: Vec<(String, &'static str, usize, usize)>,
    cos: Tensor,
    sin: Tensor,
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
            name: gguf.string("general.name").unwrap_or_else(|_| "llama".into()),
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
        if num_heads % num_kv_heads != 0 || hidden_size % num_heads != 0 {
            return Err(ModelError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("{num_heads} heads over {num_kv_heads} KV heads"),
            });
        }

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
        let mut layers = Vec::with_capacity(config.num_layers);
        for i in 0..config.num_layers {
            let mut lin = |n: &str| -> Result<Linear> {
                let q = gguf.tensor(&format!("blk.{i}.{n}.weight"))?;
                linear(&q, format, path)
            };
            let wq = lin("attn_q")?;
            let wk = lin("attn_k")?;
            let wv = lin("attn_v")?;
            let wo = lin("attn_output")?;
            let w_gate = lin("ffn_gate")?;
            let w_up = lin("ffn_up")?;
            let w_down = lin("ffn_down")?;
            let attn_norm = gguf.tensor(&format!("blk.{i}.attn_norm.weight"))?.dequantize(&device)?;
            let ffn_norm = gguf.tensor(&format!("blk.{i}.ffn_norm.weight"))?.dequantize(&device)?;
            layers.push(Layer {
                attn_norm,
                wq,
                wk,
                wv,
                wo,
                ffn_norm,
                w_gate,
                w_up,
                w_down,
            });
        }
        let final_norm = gguf.tensor("output_norm.weight")?.dequantize(&device)?;
        let (cos, sin) = rope_tables(&config, &device)?;
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

    /// A KV cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(&self.config, &self.device)
    }

    /// Embedding rows for `tokens`, dequantized from the stored format: `(1, L, hidden)`.
    pub fn embed(&self, tokens: &[u32]) -> Result<Tensor> {
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
        Ok(Tensor::from_vec(out, (1, tokens.len(), h), &self.device)?)
    }

    /// Runs `tokens` at positions `cache.len()..`, appending their K and V to the
    /// cache. Returns logits `(n, vocab)` for the requested positions. With a
    /// `capture`, every intermediate is recorded; without one nothing extra is kept.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        logits: Logits,
        mut capture: Option<&mut Capture>,
    ) -> Result<Tensor> {
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
        let (nh, nkv, hd) = (cfg.num_heads, cfg.num_kv_heads, cfg.head_dim);
        let group = nh / nkv;
        let eps = cfg.rms_norm_eps;
        let cos = self.cos.narrow(0, pos, l)?;
        let sin = self.sin.narrow(0, pos, l)?;
        let total = pos + l;
        let mask = causal_mask(l, pos, &self.device)?;
        cache.reserve(total)?;

        let mut x = self.embed(tokens)?;
        if let Some(c) = capture.as_deref_mut() {
            c.begin(tokens, pos, &x);
        }
        for (li, layer) in self.layers.iter().enumerate() {
            let resid_in = x.clone();
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let q = layer.wq.forward(&h)?;
            let k = layer.wk.forward(&h)?;
            let v = layer.wv.forward(&h)?;
            let q = q.reshape((1, l, nh, hd))?.transpose(1, 2)?.contiguous()?;
            let k = k.reshape((1, l, nkv, hd))?.transpose(1, 2)?.contiguous()?;
            let v = v.reshape((1, l, nkv, hd))?.transpose(1, 2)?.contiguous()?;
            let q = candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?;
            cache.write(li, pos, &k, &v)?;
            let (k_all, v_all) = cache.view(li, total)?;

            // Grouped-query attention without copying K/V: the query heads that share a
            // KV head are stacked along the row axis of one matrix product.
            let qg = q.reshape((1, nkv, group * l, hd))?;
            let scores = (qg.matmul(&k_all.t()?)? * (1.0 / (hd as f64).sqrt()))?;
            let scores = scores.reshape((1, nh, l, total))?.broadcast_add(&mask)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs
                .reshape((1, nkv, group * l, total))?
                .matmul(&v_all)?
                .reshape((1, nh, l, hd))?;
            let attn = ctx.transpose(1, 2)?.contiguous()?.reshape((1, l, nh * hd))?;
            let attn_out = layer.wo.forward(&attn)?;
            x = (&x + &attn_out)?;
            let resid_mid = x.clone();

            let h2 = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, eps)?;
            let gate = layer.w_gate.forward(&h2)?;
            let up = layer.w_up.forward(&h2)?;
            let act = (candle_nn::ops::silu(&gate)? * &up)?;
            let mlp_out = layer.w_down.forward(&act)?;
            x = (&x + &mlp_out)?;

            if let Some(c) = capture.as_deref_mut() {
                c.layers.push(LayerCapture {
                    resid_in,
                    attn_norm: h,
                    q,
                    k,
                    v,
                    scores,
                    probs,
                    attn,
                    attn_out,
                    resid_mid,
                    ffn_norm: h2,
                    gate,
                    up,
                    act,
                    mlp_out,
                    resid_out: x.clone(),
                });
            }
        }
        cache.advance(l);
        let normed = candle_nn::ops::rms_norm(&x, &self.final_norm, eps)?;
        let hidden = match logits {
            Logits::Last => normed.narrow(1, l - 1, 1)?,
            Logits::All => normed.clone(),
        };
        let out = self.lm_head.forward(&hidden.contiguous()?)?.squeeze(0)?;
        if let Some(c) = capture.as_deref_mut() {
            c.final_norm = Some(normed);
            c.logits = Some(out.clone());
        }
        Ok(out)
    }

    /// Logits for the last position as a plain vector.
    pub fn next_logits(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let t = self.forward(tokens, cache, Logits::Last, None)?;
        Ok(t.squeeze(0)?.to_vec1::<f32>()?)
    }
}

/// `(L, pos + L)` additive mask: 0 where a query may look, -inf above the diagonal.
fn causal_mask(l: usize, pos: usize, device: &Device) -> Result<Tensor> {
    let total = pos + l;
    let mask: Vec<f32> = (0..l)
        .flat_map(|i| (0..total).map(move |j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (l, total), device)?)
}

/// cos/sin tables `(context, head_dim/2)` computed as llama.cpp does: the angle for
/// pair `i` is `pos · θ^(-2i/d)`, built by repeated multiplication in f32.
fn rope_tables(cfg: &LlamaConfig, device: &Device) -> Result<(Tensor, Tensor)> {
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
    Ok((
        Tensor::from_vec(cos, (cfg.context_length, half), device)?,
        Tensor::from_vec(sin, (cfg.context_length, half), device)?,
    ))
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
        _ => QData::F32(q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?),
    };
    Ok(QMatrix { rows, cols, data })
}

fn linear(q: &QTensor, format: WeightFormat, path: &Path) -> Result<Linear> {
    let candle = |t: QTensor| -> Result<Linear> {
        let dt = t.dtype();
        let bytes = t.storage_size_in_bytes();
        Ok(Linear::Candle(QMatMul::from_qtensor(t)?, dt, bytes))
    };
    match format {
        WeightFormat::Stored => match q.dtype() {
            GgmlDType::Q4_1 | GgmlDType::Q8_0 => Ok(Linear::Blocks(to_blocks(q, path)?)),
            // Other GGUF files (`--model PATH`): candle's kernels on the stored type.
            _ => candle(clone_qtensor(q)?),
        },
        WeightFormat::Q8_0 => {
            let w = q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
            let (rows, cols) = q.shape().dims2()?;
            Ok(Linear::Blocks(QMatrix {
                rows,
                cols,
                data: QData::Q8_0(quantize_weights_q8_0(&w)),
            }))
        }
        WeightFormat::Q4_0 => candle(QTensor::quantize(&q.dequantize(&Device::Cpu)?, GgmlDType::Q4_0)?),
        WeightFormat::F32 => {
            let t = q.dequantize(&Device::Cpu)?.to_dtype(DType::F32)?;
            let bytes = t.elem_count() * 4;
            Ok(Linear::Candle(QMatMul::Tensor(t), GgmlDType::F32, bytes))
        }
    }
}

fn clone_qtensor(q: &QTensor) -> candle_core::Result<QTensor> {
    let data = q.data()?;
    let storage = candle_core::quantized::QStorage::from_data(data, &Device::Cpu, q.dtype())?;
    QTensor::new(storage, q.shape().clone())
}

/// Softmax rows of a `(.., T)` tensor sum to one; exposed for tests and labs.
pub fn row_sums(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.sum(D::Minus1)?.flatten_all()?.to_vec1::<f32>()?)
}
