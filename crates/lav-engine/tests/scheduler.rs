//! The scheduler against a stand-in model whose next token depends on every token
//! before it, so a sequence that lost its K/V (preemption) and a prompt that was
//! prefilled in pieces must still produce exactly what it produces alone. The same
//! runs check the step limits, the block invariants and that the pool comes back.

use lav_engine::scheduler::{Batch, Policy, ScheduleError, Scheduler, SchedulerConfig};
use lav_engine::sequence::{Finish, SamplingParams, Sequence, Status};
use proptest::prelude::*;
use std::collections::HashMap;

const STOP: u32 = 2;

/// The stand-in model: a function of the whole history (a hash), now and then the
/// stop token.
fn next(tokens: &[u32]) -> u32 {
    let h = tokens.iter().fold(17u64, |h, &t| {
        h.wrapping_mul(1_000_003).wrapping_add(t as u64)
    });
    (h % 97) as u32
}

/// What a sequence produces on its own: `next` until the stop token or max_tokens.
fn solo(prompt: &[u32], max_tokens: usize) -> Vec<u32> {
    let mut t = prompt.to_vec();
    while t.len() - prompt.len() < max_tokens {
        let n = next(&t);
        t.push(n);
        if n == STOP {
            break;
        }
    }
    t[prompt.len()..].to_vec()
}

fn request(id: u64, prompt_len: usize, max_tokens: usize) -> Sequence {
    let prompt: Vec<u32> = (0..prompt_len as u32)
        .map(|i| (i * 7 + id as u32) % 50 + 3)
        .collect();
    let params = SamplingParams {
        max_tokens,
        stop_tokens: vec![STOP],
        ..Default::default()
    };
    Sequence::new(id, prompt, params)
}

/// Runs every step until nothing is left, checking each step's plan; returns the
/// number of steps and the preemptions seen.
fn run(s: &mut Scheduler) -> (usize, usize) {
    let cfg = s.config().clone();
    let (mut steps, mut preempted) = (0, 0);
    while !s.is_idle() {
        let batch: Batch = s.schedule();
        preempted += batch.preempted.len();
        assert!(!batch.is_empty(), "no progress with work queued");
        assert!(batch.num_tokens() <= cfg.max_num_batched_tokens);
        assert!(batch.chunks.len() <= cfg.max_num_seqs);
        s.blocks().check().unwrap();
        // The runner samples from each chunk that reaches a sequence's newest token;
        // its K/V cover every position up to there.
        let mut sampled = HashMap::new();
        for c in &batch.chunks {
            let seq = s.running().iter().find(|q| q.id() == c.seq).unwrap();
            assert_eq!(
                c.start,
                seq.computed(),
                "chunks continue where the last stopped"
            );
            let held = s.blocks().seq_len(c.seq).unwrap();
            assert!(
                c.start + c.len <= held,
                "K/V slots exist for every computed position"
            );
            if c.samples {
                sampled.insert(c.seq, next(seq.tokens()));
            }
        }
        s.update(&batch, &|id| sampled[&id]);
        s.blocks().check().unwrap();
        steps += 1;
        assert!(steps < 100_000, "the scheduler does not converge");
    }
    assert_eq!(s.blocks().num_used(), 0, "every block is back in the pool");
    (steps, preempted)
}

