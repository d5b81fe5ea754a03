//! The model card: what the model is made of, computed from the loaded file.

use crate::model::{Linear, Llama, LlamaConfig};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct Parameters {
    pub embeddings: usize,
    pub attention: usize,
    pub mlp: usize,
    pub norms: usize,
    /// Zero when the output head is the embedding matrix (tied).
    pub output_head: usize,
    pub total: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelCard {
    pub config: LlamaConfig,
    pub parameters: Parameters,
    /// Bytes of stored weights per GGML type, as in the file.
    pub file_bytes_by_type: BTreeMap<String, usize>,
    /// Tensors per GGML type, as in the file.
    pub file_tensors_by_type: BTreeMap<String, usize>,
    /// Bytes of the weights the forward pass computes with, per type (differs from
    /// the file when `--weights` re-quantizes).
    pub compute_bytes_by_type: BTreeMap<String, usize>,
    pub weight_format: String,
    /// KV-cache bytes per token as lav stores it (f32).
    pub kv_cache_bytes_per_token: usize,
    /// The same at f16, as llama.cpp stores it.
    pub kv_cache_bytes_per_token_f16: usize,
    pub kernel: String,
}

impl ModelCard {
    pub fn of(model: &Llama) -> Self {
        let c = &model.config;
        let mut p = Parameters {
            embeddings: 0,
            attention: 0,
            mlp: 0,
            norms: 0,
            output_head: 0,
            total: 0,
        };
        let mut file_bytes = BTreeMap::new();
        let mut file_count = BTreeMap::new();
        for (name, ty, elems, bytes) in &model.tensors {
            *file_bytes.entry(ty.to_string()).or_insert(0) += bytes;
            *file_count.entry(ty.to_string()).or_insert(0) += 1;
            let part = if name.starts_with("token_embd") {
                &mut p.embeddings
            } else if name.starts_with("output.") {
                &mut p.output_head
            } else if name.contains("norm") {
                &mut p.norms
            } else if name.contains(".attn_") {
                &mut p.attention
            } else {
                &mut p.mlp
            };
            *part += elems;
        }
        p.total = p.embeddings + p.attention + p.mlp + p.norms + p.output_head;

        let mut compute = BTreeMap::new();
        let mut add = |l: &Linear| {
            let (t, b) = l.storage();
            *compute.entry(t.to_string()).or_insert(0) += b;
        };
        for layer in &model.layers {
            for l in [&layer.wqkv, &layer.wo, &layer.w_gate_up, &layer.w_down] {
                add(l);
            }
        }
        add(&model.lm_head);
        let per_token_elems = 2 * c.num_layers * c.num_kv_heads * c.head_dim;
        Self {
            config: c.clone(),
            parameters: p,
            file_bytes_by_type: file_bytes,
            file_tensors_by_type: file_count,
            compute_bytes_by_type: compute,
            weight_format: match model.format {
                // lav's kernels run the stored blocks; the activations are a choice.
                crate::WeightFormat::Stored => {
                    format!("{}, {}", model.format.label(), model.activations.label())
                }
                f => f.label(),
            },
            kv_cache_bytes_per_token: per_token_elems * 4,
            kv_cache_bytes_per_token_f16: per_token_elems * 2,
            kernel: crate::quant::Kernel::detect().name().to_string(),
        }
    }
}

/// Parameters a llama config implies, from the formula (an independent check on
/// counting the file's tensors).
pub fn parameters_from_config(c: &LlamaConfig) -> usize {
    let h = c.hidden_size;
    let kv = c.num_kv_heads * c.head_dim;
    let per_layer = h * h * 2 + h * kv * 2 + 3 * h * c.intermediate_size + 2 * h;
    let head = if c.tied_embeddings {
        0
    } else {
        c.vocab_size * h
    };
    c.vocab_size * h + c.num_layers * per_layer + h + head
}
