//! The planner on a fake model whose moves depend only on the prompt: it stops at
//! each of its caps, retries with its reflection, re-plans, and is judged by a
//! deterministic checker.

use lav_agent::planner::{self, Caps, PlanStop, Prompts};
use lav_agent::workflow::Backend;
use lav_agent::{Llm, Reply, State, ToolCall, ToolResult, ToolSpec, Tools, Usage};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The fake model's move for (system prompt, user turn, whether a tool answered).
type Policy = dyn Fn(&str, &str, Option<&str>) -> Reply + Send + Sync;

struct Fake {
    policy: Arc<Policy>,
    sleep: Duration,
}

struct FakeLlm(Arc<Policy>, Duration);

impl Llm for FakeLlm {
    fn name(&self) -> String {
        "fake".into()
    }
    fn next(&mut self, s: &State, _: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
        std::thread::sleep(self.1);
        let result = s
            .transcript
            .iter()
            .rev()
            .find(|m| m.role == lav_agent::Role::Tool)
            .map(|m| m.content.as_str());
        Ok((self.0)(
            &s.transcript[0].content,
            &s.transcript[1].content,
            result,
        ))
    }
}

/// `lookup` answers "found K" for key K, and fails for "bad".
struct Lookup;

impl Tools for Lookup {
    fn list(&self) -> Vec<ToolSpec> {
        vec![ToolSpec {
            name: "lookup".into(),
            description: "Looks up a key.".into(),
            input_schema: json!({"type": "object"}),
        }]
    }
    fn call(&mut self, c: &ToolCall) -> ToolResult {
        match c.arguments["key"].as_str() {
            Some("bad") | None => ToolResult::error("no such key"),
            Some(k) => ToolResult::from_result(Ok(format!("found {k}"))),
        }
    }
}

impl Backend for Fake {
    fn llm(&self, _: u64) -> Box<dyn Llm + Send> {
        Box::new(FakeLlm(self.policy.clone(), self.sleep))
    }
    fn tools(&self, _: &[String]) -> Box<dyn Tools + Send> {
        Box::new(Lookup)
    }
}

fn usage() -> Usage {
    Usage {
        input_tokens: 10,
        output_tokens: 3,
        cached_tokens: None,
    }
}

fn say(t: &str) -> Reply {
    Reply::Final {
        text: t.into(),
        usage: usage(),
    }
}

fn call(name: &str, args: serde_json::Value) -> Reply {
    Reply::Calls {
        text: String::new(),
        calls: vec![ToolCall {
            id: "c1".into(),
            name: name.into(),
            arguments: args,
        }],
        usage: usage(),
    }
}

/// A model that plans `steps`, executes a step by looking up its key (the step's
/// last word, or `key_after_reflection` once a reflection is in its prompt), and
/// reflects with a fixed sentence.
fn fake(steps: &'static [&'static str], key_after_reflection: Option<&'static str>) -> Fake {
    let p = Prompts::default();
    let (planner, reflector) = (p.planner.clone(), p.reflector.clone());
    Fake {
        sleep: Duration::ZERO,
        policy: Arc::new(move |system, user, result| {
            if system == planner {
                return call("choose_plan", json!({ "steps": steps }));
            }
            if system == reflector {
                return say("The key was wrong; use the right one.");
            }
            if let Some(r) = result {
                return say(&format!("answer: {r}"));
            }
            let step = user
                .lines()
                .find_map(|l| l.strip_prefix("Step: "))
                .unwrap_or("");
            let key = match key_after_reflection {
                Some(k) if user.contains("Reflection:") => k,
                _ => step.split_whitespace().last().unwrap_or(""),
            };
            call("lookup", json!({ "key": key }))
        }),
    }
}

fn caps() -> Caps {
    Caps {
        retries: 2,
        reflections: 10,
        replans: 0,
        tokens: 1_000_000,
        time: Duration::from_secs(60),
    }
}

fn says_found(want: &'static str) -> impl Fn(&str) -> Result<(), String> {
    move |a: &str| {
        if a.contains(want) {
            Ok(())
        } else {
            Err(format!("the answer does not say {want:?}"))
        }
    }
}

