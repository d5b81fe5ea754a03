//! The serving engine on SmolLM2: greedy requests served together under continuous
//! batching, chunked prefill and preemption write token for token what each writes
//! alone (lav-engine's plain generation loop), and the pool comes back full.

use lav_engine::runner::Runner;
use lav_engine::scheduler::{Policy, SchedulerConfig};
use lav_engine::sequence::{Finish, SamplingParams, Sequence, Status};
use lav_model::sampler::{Sampler, SamplerConfig};
use lav_model::{ChatMessage, chat_prompt};
use lav_tests::{model, model_arc, tokenizer};

const MAX: usize = 20;

fn requests() -> Vec<Vec<u32>> {
    [
        "What is the capital of France?",
        "Write a haiku about the sea.",
        "Name three primary colours.",
        "What is 12 times 12?",
        "Say hello in Spanish.",
        "Why is the sky blue? Answer in one sentence.",
    ]
    .iter()
    .map(|m| {
        tokenizer()
            .encode(&chat_prompt(&[ChatMessage::new("user", m)], true))
            .unwrap()
    })
    .collect()
}

fn stop_ids() -> Vec<u32> {
    (0..tokenizer().vocab_size() as u32)
        .filter(|&t| tokenizer().is_stop(t))
        .collect()
}

/// The plain loop, alone: greedy tokens until a stop token or MAX.
fn solo(prompt: &[u32]) -> Vec<u32> {
    let mut cache = model().new_cache();
    let mut sampler = Sampler::new(SamplerConfig::greedy()).unwrap();
    lav_engine::generate(
        model(),
        tokenizer(),
        prompt,
        &mut sampler,
        MAX,
        &mut cache,
        |_, _, _| true,
    )
    .unwrap()
    .generated
}

fn serve(cfg: SchedulerConfig) -> (Vec<Vec<u32>>, usize) {
    let mut r = Runner::new(model_arc(), cfg);
    let stops = stop_ids();
    for (i, p) in requests().into_iter().enumerate() {
        let params = SamplingParams {
            max_tokens: MAX,
            stop_tokens: stops.clone(),
            ..Default::default()
        };
        r.add(Sequence::new(i as u64, p, params)).unwrap();
    }
    let mut preempted = 0;
    let mut out = vec![Vec::new(); requests().len()];
    while !r.is_idle() {
        let step = r.step().unwrap();
        preempted += step.batch.preempted.len();
        for s in step.finished {
            // The plain loop does not keep the stop token it stopped at.
            let mut o = s.output().to_vec();
            if s.status() == Status::Finished(Finish::Stop) {
                o.pop();
            }
            out[s.id() as usize] = o;
        }
    }
    assert_eq!(
        r.scheduler().blocks().num_used(),
        0,
        "every block comes back"
    );
    // Every request has its timestamps in order.
    for t in r.times().values() {
        assert!(t.ttft().unwrap() > 0.0 && t.e2e().unwrap() >= t.ttft().unwrap());
    }
    (out, preempted)
}

#[test]
fn continuous_batching_writes_what_each_request_writes_alone() {
    let want: Vec<Vec<u32>> = requests().iter().map(|p| solo(p)).collect();
    let (got, _) = serve(SchedulerConfig {
        policy: Policy::Continuous,
        max_num_seqs: 4,
        max_num_batched_tokens: 48,
        num_blocks: 64,
        block_size: 16,
        chunked_prefill: true,
    });
    assert_eq!(got, want);
    // A pool too small for all of them at once: preemption and recompute, same text.
    let (got, preempted) = serve(SchedulerConfig {
        max_num_seqs: 6,
        num_blocks: 12,
        block_size: 8,
        ..Default::default()
    });
    assert!(
        preempted > 0,
        "twelve blocks of eight cannot hold six chats"
    );
    assert_eq!(got, want);
}