fn check_outputs(s: &Scheduler, reqs: &[(usize, usize)]) {
    assert_eq!(s.finished().len(), reqs.len());
    for q in s.finished() {
        let (p, m) = reqs[q.id() as usize];
        assert_eq!(
            q.output(),
            solo(q.prompt(), m),
            "seq {} (prompt {p})",
            q.id()
        );
        let why = if q.output().last() == Some(&STOP) {
            Finish::Stop
        } else {
            Finish::Length
        };
        assert_eq!(q.status(), Status::Finished(why));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_request_finishes_as_it_would_alone(
        reqs in prop::collection::vec((1..70usize, 1..24usize), 1..14),
        max_num_seqs in 1..9usize,
        max_num_batched_tokens in 4..96usize,
        num_blocks in 8..48usize,
        bs in prop::sample::select(vec![4usize, 16]),
        chunked_prefill in any::<bool>(),
        policy in prop::sample::select(vec![Policy::Continuous, Policy::Static]),
    ) {
        let cfg = SchedulerConfig {
            policy, max_num_seqs, max_num_batched_tokens, num_blocks,
            block_size: bs, chunked_prefill,
        };
        let mut s = Scheduler::new(cfg);
        let mut kept = Vec::new();
        for (i, &(p, m)) in reqs.iter().enumerate() {
            let id = kept.len() as u64;
            match s.add(request(id, p, m)) {
                Ok(()) => kept.push((p, m)),
                // Refused up front, with the reason: it could never run here.
                Err(ScheduleError::NeverFits { .. } | ScheduleError::LongerThanAStep { .. }) => {}
                Err(e) => panic!("request {i}: {e}"),
            }
        }
        let (steps, _) = run(&mut s);
        check_outputs(&s, &kept);
        prop_assert!(kept.is_empty() || steps > 0);
    }
}

#[test]
fn continuous_batching_needs_fewer_steps_than_static_on_mixed_lengths() {
    // Eight requests whose outputs differ widely in length: a static batch waits for
    // its longest member.
    let reqs: Vec<(usize, usize)> = (0..16)
        .map(|i| (8 + i % 5, if i % 4 == 0 { 40 } else { 4 }))
        .collect();
    let mut steps = Vec::new();
    for policy in [Policy::Static, Policy::Continuous] {
        let mut s = Scheduler::new(SchedulerConfig {
            policy,
            max_num_seqs: 4,
            max_num_batched_tokens: 256,
            num_blocks: 64,
            block_size: 16,
            chunked_prefill: true,
        });
        for (i, &(p, m)) in reqs.iter().enumerate() {
            s.add(request(i as u64, p, m)).unwrap();
        }
        steps.push(run(&mut s).0);
        check_outputs(&s, &reqs);
    }
    assert!(
        steps[1] * 3 < steps[0] * 2,
        "continuous {} vs static {}",
        steps[1],
        steps[0]
    );
}

#[test]
fn a_short_pool_preempts_and_recomputes_without_changing_an_output() {
    let reqs: Vec<(usize, usize)> = (0..6).map(|i| (20 + i, 30)).collect();
    let mut s = Scheduler::new(SchedulerConfig {
        max_num_seqs: 6,
        num_blocks: 24,
        block_size: 4,
        ..Default::default()
    });
    for (i, &(p, m)) in reqs.iter().enumerate() {
        s.add(request(i as u64, p, m)).unwrap();
    }
    let (_, preempted) = run(&mut s);
    assert!(
        preempted > 0,
        "24 blocks of four cannot hold six growing sequences"
    );
    check_outputs(&s, &reqs);
    assert!(s.finished().iter().any(|q| q.preemptions() > 0));
}

#[test]
fn chunked_prefill_splits_a_long_prompt_across_steps() {
    let mut s = Scheduler::new(SchedulerConfig {
        max_num_batched_tokens: 16,
        ..Default::default()
    });
    s.add(request(0, 40, 2)).unwrap();
    let lens: Vec<usize> = (0..3)
        .map(|_| {
            let b = s.schedule();
            let len = b.chunks[0].len;
            let tokens = s.running()[0].tokens().to_vec();
            s.update(&b, &|_| next(&tokens));
            len
        })
        .collect();
    assert_eq!(lens, [16, 16, 8]);
    // Without chunking, the same prompt is refused: it could never fit one step.
    let mut s = Scheduler::new(SchedulerConfig {
        max_num_batched_tokens: 16,
        chunked_prefill: false,
        ..Default::default()
    });
    let e = s.add(request(0, 40, 2)).unwrap_err().to_string();
    assert!(e.contains("chunked prefill"), "{e}");
}

#[test]
fn an_aborted_request_gives_its_blocks_back_at_once() {
    let mut s = Scheduler::new(SchedulerConfig::default());
    s.add(request(0, 40, 20)).unwrap();
    s.add(request(1, 10, 20)).unwrap();
    let b = s.schedule();
    s.update(&b, &|_| 5);
    let used = s.blocks().num_used();
    assert!(s.abort(0));
    assert!(s.blocks().num_used() < used);
    assert!(!s.abort(0), "already gone");
    assert_eq!(s.finished()[0].status(), Status::Finished(Finish::Aborted));
    s.blocks().check().unwrap();
}

#[test]
fn without_chunked_prefill_a_request_must_fit_one_step_whole() {
    // Found by the property above: prompt 63 + 19 outputs, preempted late, needed 80
    // positions recomputed in one step of 64, and waited forever.
    let cfg = SchedulerConfig {
        policy: Policy::Continuous,
        max_num_seqs: 2,
        max_num_batched_tokens: 64,
        num_blocks: 27,
        block_size: 4,
        chunked_prefill: false,
    };
    let mut s = Scheduler::new(cfg);
    s.add(request(0, 41, 20)).unwrap();
    let err = s.add(request(1, 63, 19)).unwrap_err();
    assert_eq!(
        err,
        ScheduleError::LongerThanAStep {
            tokens: 82,
            budget: 64
        }
    );
    assert!(err.to_string().contains("chunked prefill"));
    run(&mut s);
    check_outputs(&s, &[(41, 20)]);
}
