//! Grammars as trees of byte-level nodes, and their compilation from JSON Schema.

use crate::bounds::Bounds;
use crate::pattern::Pattern;
use lav_agent_types::ToolSpec;
use serde_json::Value;

/// One grammar node. Terminals consume bytes; `Seq` and `Alt` combine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// Exactly these bytes.
    Lit(Vec<u8>),
    /// A JSON string without escapes: `"`, `min` to `max` bytes other than `"`, `\`
    /// and control characters, `"`.
    Str {
        min: usize,
        max: usize,
    },
    /// A string whose characters follow [`Grammar::patterns`]`[i]` (a `pattern` with
    /// its length bounds).
    Pattern(usize),
    /// A number (or an integer) within bounds.
    Bounded(Bounds),
    /// A JSON integer: `-?(0|[1-9][0-9]*)`, at most `max_digits` digits.
    Int {
        max_digits: usize,
    },
    /// A JSON number: an integer, optionally `.` and 1..=6 digits.
    Num,
    /// Free text up to `max` bytes: no control bytes but newline, and not starting
    /// with `<` (so it cannot be mistaken for a tool call).
    Text {
        max: usize,
    },
    Seq(Vec<usize>),
    Alt(Vec<usize>),
}

/// Whether the model must call a tool or may answer in text instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolChoice {
    /// Tool call or text answer: the model's probabilities decide.
    Auto,
    /// At least one tool call.
    Required,
}

/// A grammar: nodes in an arena, and the root.
#[derive(Clone, Debug)]
pub struct Grammar {
    pub nodes: Vec<Node>,
    pub root: usize,
    pub patterns: Vec<Pattern>,
    /// Constraints of the schema the grammar could not keep, one line each (the value
    /// is then less constrained than the schema says).
    pub notes: Vec<String>,
}

/// The most calls one reply may make (parallel calls).
pub const MAX_CALLS: usize = 4;
/// String and text lengths the tiny model is held to.
pub const MAX_STRING: usize = 120;
pub const MAX_TEXT: usize = 600;

