//! The labelled tasks load, and their checker decides from the transcript alone.

use lav_agent::tasks::{self, Kind, Task, check, numbers, states};
use lav_agent::*;
use serde_json::json;

fn labs() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs")
}

#[test]
fn the_task_set_has_forty_labelled_tasks_of_every_kind() {
    let all = tasks::load(&labs()).unwrap();
    assert!(all.len() >= 40, "{}", all.len());
    for k in Kind::ALL {
        assert!(all.iter().filter(|t| t.kind == k).count() >= 8, "{k:?}");
    }
    let mut ids: Vec<_> = all.iter().map(|t| &t.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "ids are unique");
    // Every arithmetic answer is what the calculator computes for the prompt's
    // numbers: checked against a second computation here.
    let t = all.iter().find(|t| t.id == "arith-01").unwrap();
    assert_eq!(t.answer.as_deref(), Some("391"));
    assert_eq!(17 * 23, 391);
}

#[test]
fn numbers_are_read_the_way_people_write_them() {
    assert_eq!(numbers("17 * 23 = 391."), vec![17.0, 23.0, 391.0]);
    assert_eq!(
        numbers("It is 1,024 or -3.5, not 2."),
        vec![1024.0, -3.5, 2.0]
    );
    assert_eq!(numbers("order 1003-b"), vec![1003.0]);
    assert!(states("The result is 391.0", "391"));
    assert!(!states("The result is 341", "391"));
    assert!(states("It has SHIPPED.", "shipped"));
    assert!(!states("It was placed.", "shipped"));
}

fn task(
    tool: Option<&str>,
    args: Option<&str>,
    answer: Option<&str>,
    result: Option<&str>,
) -> Task {
    Task {
        id: "t".into(),
        kind: if tool.is_some() {
            Kind::Order
        } else {
            Kind::None
        },
        prompt: "?".into(),
        tool: tool.map(String::from),
        args: args.map(String::from),
        answer: answer.map(String::from),
        result: result.map(String::from),
    }
}

/// A run with one call (and its result) then an answer.
fn run_with(
    name: &str,
    args: serde_json::Value,
    result: &str,
    error: bool,
    answer: Option<&str>,
) -> Run {
    let mut s = State::new("sys", "user");
    let mut m = Message::new(Role::Assistant, "");
    m.tool_calls = vec![ToolCall {
        id: "c1".into(),
        name: name.into(),
        arguments: args,
    }];
    s.transcript.push(m);
    let mut r = Message::new(Role::Tool, result);
    r.tool_call_id = Some("c1".into());
    r.is_error = error;
    s.transcript.push(r);
    Run {
        state: s,
        stop: if answer.is_some() {
            Stop::EndOfTurn
        } else {
            Stop::Repeating
        },
        answer: answer.map(String::from),
    }
}

#[test]
fn the_checker_needs_the_right_call_the_right_result_and_the_answer() {
    let t = task(
        Some("get_order"),
        Some(r#"{"order_id": 1003}"#),
        Some("shipped"),
        None,
    );
    let ok = run_with(
        "get_order",
        json!({"order_id": 1003}),
        r#"{"status": "shipped"}"#,
        false,
        Some("It has shipped."),
    );
    let o = check(&t, &ok);
    assert!(o.passed, "{o:?}");
    assert_eq!((o.calls, o.failed_calls), (1, 0));
    for (run, why) in [
        (
            run_with(
                "get_order",
                json!({"order_id": 1004}),
                "{}",
                false,
                Some("shipped"),
            ),
            "never successfully",
        ),
        (
            run_with(
                "get_order",
                json!({"order_id": 1003}),
                "no such order",
                true,
                Some("shipped"),
            ),
            "never successfully",
        ),
        (
            run_with(
                "list_orders",
                json!({"customer": "Ada Byron"}),
                "[]",
                false,
                Some("shipped"),
            ),
            "never called get_order",
        ),
        (
            run_with(
                "get_order",
                json!({"order_id": 1003}),
                "{}",
                false,
                Some("It was placed"),
            ),
            "does not state",
        ),
        (
            run_with("get_order", json!({"order_id": 1003}), "{}", false, None),
            "no answer",
        ),
    ] {
        let o = check(&t, &run);
        assert!(!o.passed && o.reason.contains(why), "{why}: {o:?}");
    }
    let bad = check(
        &t,
        &run_with(
            "get_order",
            json!({"order_id": 1003}),
            "x",
            true,
            Some("shipped"),
        ),
    );
    assert_eq!(bad.failed_calls, 1);
    // Doc search: the result must hold the document.
    let d = task(Some("search_docs"), None, None, Some("kv-cache.md"));
    assert!(
        check(
            &d,
            &run_with(
                "search_docs",
                json!({"query": "kv"}),
                "[c1] (labs/llm-internals/kv-cache.md, score 1.0) …",
                false,
                Some("K and V")
            )
        )
        .passed
    );
    assert!(
        !check(
            &d,
            &run_with(
                "search_docs",
                json!({"query": "kv"}),
                "[c1] (labs/x/attention.md) …",
                false,
                Some("K and V")
            )
        )
        .passed
    );
    // No tool needed: any call fails it.
    let n = task(None, None, Some("Paris"), None);
    assert!(
        !check(
            &n,
            &run_with(
                "calculate",
                json!({"expression": "1"}),
                "1",
                false,
                Some("Paris")
            )
        )
        .passed
    );
    let plain = Run {
        state: State::new("sys", "user"),
        stop: Stop::EndOfTurn,
        answer: Some("Paris, of course.".into()),
    };
    assert!(check(&n, &plain).passed);
}
