//! Which numbers the matrix products use: the stored weights, or a labelled
//! re-quantization (candle's GGML quantizers) that changes the answers.

use super::linear::ggml_name;
use crate::error::Result;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use serde::Serialize;

/// Which numbers the matrix products use. `Stored` and `F32` are the file's own
/// weights; the others re-quantize them and so change the model's answers.
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
    /// The stored blocks dequantized losslessly to f32 and multiplied in f32
    /// (candle's GEMM): the stored model, evaluated without 8-bit activations.
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
            Self::Stored => "stored (Q4_1 + Q8_0 embeddings)".into(),
            Self::Q8_0 => "re-quantized to Q8_0 (changes the model's answers)".into(),
            Self::Requant(q) => {
                format!("re-quantized to {} (changes the model's answers)", q.name())
            }
            Self::F32 => {
                "stored, dequantized losslessly to f32 and computed in f32 (the stored model, evaluated exactly)"
                    .into()
            }
        }
    }

    /// What the weights are, for a model's display name: empty for the stored ones.
    pub fn suffix(self) -> String {
        match self {
            Self::Stored => String::new(),
            Self::F32 => ", computed in f32".into(),
            Self::Q8_0 => ", re-quantized to Q8_0".into(),
            Self::Requant(q) => format!(", re-quantized to {}", q.name()),
        }
    }

    /// Why numbers computed with these weights are a what-if, when they are: the
    /// re-quantized formats are not the stored model.
    pub fn what_if(self) -> Option<String> {
        match self {
            Self::Stored | Self::F32 => None,
            Self::Q8_0 | Self::Requant(_) => Some(format!(
                "its weights re-quantized to {} on this machine (--weights); the stored model's numbers differ",
                self.quant_name()
            )),
        }
    }

    fn quant_name(self) -> &'static str {
        match self {
            Self::Stored => "Q4_1",
            Self::F32 => "F32",
            Self::Q8_0 => "Q8_0",
            Self::Requant(q) => q.name(),
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
pub(super) fn pad_rows(x: &[f32], cols: usize, padded: usize) -> Vec<f32> {
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
