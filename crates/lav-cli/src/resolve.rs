//! Which model file a command uses: `--model PATH`, `--hf REPO[:FILE]`, or the
//! embedded default (fetched on first use).

use crate::Global;
use anyhow::{Context, Result};
use lav_model::gguf::GgufFile;
use lav_model::{Activations, Llama, Tokenizer, WeightFormat};
use std::io::IsTerminal;
use std::path::PathBuf;

pub fn gguf_path(g: &Global) -> Result<PathBuf> {
    if let Some(p) = &g.model {
        let p = PathBuf::from(p);
        anyhow::ensure!(p.is_file(), "--model {}: no such file", p.display());
        return Ok(p);
    }
    if let Some(spec) = &g.hf {
        return hf(spec);
    }
    let store = lav_store::Store::default();
    let m = lav_store::manifest(lav_store::DEFAULT_LLM)?;
    store.ensure(&m.name, std::io::stderr().is_terminal())?;
    Ok(store.main_path(&m))
}

/// Resolves `REPO[:FILE]` through hf-hub's cache, downloading when online.
fn hf(spec: &str) -> Result<PathBuf> {
    let (repo, file) = match spec.split_once(':') {
        Some((r, f)) => (r.to_string(), Some(f.to_string())),
        None => (spec.to_string(), None),
    };
    let offline = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!(
            "cannot get {repo} from the Hugging Face Hub ({e}); check the network, or use --model PATH or the default model"
        )
    };
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(std::io::stderr().is_terminal())
        .build()
        .map_err(|e| offline(&e))?;
    let r = api.model(repo.clone());
    let file = match file {
        Some(f) => f,
        None => {
            let info = r.info().map_err(|e| offline(&e))?;
            info.siblings
                .iter()
                .map(|s| s.rfilename.clone())
                .find(|f| f.ends_with(".gguf"))
                .with_context(|| format!("{repo} has no .gguf file; name one as REPO:FILE"))?
        }
    };
    r.get(&file).map_err(|e| offline(&e))
}

pub fn model(g: &Global, format: WeightFormat) -> Result<(Llama, Tokenizer)> {
    let path = gguf_path(g)?;
    let tok = Tokenizer::from_gguf(&GgufFile::open(&path)?)?;
    let model = Llama::load(&path, format)?.with_activations(activations(g)?);
    Ok((model, tok))
}

/// `--activations`, parsed.
pub fn activations(g: &Global) -> Result<Activations> {
    Activations::parse(&g.activations).with_context(|| {
        format!(
            "--activations must be f32 (the default) or q8; got `{}`",
            g.activations
        )
    })
}

pub fn tokenizer(g: &Global) -> Result<Tokenizer> {
    let path = gguf_path(g)?;
    Ok(Tokenizer::from_gguf(&GgufFile::open(&path)?)?)
}
