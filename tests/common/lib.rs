//! Shared support for the cross-crate tests in `tests/`: the default model (fetched
//! through lav's own store, never from a hub), loaded once per test binary, and the
//! committed golden files.

use lav_model::{Llama, Tokenizer, WeightFormat};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Path of the default GGUF, installing it with `lav models fetch` logic if needed.
pub fn default_gguf() -> PathBuf {
    let store = lav_store::Store::default();
    let m = lav_store::manifest(lav_store::DEFAULT_LLM).expect("manifest");
    store
        .ensure(&m.name, false)
        .expect("default model (run `lav models fetch`)");
    store.main_path(&m)
}

/// Directory of the MiniLM embedder.
pub fn embedder_dir() -> PathBuf {
    lav_store::Store::default()
        .ensure(lav_store::DEFAULT_EMBEDDER, false)
        .expect("embedder (run `lav models fetch minilm-l6-v2`)")
}

/// The default model on the stored weights, loaded once.
pub fn model() -> &'static Llama {
    static M: OnceLock<Llama> = OnceLock::new();
    M.get_or_init(|| Llama::load(&default_gguf(), WeightFormat::Stored).expect("load model"))
}

pub fn tokenizer() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_gguf_path(&default_gguf()).expect("tokenizer"))
}

/// A committed golden JSON file from `tests/golden/`.
pub fn golden(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).expect("golden json")
}

pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array of ids")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

/// Greedy ids from lav's forward pass, `n` tokens after `prompt`.
pub fn lav_greedy(prompt: &[u32], n: usize) -> Vec<u32> {
    let m = model();
    let mut cache = m.new_cache();
    let mut out = Vec::with_capacity(n);
    let mut logits = m.next_logits(prompt, &mut cache).expect("prefill");
    for i in 0..n {
        let t = lav_model::sampler::argmax(&logits).0;
        out.push(t);
        if i + 1 < n {
            logits = m.next_logits(&[t], &mut cache).expect("decode");
        }
    }
    out
}
