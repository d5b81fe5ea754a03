//! `lav bench`: prefill and decode speed, measured as `bench/vs-llamacpp.sh` expects
//! (decode = 64 greedy tokens after the robot chat prompt; prefill = 256 tokens),
//! with capture-on vs capture-off and, optionally, candle's own `quantized_llama` on
//! the same file in the same process as a reference.

use crate::{Global, resolve};
use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use lav_model::sampler::argmax;
use lav_model::{
    BatchSeq, Capture, ChatMessage, KvPool, Llama, Logits, Tokenizer, WeightFormat, chat_prompt,
};
use serde::Serialize;
use std::time::Instant;

/// The decode prompt of the speed table.
pub const ROBOT_PROMPT: &str = "Write a short story about a robot learning to paint.";
/// Text the prefill batch is cut from.
const PREFILL_TEXT: &str = "The history of computing is a story of people finding ways to make machines do arithmetic faster. \
Early mechanical calculators used gears and levers, while modern processors switch billions of transistors every second. \
Each generation of hardware changed which programs were practical to write, and each new kind of program asked for new hardware. ";

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Prompt tokens for the prefill measurement.
    #[arg(long, default_value_t = 256)]
    prefill: usize,
    /// Greedy tokens for the decode measurement.
    #[arg(long, default_value_t = 64)]
    decode: usize,
    /// Timed repetitions; the best is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Also run candle's quantized_llama on the same file as an in-process reference.
    #[arg(long)]
    vs_candle: bool,
    /// Time the labs instead: first frame, and recomputing a scene after each control
    /// change (targets: < 2 s and < 50 ms).
    #[arg(long)]
    labs: bool,
    /// Time frames of this lab in the 3-D app instead (against an empty window).
    #[arg(long, value_name = "LAB")]
    frames: Option<String>,
    /// The step for --frames.
    #[arg(long)]
    step: Option<String>,
    /// Frames timed for --frames.
    #[arg(long, default_value_t = 120)]
    count: u32,
    /// Time batched decode instead: this many sequences stepping together through the
    /// serving engine's batched forward (a comma list, e.g. `1,4,8`), --decode steps
    /// each; tokens/s against batch 1.
    #[arg(long, value_delimiter = ',', value_name = "SIZES")]
    batch: Vec<usize>,
    /// Serve a seeded mixed-length workload on the engine instead: continuous against
    /// static batching (throughput), and the KV memory paging wastes against
    /// reserving each request's prompt + max_tokens up front.
    #[arg(long)]
    serving: bool,
    /// Run the local agent on the labelled tool tasks instead and report the success
    /// rate per kind of task, for each combination of the three lists below.
    #[arg(long)]
    agent_tasks: bool,
    /// With --agent-tasks: tool choices (auto, free, required).
    #[arg(long, value_delimiter = ',', default_value = "auto,required")]
    tool_choice: Vec<String>,
    /// With --agent-tasks: prompt styles (plain, formats, examples, dialogue, selected:
    /// the default of `lav agent`).
    #[arg(long, value_delimiter = ',', default_value = "selected")]
    prompt: Vec<String>,
    /// With --agent-tasks: value constraints in the tool grammar (on, off).
    #[arg(long, value_delimiter = ',', default_value = "on")]
    constraints: Vec<String>,
    /// With --agent-tasks or --workflows: only tasks whose id starts with this (e.g.
    /// arith).
    #[arg(long, value_name = "PREFIX")]
    only: Option<String>,
    /// Run the single agent and the five workflow patterns on the labelled
    /// calculations and order lookups instead: calls, tokens, wall time and the
    /// checker's accuracy per pattern.
    #[arg(long)]
    workflows: bool,
    /// With --workflows, --planner, --evals, --capstone, --context or --context-failures: save the runs where the lab plays them back
    /// (labs/data/agents/workflow-runs.json, planner-runs.json, eval-runs.json, capstone-runs.json, context-runs.json, context-failures.json) or to PATH.
    #[arg(long, value_name = "PATH")]
    record: Option<Option<std::path::PathBuf>>,
    /// With --workflows, --planner or --capstone: drive an OpenAI-compatible endpoint instead of the local model.
    #[arg(long, value_name = "URL")]
    llm_url: Option<String>,
    /// The model name to send to --llm-url.
    #[arg(long, value_name = "NAME", requires = "llm_url")]
    llm_model: Option<String>,
    /// Run the context-engineering lab's long audit under every setup instead
    /// (windows, compaction, memory notes, sub-agents, prefix order); `--record`
    /// saves the runs for the lab.
    #[arg(long)]
    context: bool,
    /// Run the planner (plan, execute, reflect, retry, re-plan) on the planning tasks
    /// under each preset of caps instead; `--record` saves the runs for the
    /// planning-reflection lab.
    #[arg(long)]
    planner: bool,
    /// Record the evals-diagnostics lab's material instead: the agent's twelve traces,
    /// the judge's verdicts on them, and seeded repeated trials for pass@k and pass^k.
    #[arg(long)]
    evals: bool,
    /// Run the capstone's designs (RAG only, a deterministic workflow, an autonomous
    /// agent, an orchestrator with sub-agents) on the customer-order questions
    /// instead: the scorecard and the decision rule; `--record` saves the runs.
    #[arg(long)]
    capstone: bool,
    /// Run context-engineering's four failure modes (poisoning, distraction,
    /// confusion, clash), each with its failing context and with its fix;
    /// `--record` saves the runs for the lab.
    #[arg(long)]
    context_failures: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Default)]
