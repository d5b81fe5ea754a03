//! `lav bench --evals`: the evals-diagnostics lab's material, from the runtime. The
//! local agent (as `lav agent` runs it: every built-in tool, default flags) runs the
//! twelve labelled tasks the reference labels name; the judge (the same model, one
//! grammar-constrained verdict per trace) grades each trace and is scored by TPR and
//! TNR; and each task runs again several times, sampled with one seed per trial, for
//! pass@k and pass^k. `--record` saves it all for the lab.

use crate::Global;
use crate::agent_cmd::{SYSTEM, builtin_tools};
use crate::lab_cmd::CliLoader;
use crate::workflows_bench::provenance;
use anyhow::Result;
use lav_agent::evals::Confusion;
use lav_agent::tasks::{self, Task};
use lav_agent::workflow::Backend;
use lav_agent::{Limits, Run, State};
use lav_labs_agents::eval_traces::{self, Recording, TEMPERATURE, TRIALS, Trace, Trials};
use lav_labs_agents::workflows::{Driver, Shop};
use lav_local::LocalLlm;
use lav_model::{Loader, WeightFormat};
use std::path::PathBuf;
use std::sync::Arc;

pub fn run(g: &Global, format: WeightFormat, record: Option<Option<PathBuf>>) -> Result<()> {
    let labs = lav_lab::labs_dir()?;
    let labels = eval_traces::labels(&labs).map_err(anyhow::Error::msg)?;
    let all = tasks::load(&labs).map_err(anyhow::Error::msg)?;
    let loader = Arc::new(CliLoader::new(g, format));
    let model = loader.model()?;
    let tok = loader.tokenizer()?;
    let trie = Arc::new(lav_local::vocab_trie(&tok));
    let name = loader.model_name();
    let agent = |task: &Task, sampling: Option<(f32, u64)>| -> Result<Run> {
        let mut tools = builtin_tools(&loader, &labs, &labs)?;
        let mut llm = LocalLlm::with_trie(model.clone(), tok.clone(), trie.clone(), &name);
        llm.sampling = sampling;
        Ok(lav_agent::run(
            &mut llm,
            tools.as_mut(),
            State::new(SYSTEM, &task.prompt),
            Limits {
                max_ticks: 6,
                ..Limits::default()
            },
            &mut (),
        )?)
    };
    let mut traces = Vec::new();
    for l in &labels {
        let task = eval_traces::task_of(&all, l).map_err(anyhow::Error::msg)?;
        let run = agent(task, None)?;
        let (passed, reason) = eval_traces::check(task, &run);
        eprintln!(
            "{} {:9} {} {}",
            l.id,
            task.id,
            if passed { "pass" } else { "FAIL" },
            if passed {
                run.answer.clone().unwrap_or_default()
            } else {
                reason.clone()
            }
            .chars()
            .take(70)
            .collect::<String>()
        );
        traces.push(Trace {
            id: l.id.clone(),
            task: task.id.clone(),
            run,
            passed,
            reason,
        });
    }
    let shop = Shop {
        driver: Driver::Local {
            model: model.clone(),
            tok: tok.clone(),
            trie: trie.clone(),
            name: name.clone(),
        },
    };
    let mut llm = shop.llm(0);
    let judge = eval_traces::judge_all(llm.as_mut(), &traces, &all).map_err(anyhow::Error::msg)?;
    let scored = Confusion::from_pairs(labels.iter().filter_map(|l| {
        let j = judge.iter().find(|j| j.trace == l.id)?;
        Some((l.pass, j.judgement.passes()))
    }));
    let mut trials = Vec::new();
    for l in &labels {
        let task = eval_traces::task_of(&all, l).map_err(anyhow::Error::msg)?;
        let mut outcomes = Vec::new();
        for seed in 1..=TRIALS {
            let run = agent(task, Some((TEMPERATURE, seed)))?;
            outcomes.push((seed, eval_traces::check(task, &run).0));
        }
        let t = Trials {
            task: task.id.clone(),
            temperature: TEMPERATURE,
            outcomes,
        };
        eprintln!("trials {:9} {}/{}", t.task, t.successes(), t.n());
        trials.push(t);
    }
    let who = format!("{name} under lav's tool grammar");
    let cv = eval_traces::curves(&trials);
    if let Some(path) = &record {
        let path = path
            .clone()
            .unwrap_or_else(|| labs.join(eval_traces::RECORDING));
        let rec = Recording {
            driver: who.clone(),
            recorded: provenance("lav bench --evals --record"),
            traces: traces.clone(),
            judge,
            trials,
        };
        crate::workflows_bench::save_recording(&path, &rec)?;
        eprintln!("recorded to {}", path.display());
    }
    let pct = |r: Option<f64>| r.map_or("n/a".into(), |r| format!("{:.0}%", r * 100.0));
    println!("Driven by {who}.");
    println!(
        "traces: {} pass, {} fail (checker); judge: TPR {}, TNR {} (TP {} TN {} FP {} FN {})",
        traces.iter().filter(|t| t.passed).count(),
        traces.iter().filter(|t| !t.passed).count(),
        pct(scored.tpr()),
        pct(scored.tnr()),
        scored.tp,
        scored.tn,
        scored.fp,
        scored.fn_
    );
    println!(
        "trials: p = {:.3} ± {:.3} (SE) over {} trials at temperature {TEMPERATURE}",
        cv.p, cv.se, cv.n
    );
    println!("| k | pass@k formula | pass@k measured | pass^k formula | pass^k measured |");
    println!("|---|---|---|---|---|");
    for (a, h) in cv.at.iter().zip(&cv.hat) {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            a.0, a.1, a.4, h.1, h.4
        );
    }
    Ok(())
}
