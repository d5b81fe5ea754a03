//! `lav bench --workflows`: the single agent and the five workflow patterns on the
//! labelled calculations and order lookups, driven by the local model under the tool
//! grammar (or `--llm-url`). Per pattern: the checker's accuracy, model calls,
//! tokens and wall time per task, and how far the measured wall time is from the
//! latency rule. `--record` saves the runs for the workflow-patterns lab.

use crate::Global;
use crate::lab_cmd::CliLoader;
use anyhow::{Result, bail};
use lav_labs_agents::labs::workflow_patterns::summarize;
use lav_labs_agents::workflows::{self, Driver, PatternRun, Recording, Shop};
use lav_model::{Loader, WeightFormat};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Plan {
    pub only: Option<String>,
    /// Save the runs: to the path, or where the lab reads them.
    pub record: Option<Option<PathBuf>>,
    /// (url, model) of an OpenAI-compatible endpoint.
    pub endpoint: Option<(String, String)>,
    pub json: bool,
}

pub fn run(g: &Global, format: WeightFormat, plan: Plan) -> Result<()> {
    let labs = lav_lab::labs_dir()?;
    let mut tasks = workflows::labelled(&labs).map_err(anyhow::Error::msg)?;
    if let Some(p) = &plan.only {
        tasks.retain(|t| t.id.starts_with(p.as_str()));
    }
    if tasks.is_empty() {
        bail!("no labelled calculation or order lookup matches; ids look like arith-01, order-03");
    }
    let driver = driver(g, format, &plan.endpoint)?;
    let who = driver.describe();
    let shop = Shop { driver };
    let mut runs = Vec::new();
    for t in &tasks {
        for (name, flow) in workflows::patterns() {
            let r = PatternRun::run(&shop, t, name, &flow).map_err(anyhow::Error::msg)?;
            if !plan.json {
                let tr = &r.outcome.trace;
                eprintln!(
                    "{:9} {:22} {} {:5.1} s (rule {:5.1} s) {:2} calls  {}",
                    t.id,
                    name,
                    if r.passed { "pass" } else { "FAIL" },
                    tr.seconds(),
                    tr.rule_seconds(),
                    tr.model_calls(),
                    if r.passed {
                        r.outcome
                            .output
                            .text
                            .lines()
                            .next()
                            .unwrap_or("")
                            .to_string()
                    } else {
                        r.reason.clone()
                    }
                    .chars()
                    .take(60)
                    .collect::<String>()
                );
            }
            runs.push(r);
        }
    }
    if let Some(path) = &plan.record {
        let path = path
            .clone()
            .unwrap_or_else(|| labs.join(workflows::RECORDING));
        let rec = Recording {
            driver: who.clone(),
            recorded: provenance("lav bench --workflows --record"),
            runs: runs.clone(),
        };
        crate::workflows_bench::save_recording(&path, &rec)?;
        eprintln!("recorded {} runs to {}", runs.len(), path.display());
    }
    let refs: Vec<&PatternRun> = runs.iter().collect();
    let summary = summarize(&refs);
    if plan.json {
        let rows: Vec<_> = summary
            .iter()
            .map(|s| {
                serde_json::json!({"pattern": s.pattern, "passed": s.passed, "tasks": s.tasks,
                "model_calls_per_task": s.calls, "tokens_per_task": s.tokens,
                "wall_s_per_task": s.seconds})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!("Driven by {who}.");
    println!(
        "| pattern | passed | model calls / task | tokens / task | wall s / task | worst |wall − rule| ms |"
    );
    println!("|---|---|---|---|---|---|");
    for s in &summary {
        let worst = runs
            .iter()
            .filter(|r| r.pattern == s.pattern)
            .map(|r| (r.outcome.trace.seconds() - r.outcome.trace.rule_seconds()).abs() * 1e3)
            .fold(0.0, f64::max);
        println!(
            "| {} | {}/{} | {:.1} | {:.0} | {:.1} | {:.1} |",
            s.pattern, s.passed, s.tasks, s.calls, s.tokens, s.seconds, worst
        );
    }
    Ok(())
}

/// The endpoint's driver, or the local model's under the tool grammar.
pub(crate) fn driver(
    g: &Global,
    format: WeightFormat,
    endpoint: &Option<(String, String)>,
) -> Result<Driver> {
    Ok(match endpoint {
        Some((url, model)) => Driver::Endpoint {
            url: url.clone(),
            model: model.clone(),
        },
        None => {
            let loader = CliLoader::new(g, format);
            let tok = loader.tokenizer()?;
            Driver::Local {
                model: loader.model()?,
                trie: Arc::new(lav_local::vocab_trie(&tok)),
                tok,
                name: loader.model_name(),
            }
        }
    })
}

/// Writes a recording as one line of JSON.
pub(crate) fn save_recording(path: &std::path::Path, rec: &impl serde::Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_string(rec)? + "\n")
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Where a recording says it came from: the date, the command and the cores.
pub(crate) fn provenance(command: &str) -> String {
    format!(
        "recorded on {} with `{command}` on {} cores",
        today(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    )
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
