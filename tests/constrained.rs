//! SmolLM2 under the tool-call grammar's mask: schema-valid calls every time,
//! checked by an independent validator (Python's `jsonschema`); and the mask itself
//! equals a token-by-token check over the real 49,152-token vocabulary.

use lav_agent::{State, ToolSpec, Tools};
use lav_grammar::{Grammar, Matcher, ToolChoice};
use lav_local::{LocalLlm, parse_reply, ranked, vocab_trie};
use serde_json::{Value, json};
use std::io::Write;
use std::process::Stdio;
use std::sync::Arc;

fn llm() -> LocalLlm {
    LocalLlm::new(
        lav_tests::model_arc(),
        lav_tests::tokenizer_arc(),
        "SmolLM2-135M-Instruct",
    )
}

fn tools() -> Vec<ToolSpec> {
    let docs = lav_tools::DocsSearch::spec();
    let files = lav_tools::FileReader::spec();
    std::iter::once(docs)
        .chain(lav_tools::Calculator.list())
        .chain(std::iter::once(files))
        .chain(lav_tools::Orders::seeded().unwrap().list())
        .chain(lav_tools::Sink::default().list())
        .collect()
}

/// 56 requests across the eight tools: plain, indirect, misspelled, off-topic.
const REQUESTS: &[&str] = &[
    "What is 17 times 23?",
    "Compute (3.5 + 4) / 2.",
    "how much is 2 to the power of 10",
    "Add 1234 and 4321.",
    "What's the square root of 144?",
    "Divide 100 by 7 for me.",
    "If I buy 3 cables at 7.99 each, what do I pay?",
    "Where is my order 1003?",
    "What is the status of order #1007?",
    "Look up order 1001.",
    "Has order 1005 shipped?",
    "order 1009 details pls",
    "Show me Ada Byron's orders.",
    "List all orders for Grace Hopper.",
    "What did Alan Turing buy?",
    "Orders of Edsger Dijkstra, please.",
    "Cancel order 1008 please.",
    "I want to cancel my order 1004.",
    "Stop order 1009 from shipping.",
    "Search the docs for the KV cache.",
    "How does speculative decoding work?",
    "Find documentation about tensor cores.",
    "What is the roofline model?",
    "Explain prefix caching.",
    "Look up how MCP tool calls work.",
    "What does the lethal trifecta mean?",
    "Search for grouped-query attention.",
    "Find the docs on paged attention using the hybrid retriever.",
    "Search with BM25 for serving metrics, top 5.",
    "Read the file notes/plan.md.",
    "Open README.md and show it to me.",
    "What's in labs/index.toml?",
    "Show me the contents of data/heldout.txt",
    "Email ada@example.org that her order shipped.",
    "Send a message to grace@example.org saying hello.",
    "Tell alan@example.org the meeting moved to Thursday.",
    "Fetch https://example.org/status.",
    "Get the page at http://localhost:8080/health",
    "Download https://example.com/data.json",
    "Hello!",
    "Who are you?",
    "Tell me a joke.",
    "What is the capital of France?",
    "Summarise the KV cache lesson.",
    "I need help with my order.",
    "calc 9*9",
    "ordr 1002 status",
    "serch docs quantization",
    "What is 6 * 7, and is order 1003 shipped?",
    "Email the total of order 1004 to grace@example.org.",
    "How many bytes per token does the KV cache take?",
    "What is batching in LLM serving?",
    "Cancel everything Ada ordered.",
    "Read ../secret.txt",
    "Why are GPUs fast?",
    "What is 0.1 + 0.2?",
];

