//! The calculator computes in floats and refuses what is not arithmetic.

use lav_agent_types::{ToolCall, Tools};
use lav_tools::Calculator;
use serde_json::json;

#[test]
fn arithmetic_in_floats() {
    for (e, want) in [
        ("7/2", 3.5),
        ("(2 + 3) * 4.5", 22.5),
        ("2^10", 1024.0),
        ("-3 + 1", -2.0),
        ("sqrt(16) + abs(-2)", 6.0),
        ("0.9^10", 0.9f64.powi(10)),
    ] {
        let v = Calculator::evaluate(e).unwrap();
        assert!((v - want).abs() < 1e-12, "{e}: {v}");
    }
}

#[test]
fn non_arithmetic_comes_back_as_error_results() {
    let mut c = Calculator;
    let call = |name: &str, args| ToolCall {
        id: "1".into(),
        name: name.into(),
        arguments: args,
    };
    let ok = c.call(&call("calculate", json!({"expression": "6*7"})));
    assert_eq!((ok.content.as_str(), ok.is_error), ("42", false));
    for (name, args, why) in [
        ("calculate", json!({"expression": "1/0"}), "no finite value"),
        (
            "calculate",
            json!({"expression": "x + 1"}),
            "cannot evaluate",
        ),
        ("calculate", json!({"expression": "2 +"}), "cannot evaluate"),
        ("calculate", json!({"expression": ""}), "give an expression"),
        (
            "calculate",
            json!({"expression": "1+".repeat(150)}),
            "over 200 characters",
        ),
        ("calculate", json!({"expr": "1"}), "needs a string argument"),
        ("calc", json!({"expression": "1"}), "no tool named calc"),
    ] {
        let r = c.call(&call(name, args));
        assert!(
            r.is_error && r.content.contains(why),
            "{name}: {}",
            r.content
        );
        assert!(!r.content.contains('\n'), "one line: {}", r.content);
    }
}

/// The schema's pattern lets a constrained model write every formula above and none
/// of the garbage SmolLM2 sent before it existed; what it allows, the calculator
/// evaluates (parentheses aside, which no regular pattern can balance).
#[test]
fn the_expression_pattern_admits_arithmetic_and_nothing_else() {
    let spec = Calculator::spec();
    let schema = &spec.input_schema["properties"]["expression"];
    let p = lav_grammar::Pattern::new(
        schema["pattern"].as_str(),
        0,
        schema["maxLength"].as_u64().unwrap() as usize,
    )
    .unwrap();
    for ok in [
        "17 * 23",
        "7/2",
        "(2 + 3) * 4.5",
        "2^10",
        "-3 + 1",
        "sqrt(16) + abs(-2)",
        "0.9^10",
        "((1+2)*3)",
    ] {
        assert!(p.matches(ok), "{ok}");
        if ok.matches('(').count() == ok.matches(')').count() {
            assert!(Calculator::evaluate(ok).is_ok(), "{ok}");
        }
    }
    for bad in [
        "17.0.0.1.12.12.12",
        "}}  # TypeError",
        "17 times 23",
        "",
        "1 +",
        "import os",
        "1e400",
        &"1+".repeat(50),
    ] {
        assert!(!p.matches(bad), "{bad}");
    }
}