struct Report {
    model: String,
    weights: String,
    kernel: String,
    threads: usize,
    prefill_tokens: usize,
    decode_tokens: usize,
    decode_prompt_tokens: usize,
    /// Best-of-repeats seconds, and the rates they give.
    prefill_s: f64,
    decode_s: f64,
    prefill_tok_s: f64,
    decode_tok_s: f64,
    capture_decode_tok_s: f64,
    /// Time with capture on over time with it off (target ≤ 2).
    capture_cost_ratio: f64,
    greedy_ids: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    candle: Option<Reference>,
}

#[derive(Serialize)]
struct Reference {
    prefill_tok_s: f64,
    decode_tok_s: f64,
    greedy_ids: Vec<u32>,
    /// lav over candle.
    prefill_ratio: f64,
    decode_ratio: f64,
}

pub fn prefill_ids(tok: &Tokenizer, n: usize) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    while ids.len() < n {
        ids.extend(tok.encode(PREFILL_TEXT)?);
    }
    ids.truncate(n);
    Ok(ids)
}

fn best<F: FnMut() -> Result<f64>>(repeats: usize, mut f: F) -> Result<f64> {
    let mut b = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        b = b.min(f()?);
    }
    Ok(b)
}

/// Seconds for `n` greedy decode steps after `prompt`, and the ids chosen.
fn lav_decode(model: &Llama, prompt: &[u32], n: usize, capture: bool) -> Result<(f64, Vec<u32>)> {
    let mut cache = model.new_cache();
    let mut next = argmax(&model.next_logits(prompt, &mut cache)?).0;
    let mut ids = vec![next];
    let t = Instant::now();
    for _ in 0..n {
        let logits = if capture {
            let mut cap = Capture::new();
            model.forward(&[next], &mut cache, Logits::Last, Some(&mut cap))?
        } else {
            model.forward(&[next], &mut cache, Logits::Last, None)?
        };
        next = argmax(&logits.squeeze(0)?.to_vec1::<f32>()?).0;
        ids.push(next);
    }
    Ok((t.elapsed().as_secs_f64(), ids))
}

