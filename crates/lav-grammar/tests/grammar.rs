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
