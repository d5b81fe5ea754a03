//! The grammar accepts exactly the JSON its schema allows, and masked random
//! generation can only produce valid replies.

use lav_agent_types::ToolSpec;
use lav_grammar::{Grammar, Matcher, TokenTrie, ToolChoice};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::sync::Arc;

fn accepts(g: &Arc<Grammar>, s: &str) -> bool {
    let mut m = Matcher::new(g.clone());
    m.advance_bytes(s.as_bytes()) && m.accepting()
}

fn search_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "k": {"type": "integer", "minimum": 1, "maximum": 10},
            "retriever": {"type": "string", "enum": ["grep", "bm25", "dense", "hybrid"]}
        },
        "required": ["query"],
        "additionalProperties": false
    })
}

#[test]
fn schema_grammar_accepts_exactly_the_valid_values() {
    let g = Arc::new(Grammar::json(&search_schema()));
    for ok in [
        r#"{"query": "kv cache"}"#,
        r#"{"query": "", "k": 3}"#,
        r#"{"query": "x", "retriever": "bm25"}"#,
        r#"{"query": "x", "k": 10, "retriever": "hybrid"}"#,
    ] {
        assert!(accepts(&g, ok), "{ok}");
    }
    for bad in [
        r#"{}"#,
        r#"{"k": 3}"#,
        r#"{"query": "x", "k": 11}"#,
        r#"{"query": "x", "k": 0}"#,
        r#"{"query": "x", "retriever": "magic"}"#,
        r#"{"retriever": "bm25", "query": "x"}"#,
        r#"{"query": 5}"#,
        r#"{"query": "a\"b"}"#,
        r#"{"query": "x"} "#,
        r#"{"query": "x""#,
    ] {
        assert!(!accepts(&g, bad), "{bad}");
    }
    let n = Arc::new(Grammar::json(
        &json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "integer"}, "c": {"type": "boolean"}, "d": {"type": "array", "items": {"type": "integer"}}}, "required": ["a", "b", "c", "d"]}),
    ));
    assert!(accepts(&n, r#"{"a": -1.25, "b": 0, "c": true, "d": []}"#));
    assert!(accepts(
        &n,
        r#"{"a": 3, "b": -42, "c": false, "d": [1, 2, 3]}"#
    ));
    for bad in [
        r#"{"a": 1., "b": 0, "c": true, "d": []}"#,
        r#"{"a": 01, "b": 0, "c": true, "d": []}"#,
        r#"{"a": 1, "b": 1.5, "c": true, "d": []}"#,
        r#"{"a": 1, "b": 1, "c": yes, "d": []}"#,
        r#"{"a": 1, "b": 1, "c": true, "d": [1,2]}"#,
    ] {
        assert!(!accepts(&n, bad), "{bad}");
    }
}

fn tools() -> Vec<ToolSpec> {
    let spec = |name: &str, input_schema: Value| ToolSpec {
        name: name.into(),
        description: String::new(),
        input_schema,
    };
    vec![
        spec("search_docs", search_schema()),
        spec(
            "calculate",
            json!({"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}),
        ),
        spec(
            "get_order",
            json!({"type": "object", "properties": {"order_id": {"type": "integer"}}, "required": ["order_id"]}),
        ),
    ]
}

/// Splits a reply into its calls, checking the block syntax on the way.
fn calls(reply: &str) -> Vec<Value> {
    reply
        .split('\n')
        .collect::<Vec<_>>()
        .chunks(3)
        .map(|c| {
            assert_eq!(c[0], "<tool_call>", "{reply}");
            assert_eq!(c[2], "</tool_call>", "{reply}");
            serde_json::from_str(c[1]).unwrap_or_else(|e| panic!("{e}: {reply}"))
        })
        .collect()
}

#[test]
fn masked_random_generation_always_yields_valid_calls() {
    // A toy vocabulary: every printable byte, newline, and multi-byte pieces that
    // cross structural boundaries, as real BPE tokens do.
    let mut vocab: Vec<Option<Vec<u8>>> = (0x20u8..0x7f).map(|b| Some(vec![b])).collect();
    vocab.push(Some(b"\n".to_vec()));
    for piece in [
        "<tool_call>",
        "\n</tool_call>",
        "{\"",
        "\": ",
        "\", \"",
        "name",
        "arguments",
        "query",
        "k",
        "\"}",
        "}}",
        "42",
        " cache",
        "calculate",
        "_order",
        "\"x",
        "1+",
        "bm25\"",
        "hyb",
        "rid",
    ] {
        vocab.push(Some(piece.as_bytes().to_vec()));
    }
    vocab.push(None); // a special token: never allowed
    let trie = TokenTrie::new(&vocab);
    let g = Arc::new(Grammar::tool_reply(&tools(), ToolChoice::Required, 4));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..200 {
        let mut m = Matcher::new(g.clone());
        let mut out = Vec::new();
        loop {
            let mask = m.mask(&trie);
            assert!(!mask[vocab.len() - 1]);
            let allowed: Vec<usize> = (0..vocab.len()).filter(|&i| mask[i]).collect();
            // Stop when the grammar allows it, half the time (the "EOS" choice).
            if m.accepting() && (allowed.is_empty() || rng.random_bool(0.5)) {
                break;
            }
            assert!(
                !allowed.is_empty(),
                "stuck after {:?}",
                String::from_utf8_lossy(&out)
            );
            let t = allowed[rng.random_range(0..allowed.len())];
            let bytes = vocab[t].clone().unwrap();
            assert!(m.advance_bytes(&bytes));
            out.extend(bytes);
        }
        let reply = String::from_utf8(out).unwrap();
        for c in calls(&reply) {
            let name = c["name"].as_str().unwrap();
            let args = &c["arguments"];
            match name {
                "search_docs" => {
                    assert!(args["query"].is_string());
                    if let Some(k) = args.get("k") {
                        assert!((1..=10).contains(&k.as_i64().unwrap()), "{reply}");
                    }
                    if let Some(r) = args.get("retriever") {
                        assert!(["grep", "bm25", "dense", "hybrid"].contains(&r.as_str().unwrap()));
                    }
                }
                "calculate" => assert!(args["expression"].is_string()),
                "get_order" => assert!(args["order_id"].is_i64(), "{reply}"),
                other => panic!("unknown tool {other}"),
            }
        }
    }
}

#[test]
fn auto_choice_allows_text_but_not_a_fake_tag() {
    let g = Arc::new(Grammar::tool_reply(&tools(), ToolChoice::Auto, 1));
    assert!(accepts(&g, "The answer is 42."));
    assert!(accepts(
        &g,
        "<tool_call>\n{\"name\": \"calculate\", \"arguments\": {\"expression\": \"6*7\"}}\n</tool_call>"
    ));
    assert!(!accepts(
        &g,
        "<tool_call>\n{\"name\": \"rm\", \"arguments\": {}}\n</tool_call>"
    ));
    assert!(!accepts(&g, "<b>bold</b>"));
    assert!(!accepts(&g, ""));
}

#[test]
fn min_completion_counts_the_shortest_way_out() {
    let g = Arc::new(Grammar::tool_reply(&tools(), ToolChoice::Required, 2));
    let mut m = Matcher::new(g.clone());
    let full =
        "<tool_call>\n{\"name\": \"get_order\", \"arguments\": {\"order_id\": 1}}\n</tool_call>";
    // From the start, the shortest reply is the shortest call.
    let shortest =
        "<tool_call>\n{\"name\": \"get_order\", \"arguments\": {\"order_id\": 0}}\n</tool_call>"
            .len();
    assert_eq!(m.min_completion(), shortest);
    // Walking a valid reply, the need never exceeds what is left of it, and the
    // completed reply needs nothing.
    for (i, b) in full.bytes().enumerate() {
        assert!(m.min_completion() <= full.len() - i, "at {i}");
        assert!(m.advance(b));
    }
    assert_eq!(m.min_completion(), 0);
    let mut m = Matcher::new(g);
    m.advance_bytes(b"<tool_call>\n{\"name\": \"calculate\", \"arguments\": {\"expression\": \"1+");
    assert_eq!(m.min_completion(), "\"}}\n</tool_call>".len());
}

/// Patterns a tool schema might use, in JSON Schema's own (unanchored unless `^`/`$`)
/// sense.
const PATTERNS: &[&str] = &[
    r"^[0-9+\-*/(). ]+$",
    r"^ORD-[0-9]{4}$",
    r"^[a-z]+(_[a-z]+)*$",
    r"^(ab|a)c?$",
    r"^\d{2,3}(\.\d+)?$",
    r"^[^0-9 ]{1,3}x$",
    r"ab",
    r"^a.c",
    r"x$",
    r"^(?:red|green|blue)$",
    r"^\w+\s\w+$",
    r"^a{0,2}b+$",
    r"^[\]\-a]+$",
    r"^é+$",
];

fn alphabet() -> Vec<char> {
    "0123456789+-*/(). abcdxORD_é]\\\"\n".chars().collect()
}

/// The pattern (with lengths) against the `regex` crate, an independent engine, on
/// every short string over an alphabet that hits each pattern's edges.
#[test]
fn patterns_match_what_the_regex_crate_matches() {
    use lav_grammar::Pattern;
    let alpha = alphabet();
    for src in PATTERNS {
        // JSON Schema's `\d \w \s` are ECMA-262's: ASCII, where the regex crate's
        // are Unicode by default.
        let ecma = src
            .replace(r"\d", r"(?-u:\d)")
            .replace(r"\w", r"(?-u:\w)")
            .replace(r"\s", r"(?-u:\s)");
        let reference = regex::Regex::new(&ecma).unwrap();
        for (min, max) in [(0, 120), (2, 8)] {
            let p = Pattern::new(Some(src), min, max).unwrap_or_else(|e| panic!("{src}: {e}"));
            // All strings up to length 3, plus longer ones built from pieces.
            let mut strings = vec![String::new()];
            let mut frontier = vec![String::new()];
            for _ in 0..3 {
                frontier = frontier
                    .iter()
                    .flat_map(|s| alpha.iter().map(move |c| format!("{s}{c}")))
                    .collect();
                strings.extend(frontier.iter().cloned());
            }
            strings.extend(
                [
                    "ORD-1234",
                    "ORD-12345",
                    "17*23",
                    "(1+2)/3",
                    "snake_case_name",
                    "ab_",
                    "12.5",
                    "123.",
                    "1234",
                    "aabbb",
                    "aaab",
                    "hello world",
                    "ééé",
                ]
                .map(String::from),
            );
            for s in &strings {
                let json_ok = !s.contains(['"', '\\', '\n']);
                let want = json_ok && reference.is_match(s) && (min..=max).contains(&s.len());
                assert_eq!(p.matches(s), want, "{src} {min}..={max} on {s:?}");
            }
        }
    }
}

#[test]
fn unsupported_patterns_are_refused_with_a_reason() {
    use lav_grammar::Pattern;
    for (src, why) in [
        (r"^(a)\1$", "not supported"),
        (r"(?=a)", "lookaround"),
        (r"^a$b", "only at the very start and end"),
        (r"^[é]$", "non-ASCII"),
        (r"^a{3,2}$", "in order"),
        (r"^(a$", "not closed"),
        (r#"^"$"#, "no string"),
    ] {
        let e = Pattern::new(Some(src), 0, 120).unwrap_err();
        assert!(e.contains(why), "{src}: {e}");
    }
    // The grammar keeps going without the pattern and says so.
    let g = Grammar::json(&json!({"type": "string", "pattern": "(?=x)"}));
    assert_eq!(g.notes.len(), 1, "{:?}", g.notes);
    assert!(g.notes[0].contains("not enforced"));
}

#[test]
fn string_lengths_and_number_bounds_hold() {
    let g = Arc::new(Grammar::json(&json!({"type": "object", "properties": {
        "s": {"type": "string", "minLength": 2, "maxLength": 4},
        "i": {"type": "integer", "minimum": -50, "maximum": 1000},
        "x": {"type": "number", "exclusiveMinimum": 0, "maximum": 2.5}
    }, "required": ["s", "i", "x"]})));
    let ok =
        |s: &str, i: &str, x: &str| accepts(&g, &format!(r#"{{"s": "{s}", "i": {i}, "x": {x}}}"#));
    assert!(ok("ab", "0", "0.5"));
    assert!(ok("abcd", "-50", "2.5"));
    assert!(ok("abc", "1000", "0.000001"));
    assert!(ok("abc", "999", "2.499999"));
    assert!(!ok("a", "0", "1"));
    assert!(!ok("abcde", "0", "1"));
    assert!(!ok("ab", "1001", "1"));
    assert!(!ok("ab", "-51", "1"));
    assert!(!ok("ab", "0", "0"));
    assert!(!ok("ab", "0", "2.500001"));
    assert!(!ok("ab", "0", "-1"));
    assert!(!ok("ab", "-0", "1"));
    // Prefixes that cannot end within bounds are refused at once.
    let mut m = Matcher::new(g.clone());
    assert!(m.advance_bytes(br#"{"s": "ab", "i": 10"#));
    assert!(m.clone().advance(b'0'), "100 is allowed");
    assert!(!m.clone().advance_bytes(b"000"), "10000 is not");
    let mut m = Matcher::new(g);
    assert!(m.advance_bytes(br#"{"s": "ab", "i": 1, "x": "#));
    assert!(!m.clone().advance(b'3'), "x < 3");
    assert!(!m.clone().advance(b'-'), "x > 0");
    assert!(m.advance_bytes(b"2.5"));
    assert!(!m.clone().advance(b'1'), "2.51 > 2.5");
}

/// Every number text of up to five bytes over digits, `-` and `.` is accepted
/// exactly when it is a JSON number of the right kind within bounds, and the
/// matcher's shortest completion agrees with a brute-force search.
#[test]
fn bounded_numbers_agree_with_their_value_exhaustively() {
    let bytes = b"0123456789-.";
    let mut texts = vec![Vec::new()];
    let mut frontier = vec![Vec::new()];
    for _ in 0..5 {
        frontier = frontier
            .iter()
            .flat_map(|t: &Vec<u8>| {
                bytes.iter().map(move |&b| {
                    let mut t = t.clone();
                    t.push(b);
                    t
                })
            })
            .collect();
        texts.extend(frontier.iter().cloned());
    }
    for (schema, integer, lo, hi) in [
        (
            json!({"type": "integer", "minimum": 7, "maximum": 250}),
            true,
            7.0,
            250.0,
        ),
        (
            json!({"type": "integer", "minimum": -120, "maximum": -3}),
            true,
            -120.0,
            -3.0,
        ),
        (
            json!({"type": "number", "minimum": -1.5, "maximum": 12.25}),
            false,
            -1.5,
            12.25,
        ),
        (
            json!({"type": "number", "minimum": 99.9}),
            false,
            99.9,
            1e10,
        ),
    ] {
        let g = Arc::new(Grammar::json(&schema));
        for t in &texts {
            let s = std::str::from_utf8(t).unwrap();
            let parsed: Option<f64> = serde_json::from_str::<Value>(s)
                .ok()
                .filter(|v| if integer { v.is_i64() } else { v.is_number() })
                .and_then(|v| v.as_f64())
                // "-0" is not an integer here, and a fraction has at most 6 digits.
                .filter(|_| !(integer && s.starts_with("-0")));
            let want = parsed.is_some_and(|v| v >= lo && v <= hi);
            assert_eq!(accepts(&g, s), want, "{schema} on {s}");
        }
        // A valid prefix can always be finished, and the shortest finish is right.
        for t in texts.iter().filter(|t| t.len() <= 3) {
            let mut m = Matcher::new(g.clone());
            if !m.advance_bytes(t) {
                continue;
            }
            let need = m.min_completion();
            let shortest = (0..=6).find(|&n| {
                let mut cands = vec![m.clone()];
                for _ in 0..n {
                    cands = cands
                        .iter()
                        .flat_map(|c| bytes.iter().filter_map(|&b| c.advanced(b)))
                        .collect();
                }
                cands.iter().any(Matcher::accepting)
            });
            assert_eq!(
                Some(need),
                shortest,
                "{schema} after {:?}",
                String::from_utf8_lossy(t)
            );
        }
    }
}

/// Inside patterned strings and bounded numbers, the trie walk allows exactly the
/// tokens that a token-by-token check over the whole vocabulary allows.
#[test]
fn the_trie_mask_equals_a_token_by_token_check_inside_constrained_values() {
    let mut vocab: Vec<Option<Vec<u8>>> = (0x20u8..0x7f).map(|b| Some(vec![b])).collect();
    for piece in [
        "ORD", "-", "ORD-", "12", "1234", "\"}", "\"", "17", "*", " * ", "23\"", "+1", "((", "ab",
        "é", "\"}}", "0.", ".5", "00", "-1",
    ] {
        vocab.push(Some(piece.as_bytes().to_vec()));
    }
    let trie = TokenTrie::new(&vocab);
    let g = Arc::new(Grammar::json(&json!({"type": "object", "properties": {
        "id": {"type": "string", "pattern": "^ORD-[0-9]{4}$"},
        "expr": {"type": "string", "pattern": r"^[0-9+\-*/(). ]{1,20}$"},
        "n": {"type": "integer", "minimum": 1, "maximum": 500}
    }, "required": ["id", "expr", "n"]})));
    let full = r#"{"id": "ORD-1234", "expr": "(17 * 23)+1", "n": 412}"#;
    let mut m = Matcher::new(g);
    for (i, b) in full.bytes().enumerate() {
        let mask = m.mask(&trie);
        for (id, bytes) in vocab.iter().enumerate() {
            let want = m.clone().advance_bytes(bytes.as_ref().unwrap());
            assert_eq!(
                mask[id],
                want,
                "at {i} ({:?}), token {:?}",
                &full[..i],
                String::from_utf8_lossy(bytes.as_ref().unwrap())
            );
        }
        assert!(m.advance(b), "at {i}");
    }
    assert!(m.accepting());
}