fn validate(tools: &[ToolSpec], calls: &[Value]) -> Value {
    let schemas: serde_json::Map<String, Value> = tools
        .iter()
        .map(|t| (t.name.clone(), t.input_schema.clone()))
        .collect();
    let mut py = lav_tests::python()
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/py/validate_calls.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let input = json!({"tools": schemas, "calls": calls});
    py.stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_reply_is_a_schema_valid_call() {
    assert!(REQUESTS.len() >= 50);
    let tools = tools();
    let mut llm = llm();
    let mut calls = Vec::new();
    let mut steps = 0;
    let mut agreed = 0;
    let mut mask_s = 0.0;
    let t = std::time::Instant::now();
    for (i, q) in REQUESTS.iter().enumerate() {
        // Every fourth request may make two calls at once.
        llm.max_calls = if i % 4 == 3 { 2 } else { 1 };
        let state = State::new("", q);
        let g = Grammar::tool_reply(&tools, ToolChoice::Required, llm.max_calls);
        let d = llm.decode(&LocalLlm::prompt(&state, &tools), g).unwrap();
        steps += d.steps.len();
        agreed += d.steps.iter().filter(|s| s.unconstrained_agrees).count();
        mask_s += d.mask_seconds;
        let parsed =
            parse_reply(&d.text, i as u64).unwrap_or_else(|e| panic!("{q}: {e}: {}", d.text));
        assert!(
            !parsed.is_empty() && parsed.len() <= llm.max_calls,
            "{q}: {}",
            d.text
        );
        for c in parsed {
            calls.push(json!({"name": c.name, "arguments": c.arguments, "request": q}));
        }
    }
    let v = validate(&tools, &calls);
    assert_eq!(v["invalid"], json!([]), "{v}");
    assert_eq!(v["valid"].as_u64().unwrap() as usize, calls.len());
    eprintln!(
        "{} requests, {} calls, all schema-valid; {steps} tokens, the mask changed the model's choice at {} ({:.1}%); mask {:.1} ms/token; {:.1} s",
        REQUESTS.len(),
        calls.len(),
        steps - agreed,
        100.0 * (steps - agreed) as f64 / steps as f64,
        1e3 * mask_s / steps as f64,
        t.elapsed().as_secs_f64()
    );
    // The same request twice: the second prompt reuses the first's KV cache.
    let state = State::new("", REQUESTS[0]);
    let g = || Grammar::tool_reply(&tools, ToolChoice::Required, 1);
    let a = llm.decode(&LocalLlm::prompt(&state, &tools), g()).unwrap();
    let b = llm.decode(&LocalLlm::prompt(&state, &tools), g()).unwrap();
    assert_eq!(b.reused_tokens, b.prompt_tokens - 1);
    assert_eq!(a.text, b.text);
}

#[test]
fn mask_equals_a_token_by_token_check_on_the_real_vocabulary() {
    let tok = lav_tests::tokenizer();
    let trie = vocab_trie(tok);
    let tools = tools();
    let g = Arc::new(Grammar::tool_reply(&tools, ToolChoice::Auto, 2));
    // Prefixes that stop at every kind of place: choosing text or a call, inside a
    // tool name, a string, a number, an enum, between properties, after a block.
    let prefixes = [
        "",
        "Sure",
        "<tool_call>\n{\"name\": \"",
        "<tool_call>\n{\"name\": \"get_",
        "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": {\"query\": \"kv ca",
        "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": {\"query\": \"kv\"",
        "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": {\"query\": \"kv\", \"k\": 1",
        "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": {\"query\": \"kv\", \"retriever\": \"hy",
        "<tool_call>\n{\"name\": \"get_order\", \"arguments\": {\"order_id\": 10",
        "<tool_call>\n{\"name\": \"get_order\", \"arguments\": {\"order_id\": 1003}}\n</tool_call>",
    ];
    for p in prefixes {
        let mut m = Matcher::new(g.clone());
        assert!(m.advance_bytes(p.as_bytes()), "{p:?}");
        let mask = m.mask(&trie);
        let mut n = 0;
        for id in 0..tok.vocab_size() as u32 {
            let want = !tok.is_special(id) && {
                let bytes = tok.token_bytes(id);
                !bytes.is_empty() && m.clone().advance_bytes(&bytes)
            };
            assert_eq!(
                mask[id as usize],
                want,
                "{p:?} token {id} {:?}",
                tok.token_bytes(id)
            );
            n += want as usize;
        }
        assert!(n > 0, "{p:?}: something is allowed");
    }
}

/// The decoder ranks only the best few tokens per step; they must be exactly the head
/// of a stable sort of the whole vocabulary by logit (ties: the lower id first).
#[test]
fn partial_ranking_equals_the_head_of_a_full_sort() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for round in 0..50 {
        // Few distinct values, so ties are common.
        let logits: Vec<f32> = (0..2000)
            .map(|_| rng.random_range(0..40) as f32 * 0.5)
            .collect();
        let keep: Vec<u32> = (0..2000u32).filter(|i| (i * 7 + round) % 3 != 0).collect();
        let mut full = keep.clone();
        full.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
        for n in [0, 1, 5, 64, 5000] {
            let got = ranked(&logits, keep.iter().copied(), n);
            assert_eq!(got, full[..n.min(full.len())], "round {round}, n {n}");
        }
    }
}

/// A call's string may itself hold the closing tag (SmolLM2 once wrote a message body
/// ending in "</tool_call>"): the JSON is read whole before the tag is looked for.
#[test]
fn a_closing_tag_inside_a_string_does_not_end_the_call() {
    let reply = "<tool_call>\n{\"name\": \"send_message\", \"arguments\": {\"to\": \"a@b.example\", \"body\": \"Hi!</tool_call>\"}}\n</tool_call>";
    let calls = parse_reply(reply, 0).unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].arguments["body"], "Hi!</tool_call>");
    assert!(parse_reply("<tool_call>\n{\"name\": \"x\", \"arguments\": {}}", 0).is_err());
    assert!(parse_reply("<tool_call>\n{\"name\": \"x\", \"argu", 0).is_err());
}

#[test]
fn the_selected_examples_are_the_most_alike_per_tool_and_none_is_a_labelled_task() {
    use lav_local::{EXAMPLES, SELECTED, likeness, select_examples};
    let spec = |name: &str| ToolSpec {
        name: name.into(),
        description: String::new(),
        input_schema: json!({"type": "object"}),
    };
    let shop = [spec("calculate"), spec("get_order"), spec("list_orders")];
    let last = |q: &str| select_examples(q, &shop).last().unwrap().1;
    assert_eq!(
        last("What item is in order 1005?"),
        "What item is in order 1240?"
    );
    assert_eq!(
        last("What is 2 to the power of 10?"),
        "What is 3 to the power of 4?"
    );
    assert_eq!(
        last("What did Grace Hopper order most recently?"),
        "What did Tom Reed order most recently?"
    );
    // The few most alike of the tools present, least alike first.
    let chosen = select_examples("Who placed order 1007?", &shop);
    assert_eq!(chosen.len(), SELECTED);
    assert_eq!(chosen.last().unwrap().1, "Who placed order 1238?");
    let calc_only = select_examples("Who placed order 1007?", &shop[..1]);
    assert!(calc_only.iter().all(|e| e.0 == "calculate"));
    // No example outside the top few is more alike than one inside it.
    let worst = likeness("Who placed order 1007?", chosen[0].1);
    let inside = |q: &str| chosen.iter().any(|e| e.1 == q);
    assert!(
        EXAMPLES
            .iter()
            .filter(|e| shop.iter().any(|t| t.name == e.0) && !inside(e.1))
            .all(|e| likeness("Who placed order 1007?", e.1) <= worst)
    );
    let scores: Vec<f64> = chosen
        .iter()
        .map(|e| likeness("Who placed order 1007?", e.1))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    assert!(select_examples("hello", &[spec("no_such_tool")]).is_empty());
    // Jaccard over words, numbers as one kind: {#, item, order} vs {#, order, status}.
    assert!(
        (likeness("What item is in order 1005?", "the status of order 12") - 0.5).abs() < 1e-12
    );
    // No worked example gives a labelled task away.
    let labs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("labs");
    let tasks = lav_agent::tasks::load(&labs).unwrap();
    for e in EXAMPLES {
        assert!(
            tasks.iter().all(|t| t.prompt != e.1),
            "example {:?} is a labelled task",
            e.1
        );
    }
}
