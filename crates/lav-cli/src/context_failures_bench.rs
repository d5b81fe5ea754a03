//! `lav bench --context-failures`: the four context failure modes (poisoning,
//! distraction, confusion, clash), each run on the local model with the failing
//! context and with its fix; `--record` saves the runs for context-engineering.

use crate::Global;
use crate::workflows_bench::{driver, provenance};
use anyhow::Result;
use lav_labs_agents::capstone::FullShop;
use lav_labs_agents::context_failures::{self, MODES, Recording};
use lav_labs_agents::workflows::Shop;
use lav_model::WeightFormat;
use std::path::PathBuf;

pub fn run(g: &Global, format: WeightFormat, record: Option<Option<PathBuf>>) -> Result<()> {
    let labs = lav_lab::labs_dir()?;
    let shop = Shop {
        driver: driver(g, format, &None)?,
    };
    let who = shop.driver.describe();
    let full = FullShop::new(shop, &labs).map_err(anyhow::Error::msg)?;
    let mut runs = Vec::new();
    println!("Driven by {who}.");
    println!("| mode | failing context | fixed context | tokens in (failing / fixed) |");
    println!("|---|---|---|---|");
    for m in &MODES {
        let bad = context_failures::run(&full, m, false).map_err(anyhow::Error::msg)?;
        let good = context_failures::run(&full, m, true).map_err(anyhow::Error::msg)?;
        let v = |r: &context_failures::ModeRun| {
            if r.passed {
                "right".to_string()
            } else {
                format!("wrong ({})", r.reason)
            }
        };
        eprintln!(
            "{:12} failing: {}",
            m.name,
            bad.answer.chars().take(80).collect::<String>()
        );
        eprintln!(
            "{:12} fixed:   {}",
            m.name,
            good.answer.chars().take(80).collect::<String>()
        );
        println!(
            "| {} | {} | {} | {} / {} |",
            m.name,
            v(&bad),
            v(&good),
            bad.run.state.usage.input_tokens,
            good.run.state.usage.input_tokens
        );
        runs.push(bad);
        runs.push(good);
    }
    if let Some(path) = &record {
        let path = path
            .clone()
            .unwrap_or_else(|| labs.join(context_failures::RECORDING));
        let rec = Recording {
            driver: who,
            recorded: provenance("lav bench --context-failures --record"),
            runs,
        };
        crate::workflows_bench::save_recording(&path, &rec)?;
        eprintln!("recorded to {}", path.display());
    }
    Ok(())
}
