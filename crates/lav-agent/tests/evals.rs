//! Eval arithmetic against values computed by hand.

use lav_agent::evals::*;
use proptest::prelude::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn pass_at_k_and_pass_hat_k_match_the_published_worked_values() {
    // The curriculum's p^n: 0.9^10 ≈ 35%, 0.99^10 ≈ 90%.
    assert!((pass_hat_k(0.9, 10) - 0.348_678_440_1).abs() < 1e-9);
    assert!((pass_hat_k(0.99, 10) - 0.904_382_075_0).abs() < 1e-9);
    assert!(close(pass_at_k(0.5, 3), 0.875));
    assert!(close(pass_at_k(0.2, 1), 0.2));
    assert!(close(pass_hat_k(0.2, 1), 0.2));
}

#[test]
fn the_estimators_match_hand_computed_binomials() {
    // n = 10 trials, c = 3 successes, k = 2:
    // pass@2 = 1 − C(7,2)/C(10,2) = 1 − 21/45; pass^2 = C(3,2)/C(10,2) = 3/45.
    assert!(close(
        pass_at_k_estimate(10, 3, 2).unwrap(),
        1.0 - 21.0 / 45.0
    ));
    assert!(close(pass_hat_k_estimate(10, 3, 2).unwrap(), 3.0 / 45.0));
    // k = 1 is the plain success rate.
    assert!(close(pass_at_k_estimate(10, 3, 1).unwrap(), 0.3));
    assert!(close(pass_hat_k_estimate(10, 3, 1).unwrap(), 0.3));
    // Fewer failures than k: some success is certain; fewer successes than k: all
    // k can never pass.
    assert_eq!(pass_at_k_estimate(5, 4, 2), Some(1.0));
    assert_eq!(pass_hat_k_estimate(5, 1, 2), Some(0.0));
    assert_eq!(pass_at_k_estimate(3, 1, 4), None);
}

#[test]
fn the_standard_error_is_the_binomial_one() {
    assert!(close(standard_error(0.5, 100), 0.05));
    assert!(close(standard_error(0.9, 400), 0.015));
    assert!(close(standard_error(1.0, 10), 0.0));
    assert!(standard_error(0.5, 0).is_nan());
}

#[test]
fn a_judge_is_scored_against_the_reference_labels() {
    let reference = [true, true, true, false, false, true, false, true];
    let judge = [true, false, true, false, true, true, false, true];
    let c = Confusion::from_pairs(reference.into_iter().zip(judge));
    assert_eq!(
        c,
        Confusion {
            tp: 4,
            tn: 2,
            fp: 1,
            fn_: 1
        }
    );
    assert!(close(c.tpr().unwrap(), 0.8));
    assert!(close(c.tnr().unwrap(), 2.0 / 3.0));
    // A judge that always says pass catches no failure.
    let yes = Confusion::from_pairs(reference.into_iter().map(|r| (r, true)));
    assert_eq!(yes.tnr(), Some(0.0));
    assert_eq!(yes.tpr(), Some(1.0));
    assert_eq!(Confusion::default().tpr(), None);
}

#[test]
fn the_matrix_counts_labels_and_names_the_top_fix() {
    let mut m = Matrix::new(
        &["wrong tool", "bad arguments", "misread result"],
        &["plan", "call", "answer"],
    );
    for (c, s) in [
        ("wrong tool", "call"),
        ("misread result", "answer"),
        ("misread result", "answer"),
        ("bad arguments", "call"),
        ("misread result", "call"),
    ] {
        m.add(c, s).unwrap();
    }
    assert_eq!(m.counts[2], vec![0, 1, 2]);
    assert_eq!(m.totals(), vec![1, 1, 3]);
    assert_eq!(m.top_fix(), Some(("misread result", 3)));
    assert!(m.add("typo", "call").unwrap_err().contains("typo"));
    assert_eq!(Matrix::new(&["a"], &["b"]).top_fix(), None);
}

