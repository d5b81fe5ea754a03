//! `lav bench --context`: the context-engineering lab's long audit under every setup
//! it offers (each window × compaction × memory × sub-agents, and the prefix order
//! flipped), with the local model writing the summaries and the answer: whether it
//! overflowed, the peak view, tokens, and the checker. `--record` saves the runs
//! for the lab.

use crate::Global;
use crate::lab_cmd::CliLoader;
use anyhow::Result;
use lav_labs_agents::labs::context_engineering::{RECORDING, Recording, setups};
use lav_labs_agents::long_task;
use lav_model::{Loader, WeightFormat};
use std::path::PathBuf;
use std::sync::Arc;

pub fn run(g: &Global, format: WeightFormat, record: Option<Option<PathBuf>>) -> Result<()> {
    let labs = lav_lab::labs_dir()?;
    let loader = CliLoader::new(g, format);
    let model = loader.model()?;
    let tok = loader.tokenizer()?;
    let trie = Arc::new(lav_local::vocab_trie(&tok));
    let name = loader.model_name();
    let window = model.config.context_length;
    let mut runs = Vec::new();
    println!(
        "| window | compaction | memory | sub-agents | stable prefix first | stop | peak tokens | parent tokens | sub-agent tokens | checker | s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for setup in setups(window) {
        let r = long_task::audit_local(setup, model.clone(), tok.clone(), trie.clone(), &name)
            .map_err(anyhow::Error::msg)?;
        let on = |b: bool| if b { "on" } else { "off" };
        println!(
            "| {} | {} | {} | {} | {} | {:?} | {} | {} | {} | {} | {:.1} |",
            setup.window,
            on(setup.compaction),
            on(setup.memory),
            on(setup.subagents),
            on(setup.stable_prefix_first),
            r.stop,
            r.views.iter().map(|v| v.budget.total()).max().unwrap_or(0),
            r.usage.input_tokens + r.usage.output_tokens,
            r.sub_usage.input_tokens + r.sub_usage.output_tokens,
            if r.passed { "pass" } else { "FAIL" },
            r.seconds
        );
        runs.push(r);
    }
    if let Some(path) = record {
        let path = path.unwrap_or_else(|| labs.join(RECORDING));
        let rec = Recording {
            driver: format!(
                "{name} under lav's runtime (scripted lookups; the model writes the summaries and the answer)"
            ),
            recorded: crate::workflows_bench::provenance("lav bench --context --record"),
            runs,
        };
        crate::workflows_bench::save_recording(&path, &rec)?;
        eprintln!("recorded to {}", path.display());
    }
    Ok(())
}
