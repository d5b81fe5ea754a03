//! The labs of this track, one file per lab, and the table that registers them.

pub mod agent_loop_state;
pub mod capstone_three_designs;
pub mod context_engineering;
pub mod evals_diagnostics;
pub mod planning_reflection;
pub mod retrieval_rag;
pub mod security_trifecta;
pub mod tool_use;
pub mod workflow_patterns;

use crate::workflows::{Driver, Shop};
use lav_lab::job::{Job, Progress, State as JobState, progress_item};
use lav_lab::{Catalogue, LabError, ResultExt, TrackOpener};
use lav_model::Loader;
use lav_scene::{Item, Provenance};
use std::sync::Arc;

/// What a lab may use when it opens: the labs folder (for its data files) and the
/// loader for real models.
pub type Context = lav_lab::Context<dyn Loader>;

/// An OpenAI-compatible endpoint the learner configured (`lav lab … --llm-url`): the
/// labs that run a model offer it as a driver.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    pub model: String,
}

/// The drivers a lab that runs a model offers, as its `driver` control names them.
pub(crate) const RECORDED: &str = "recorded";
pub(crate) const LIVE: &str = "live: this machine's model";
pub(crate) const ENDPOINT: &str = "live: the endpoint";

/// The drivers offered: the recording, the local model, and the endpoint when one
/// is configured.
pub(crate) fn driver_names(endpoint: &Option<Endpoint>) -> Vec<&'static str> {
    let mut d = vec![RECORDED, LIVE];
    if endpoint.is_some() {
        d.push(ENDPOINT);
    }
    d
}

/// A maker of the live driver `which` names, to call on a job's thread (loading the
/// model and walking its vocabulary are too slow for the UI thread).
pub(crate) fn driver_maker(
    loader: &Arc<dyn Loader>,
    endpoint: &Option<Endpoint>,
    which: &str,
) -> impl FnOnce() -> lav_lab::Result<Driver> + Send + 'static {
    let (loader, endpoint, which) = (loader.clone(), endpoint.clone(), which.to_string());
    move || {
        if which == ENDPOINT {
            let e = endpoint.ok_or_else(|| {
                LabError::Input("no endpoint: open the lab with --llm-url URL".into())
            })?;
            return Ok(Driver::Endpoint {
                url: e.url,
                model: e.model,
            });
        }
        let tok = loader.tokenizer().lab()?;
        Ok(Driver::Local {
            model: loader.model().lab()?,
            trie: Arc::new(lav_local::vocab_trie(&tok)),
            tok,
            name: loader.model_name(),
        })
    }
}

/// Who drives a live run, in words, without loading anything.
pub(crate) fn live_who(
    loader: &Arc<dyn Loader>,
    endpoint: &Option<Endpoint>,
    which: &str,
) -> String {
    match (endpoint, which == ENDPOINT) {
        (Some(e), true) => format!("{} at {}", e.model, e.url),
        _ => format!("{} under lav's tool grammar", loader.model_name()),
    }
}

/// A live run's provenance: who drove it ([`live_who`]), run now.
pub(crate) fn live_prov(
    loader: &Arc<dyn Loader>,
    endpoint: &Option<Endpoint>,
    which: &str,
) -> Provenance {
    Provenance::model(format!(
        "{}, run now; times measured on this machine",
        live_who(loader, endpoint, which)
    ))
}

/// A live run on a shop driven by `which` (a `driver` control value): on the first
/// ask `work` starts in the background (the driver is made on the job's thread), a
/// progress item titled `title` stands in until it is done, then the run comes back
/// with who drove it.
pub(crate) fn live_run<K, T>(
    job: &mut Job<K, T>,
    key: K,
    (loader, endpoint, which): (&Arc<dyn Loader>, &Option<Endpoint>, &str),
    title: &str,
    work: impl FnOnce(Shop, &Progress) -> lav_lab::Result<T> + Send + 'static,
) -> lav_lab::Result<Result<(T, Provenance), Item>>
where
    K: PartialEq + Clone,
    T: Clone + Send + 'static,
{
    if job.ready(&key).is_none() {
        let driver = driver_maker(loader, endpoint, which);
        let state = job.get(&key, move |p| {
            p.set(0, 1, "loading the model");
            work(Shop { driver: driver()? }, p)
        })?;
        if let JobState::Running(p) = state {
            return Ok(Err(progress_item("progress", title, p)));
        }
    }
    let run = job.ready(&key).expect("ready").clone();
    Ok(Ok((run, live_prov(loader, endpoint, which))))
}

/// A recording's provenance: who drove it and when and how it was recorded.
pub(crate) fn recorded_prov(driver: &str, recorded: &str) -> Provenance {
    Provenance::recorded(format!("{driver}, {recorded}"))
}

/// A lab's opener that takes an endpoint to offer as a driver.
type EndpointOpener = fn(&Context, Option<Endpoint>) -> lav_lab::Result<Box<dyn lav_lab::Lab>>;

/// This track's labs: `labs/index.toml` lists each under its track.
pub const LABS: &[(&str, TrackOpener<dyn Loader>)] = &[
    ("security-trifecta", security_trifecta::open),
    ("agent-loop-state", agent_loop_state::open),
    ("retrieval-rag", retrieval_rag::open),
    ("tool-use", tool_use::open),
    ("workflow-patterns", workflow_patterns::open),
    ("context-engineering", context_engineering::open),
    ("planning-reflection", planning_reflection::open),
    ("evals-diagnostics", evals_diagnostics::open),
    ("capstone-three-designs", capstone_three_designs::open),
];

/// Adds this track's labs to `catalogue`, each opened over `loader`'s models.
pub fn register(catalogue: &mut Catalogue, loader: Arc<dyn Loader>) {
    catalogue.add_track(LABS, loader);
}

/// As [`register`], with an OpenAI-compatible endpoint the labs that run a model
/// offer as a driver beside the local model and the recording.
pub fn register_with_endpoint(
    catalogue: &mut Catalogue,
    loader: Arc<dyn Loader>,
    endpoint: Endpoint,
) {
    register(catalogue, loader.clone());
    let with: [(&str, EndpointOpener); 5] = [
        ("workflow-patterns", workflow_patterns::open_with),
        ("context-engineering", context_engineering::open_with),
        ("planning-reflection", planning_reflection::open_with),
        ("evals-diagnostics", evals_diagnostics::open_with),
        ("capstone-three-designs", capstone_three_designs::open_with),
    ];
    for (id, open) in with {
        let (loader, endpoint) = (loader.clone(), endpoint.clone());
        catalogue.add(id, move |dir| {
            open(
                &Context {
                    dir: dir.to_path_buf(),
                    loader: loader.clone(),
                },
                Some(endpoint.clone()),
            )
        });
    }
}