impl Grammar {
    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }
    fn lit(&mut self, s: &str) -> usize {
        self.push(Node::Lit(s.as_bytes().to_vec()))
    }
    fn seq(&mut self, v: Vec<usize>) -> usize {
        self.push(Node::Seq(v))
    }
    fn alt(&mut self, v: Vec<usize>) -> usize {
        self.push(Node::Alt(v))
    }
    fn empty(&mut self) -> usize {
        self.seq(Vec::new())
    }

    /// A grammar for exactly one JSON value of `schema`.
    pub fn json(schema: &Value) -> Grammar {
        let mut g = Grammar {
            nodes: Vec::new(),
            root: 0,
            patterns: Vec::new(),
            notes: Vec::new(),
        };
        g.root = g.value(schema, 0);
        g
    }

    /// The grammar of an assistant reply given the tools (each one's name and input
    /// schema):
    /// `<tool_call>\n{"name": N, "arguments": A}\n</tool_call>`, up to `max_calls`
    /// (at most [`MAX_CALLS`]) of them separated by newlines, or with
    /// [`ToolChoice::Auto`] a text answer instead.
    pub fn tool_reply(tools: &[ToolSpec], choice: ToolChoice, max_calls: usize) -> Grammar {
        let mut g = Grammar {
            nodes: Vec::new(),
            root: 0,
            patterns: Vec::new(),
            notes: Vec::new(),
        };
        let calls: Vec<usize> = tools
            .iter()
            .map(|t| {
                let head = g.lit(&format!(
                    "{{\"name\": {}, \"arguments\": ",
                    Value::String(t.name.clone())
                ));
                let args = g.value(&t.input_schema, 0);
                let tail = g.lit("}");
                g.seq(vec![head, args, tail])
            })
            .collect();
        let call = g.alt(calls);
        let open = g.lit("<tool_call>\n");
        let close = g.lit("\n</tool_call>");
        let block = g.seq(vec![open, call, close]);
        // block (\n block)^(0..MAX_CALLS-1), nested so each extra call is optional.
        let mut more = g.empty();
        for _ in 1..max_calls.clamp(1, MAX_CALLS) {
            let nl = g.lit("\n");
            let next = g.seq(vec![nl, block, more]);
            let none = g.empty();
            more = g.alt(vec![next, none]);
        }
        let blocks = g.seq(vec![block, more]);
        g.root = match choice {
            ToolChoice::Required => blocks,
            ToolChoice::Auto => {
                let text = g.push(Node::Text { max: MAX_TEXT });
                g.alt(vec![blocks, text])
            }
        };
        g
    }

    fn value(&mut self, schema: &Value, depth: usize) -> usize {
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let lits: Vec<usize> = values
                .iter()
                .map(|v| {
                    let s = v.to_string();
                    self.lit(&s)
                })
                .collect();
            return self.alt(lits);
        }
        match schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string")
        {
            "integer" => {
                let min = schema.get("minimum").and_then(Value::as_i64);
                let max = schema.get("maximum").and_then(Value::as_i64);
                match (min, max) {
                    // A small range is spelled out: the model sees every choice whole.
                    (Some(lo), Some(hi)) if hi >= lo && hi - lo < 64 => {
                        let lits: Vec<usize> =
                            (lo..=hi).map(|i| self.lit(&i.to_string())).collect();
                        self.alt(lits)
                    }
                    _ => self
                        .bounded(schema, true)
                        .unwrap_or_else(|| self.push(Node::Int { max_digits: 12 })),
                }
            }
            "number" => self
                .bounded(schema, false)
                .unwrap_or_else(|| self.push(Node::Num)),
            "boolean" => {
                let t = self.lit("true");
                let f = self.lit("false");
                self.alt(vec![t, f])
            }
            "array" if depth < 3 => {
                let item = schema.get("items").cloned().unwrap_or(Value::Null);
                let empty = self.lit("[]");
                let open = self.lit("[");
                let first = self.value(&item, depth + 1);
                let mut more = self.empty();
                for _ in 1..8 {
                    let sep = self.lit(", ");
                    let v = self.value(&item, depth + 1);
                    let next = self.seq(vec![sep, v, more]);
                    let none = self.empty();
                    more = self.alt(vec![next, none]);
                }
                let close = self.lit("]");
                let full = self.seq(vec![open, first, more, close]);
                self.alt(vec![empty, full])
            }
            "object" if depth < 3 => self.object(schema, depth),
            _ => self.string(schema),
        }
    }

    /// A string node with the schema's `pattern`, `minLength` and `maxLength` (held
    /// to [`MAX_STRING`] bytes).
    fn string(&mut self, schema: &Value) -> usize {
        let len = |k: &str| {
            schema
                .get(k)
                .and_then(Value::as_u64)
                .map(|n| (n as usize).min(MAX_STRING))
        };
        let max = len("maxLength").unwrap_or(MAX_STRING);
        let min = len("minLength").unwrap_or(0).min(max);
        let Some(pattern) = schema.get("pattern").and_then(Value::as_str) else {
            return self.push(Node::Str { min, max });
        };
        match Pattern::new(Some(pattern), min, max) {
            Ok(p) => {
                self.patterns.push(p);
                self.push(Node::Pattern(self.patterns.len() - 1))
            }
            Err(e) => {
                self.notes
                    .push(format!("pattern {pattern:?} is not enforced: {e}"));
                self.push(Node::Str { min, max })
            }
        }
    }

    /// A bounded number node, if the schema has bounds the node can hold.
    fn bounded(&mut self, schema: &Value, integer: bool) -> Option<usize> {
        match Bounds::from_schema(schema, integer) {
            Ok(b) => b.map(|b| self.push(Node::Bounded(b))),
            Err(e) => {
                self.notes.push(format!("bounds not enforced: {e}"));
                None
            }
        }
    }

    fn supported(schema: &Value) -> bool {
        schema.get("enum").is_some()
            || match schema.get("type").and_then(Value::as_str) {
                Some("string" | "integer" | "number" | "boolean" | "array") => true,
                Some("object") => schema.get("properties").is_some(),
                _ => false,
            }
    }

    /// `{` properties in schema order `}`: required ones always, optional ones
    /// possibly skipped, with `, ` between those present.
    fn object(&mut self, schema: &Value, depth: usize) -> usize {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Required properties first, in the order `required` lists them (an array
        // keeps its order; serde_json's maps are sorted), then the optional ones.
        let all = schema.get("properties").and_then(Value::as_object);
        let mut props: Vec<(String, Value, bool)> = required
            .iter()
            .filter_map(|k| Some((k.to_string(), all?.get(*k)?.clone(), true)))
            .collect();
        if let Some(all) = all {
            props.extend(
                all.iter()
                    .filter(|(k, v)| !required.contains(&k.as_str()) && Grammar::supported(v))
                    .map(|(k, v)| (k.clone(), v.clone(), false)),
            );
        }
        let prop = |g: &mut Grammar, i: usize| {
            let (k, v, _) = &props[i];
            let key = g.lit(&format!("{}: ", Value::String(k.clone())));
            let val = g.value(v, depth + 1);
            g.seq(vec![key, val])
        };
        // The first property present is i; everything before it must be optional.
        let mut firsts = Vec::new();
        for i in 0..props.len() {
            let head = prop(self, i);
            let mut rest = Vec::new();
            for (j, later) in props.iter().enumerate().skip(i + 1) {
                let sep = self.lit(", ");
                let p = prop(self, j);
                let present = self.seq(vec![sep, p]);
                rest.push(if later.2 {
                    present
                } else {
                    let none = self.empty();
                    self.alt(vec![present, none])
                });
            }
            let mut items = vec![head];
            items.extend(rest);
            firsts.push(self.seq(items));
            if props[i].2 {
                break;
            }
        }
        let open = self.lit("{");
        let close = self.lit("}");
        let all_optional = props.iter().all(|p| !p.2);
        let body = if all_optional {
            let none = self.empty();
            firsts.push(none);
            self.alt(firsts)
        } else {
            self.alt(firsts)
        };
        self.seq(vec![open, body, close])
    }
}