pub fn run(g: &Global, format: WeightFormat, a: BenchArgs) -> Result<()> {
    if a.labs {
        return crate::lab_cmd::bench_labs(g, format, a.json);
    }
    if a.agent_tasks {
        return crate::agent_tasks::run(
            g,
            format,
            crate::agent_tasks::Plan {
                choices: a.tool_choice,
                prompts: a.prompt,
                constraints: a.constraints,
                only: a.only,
                json: a.json,
            },
        );
    }
    if a.context {
        return crate::context_bench::run(g, format, a.record);
    }
    if a.context_failures {
        return crate::context_failures_bench::run(g, format, a.record);
    }
    if a.capstone {
        return crate::capstone_bench::run(
            g,
            format,
            a.record,
            a.llm_url
                .map(|url| (url, a.llm_model.unwrap_or("default".into()))),
        );
    }
    if a.evals {
        return crate::evals_bench::run(g, format, a.record);
    }
    if a.planner {
        return crate::planner_bench::run(
            g,
            format,
            a.record,
            a.llm_url
                .map(|url| (url, a.llm_model.unwrap_or("default".into()))),
        );
    }
    if a.workflows {
        return crate::workflows_bench::run(
            g,
            format,
            crate::workflows_bench::Plan {
                only: a.only,
                record: a.record,
                endpoint: a
                    .llm_url
                    .map(|url| (url, a.llm_model.unwrap_or("default".into()))),
                json: a.json,
            },
        );
    }
    if let Some(lab) = &a.frames {
        return crate::lab_cmd::bench_frames(g, format, lab, a.step.as_deref(), a.count, a.json);
    }
    let (model, tok) = resolve::model(g, format)?;
    if !a.batch.is_empty() {
        return batch_decode(&model, &tok, &a);
    }
    if a.serving {
        return serving(std::sync::Arc::new(model), &tok, a.json);
    }
    let prompt = tok.encode(&chat_prompt(
        &[ChatMessage::new("user", ROBOT_PROMPT)],
        true,
    ))?;
    let pre = prefill_ids(&tok, a.prefill)?;

    // Warm-up: page in weights, start the thread pool.
    model.next_logits(&pre[..pre.len().min(16)], &mut model.new_cache())?;

    let prefill_s = best(a.repeats, || {
        let mut cache = model.new_cache();
        let t = Instant::now();
        model.next_logits(&pre, &mut cache)?;
        Ok(t.elapsed().as_secs_f64())
    })?;
    let mut ids = Vec::new();
    let decode_s = best(a.repeats, || {
        let (s, i) = lav_decode(&model, &prompt, a.decode, false)?;
        ids = i;
        Ok(s)
    })?;
    let capture_s = best(a.repeats, || {
        Ok(lav_decode(&model, &prompt, a.decode, true)?.0)
    })?;

    let mut r = Report {
        model: model.config.name.clone(),
        weights: format!("{}, {}", format.label(), model.activations.label()),
        kernel: lav_model::quant::Kernel::detect().name().into(),
        threads: lav_model::threads(),
        prefill_tokens: pre.len(),
        decode_tokens: a.decode,
        decode_prompt_tokens: prompt.len(),
        prefill_s,
        decode_s,
        prefill_tok_s: pre.len() as f64 / prefill_s,
        decode_tok_s: a.decode as f64 / decode_s,
        capture_decode_tok_s: a.decode as f64 / capture_s,
        capture_cost_ratio: capture_s / decode_s,
        greedy_ids: ids,
        candle: None,
    };
    if a.vs_candle {
        let path = resolve::gguf_path(g)?;
        r.candle = Some(candle_reference(&path, &pre, &prompt, a.decode, &r)?);
    }

    if a.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} | weights: {} | kernel {} | {} threads",
            r.model, r.weights, r.kernel, r.threads
        );
        println!(
            "prefill  {:>8.1} tok/s  ({} tokens)",
            r.prefill_tok_s, r.prefill_tokens
        );
        println!(
            "decode   {:>8.1} tok/s  ({} greedy tokens after a {}-token chat prompt)",
            r.decode_tok_s, r.decode_tokens, r.decode_prompt_tokens
        );
        println!(
            "capture  {:>8.1} tok/s  decode with capture on: {:.2}x the time of capture off",
            r.capture_decode_tok_s, r.capture_cost_ratio
        );
        let first: Vec<String> = r.greedy_ids.iter().take(6).map(u32::to_string).collect();
        println!("greedy ids: {}, ...", first.join(", "));
        if let Some(c) = &r.candle {
            println!(
                "candle quantized_llama (same file, same process): prefill {:.1} tok/s, decode {:.1} tok/s",
                c.prefill_tok_s, c.decode_tok_s
            );
            println!(
                "lav / candle: prefill {:.2}x, decode {:.2}x",
                c.prefill_ratio, c.decode_ratio
            );
        }
    }
    Ok(())
}