proptest! {
    /// The estimators agree with the closed forms in expectation: averaged over
    /// every possible c under Binomial(n, p) they give 1 − (1 − p)^k and p^k.
    #[test]
    fn the_estimators_are_unbiased(n in 1u64..12, k in 1u64..6, p in 0.0f64..1.0) {
        prop_assume!(k <= n);
        let binom = |c: u64| {
            let mut b = 1.0;
            for i in 0..c {
                b = b * (n - i) as f64 / (i + 1) as f64;
            }
            b * p.powi(c as i32) * (1.0 - p).powi((n - c) as i32)
        };
        let at: f64 = (0..=n).map(|c| binom(c) * pass_at_k_estimate(n, c, k).unwrap()).sum();
        let hat: f64 = (0..=n).map(|c| binom(c) * pass_hat_k_estimate(n, c, k).unwrap()).sum();
        prop_assert!((at - pass_at_k(p, k as u32)).abs() < 1e-9);
        prop_assert!((hat - pass_hat_k(p, k as u32)).abs() < 1e-9);
    }
}

/// A model that replays fixed replies, one per tick, and keeps the prompts it saw.
struct Replies(Vec<lav_agent::Reply>, Vec<String>);

impl lav_agent::Llm for Replies {
    fn name(&self) -> String {
        "replies".into()
    }
    fn next(
        &mut self,
        state: &lav_agent::State,
        _: &[lav_agent::ToolSpec],
    ) -> lav_agent::agent::Result<lav_agent::Reply> {
        self.1.push(
            state
                .transcript
                .iter()
                .map(|m| m.content.clone())
                .collect::<Vec<_>>()
                .join("\n"),
        );
        Ok(self.0.remove(0))
    }
}

fn call(name: &str, args: serde_json::Value) -> lav_agent::Reply {
    lav_agent::Reply::Calls {
        text: String::new(),
        calls: vec![lav_agent::ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments: args,
        }],
        usage: Default::default(),
    }
}

fn final_(text: &str) -> lav_agent::Reply {
    lav_agent::Reply::Final {
        text: text.into(),
        usage: Default::default(),
    }
}

#[test]
fn a_trace_reads_as_turns_and_the_judge_grades_it_in_one_constrained_call() {
    // A run: one calculator call that fails, then an answer.
    let mut tools = lav_agent::Toolbox::default().with(Calc);
    let mut agent = Replies(
        vec![
            call("calculate", serde_json::json!({"expression": "2 +"})),
            final_("It is 5."),
        ],
        Vec::new(),
    );
    let run = lav_agent::run(
        &mut agent,
        &mut tools,
        lav_agent::State::new("sys", "What is 2 + 2?"),
        lav_agent::Limits::default(),
        &mut (),
    )
    .unwrap();
    let t = turns(&run);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].n, 1);
    assert!(!t[0].answer && t[0].did.starts_with("calculate"), "{t:?}");
    assert!(t[0].got.starts_with("error: "), "{t:?}");
    assert!(t[1].answer && t[1].did == "It is 5." && t[1].got.is_empty());
    let text = trace_text("What is 2 + 2?", &run);
    assert!(
        text.contains("Turn 1: called calculate") && text.contains("Turn 2: answered: It is 5.")
    );

    // The judge sees that text and its verdict is the grade call's.
    let mut judge_llm = Replies(
        vec![call(
            "grade",
            serde_json::json!({"verdict": "fail", "reason": "5 is wrong"}),
        )],
        Vec::new(),
    );
    let j = judge(&mut judge_llm, "What is 2 + 2?", &run).unwrap();
    assert_eq!(j.verdict, Some(false));
    assert_eq!(j.reason, "5 is wrong");
    assert!(!j.passes());
    assert!(judge_llm.1[0].contains("Turn 2: answered: It is 5."));
    // No grade call: no verdict, counted as a fail.
    let mut silent = Replies(vec![final_("hmm")], Vec::new());
    let j = judge(&mut silent, "What is 2 + 2?", &run).unwrap();
    assert_eq!(j.verdict, None);
    assert!(!j.passes());
}

/// A calculator that only knows 2 + 2.
struct Calc;

impl lav_agent::Tools for Calc {
    fn list(&self) -> Vec<lav_agent::ToolSpec> {
        vec![lav_agent::ToolSpec {
            name: "calculate".into(),
            description: "calc".into(),
            input_schema: serde_json::json!({"type": "object"}),
        }]
    }
    fn call(&mut self, c: &lav_agent::ToolCall) -> lav_agent::ToolResult {
        if c.arguments["expression"] == "2 + 2" {
            lav_agent::ToolResult::from_result(Ok("4".into()))
        } else {
            lav_agent::ToolResult::error("cannot parse the expression")
        }
    }
}
