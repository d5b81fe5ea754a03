//! Loading a GGUF into a [`Llama`]: config from the metadata, Q/K/V and gate/up
//! stacked into one matrix each, RoPE tables; and re-quantized or f32 copies.

use super::linear::*;
use super::{Layer, Linear, Llama, LlamaConfig, Quant, WeightFormat};
use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use crate::matmul::Activations;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Tensor};
use std::path::Path;

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
            activations: Activations::default(),
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
            activations: self.activations,
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