/// Chat prompts for the batched decode: one per sequence (cycled past eight).
const BATCH_PROMPTS: [&str; 8] = [
    ROBOT_PROMPT,
    "What is the capital of France?",
    "Explain in one paragraph why the sky is blue.",
    "Write a haiku about the sea.",
    "List three uses of a paper clip.",
    "How do plants make food?",
    "Describe a cat to someone who has never seen one.",
    "What makes a good cup of tea?",
];

#[derive(Serialize)]
struct BatchRow {
    batch: usize,
    steps: usize,
    seconds: f64,
    tok_s: f64,
    /// Tokens/s over batch 1's (when batch 1 was measured).
    vs_batch_1: Option<f64>,
}

/// Decode tokens/s with `b` sequences stepping together: each step is one
/// `forward_batch` over the paged pool, one new position per sequence.
fn batch_decode_once(model: &Llama, prompts: &[Vec<u32>], b: usize, n: usize) -> Result<f64> {
    const BS: usize = 16;
    let ps: Vec<&[u32]> = (0..b).map(|i| &prompts[i % prompts.len()][..]).collect();
    let per = (ps.iter().map(|p| p.len()).max().unwrap_or(0) + n + 1).div_ceil(BS);
    let mut pool = KvPool::new(&model.config, b * per, BS);
    let tables: Vec<Vec<u32>> = (0..b)
        .map(|i| ((i * per) as u32..((i + 1) * per) as u32).collect())
        .collect();
    fn seq<'a>(tokens: &'a [u32], start: usize, block_table: &'a [u32]) -> BatchSeq<'a> {
        BatchSeq {
            tokens,
            start,
            block_table,
            logits: true,
        }
    }
    let first: Vec<BatchSeq> = ps.iter().zip(&tables).map(|(p, t)| seq(p, 0, t)).collect();
    let out = model.forward_batch(&first, &mut pool)?;
    let mut next: Vec<[u32; 1]> = out.iter().map(|l| [argmax(l).0]).collect();
    let mut pos: Vec<usize> = ps.iter().map(|p| p.len()).collect();
    let t = Instant::now();
    for _ in 0..n {
        let out = {
            let step: Vec<BatchSeq> = (0..b).map(|i| seq(&next[i], pos[i], &tables[i])).collect();
            model.forward_batch(&step, &mut pool)?
        };
        next = out.iter().map(|l| [argmax(l).0]).collect();
        pos.iter_mut().for_each(|p| *p += 1);
    }
    Ok((b * n) as f64 / t.elapsed().as_secs_f64())
}

fn batch_decode(model: &Llama, tok: &Tokenizer, a: &BenchArgs) -> Result<()> {
    let prompts: Vec<Vec<u32>> = BATCH_PROMPTS
        .iter()
        .map(|m| tok.encode(&chat_prompt(&[ChatMessage::new("user", m)], true)))
        .collect::<std::result::Result<_, _>>()?;
    let n = a.decode;
    let mut rows: Vec<BatchRow> = Vec::new();
    for &b in &a.batch {
        anyhow::ensure!(b >= 1, "--batch sizes are 1 or more");
        let tok_s = best(a.repeats, || {
            Ok(1.0 / batch_decode_once(model, &prompts, b, n)?)
        })?;
        let tok_s = 1.0 / tok_s;
        rows.push(BatchRow {
            batch: b,
            steps: n,
            seconds: (b * n) as f64 / tok_s,
            tok_s,
            vs_batch_1: None,
        });
    }
    if let Some(one) = rows.iter().find(|r| r.batch == 1).map(|r| r.tok_s) {
        rows.iter_mut()
            .for_each(|r| r.vs_batch_1 = Some(r.tok_s / one));
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "model": model.config.name, "activations": model.activations.label(), "threads": lav_model::threads(), "batch_decode": rows })
        );
        return Ok(());
    }
    println!(
        "{} | {} | {} threads | {n} decode steps per sequence, best of {}",
        model.config.name,
        model.activations.label(),
        lav_model::threads(),
        a.repeats.max(1)
    );
    println!("batch   tok/s   vs batch 1");
    for r in &rows {
        let ratio = r.vs_batch_1.map(|x| format!("{x:.2}x")).unwrap_or_default();
        println!("{:>5} {:>8.1}   {ratio}", r.batch, r.tok_s);
    }
    Ok(())
}

