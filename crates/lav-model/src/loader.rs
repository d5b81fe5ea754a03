//! Where a consumer (a lab, the agent runtime) gets the real models: loaded on first
//! use and shared. The command line implements it over the model store; the tests
//! implement it over their fixtures.

use crate::{Embedder, Llama, Result, Tokenizer, WeightFormat};
use std::sync::Arc;

pub trait Loader: Send + Sync {
    fn model(&self) -> Result<Arc<Llama>>;
    fn tokenizer(&self) -> Result<Arc<Tokenizer>>;
    fn embedder(&self) -> Result<Arc<Embedder>>;
    /// The model's display name, for provenance labels: its weights included when
    /// they are not the stored ones ("…, re-quantized to Q2_K").
    fn model_name(&self) -> String;
    /// The weights the model computes with (`--weights`).
    fn weights(&self) -> WeightFormat {
        WeightFormat::Stored
    }
}
