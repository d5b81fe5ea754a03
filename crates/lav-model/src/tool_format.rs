//! How tools and tool calls are written into lav's chat prompts, in the Hermes style
//! SmolLM2's template family uses: the tools listed in the system turn, a call as a
//! `<tool_call>` block holding `{"name": …, "arguments": …}`, a result as a
//! `<tool_response>` block in a `tool` turn. The local agent (`lav-local`) and `lav
//! serve` both write and read calls through this module, so a model sees the same
//! format whichever of them drives it.

use serde_json::Value;

/// The system turn's instructions before the tool list.
pub const TOOLS_HEADER: &str = "You can call tools. To call one, reply with\n<tool_call>\n{\"name\": \"<tool>\", \"arguments\": {<arguments as JSON>}}\n</tool_call>\nTools:\n";

/// One line of the tool list: `- name(arguments): description`.
pub fn tool_line(name: &str, description: &str, signature: &str) -> String {
    format!("- {name}({signature}): {description}\n")
}

/// A tool call as the tool grammar makes the model write it: `{"name": …,
/// "arguments": …}` with `", "` and `": "` between items and the arguments in the
/// grammar's order ([`canonical`] with the tool's `schema`; `Value::Null` when
/// unknown). Worked examples and earlier calls in the transcript are written this
/// way because a small model copies the form it reads: sorted, unspaced JSON
/// (serde's own) taught it a shape the grammar then had to override.
pub fn call_block(name: &str, arguments: &Value, schema: &Value) -> String {
    let mut s = String::from("<tool_call>\n{\"name\": ");
    s.push_str(&Value::String(name.to_string()).to_string());
    s.push_str(", \"arguments\": ");
    canonical(arguments, schema, &mut s);
    s.push_str("}\n</tool_call>");
    s
}

/// `v` as JSON in the tool grammar's canonical form: `", "` and `": "` separators;
/// an object's properties that `schema` requires first, in its `required` order,
/// then the others by name.
pub fn canonical(v: &Value, schema: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by_key(|k| {
                (
                    required.iter().position(|r| r == k).unwrap_or(usize::MAX),
                    k.as_str(),
                )
            });
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                canonical(&m[k.as_str()], &schema["properties"][k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                canonical(x, &schema["items"], out);
            }
            out.push(']');
        }
        v => out.push_str(&v.to_string()),
    }
}

/// A tool's result as the model reads it.
pub fn tool_response(content: &str) -> String {
    format!("<tool_response>\n{content}\n</tool_response>")
}

/// The `<tool_call>` blocks a reply opens with, as (name, arguments); empty when the
/// reply is plain text. `Err` says what is malformed.
pub fn parse_calls(text: &str) -> Result<Vec<(String, Value)>, String> {
    let mut calls = Vec::new();
    let mut rest = text.trim();
    while let Some(after) = rest.strip_prefix("<tool_call>") {
        // The JSON is read first and the closing tag looked for after it: a string
        // inside the call may itself hold "</tool_call>".
        let mut values = serde_json::Deserializer::from_str(after).into_iter::<Value>();
        let v = values
            .next()
            .ok_or("a <tool_call> block holds no JSON")?
            .map_err(|e| format!("tool call JSON: {e}"))?;
        let tail = after[values.byte_offset()..]
            .trim_start()
            .strip_prefix("</tool_call>")
            .ok_or("a <tool_call> block is not closed")?;
        calls.push((
            v["name"]
                .as_str()
                .ok_or("a tool call has no name")?
                .to_string(),
            v["arguments"].clone(),
        ));
        rest = tail.trim_start();
    }
    Ok(calls)
}

/// `query: string, k?: integer` — a tool's arguments in one line, shorter for a
/// small model to read than the JSON Schema.
pub fn signature(schema: &Value) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else {
        return String::new();
    };
    let mut names: Vec<&String> = props.keys().collect();
    names.sort_by_key(|k| {
        (
            !required.contains(&k.as_str()),
            required.iter().position(|r| r == k),
        )
    });
    names
        .iter()
        .map(|k| {
            let p = &props[k.as_str()];
            let ty = match p["enum"].as_array() {
                Some(e) => e
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
                None => p["type"].as_str().unwrap_or("any").to_string(),
            };
            let opt = if required.contains(&k.as_str()) {
                ""
            } else {
                "?"
            };
            format!("{k}{opt}: {ty}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// As [`signature`], with each argument's format: `order_id: integer from 1000 to
/// 9999`, `expression: string like "17 * 23"`.
pub fn signature_with_formats(schema: &Value) -> String {
    let props = schema["properties"].as_object();
    signature(schema)
        .split(", ")
        .filter(|p| !p.is_empty())
        .map(|part| {
            let name = part.split([':', '?']).next().unwrap_or("");
            let Some(p) = props.and_then(|ps| ps.get(name)) else {
                return part.to_string();
            };
            let mut f = part.to_string();
            if let (Some(lo), Some(hi)) = (p.get("minimum"), p.get("maximum")) {
                f.push_str(&format!(" from {lo} to {hi}"));
            }
            if let Some(e) = p["examples"].get(0) {
                f.push_str(&format!(" like {e}"));
            }
            f
        })
        .collect::<Vec<_>>()
        .join(", ")
}