#[derive(Serialize)]
struct ServingRun {
    policy: &'static str,
    seconds: f64,
    output_tokens: usize,
    tok_s: f64,
    steps: usize,
    preemptions: usize,
    /// Time-averaged over steps: positions allocated but not (yet) holding a token.
    paged_waste: f64,
    /// The same, had each running request reserved prompt + max_tokens positions.
    reserved_waste: f64,
}

/// One workload through the engine under `policy`, timed on this machine.
/// The engine configuration both clocks of `--serving` use.
fn serving_config(policy: lav_engine::scheduler::Policy) -> lav_engine::scheduler::SchedulerConfig {
    lav_engine::scheduler::SchedulerConfig {
        policy,
        max_num_seqs: 8,
        max_num_batched_tokens: 256,
        num_blocks: 256,
        block_size: 16,
        chunked_prefill: true,
    }
}

/// The same requests through the same scheduler on the simulated clock: Llama-3-8B
/// in bf16 on an H100 from the hardware table. Output tokens per second of each
/// policy.
fn serving_simulated(reqs: &[(Vec<u32>, usize)]) -> Result<(String, [f64; 2])> {
    use lav_engine::scheduler::Policy;
    let dir = lav_lab::labs_dir()?;
    let model = lav_gpusim::model_configs(&dir)?
        .into_iter()
        .find(|m| m.id == "llama-3-8b")
        .context("labs/data/model-configs.toml has no llama-3-8b")?;
    let cost = lav_gpusim::step_cost::StepModel::bf16(model, lav_gpusim::gpu(&dir, "h100")?);
    let label = format!("{} bf16 on {}", cost.model.name, cost.gpu.label());
    let wl: Vec<lav_engine::workload::Request> = reqs
        .iter()
        .enumerate()
        .map(|(i, (p, m))| lav_engine::workload::Request {
            id: i as u64,
            arrival: 0.0,
            prompt: None,
            prompt_tokens: p.len(),
            max_tokens: *m,
        })
        .collect();
    let rate = |policy| -> Result<f64> {
        let run = lav_engine::sim::simulate(&wl, serving_config(policy), &cost)?;
        let end = run
            .requests
            .iter()
            .filter_map(|r| r.finish)
            .fold(0.0, f64::max);
        let out: usize = run.requests.iter().map(|r| r.tokens.len()).sum();
        Ok(out as f64 / end)
    };
    Ok((label, [rate(Policy::Static)?, rate(Policy::Continuous)?]))
}

fn serve_once(
    model: &std::sync::Arc<Llama>,
    reqs: &[(Vec<u32>, usize)],
    policy: lav_engine::scheduler::Policy,
) -> Result<ServingRun> {
    use lav_engine::sequence::{SamplingParams, Sequence};
    let cfg = serving_config(policy);
    let mut r = lav_engine::runner::Runner::new(model.clone(), cfg);
    for (i, (p, m)) in reqs.iter().enumerate() {
        let params = SamplingParams {
            max_tokens: *m,
            ..Default::default()
        };
        r.add(Sequence::new(i as u64, p.clone(), params))?;
    }
    let (mut steps, mut preemptions, mut paged, mut reserved) = (0, 0, 0.0, 0.0);
    let t = Instant::now();
    while !r.is_idle() {
        preemptions += r.step()?.batch.preempted.len();
        steps += 1;
        let u = r.scheduler().kv_usage();
        if u.allocated > 0 {
            paged += u.paged_waste();
            reserved += u.reserved_waste();
        }
    }
    let seconds = t.elapsed().as_secs_f64();
    let output_tokens = reqs.iter().map(|(_, m)| m).sum();
    Ok(ServingRun {
        policy: match policy {
            lav_engine::scheduler::Policy::Continuous => "continuous",
            lav_engine::scheduler::Policy::Static => "static",
        },
        seconds,
        output_tokens,
        tok_s: output_tokens as f64 / seconds,
        steps,
        preemptions,
        paged_waste: paged / steps as f64,
        reserved_waste: reserved / steps as f64,
    })
}

