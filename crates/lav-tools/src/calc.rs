//! A calculator: one arithmetic expression in, one number out. Parsing is exmex's
//! (floats throughout, so 7/2 is 3.5); anything that is not a finite number, or any
//! expression with variables, comes back as an error result.

use lav_agent_types::{ToolCall, ToolResult, ToolSpec, Tools};
use serde_json::json;

/// Expressions longer than this are refused: a calculator call is a formula, not a
/// program.
pub const MAX_CHARS: usize = 200;

/// What a constrained model may send: numbers (no `1.2.3`), the operators, function
/// calls and parentheses, as terms joined by operators. A regular language cannot
/// balance parentheses; the evaluator reports an unbalanced one.
pub const EXPRESSION_PATTERN: &str = r"^ *((\( *|- *|(sqrt|ln|exp|abs|sin|cos|tan) *\( *)*\d{1,12}(\.\d{1,8})?( *\))*)( *[-+*/^] *((\( *|- *|(sqrt|ln|exp|abs|sin|cos|tan) *\( *)*\d{1,12}(\.\d{1,8})?( *\))*))* *$";

/// The schema's length cap: far below [`MAX_CHARS`], as a tiny model's formulas are
/// short and a long one is almost always a loop.
pub const MAX_GRAMMAR_CHARS: usize = 80;

pub struct Calculator;

impl Calculator {
    pub fn spec() -> ToolSpec {
        ToolSpec {
            name: "calculate".into(),
            description: "Evaluates one arithmetic expression with + - * / ^, parentheses and functions such as sqrt, ln, exp, sin, abs; e.g. \"(2 + 3) * 4.5\".".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"expression": {
                    "type": "string",
                    "pattern": EXPRESSION_PATTERN,
                    "maxLength": MAX_GRAMMAR_CHARS,
                    "examples": ["(2 + 3) * 4.5"]
                }},
                "required": ["expression"],
                "additionalProperties": false
            }),
        }
    }

    pub fn evaluate(expression: &str) -> Result<f64, String> {
        let e = expression.trim();
        if e.is_empty() {
            return Err("give an expression, e.g. \"2 * (3 + 4)\"".into());
        }
        if e.chars().count() > MAX_CHARS {
            return Err(format!("the expression is over {MAX_CHARS} characters"));
        }
        let v: f64 = exmex::eval_str(e).map_err(|err| {
            let msg = err.to_string();
            let first = msg.lines().next().unwrap_or("not an arithmetic expression");
            format!("cannot evaluate {e:?}: {first}")
        })?;
        if !v.is_finite() {
            return Err(format!("{e:?} has no finite value (division by zero?)"));
        }
        Ok(v)
    }
}

impl Tools for Calculator {
    fn list(&self) -> Vec<ToolSpec> {
        vec![Self::spec()]
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let expr = call.arguments.get("expression").and_then(|v| v.as_str());
        let r = match (call.name.as_str(), expr) {
            ("calculate", Some(e)) => Self::evaluate(e).map(|v| format!("{v}")),
            ("calculate", None) => Err("calculate needs a string argument `expression`".into()),
            (other, _) => Err(format!("no tool named {other}; this server has calculate")),
        };
        ToolResult::from_result(r)
    }
}