#[test]
fn a_plan_whose_steps_pass_is_solved_and_the_checker_has_the_last_word() {
    let f = fake(&["look up apple", "look up pear"], None);
    let o = planner::run(
        &f,
        &Prompts::default(),
        caps(),
        "fruit",
        &says_found("pear"),
    )
    .unwrap();
    assert_eq!(o.stop, PlanStop::Solved);
    assert_eq!(o.answer.as_deref(), Some("answer: found pear"));
    assert_eq!(o.plans.len(), 1);
    assert!(o.plans[0].steps.iter().all(|s| s.passed()));
    // One planning call, then two ticks (call, answer) per step.
    assert_eq!(o.calls, 1 + 2 * 2);
    assert_eq!(o.usage.input_tokens, 10 * 5);
    assert_eq!(o.reflections, 0);
    // The checker is a real judge: the same run against another answer fails.
    let o = planner::run(
        &f,
        &Prompts::default(),
        caps(),
        "fruit",
        &says_found("plum"),
    )
    .unwrap();
    assert_ne!(o.stop, PlanStop::Solved);
    assert_eq!(o.answer, None);
    let last = o.plans[0].steps[1].attempts.last().unwrap();
    assert!(last.failure.contains("checker"), "{}", last.failure);
}

#[test]
fn a_failed_step_is_retried_with_its_reflection() {
    let f = fake(&["look up bad"], Some("good"));
    let o = planner::run(&f, &Prompts::default(), caps(), "t", &says_found("good")).unwrap();
    assert_eq!(o.stop, PlanStop::Solved);
    let a = &o.plans[0].steps[0].attempts;
    assert_eq!(a.len(), 2);
    assert!(a[0].failure.contains("no such key"), "{}", a[0].failure);
    assert_eq!(
        a[0].reflection.as_deref(),
        Some("The key was wrong; use the right one.")
    );
    assert!(a[1].failure.is_empty());
    assert_eq!(o.reflections, 1);
}

#[test]
fn the_planner_stops_at_the_retry_cap() {
    let f = fake(&["look up bad"], None);
    let o = planner::run(&f, &Prompts::default(), caps(), "t", &says_found("x")).unwrap();
    assert_eq!(o.stop, PlanStop::Retries);
    // The first try and two retries, a reflection before each retry and none after
    // the last failure (nothing would use it).
    assert_eq!(o.plans[0].steps[0].attempts.len(), 3);
    assert_eq!(o.reflections, 2);
    assert_eq!(o.answer, None);
}

#[test]
fn the_planner_stops_at_the_reflection_cap() {
    let f = fake(&["look up bad"], None);
    let c = Caps {
        retries: 5,
        reflections: 2,
        ..caps()
    };
    let o = planner::run(&f, &Prompts::default(), c, "t", &says_found("x")).unwrap();
    assert_eq!(o.stop, PlanStop::Reflections);
    assert_eq!(o.reflections, 2);
    assert_eq!(o.plans[0].steps[0].attempts.len(), 3);
}

#[test]
fn the_planner_replans_and_stops_at_the_replan_cap() {
    let f = fake(&["look up bad"], None);
    let c = Caps {
        retries: 0,
        replans: 1,
        ..caps()
    };
    let o = planner::run(&f, &Prompts::default(), c, "t", &says_found("x")).unwrap();
    assert_eq!(o.stop, PlanStop::Replans);
    assert_eq!(o.plans.len(), 2);
    assert!(
        o.plans[1].because.contains("failed: a tool call failed"),
        "{}",
        o.plans[1].because
    );
    // The revised plan was asked for with the failure and the reflection in hand.
    let ask = &o.plans[1].run.state.transcript[1].content;
    assert!(ask.contains("Reflection: The key was wrong"), "{ask}");
}

#[test]
fn the_planner_stops_at_the_token_and_time_caps() {
    let f = fake(&["look up a", "look up b", "look up c"], None);
    // 13 tokens a call: after the plan (13) there is room, after step one's two
    // calls (39) there is none, and step two never starts.
    let c = Caps {
        tokens: 30,
        ..caps()
    };
    let o = planner::run(&f, &Prompts::default(), c, "t", &says_found("c")).unwrap();
    assert_eq!(o.stop, PlanStop::Tokens);
    assert_eq!(o.usage.input_tokens + o.usage.output_tokens, 13 * 3);
    assert!(o.plans[0].steps[0].passed());
    assert!(o.plans[0].steps[1].attempts.is_empty());

    let mut slow = fake(&["look up a", "look up b", "look up c"], None);
    slow.sleep = Duration::from_millis(30);
    let c = Caps {
        time: Duration::from_millis(100),
        ..caps()
    };
    let o = planner::run(&slow, &Prompts::default(), c, "t", &says_found("c")).unwrap();
    assert_eq!(o.stop, PlanStop::Time);
    // It stopped between calls, soon after the cap: one call late at most.
    assert!(o.seconds >= 0.1 && o.seconds < 0.1 + 0.2, "{}", o.seconds);
    assert_eq!(o.answer, None);
}
