//! `lav bench --planner`: the planner (plan, execute, reflect, retry, re-plan) on the
//! planning tasks under each preset of caps, driven by the local model under the
//! tool grammar (or `--llm-url`). Per preset: tasks the checker passed, model calls,
//! reflections, tokens and wall time. `--record` saves the runs for the
//! planning-reflection lab.

use crate::Global;
use crate::workflows_bench::{driver, provenance};
use anyhow::Result;
use lav_labs_agents::planning::{self, PlanRun, Recording};
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
    let tasks = planning::load(&labs).map_err(anyhow::Error::msg)?;
    let shop = Shop {
        driver: driver(g, format, &endpoint)?,
    };
    let who = shop.driver.describe();
    let mut runs = Vec::new();
    for (name, caps) in planning::presets() {
        for t in &tasks {
            let r = PlanRun::run(&shop, t, name, caps).map_err(anyhow::Error::msg)?;
            let o = &r.outcome;
            eprintln!(
                "{:8} {:24} {} {:5.1} s {:2} calls {} reflections, {} plans: {}",
                t.id,
                name,
                if r.passed { "pass" } else { "FAIL" },
                o.seconds,
                o.calls,
                o.reflections,
                o.plans.len(),
                o.stop.describe()
            );
            runs.push(r);
        }
    }
    if let Some(path) = &record {
        let path = path
            .clone()
            .unwrap_or_else(|| labs.join(planning::RECORDING));
        let rec = Recording {
            driver: who.clone(),
            recorded: provenance("lav bench --planner --record"),
            runs: runs.clone(),
        };
        crate::workflows_bench::save_recording(&path, &rec)?;
        eprintln!("recorded {} runs to {}", runs.len(), path.display());
    }
    println!("Driven by {who}.");
    println!(
        "| caps | solved | model calls / task | reflections / task | tokens / task | wall s / task |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, _) in planning::presets() {
        let mine: Vec<&PlanRun> = runs.iter().filter(|r| r.preset == name).collect();
        let n = mine.len().max(1) as f64;
        let mean = |f: &dyn Fn(&PlanRun) -> f64| mine.iter().map(|r| f(r)).sum::<f64>() / n;
        println!(
            "| {name} | {}/{} | {:.1} | {:.1} | {:.0} | {:.1} |",
            mine.iter().filter(|r| r.passed).count(),
            mine.len(),
            mean(&|r| r.outcome.calls as f64),
            mean(&|r| r.outcome.reflections as f64),
            mean(&|r| (r.outcome.usage.input_tokens + r.outcome.usage.output_tokens) as f64),
            mean(&|r| r.outcome.seconds),
        );
    }
    Ok(())
}
