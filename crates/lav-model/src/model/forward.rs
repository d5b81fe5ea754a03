//! The forward pass: tokens through the layers into the KV cache, with optional
//! capture of every intermediate.

use super::{BatchSeq, Layer, Llama, Logits, NormPlacement};
use crate::capture::{Capture, LayerCapture};
use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::kv_pool::KvPool;
use crate::ops;
use candle_core::Tensor;

impl Llama {
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
        let out = self.lm_head.forward(&normed, rows, self.activations)?;
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

    /// One step of the serving engine: every sequence's new positions in one pass.
    /// The matmuls run over all the step's rows at once (one weight read for the
    /// batch); RoPE, the K/V writes and attention go sequence by sequence, through
    /// each one's block table in `pool`. Returns the last position's logits of each
    /// sequence that asks for them, in order.
    ///
    /// Batch invariance: every row's arithmetic is the same whatever else is in the
    /// batch (the kernels compute each row in a fixed order), so a sequence's logits
    /// are bit for bit those of [`Llama::forward`] on it alone.
    pub fn forward_batch(&self, seqs: &[BatchSeq<'_>], pool: &mut KvPool) -> Result<Vec<Vec<f32>>> {
        let cfg = &self.config;
        let (h, nh, nkv, hd) = (
            cfg.hidden_size,
            cfg.num_heads,
            cfg.num_kv_heads,
            cfg.head_dim,
        );
        let (qd, kd) = (nh * hd, nkv * hd);
        let eps = cfg.rms_norm_eps;
        for s in seqs {
            let end = s.start + s.tokens.len();
            if s.tokens.is_empty() {
                return Err(ModelError::Batch("a sequence with no new tokens".into()));
            }
            if end > cfg.context_length {
                return Err(ModelError::ContextOverflow {
                    tokens: end,
                    context: cfg.context_length,
                });
            }
            pool.check_table(s.block_table, end)?;
        }
        let tokens: Vec<u32> = seqs.iter().flat_map(|s| s.tokens.iter().copied()).collect();
        let n = tokens.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut x = self.embed_rows(&tokens)?;
        for (li, layer) in self.layers.iter().enumerate() {
            let xn = ops::rms_norm(&x, &layer.attn_norm, eps);
            let qkv = layer.wqkv.forward(&xn, n, self.activations)?;
            let mut attn = Vec::with_capacity(n * qd);
            let mut rows = qkv.chunks_exact(qd + 2 * kd);
            for s in seqs {
                let l = s.tokens.len();
                let (mut q, mut k, mut v) = (
                    Vec::with_capacity(l * qd),
                    Vec::with_capacity(l * kd),
                    Vec::with_capacity(l * kd),
                );
                for row in rows.by_ref().take(l) {
                    q.extend_from_slice(&row[..qd]);
                    k.extend_from_slice(&row[qd..qd + kd]);
                    v.extend_from_slice(&row[qd + kd..]);
                }
                ops::rope(&mut q, hd, s.start, &self.cos, &self.sin, qd);
                ops::rope(&mut k, hd, s.start, &self.cos, &self.sin, kd);
                pool.write(li, s.block_table, s.start, &k, &v);
                // Read in place through the block table: no copy of the sequence's cache.
                let (k_all, v_all) = pool.rows(li, s.block_table);
                let shape = ops::AttnShape {
                    tokens: l,
                    pos: s.start,
                    heads: nh,
                    kv_heads: nkv,
                    head_dim: hd,
                };
                attn.extend(ops::attention_rows(&q, k_all, v_all, shape, None));
            }
            let out = layer.wo.forward(&attn, n, self.activations)?;
            add_in_place(&mut x, &out);
            let xn2 = ops::rms_norm(&x, &layer.ffn_norm, eps);
            let (_, _, mlp_out) = self.mlp_block(layer, &xn2, n)?;
            add_in_place(&mut x, &mlp_out);
        }
        // Each sampling sequence's last row, through the final norm and the head.
        let mut last = Vec::new();
        let mut row = 0;
        for s in seqs {
            row += s.tokens.len();
            if s.logits {
                last.extend_from_slice(&x[(row - 1) * h..row * h]);
            }
        }
        let rows = last.len() / h;
        if rows == 0 {
            return Ok(Vec::new());
        }
        let normed = ops::rms_norm(&last, &self.final_norm, eps);
        let out = self.lm_head.forward(&normed, rows, self.activations)?;
        Ok(out
            .chunks_exact(cfg.vocab_size)
            .map(<[f32]>::to_vec)
            .collect())
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
        let qkv = layer.wqkv.forward(xn, l, self.activations)?;
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
        let out = layer.wo.forward(&attn, l, self.activations)?;
        Ok(AttnParts { q, k, v, attn, out })
    }

    /// The SwiGLU MLP on normed rows: `([gate | up], silu(gate)·up, down(·))`.
    fn mlp_block(
        &self,
        layer: &Layer,
        xn: &[f32],
        l: usize,
    ) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let gate_up = layer.w_gate_up.forward(xn, l, self.activations)?;
        let act = ops::swiglu(&gate_up, self.config.intermediate_size);
        let out = layer.w_down.forward(&act, l, self.activations)?;
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