/// Sixteen requests arriving together, prompts of 64–256 tokens and outputs of 16–160
/// (seeded), no stop tokens, so both policies do exactly the same work; the pool
/// holds eight of the longest at once, so neither policy preempts.
fn serving(model: std::sync::Arc<Llama>, tok: &Tokenizer, json: bool) -> Result<()> {
    use lav_engine::scheduler::Policy;
    use lav_engine::workload::{Lengths, WorkloadSpec, generate};
    let text = prefill_ids(tok, 1024)?;
    let reqs: Vec<(Vec<u32>, usize)> = generate(&WorkloadSpec {
        rate: f64::INFINITY,
        count: 16,
        prompt: Lengths::Uniform { min: 64, max: 256 },
        output: Lengths::Uniform { min: 16, max: 160 },
        seed: 1,
    })
    .iter()
    .map(|w| {
        // Each prompt starts elsewhere in the text: no prefix is shared by chance.
        let at = (w.id as usize * 29) % (text.len() - w.prompt_tokens);
        (text[at..at + w.prompt_tokens].to_vec(), w.max_tokens)
    })
    .collect();
    let runs = [
        serve_once(&model, &reqs, Policy::Static)?,
        serve_once(&model, &reqs, Policy::Continuous)?,
    ];
    let ratio = runs[1].tok_s / runs[0].tok_s;
    let (sim_label, sim) = serving_simulated(&reqs)?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "runs": runs, "continuous_over_static": ratio,
                "simulated": {"label": sim_label, "static_tok_s": sim[0], "continuous_tok_s": sim[1],
                    "continuous_over_static": sim[1] / sim[0]} })
        );
        return Ok(());
    }
    println!(
        "{} | {} | {} threads | 16 requests, prompts 64-256 tokens, outputs 16-160, 8 slots",
        model.config.name,
        model.activations.label(),
        lav_model::threads()
    );
    println!("policy      seconds  out tok/s  steps  preempted  KV waste paged  reserved up front");
    for r in &runs {
        println!(
            "{:<10} {:>8.2} {:>10.1} {:>6} {:>10} {:>14.1}% {:>17.1}%",
            r.policy,
            r.seconds,
            r.tok_s,
            r.steps,
            r.preemptions,
            100.0 * r.paged_waste,
            100.0 * r.reserved_waste
        );
    }
    println!("continuous / static throughput: {ratio:.2}x (measured on this CPU)");
    println!(
        "simulated, {sim_label}: static {:.0} tok/s, continuous {:.0} tok/s, {:.2}x",
        sim[0],
        sim[1],
        sim[1] / sim[0]
    );
    Ok(())
}

fn candle_reference(
    path: &std::path::Path,
    pre: &[u32],
    prompt: &[u32],
    n: usize,
    lav: &Report,
) -> Result<Reference> {
    use candle_transformers::models::quantized_llama::ModelWeights;
    let dev = Device::Cpu;
    let mut file = std::fs::File::open(path)?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut file)?;
    let mut m = ModelWeights::from_gguf(content, &mut file, &dev)?;
    let run = |m: &mut ModelWeights, ids: &[u32], pos: usize| -> Result<Vec<f32>> {
        let x = Tensor::new(ids, &dev)?.unsqueeze(0)?;
        Ok(m.forward(&x, pos)?.squeeze(0)?.to_vec1::<f32>()?)
    };
    let t = Instant::now();
    run(&mut m, pre, 0)?;
    let prefill_s = t.elapsed().as_secs_f64();
    let mut next = argmax(&run(&mut m, prompt, 0)?).0;
    let mut ids = vec![next];
    let t = Instant::now();
    for i in 0..n {
        next = argmax(&run(&mut m, &[next], prompt.len() + i)?).0;
        ids.push(next);
    }
    let decode_s = t.elapsed().as_secs_f64();
    let prefill = pre.len() as f64 / prefill_s;
    let decode = n as f64 / decode_s;
    Ok(Reference {
        prefill_tok_s: prefill,
        decode_tok_s: decode,
        greedy_ids: ids,
        prefill_ratio: lav.prefill_tok_s / prefill,
        decode_ratio: lav.decode_tok_s / decode,
    })
}
