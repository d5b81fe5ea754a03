//! A request's states: the moves in the diagram succeed, every other move is refused
//! with its name, and a preempted sequence keeps its output and recomputes it all.

use lav_engine::sequence::{Finish, SamplingParams, Sequence, Status};

fn seq(max_tokens: usize) -> Sequence {
    let params = SamplingParams {
        max_tokens,
        stop_tokens: vec![2],
        ..Default::default()
    };
    Sequence::new(7, vec![10, 11, 12], params)
}

#[test]
fn a_sequence_runs_is_preempted_recomputes_and_finishes() {
    let mut s = seq(3);
    assert_eq!(s.status(), Status::Waiting);
    assert!(
        s.push(5).is_err(),
        "a waiting sequence has no place to write"
    );
    // Two positions came from the prefix cache; one is left to prefill.
    s.start(2).unwrap();
    assert_eq!(s.uncomputed(), 1);
    s.computed_more(1).unwrap();
    assert_eq!(s.push(40).unwrap(), Status::Running);
    assert_eq!(
        s.uncomputed(),
        1,
        "the new token's K/V come with the next step"
    );
    s.preempt().unwrap();
    assert_eq!(
        (s.status(), s.computed(), s.preemptions()),
        (Status::Preempted, 0, 1)
    );
    assert_eq!(s.output(), [40], "preemption keeps what was generated");
    // Recompute: prompt and output are prefilled again.
    s.start(0).unwrap();
    assert_eq!(s.uncomputed(), 4);
    s.computed_more(4).unwrap();
    assert!(s.computed_more(1).is_err(), "no more positions than tokens");
    s.push(41).unwrap();
    assert_eq!(s.push(42).unwrap(), Status::Finished(Finish::Length));
    assert_eq!(s.tokens(), [10, 11, 12, 40, 41, 42]);
    let e = s.preempt().unwrap_err().to_string();
    assert!(
        e.contains("sequence 7") && e.contains("preempt") && e.contains("Finished"),
        "{e}"
    );
}

#[test]
fn a_stop_token_or_an_abort_ends_it() {
    let mut s = seq(10);
    s.start(0).unwrap();
    assert_eq!(s.push(2).unwrap(), Status::Finished(Finish::Stop));
    assert!(s.start(0).is_err());
    s.abort();
    assert_eq!(
        s.status(),
        Status::Finished(Finish::Stop),
        "finished stays finished"
    );
    let mut w = seq(10);
    w.abort();
    assert_eq!(w.status(), Status::Finished(Finish::Aborted));
    // A prompt served entirely from the cache still computes its last position.
    let mut c = seq(10);
    c.start(3).unwrap();
    assert_eq!(c.uncomputed(), 1);
}
