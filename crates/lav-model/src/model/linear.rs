//! One weight matrix, `y = x Wᵀ`: lav's block kernels on the stored blocks, candle's
//! quantized matmul for re-quantized types, or plain f32.

use super::weights::pad_rows;
use super::{Quant, WeightFormat, quantize_matrix};
use crate::error::{ModelError, Result};
use crate::matmul::{Activations, QData, QMatrix};
use crate::quant::{BlockQ4_1, BlockQ8_0, blocks_from_bytes, quantize_weights_q8_0};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor};
use std::path::Path;

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
    /// `x` is `n × cols` row-major; returns `n × rows`. `act` picks lav's kernels for
    /// the stored blocks; candle's matmuls take f32 as they are.
    pub fn forward(&self, x: &[f32], n: usize, act: Activations) -> Result<Vec<f32>> {
        Ok(match self {
            Linear::Blocks(m) => m.matmul_with(x, n, act),
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

pub(super) fn to_blocks(q: &QTensor, path: &Path) -> Result<QMatrix> {
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

pub(super) fn linear(q: &QTensor, format: WeightFormat, path: &Path) -> Result<Linear> {
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

pub(super) fn clone_qtensor(q: &QTensor) -> candle_core::Result<QTensor> {
    let data = q.data()?;
    let storage = candle_core::quantized::QStorage::from_data(data, &Device::Cpu, q.dtype())?;
    QTensor::new(storage, q.shape().clone())
}
