//! `lav bench --capstone`: the customer-order questions answered by each design of
//! the capstone (RAG only, a deterministic workflow, an autonomous agent, an
//! orchestrator with sub-agents), driven by the local model under the tool grammar
//! (or `--llm-url`): the scorecard of accuracy, calls, tokens, wall time and trifecta
//! exposure, and the decision rule applied to it. `--record` saves the runs for
//! capstone-three-designs.

use crate::Global;
use crate::workflows_bench::{driver, provenance};
use anyhow::Result;
use lav_labs_agents::capstone::{self, DESIGNS, DesignRun, FullShop, Recording};
use lav_labs_agents::labs::capstone_three_designs::{decision, exposure};
use lav_labs_agents::workflows::Shop;
use lav_model::WeightFormat;
use std::path::PathBuf;

pub fn run(
    g: &Global,
    format: WeightFormat,
    record: Option<Option<PathBuf>>,
    endpoint: Option<(String, String)>,
) -> Result<()> {
    let labs = lav_lab::labs_dir()?;
    let tasks = capstone::tasks(&labs).map_err(anyhow::Error::msg)?;
    let shop = Shop {
        driver: driver(g, format, &endpoint)?,
    };
    let who = shop.driver.describe();
    let full = FullShop::new(shop, &labs).map_err(anyhow::Error::msg)?;
    let mut runs = Vec::new();
    for t in &tasks {
        for d in DESIGNS {
            let r = capstone::run(&full, t, d).map_err(anyhow::Error::msg)?;
            eprintln!(
                "{:9} {:28} {} {:5.1} s {:2} calls {:5} tokens  {}",
                t.id,
                d,
                if r.passed { "pass" } else { "FAIL" },
                r.seconds,
                r.model_calls,
                r.tokens(),
                r.answer
                    .lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(60)
                    .collect::<String>()
            );
            runs.push(r);
        }
    }
    if let Some(path) = &record {
        let path = path
            .clone()
            .unwrap_or_else(|| labs.join(capstone::RECORDING));
        let rec = Recording {
            driver: who.clone(),
            recorded: provenance("lav bench --capstone --record"),
            runs: runs.clone(),
        };
        crate::workflows_bench::save_recording(&path, &rec)?;
        eprintln!("recorded {} runs to {}", runs.len(), path.display());
    }
    let refs: Vec<&DesignRun> = runs.iter().collect();
    let scores = capstone::scorecard(&refs);
    println!("Driven by {who}.");
    println!("| design | right | model calls | tool calls | tokens | wall s | exposure |");
    println!("|---|---|---|---|---|---|---|");
    for s in &scores {
        println!(
            "| {} | {}/{} | {:.1} | {:.1} | {:.0} | {:.1} | {} |",
            s.design,
            s.passed,
            s.tasks,
            s.model_calls,
            s.tool_calls,
            s.tokens,
            s.seconds,
            exposure(s.legs)
        );
    }
    println!("{}", decision(&scores));
    Ok(())
}
