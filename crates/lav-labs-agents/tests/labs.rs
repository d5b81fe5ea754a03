//! The agent labs on lav's real runtime: what they show is what the loop, the tools,
//! the guard and the tokenizer did.

use lav_testkit::{bars, item_as, scene_at, table, text};

/// Opens one of this track's labs on the test models.
fn session(id: &str) -> lav_lab::Session {
    lav_testkit::session_in(&[lav_labs_agents::register], id)
}

#[test]
fn the_real_models_obedience_is_sampled_reproducibly() {
    use lav_labs_agents::labs::security_trifecta::obedience;
    let dir = lav_testkit::labs_dir().join("data/agents");
    let page = std::fs::read_to_string(dir.join("injected-page.md")).unwrap();
    let run = || {
        obedience(
            &lav_testkit::TestLoader,
            &dir,
            &page,
            3,
            &Default::default(),
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a.followed + a.ignored, 3);
    // The same seeds give the same replies: a measurement anyone can rerun.
    assert_eq!(a.replies, b.replies);
    assert!(a.replies.iter().all(|r| !r.is_empty()), "{:?}", a.replies);
}

#[test]
fn a_leak_is_recognised_from_the_private_file_whatever_it_says() {
    use lav_labs_agents::labs::security_trifecta::{attack, carries};
    let src = lav_testkit::labs_dir().join("data/agents");
    let page = std::fs::read_to_string(src.join("injected-page.md")).unwrap();
    let shipped = std::fs::read_to_string(src.join("notes.txt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let notes = "Locker code 7302. Flight to Oslo on Friday.";
    std::fs::write(dir.path().join("notes.txt"), notes).unwrap();
    let o = attack(dir.path(), &page, [true; 3], false).unwrap();
    assert_eq!(o.leaked.len(), 1);
    assert!(
        carries(&o.leaked[0].payload, notes),
        "{}",
        o.leaked[0].payload
    );
    // The shipped notes are not what leaked this time, and a payload without the notes
    // is no leak.
    assert!(!carries(&o.leaked[0].payload, &shipped));
    assert!(!carries(
        "Two recipes: lemon pasta and chickpea curry.",
        notes
    ));
}

#[test]
fn security_trifecta_leaks_only_with_all_three_legs_and_the_guard_blocks_it() {
    let mut s = session("security-trifecta");
    let sc = scene_at(&mut s, "legs", &[]);
    let b = bars(&sc, "legs");
    assert_eq!(b.bars.len(), 3);
    assert!(sc.item("legs").unwrap().title.contains("ALL THREE"));
    let red = |sc: &lav_scene::Scene| {
        item_as!(sc, "venn", PointCloud)
            .points
            .iter()
            .filter(|p| p.group == 3)
            .count()
    };
    assert!(red(&sc) > 0, "the triple overlap is drawn red");
    let sc = scene_at(&mut s, "legs", &["exfil=off"]);
    assert!(sc.item("legs").unwrap().title.contains("broken"));
    assert_eq!(red(&sc), 0);

    // Guard off, all legs: the sink holds the PIN from notes.txt.
    let sc = scene_at(&mut s, "attack", &["exfil=on", "guard=off"]);
    let sink = table(&sc, "sink");
    assert_eq!(sink.rows.len(), 1);
    assert_eq!(sink.rows[0][1], "recipes-feedback@evil.example");
    assert!(sink.rows[0][2].contains("PIN 4921"));
    assert!(text(&sc, "verdict").starts_with("LEAKED"));
    // The trace shows the three tool spans in order.
    let events = table(&sc, "events");
    let spans: Vec<&str> = events
        .rows
        .iter()
        .map(|r| r[1].as_str())
        .filter(|n| n.starts_with("execute_tool"))
        .collect();
    assert_eq!(
        spans,
        [
            "execute_tool fetch_page",
            "execute_tool read_file",
            "execute_tool send_message"
        ]
    );

    // Beside the scripted run, the real model's own choice on the page, sampled.
    let ob = bars(&sc, "obeys");
    assert_eq!(ob.bars.iter().map(|b| b.value).sum::<f64>(), 8.0);
    assert!(matches!(
        sc.item("obeys").unwrap().provenance,
        lav_scene::Provenance::Model { .. }
    ));

    // Guard on: refused, nothing recorded, and the reason names both sources.
    let sc = scene_at(&mut s, "attack", &["guard=on"]);
    assert!(table(&sc, "sink").rows.is_empty());
    let v = text(&sc, "verdict");
    assert!(
        v.starts_with("BLOCKED") && v.contains("read_file") && v.contains("fetch_page"),
        "{v}"
    );

    // Every combination: exactly one leaks (all three legs, guard off).
    let sc = scene_at(&mut s, "defenses", &[]);
    let m = table(&sc, "matrix");
    assert_eq!(m.rows.len(), 8);
    let leaks: Vec<&Vec<String>> = m
        .rows
        .iter()
        .filter(|r| r.contains(&"LEAKS".to_string()))
        .collect();
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0], &vec!["yes", "yes", "yes", "LEAKS", "blocked"]);
}

#[test]
fn agent_loop_state_shows_the_real_loop() {
    let mut s = session("agent-loop-state");
    let tok = lav_testkit::tokenizer();
    let sc = scene_at(&mut s, "loop", &["tick=3"]);
    let t = table(&sc, "transcript");
    assert_eq!(
        t.rows.len(),
        7,
        "system, user, and 2 calls + 2 results + an answer"
    );
    // Each message's content tokens are the real tokenizer's count.
    assert_eq!(
        t.rows[0][3],
        tok.encode("You are a shop assistant. Use the tools.")
            .unwrap()
            .len()
            .to_string()
    );
    // The tool results came from the real database and calculator over MCP.
    assert!(
        t.rows[3][2].contains("noise-cancelling headphones") && t.rows[3][2].contains("199.00")
    );
    assert!(t.rows[5][2].contains("214.92"));
    let sc0 = scene_at(&mut s, "loop", &["tick=0"]);
    assert_eq!(table(&sc0, "transcript").rows.len(), 2);
    assert_eq!(
        table(&sc0, "transcript").rows[1][3],
        tok.encode("Order 1004: with 8% sales tax, does it cost more than $200?")
            .unwrap()
            .len()
            .to_string()
    );
    // Input per tick grows, since the transcript is re-sent.
    let meter = bars(&sc, "meter");
    let ins: Vec<f64> = meter.bars.iter().map(|b| b.value).collect();
    assert_eq!(ins.len(), 3);
    assert!(ins.windows(2).all(|w| w[1] > w[0]), "{ins:?}");
    let cost = table(&sc, "cost");
    assert_eq!(cost.rows[1][1], format!("{}", ins.iter().sum::<f64>()));

    // p^n against seeded runs of the loop: within 3 standard errors at 400 runs.
    for (p, n) in [(0.9, 10), (0.99, 10), (0.8, 5)] {
        let sc = scene_at(
            &mut s,
            "reliability",
            &[&format!("p={p}"), &format!("n={n}")],
        );
        let row = &table(&sc, "point").rows[0];
        let formula: f64 = row[1].trim_end_matches('%').parse::<f64>().unwrap() / 100.0;
        let measured: f64 = row[2].trim_end_matches('%').parse::<f64>().unwrap() / 100.0;
        assert!((formula - f64::powi(p, n)).abs() < 1e-3);
        let se = (formula * (1.0 - formula) / 400.0).sqrt();
        assert!(
            (measured - formula).abs() <= 3.0 * se + 1e-9,
            "p={p} n={n}: {measured} vs {formula}"
        );
    }
    let sc = scene_at(&mut s, "reliability", &["p=0.9", "n=10"]);
    let _plot = item_as!(sc, "curve", Plot);

    // The stop conditions fire as set.
    let sc = scene_at(&mut s, "stops", &["max_ticks=3", "budget=6000"]);
    assert!(sc.item("stop").unwrap().title.contains("step cap"));
    assert_eq!(table(&sc, "stop").rows[0][0], "3");
    let sc = scene_at(&mut s, "stops", &["max_ticks=12", "budget=300"]);
    assert!(sc.item("stop").unwrap().title.contains("token budget"));
    let total: u64 = table(&sc, "stop").rows[0][3].parse().unwrap();
    assert!(total >= 300);
}

#[test]
fn retrieval_rag_scores_are_the_retrievers_own() {
    use lav_tools::corpus::{self, Chunking};
    use lav_tools::retrieval::{Bm25, Grep};
    let mut s = session("retrieval-rag");
    let labs = lav_testkit::labs_dir();
    let docs = corpus::load(&labs).unwrap();
    let qs = corpus::questions(&labs.join("data/rag-questions.toml")).unwrap();
    let ch = Chunking {
        size: 80,
        overlap: 16,
    };
    let chunks = corpus::chunk(&docs, ch);
    let set = corpus::label(&docs, &chunks, &qs).unwrap();

    let sc = scene_at(&mut s, "chunks", &["size=80", "overlap=16", "question=1"]);
    assert!(
        text(&sc, "summary").contains(&format!("→ {} chunks", chunks.len())),
        "{}",
        text(&sc, "summary")
    );
    let doc = table(&sc, "doc");
    let marked: Vec<&str> = doc
        .rows
        .iter()
        .filter(|r| r[2] == "✓")
        .map(|r| r[0].as_str())
        .collect();
    assert_eq!(
        marked,
        set[0]
            .relevant
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );

    // The lab's grep and BM25 rows equal an evaluation run here.
    let sc = scene_at(&mut s, "metrics", &["k=5"]);
    let t = table(&sc, "scores");
    assert_eq!(
        t.rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(),
        ["grep", "bm25", "dense", "hybrid"]
    );
    let sig = lav_lab::items::sig;
    let g = corpus::evaluate(&Grep::new(&chunks), &set, 5, 20);
    let b = corpus::evaluate(&Bm25::new(&chunks).unwrap(), &set, 5, 20);
    assert_eq!(
        t.rows[0][1..4],
        [sig(g.recall), sig(g.hit_rate), sig(g.mrr)]
    );
    assert_eq!(
        t.rows[1][1..4],
        [sig(b.recall), sig(b.hit_rate), sig(b.mrr)]
    );
    let hit = |row: usize| t.rows[row][2].parse::<f64>().unwrap();
    assert!(
        hit(3) >= hit(1) && hit(3) >= hit(2),
        "hybrid is at least as good as either input"
    );

    // The index cost counts and times only what MiniLM embedded: the first index
    // embeds every chunk and question; a second chunking finds the questions cached.
    let cost = |sc: &lav_scene::Scene| -> (usize, usize) {
        let t = text(sc, "cost");
        let n = |after: &str| -> usize {
            let rest = t.split(after).nth(1).unwrap_or_else(|| panic!("{t}"));
            rest.split_whitespace().next().unwrap().parse().unwrap()
        };
        (n("MiniLM embedded "), n("s; "))
    };
    assert_eq!(cost(&sc), (chunks.len() + qs.len(), 0));
    let sc = scene_at(&mut s, "metrics", &["size=120", "k=5"]);
    let (embedded, reused) = cost(&sc);
    let chunks120 = corpus::chunk(
        &docs,
        Chunking {
            size: 120,
            overlap: 16,
        },
    );
    assert_eq!(embedded + reused, chunks120.len() + qs.len());
    assert!(reused >= qs.len(), "{reused} reused");
    // Back to the chunking the rest of this test computed its expectations for.
    scene_at(&mut s, "metrics", &["size=80", "k=5"]);

    // RRF's terms add up to the fused score.
    let sc = scene_at(&mut s, "compare", &["question=2", "weight=0.5"]);
    for r in ["grep", "bm25", "dense", "hybrid"] {
        assert!(table(&sc, r).rows.len() <= 5);
    }
    let rrf = table(&sc, "rrf");
    let term = |i: usize| rrf.rows[i][3].parse::<f64>().unwrap();
    assert!(
        (term(0) + term(1) - term(2)).abs() < 1e-3 * term(2),
        "{:?}",
        rrf.rows
    );

    // Distractors can only push relevant chunks down for grep and dense (their
    // scores of a chunk do not depend on the other chunks); BM25's word statistics
    // change with the corpus, so it may move either way.
    let clean: Vec<f64> = (0..4).map(hit).collect();
    let sc = scene_at(&mut s, "noise", &["noise=200", "k=5"]);
    let nt = table(&sc, "scores");
    let noisy: Vec<f64> = (0..4)
        .map(|r| nt.rows[r][2].parse::<f64>().unwrap())
        .collect();
    assert!(
        noisy[0] <= clean[0] && noisy[2] <= clean[2],
        "{clean:?} → {noisy:?}"
    );
    assert!(text(&sc, "noise").starts_with("200 distractor chunks"));
}

#[test]
fn tool_use_shows_schemas_the_mask_errors_and_choice() {
    let mut s = session("tool-use");
    let sc = scene_at(&mut s, "schemas", &[]);
    assert_eq!(table(&sc, "tools").rows.len(), 7);
    let mcp: serde_json::Value = serde_json::from_str(&text(&sc, "mcp")).unwrap();
    assert_eq!(mcp["name"], "get_order");
    assert_eq!(mcp["inputSchema"]["required"][0], "order_id");

    let sc = scene_at(
        &mut s,
        "mask",
        &["request=Where is my order 1003?", "tstep=0"],
    );
    let summary = &table(&sc, "summary").rows[0];
    let reply = summary[4].clone();
    let calls = lav_local::parse_reply(&reply, 0).unwrap();
    assert_eq!(calls.len(), 1, "{reply}");
    let strip = item_as!(sc, "reply", TokenStrip);
    let joined: String = strip
        .tokens
        .iter()
        .map(|c| c.text.replace('⏎', "\n"))
        .collect();
    assert_eq!(joined, reply);
    let overridden = strip
        .tokens
        .iter()
        .filter(|c| c.role == lav_scene::Role::Position)
        .count();
    assert_eq!(summary[1], overridden.to_string());
    // At step 0 the only allowed start is the tool-call tag; the chosen token leads
    // the allowed bars.
    let b = bars(&sc, "logits");
    assert!(b.bars[0].label.starts_with("✓ <"), "{:?}", b.bars[0]);
    assert!(b.bars.iter().any(|x| x.label.starts_with("✗")));

    let sc = scene_at(&mut s, "parallel", &[]);
    let t = table(&sc, "calls");
    assert_eq!(t.rows.len(), 3);
    assert!(t.rows.iter().all(|r| r[0] == "1" && r[2] == "ok"));
    let sc = scene_at(&mut s, "errors", &[]);
    let t = table(&sc, "calls");
    assert_eq!(
        (t.rows[0][2].as_str(), t.rows[1][2].as_str()),
        ("is_error", "ok")
    );
    assert!(t.rows[1][4].contains("laptop stand"));

    let probs = |sc: &lav_scene::Scene| -> Vec<(String, f64)> {
        bars(sc, "choice")
            .bars
            .iter()
            .map(|b| (b.label.clone(), b.value))
            .collect()
    };
    let sc = scene_at(&mut s, "descriptions", &["request=Where is my order 1003?"]);
    let before = probs(&sc);
    assert_eq!(before.len(), 7);
    // Each tool's probability is the model's, renormalised over the seven names: all
    // are real probabilities, none certain (the small model hesitates).
    assert!(before.iter().all(|p| p.1 > 0.0 && p.1 < 1.0), "{before:?}");
    let sc = scene_at(
        &mut s,
        "descriptions",
        &["description=Deletes an order forever."],
    );
    let after = probs(&sc);
    // The description is part of what the model reads: the whole distribution moves.
    // (Not in a set direction: SmolLM2-135M is too small to shun a tool described as
    // destructive; measured, P(get_order) rises from 0.040 to 0.048, and the lesson
    // says so.)
    let moved: f64 = before
        .iter()
        .zip(&after)
        .map(|(a, b)| (a.1 - b.1).abs())
        .sum();
    assert!(moved > 1e-3, "{before:?} → {after:?}");
}

/// Inside the calculator's patterned expression and the bounded order number, the
/// trie mask over SmolLM2's whole vocabulary equals a token-by-token check: each
/// of the 49,152 tokens advanced through the matcher on its own.
#[test]
fn the_mask_equals_a_token_by_token_check_inside_constrained_values() {
    use lav_agent_types::Tools;
    use lav_grammar::{Grammar, Matcher, ToolChoice};
    use std::sync::Arc;
    let tok = lav_testkit::tokenizer();
    let trie = lav_local::vocab_trie(tok);
    let mut specs = lav_tools::Calculator.list();
    specs.extend(lav_tools::Orders::seeded().unwrap().list());
    let g = Arc::new(Grammar::tool_reply(&specs, ToolChoice::Required, 1));
    assert!(g.notes.is_empty(), "{:?}", g.notes);
    let vocab: Vec<Option<Vec<u8>>> = (0..tok.vocab_size() as u32)
        .map(|id| (!tok.is_special(id)).then(|| tok.token_bytes(id)))
        .collect();
    for (reply, value) in [
        (
            "<tool_call>\n{\"name\": \"calculate\", \"arguments\": {\"expression\": \"(17 * 23) + 1.5\"}}\n</tool_call>",
            "\"(17 * 23) + 1.5\"",
        ),
        (
            "<tool_call>\n{\"name\": \"get_order\", \"arguments\": {\"order_id\": 1003}}\n</tool_call>",
            "1003}",
        ),
    ] {
        let start = reply.find(value).unwrap();
        let mut m = Matcher::new(g.clone());
        assert!(m.advance_bytes(&reply.as_bytes()[..start]));
        for (i, b) in value.bytes().enumerate() {
            let mask = m.mask(&trie);
            let mut allowed = 0;
            for (id, bytes) in vocab.iter().enumerate() {
                let want = bytes
                    .as_ref()
                    .is_some_and(|bytes| m.clone().advance_bytes(bytes));
                assert_eq!(mask[id], want, "{value} at {i}: token {id} {bytes:?}");
                allowed += usize::from(want);
            }
            // The constraint bites: far fewer than every token is allowed.
            assert!(allowed < vocab.len() / 10, "{value} at {i}: {allowed}");
            assert!(m.advance(b), "{value} at {i}");
        }
    }
}

#[test]
fn every_worked_example_is_written_as_the_grammar_makes_the_model_write_it() {
    use lav_agent_types::{ToolCall, Tools};
    use lav_grammar::{Grammar, Matcher, ToolChoice};
    use std::sync::Arc;
    let mut specs = lav_tools::Calculator.list();
    specs.extend(lav_tools::Orders::seeded().unwrap().list());
    specs.push(lav_tools::DocsSearch::spec());
    // The examples' customers are on purpose not the shop's, which the schema names
    // outright: here they are held to the shape a larger shop's schema gives.
    for s in specs.iter_mut().filter(|s| s.name == "list_orders") {
        s.input_schema["properties"]["customer"] = serde_json::json!({"type": "string", "pattern": "^[A-Z][a-z]+( [A-Z][a-z]+){1,3}$", "maxLength": 60});
    }
    let g = Arc::new(Grammar::tool_reply(&specs, ToolChoice::Required, 1));
    let accepts = |text: &str| {
        let mut m = Matcher::new(g.clone());
        m.advance_bytes(text.as_bytes()) && m.accepting()
    };
    assert_eq!(lav_local::EXAMPLES.len(), 19);
    for (tool, question, args, ..) in lav_local::EXAMPLES {
        let call = ToolCall {
            id: String::new(),
            name: tool.to_string(),
            arguments: serde_json::from_str(args).unwrap(),
        };
        let block = lav_local::call_block(&call, &specs);
        assert!(accepts(&block), "{question}: {block}");
        // serde's own form (keys sorted, no spaces), which the prompt used to show,
        // is one the grammar never lets the model write.
        let serde_form = format!(
            "<tool_call>\n{}\n</tool_call>",
            serde_json::json!({"name": tool, "arguments": call.arguments})
        );
        assert!(!accepts(&serde_form), "{question}: {serde_form}");
    }
    // Required properties come first, in `required` order, whatever the map's order.
    let call = ToolCall {
        id: String::new(),
        name: "search_docs".into(),
        arguments: serde_json::json!({"retriever": "bm25", "k": 2, "query": "kv cache"}),
    };
    let block = lav_local::call_block(&call, &specs);
    assert_eq!(
        block,
        "<tool_call>\n{\"name\": \"search_docs\", \"arguments\": {\"query\": \"kv cache\", \"k\": 2, \"retriever\": \"bm25\"}}\n</tool_call>"
    );
    assert!(accepts(&block));
}

/// The workflow backend on this machine's SmolLM2 under the tool grammar.
fn local_shop() -> lav_labs_agents::workflows::Shop {
    use lav_labs_agents::workflows::{Driver, Shop};
    let tok = lav_testkit::tokenizer_arc();
    Shop {
        driver: Driver::Local {
            model: lav_testkit::model_arc(),
            trie: std::sync::Arc::new(lav_local::vocab_trie(&tok)),
            tok,
            name: "SmolLM2".into(),
        },
    }
}

/// The rule, computed here from a node tree's own times (independently of
/// `Node::rule_seconds`).
fn rule_by_hand(n: &lav_agent::workflow::Node) -> f64 {
    use lav_agent::workflow::Shape;
    match n.shape {
        Shape::Stage => n.end - n.start,
        Shape::Serial => n.children.iter().map(rule_by_hand).sum(),
        Shape::Parallel => n.children.iter().map(rule_by_hand).fold(0.0, f64::max),
    }
}

#[test]
fn workflow_patterns_shows_each_recorded_run_as_the_runtime_recorded_it() {
    use lav_labs_agents::workflows::{self, Recording};
    let labs = lav_testkit::labs_dir();
    let rec = Recording::load(&labs).unwrap();
    let tasks = workflows::labelled(&labs).unwrap();
    let names: Vec<&str> = workflows::patterns().iter().map(|(n, _)| *n).collect();
    assert_eq!(names.len(), 6);
    // The recording covers every pattern on every labelled task, and each verdict is
    // the checker's own, recomputed here from the run.
    for t in &tasks {
        for n in &names {
            let r = rec.get(&t.id, n).unwrap_or_else(|| panic!("{} {n}", t.id));
            let v = lav_agent::tasks::check(t, &r.outcome.as_run());
            assert_eq!(v.passed, r.passed, "{} {n}: {}", t.id, v.reason);
            // Recorded on threads for real: the wall time is the rule's, within the
            // bookkeeping between calls.
            let t = &r.outcome.trace;
            assert!(
                (t.seconds() - rule_by_hand(t)).abs() < 0.05 + 0.02 * t.seconds(),
                "{n}: wall {} rule {}",
                t.seconds(),
                rule_by_hand(t)
            );
        }
    }

    let mut s = session("workflow-patterns");
    let sc = scene_at(&mut s, "compare", &["task=arith-01"]);
    assert!(matches!(
        sc.item("patterns").unwrap().provenance,
        lav_scene::Provenance::Recorded { .. }
    ));
    let tb = table(&sc, "patterns");
    assert_eq!(tb.rows.len(), 6);
    for row in &tb.rows {
        let r = rec.get("arith-01", &row[0]).unwrap();
        // Model calls: every assistant turn of every stage's transcript.
        let turns: usize = r
            .outcome
            .trace
            .stages()
            .iter()
            .filter_map(|n| n.run.as_ref())
            .map(|run| {
                run.state
                    .transcript
                    .iter()
                    .filter(|m| m.role == lav_agent::Role::Assistant)
                    .count()
            })
            .sum();
        assert_eq!(
            tb.lookup(&row[0], "model calls").unwrap(),
            turns.to_string()
        );
        assert_eq!(
            tb.lookup(&row[0], "rule s").unwrap(),
            lav_lab::items::sig(rule_by_hand(&r.outcome.trace))
        );
        assert_eq!(
            tb.lookup(&row[0], "checker").unwrap() == "pass",
            r.passed,
            "{row:?}"
        );
    }
    // Voting ran three agents: at least three model calls.
    let votes: usize = tb
        .lookup("parallel voting", "model calls")
        .unwrap()
        .parse()
        .unwrap();
    assert!(votes >= 3);

    let sc = scene_at(&mut s, "waterfall", &["pattern=parallel voting"]);
    let w = lav_testkit::item_as!(&sc, "waterfall", Timeline);
    let r = rec.get("arith-01", "parallel voting").unwrap();
    let mut nodes = 0;
    let mut stack = vec![&r.outcome.trace];
    while let Some(n) = stack.pop() {
        nodes += 1;
        stack.extend(n.children.iter());
    }
    assert_eq!(w.lanes.len(), nodes);
    assert_eq!(w.spans.len(), nodes);
    let rule = text(&sc, "rule");
    assert!(
        rule.contains(&format!(
            "gives {} ms",
            lav_lab::items::sig(rule_by_hand(&r.outcome.trace) * 1e3)
        )),
        "{rule}"
    );

    let sc = scene_at(&mut s, "accuracy", &[]);
    let acc = bars(&sc, "accuracy");
    assert_eq!(acc.bars.len(), 6);
    for b in &acc.bars {
        let passed = tasks
            .iter()
            .filter(|t| {
                let r = rec.get(&t.id, &b.label).unwrap();
                lav_agent::tasks::check(t, &r.outcome.as_run()).passed
            })
            .count();
        assert_eq!(b.value, passed as f64, "{}", b.label);
    }
}

#[test]
fn a_workflow_runs_live_on_the_real_model_with_its_figures_from_the_runtime() {
    use lav_agent::workflow::Shape;
    use lav_labs_agents::workflows::{self, PatternRun};
    let labs = lav_testkit::labs_dir();
    let task = workflows::labelled(&labs)
        .unwrap()
        .into_iter()
        .find(|t| t.id == "arith-01")
        .unwrap();
    let shop = local_shop();
    let (name, flow) = workflows::patterns()
        .into_iter()
        .find(|(n, _)| *n == "routing")
        .unwrap();
    let r = PatternRun::run(&shop, &task, name, &flow).unwrap();
    let t = &r.outcome.trace;
    // The classifier's choice is one of the routes (the grammar allows nothing
    // else), and the route it names is the one that ran.
    let chose = &t.children[0].note;
    let desk = &t.children[1].label;
    assert!(
        (chose == "chose math" && desk == "math desk")
            || (chose == "chose orders" && desk == "orders desk"),
        "{chose} / {desk}"
    );
    assert_eq!(t.shape, Shape::Serial);
    assert!(t.model_calls() >= 2);
    let (i, o) = t.tokens();
    assert!(i > 100 && o > 0, "{i} {o}");
    assert!((t.seconds() - rule_by_hand(t)).abs() < 0.05 + 0.02 * t.seconds());
}

/// A model that answers with a fixed line and summarizes to one: for recomputing
/// what the context manager counted, without the model.
struct Fixed(&'static str);

impl lav_agent::Llm for Fixed {
    fn name(&self) -> String {
        "fixed".into()
    }
    fn next(
        &mut self,
        _: &lav_agent::State,
        _: &[lav_agent::ToolSpec],
    ) -> lav_agent::agent::Result<lav_agent::Reply> {
        Ok(lav_agent::Reply::Final {
            text: self.0.into(),
            usage: Default::default(),
        })
    }
}

fn counters() -> (
    std::sync::Arc<dyn lav_agent::context::Counter>,
    lav_labs_agents::long_task::Ids,
) {
    lav_labs_agents::long_task::counters(lav_testkit::tokenizer_arc())
}

#[test]
fn context_engineering_shows_the_recorded_budgets_as_the_manager_counted_them() {
    use lav_labs_agents::labs::context_engineering::{RECORDING, Recording};
    use lav_labs_agents::long_task;
    let labs = lav_testkit::labs_dir();
    let rec: Recording =
        serde_json::from_str(&std::fs::read_to_string(labs.join(RECORDING)).unwrap()).unwrap();
    let (count, ids) = counters();
    let expected = long_task::item_of(long_task::ASKED).unwrap();
    for r in &rec.runs {
        assert_eq!(r.expected, expected);
        assert_eq!(
            r.passed,
            lav_agent::tasks::states(r.answer.as_deref().unwrap_or(""), &expected)
                && r.answer.is_some()
        );
        // Without compaction the views hold only scripted moves and tool results
        // (the model speaks after the last one): recounted here, they match.
        if !r.setup.compaction {
            let again = long_task::audit(
                r.setup,
                &mut Fixed("x"),
                &mut Fixed("s"),
                count.clone(),
                ids.clone(),
            )
            .unwrap();
            let a: Vec<_> = again.views.iter().map(|v| v.budget).collect();
            let b: Vec<_> = r.views.iter().map(|v| v.budget).collect();
            assert_eq!(a, b, "{:?}", r.setup);
            assert_eq!(again.stop, r.stop);
            assert_eq!(again.shared_prefix, r.shared_prefix);
            assert_eq!(again.prompt_tokens, r.prompt_tokens);
        } else {
            // With compaction no view the model was sent passed the limit.
            assert!(
                r.views.iter().all(|v| v.budget.overflow().is_none()),
                "{:?}",
                r.setup
            );
        }
    }
    let small = rec.runs.iter().map(|r| r.setup.window).min().unwrap();
    let get = |c: bool, m: bool, s: bool| {
        rec.runs
            .iter()
            .find(|r| {
                r.setup.window == small
                    && (r.setup.compaction, r.setup.memory, r.setup.subagents) == (c, m, s)
                    && r.setup.stable_prefix_first
            })
            .unwrap()
    };
    // The smallest window overflows with no help, and not with compaction.
    assert_eq!(get(false, false, false).stop, lav_agent::Stop::ContextFull);
    assert_ne!(get(true, false, false).stop, lav_agent::Stop::ContextFull);
    // Sub-agents alone keep the parent's view small enough: one line per order.
    let peak = |r: &long_task::AuditRun| r.views.iter().map(|v| v.budget.total()).max().unwrap();
    assert_ne!(get(false, false, true).stop, lav_agent::Stop::ContextFull);
    assert!(peak(get(false, false, true)) < peak(get(false, false, false)));

    let mut s = session("context-engineering");
    let sc = scene_at(&mut s, "budget", &[]);
    assert!(
        text(&sc, "status").starts_with("OVERFLOW"),
        "{}",
        text(&sc, "status")
    );
    let plot = lav_testkit::item_as!(&sc, "stack", Plot);
    // The top of the stack (the last segment drawn, before the limit line).
    let top = &plot.series[plot.series.len() - 2];
    let run = get(false, false, false);
    assert_eq!(top.points.len(), run.views.len());
    for (p, v) in top.points.iter().zip(&run.views) {
        assert_eq!(p.1, v.budget.total() as f64);
    }
    let sc = scene_at(&mut s, "prefix", &["stable=on"]);
    let stable: f64 = bars(&sc, "shared").bars.iter().map(|b| b.value).sum();
    let sc = scene_at(&mut s, "prefix", &["stable=off"]);
    let unstable: f64 = bars(&sc, "shared").bars.iter().map(|b| b.value).sum();
    assert!(stable > unstable, "{stable} {unstable}");
}

#[test]
fn the_long_audit_runs_live_with_the_model_writing_summaries() {
    use lav_labs_agents::long_task::{self, Setup};
    let tok = lav_testkit::tokenizer_arc();
    let trie = std::sync::Arc::new(lav_local::vocab_trie(&tok));
    let setup = Setup {
        window: 1024,
        compaction: true,
        memory: false,
        subagents: false,
        stable_prefix_first: true,
    };
    let r = long_task::audit_local(setup, lav_testkit::model_arc(), tok, trie, "SmolLM2").unwrap();
    assert_eq!(r.stop, lav_agent::Stop::EndOfTurn);
    assert!(r.views.iter().any(|v| v.compacted));
    assert!(r.views.iter().all(|v| v.budget.total() <= v.budget.limit()));
    // The summaries are the model's: they cost tokens beyond the scripted moves.
    assert!(r.views.iter().any(|v| v.summary_usage.output_tokens > 0));
    assert!(!r.answer.unwrap().trim().is_empty());
}

/// Nodes of a plan tree, depth first.
fn tree_nodes(n: &lav_scene::TreeNode) -> Vec<&lav_scene::TreeNode> {
    let mut out = vec![n];
    for c in &n.children {
        out.extend(tree_nodes(c));
    }
    out
}

#[test]
fn planning_reflection_shows_each_recorded_plan_as_the_planner_ran_it() {
    use lav_labs_agents::labs::planning_reflection::runs;
    use lav_labs_agents::planning::{self, Recording};
    let labs = lav_testkit::labs_dir();
    let rec = Recording::load(&labs).unwrap();
    let tasks = planning::load(&labs).unwrap();
    let presets = planning::presets();
    for t in &tasks {
        for (name, caps) in &presets {
            let r = rec
                .get(&t.id, name)
                .unwrap_or_else(|| panic!("{} {name}", t.id));
            let o = &r.outcome;
            assert_eq!(&r.caps, caps, "{} {name}: recorded under other caps", t.id);
            // The verdict is the checker's, recomputed from the task's answer.
            let passes = o
                .answer
                .as_deref()
                .is_some_and(|a| lav_agent::tasks::states(a, &t.answer));
            assert_eq!(passes, r.passed, "{} {name}", t.id);
            assert_eq!(r.passed, o.stop == lav_agent::planner::PlanStop::Solved);
            // The caps held: reflections, re-plans and retries per step.
            assert!(o.reflections <= caps.reflections, "{} {name}", t.id);
            assert!(o.plans.len() <= caps.replans + 1, "{} {name}", t.id);
            for p in &o.plans {
                for s in &p.steps {
                    assert!(s.attempts.len() <= caps.retries + 1, "{} {name}", t.id);
                }
            }
            // The planner's totals are the sum of its runs: every call is listed.
            let all = runs(o);
            let calls: usize = all.iter().map(|(_, r, _)| r.state.ticks).sum();
            let tokens: u64 = all
                .iter()
                .map(|(_, r, _)| r.state.usage.input_tokens + r.state.usage.output_tokens)
                .sum();
            assert_eq!(calls, o.calls, "{} {name}", t.id);
            assert_eq!(
                tokens,
                o.usage.input_tokens + o.usage.output_tokens,
                "{} {name}",
                t.id
            );
            // Each reflection is one more model call of its own.
            let reflecting = all.iter().filter(|(w, _, _)| w == "reflection").count();
            assert_eq!(reflecting, o.reflections);
        }
    }

    let mut s = session("planning-reflection");
    let (t, (name, _)) = (&tasks[0], presets.last().unwrap());
    let sc = scene_at(&mut s, "tree", &[&format!("task={}", t.id)]);
    assert!(matches!(
        sc.item("plan").unwrap().provenance,
        lav_scene::Provenance::Recorded { .. }
    ));
    let tree = item_as!(&sc, "plan", Tree);
    let r = rec.get(&t.id, name).unwrap();
    let nodes = tree_nodes(&tree.root);
    let attempts: usize = r
        .outcome
        .plans
        .iter()
        .flat_map(|p| &p.steps)
        .map(|s| s.attempts.len())
        .sum();
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n.label.starts_with("plan "))
            .count(),
        r.outcome.plans.len()
    );
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n.label.starts_with("attempt "))
            .count(),
        attempts
    );
    assert_eq!(
        nodes.iter().filter(|n| n.label == "reflection").count(),
        r.outcome.reflections
    );
    assert_eq!(tree.root.value.as_deref(), Some(r.outcome.stop.describe()));
    let calls = table(&sc, "calls");
    assert_eq!(calls.rows.len(), runs(&r.outcome).len());

    let sc = scene_at(&mut s, "caps", &[]);
    let solved = bars(&sc, "solved");
    for (name, _) in &presets {
        let want = rec
            .runs
            .iter()
            .filter(|r| r.preset == *name && r.passed)
            .count();
        let b = solved.bars.iter().find(|b| b.label == *name).unwrap();
        assert_eq!(b.value, want as f64, "{name}");
    }
    assert_eq!(table(&sc, "runs").rows.len(), tasks.len() * presets.len());
}

#[test]
fn the_planner_runs_live_on_the_real_model_under_its_caps() {
    use lav_labs_agents::planning::{self, PlanRun};
    let labs = lav_testkit::labs_dir();
    let task = planning::load(&labs).unwrap().remove(0);
    let shop = local_shop();
    let (name, caps) = planning::presets().remove(1);
    let r = PlanRun::run(&shop, &task, name, caps).unwrap();
    let o = &r.outcome;
    assert!(!o.plans.is_empty() && !o.plans[0].steps.is_empty());
    assert!(o.reflections <= caps.reflections && o.plans.len() == 1);
    assert!(o.calls >= 2, "a plan and at least one step: {}", o.calls);
    assert_eq!(r.passed, o.stop == lav_agent::planner::PlanStop::Solved);
    let calls: usize = lav_labs_agents::labs::planning_reflection::runs(o)
        .iter()
        .map(|(_, r, _)| r.state.ticks)
        .sum();
    assert_eq!(calls, o.calls);
}

/// C(n, k), computed here independently of the runtime's estimators.
fn binom(n: u64, k: u64) -> f64 {
    if k > n {
        return 0.0;
    }
    (0..k).fold(1.0, |a, i| a * (n - i) as f64 / (k - i) as f64)
}

#[test]
fn evals_diagnostics_labels_fill_the_matrix_and_score_the_judge() {
    use lav_labs_agents::eval_traces::{self, CATEGORIES, Recording, TURNS};
    let labs = lav_testkit::labs_dir();
    let rec = Recording::load(&labs).unwrap();
    let labels = eval_traces::labels(&labs).unwrap();
    let all = lav_agent::tasks::load(&labs).unwrap();
    assert_eq!(labels.len(), 12);
    // Real traces, successes and failures, each reference verdict the checker's own.
    for l in &labels {
        let t = rec.trace(&l.id).unwrap();
        let task = eval_traces::task_of(&all, l).unwrap();
        assert_eq!(t.task, l.task);
        let v = lav_agent::tasks::check(task, &t.run);
        assert_eq!(v.passed, t.passed, "{}", l.id);
        assert_eq!(
            l.pass, t.passed,
            "{}: the reference label is not the checker's",
            l.id
        );
        if let Some(turn) = l.turn {
            let n = lav_agent::evals::turns(&t.run).len();
            assert!(turn <= n, "{}: turn {turn} of {n}", l.id);
        }
    }
    let fails = labels.iter().filter(|l| !l.pass).count();
    assert!(fails >= 3 && labels.len() - fails >= 3, "{fails} failures");

    let mut s = session("evals-diagnostics");
    // A trace step hides the reference until the learner labels it.
    let sc = scene_at(&mut s, "trace-02", &[]);
    assert!(!text(&sc, "feedback").contains("reference label:"));
    let n_turns = lav_agent::evals::turns(&rec.trace(&labels[1].id).unwrap().run).len();
    assert_eq!(table(&sc, "turns").rows.len(), n_turns);

    // The reference matrix, counted here by hand.
    let sc = scene_at(&mut s, "matrix", &["whose=reference labels"]);
    let h = item_as!(&sc, "matrix", Heatmap);
    assert_eq!(h.rows.len(), CATEGORIES.len());
    assert_eq!(h.cols.len(), TURNS.len());
    for (r, c) in CATEGORIES.iter().enumerate() {
        for col in 0..TURNS.len() {
            let want = labels
                .iter()
                .filter(|l| {
                    l.category.as_deref() == Some(*c)
                        && l.turn.is_some_and(|t| t.min(TURNS.len()) == col + 1)
                })
                .count();
            assert_eq!(h.get(r, col), want as f32, "{c} turn {}", col + 1);
        }
    }
    let (top, n) = CATEGORIES
        .iter()
        .map(|c| {
            (
                *c,
                labels
                    .iter()
                    .filter(|l| l.category.as_deref() == Some(*c))
                    .count(),
            )
        })
        .fold(("", 0), |b, x| if x.1 > b.1 { x } else { b });
    assert!(text(&sc, "fix").contains(&format!(
        "\u{201c}{top}\u{201d} first: it is the first wrong step of {n} of the {fails}"
    )));

    // Labelling every trace as the reference does fills the same matrix, all agreed;
    // one wrong verdict shows as a disagreement.
    let mut sets: Vec<String> = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        let k = i + 1;
        match (&l.category, l.turn) {
            (Some(c), Some(t)) if !l.pass => {
                sets.push(format!("label-{k:02}=fail: {c}"));
                sets.push(format!("turn-{k:02}={}", eval_traces::turn_name(t)));
            }
            _ => sets.push(format!("label-{k:02}=pass")),
        }
    }
    let mut args: Vec<&str> = sets.iter().map(String::as_str).collect();
    args.push("whose=your labels");
    let sc = scene_at(&mut s, "matrix", &args);
    assert_eq!(item_as!(&sc, "matrix", Heatmap).values, h.values);
    let agree = table(&sc, "agreement");
    assert!(
        agree.rows.iter().all(|r| r[4] == "agree"),
        "{:?}",
        agree.rows
    );
    let flip = if labels[0].pass {
        "label-01=fail: no answer"
    } else {
        "label-01=pass"
    };
    let sc = scene_at(&mut s, "matrix", &[flip]);
    assert_eq!(table(&sc, "agreement").rows[0][4], "disagree");
    let sc = scene_at(&mut s, "trace-01", &[]);
    assert!(text(&sc, "feedback").contains("You disagree on the verdict"));

    // The judge's rates, recomputed from its recorded verdicts.
    let sc = scene_at(&mut s, "judge", &[]);
    let scores = table(&sc, "scores");
    let (mut tp, mut tn, mut fp, mut fn_) = (0, 0, 0, 0);
    for l in &labels {
        let j = rec.judge.iter().find(|j| j.trace == l.id).unwrap();
        match (l.pass, j.judgement.verdict == Some(true)) {
            (true, true) => tp += 1,
            (false, false) => tn += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
        }
    }
    let pct = |a: usize, b: usize| format!("{:.0}%", a as f64 * 100.0 / b as f64);
    assert_eq!(
        scores
            .lookup("this judge", "TPR (passes it passed)")
            .unwrap(),
        pct(tp, tp + fn_)
    );
    assert_eq!(
        scores
            .lookup("this judge", "TNR (failures it failed)")
            .unwrap(),
        pct(tn, tn + fp)
    );
    // A judge that always says pass catches no failure.
    assert_eq!(
        scores
            .lookup("always says pass", "TNR (failures it failed)")
            .unwrap(),
        "0%"
    );
    assert_eq!(
        scores
            .lookup("always says pass", "TPR (passes it passed)")
            .unwrap(),
        "100%"
    );

    // pass@k and pass^k: the formulas at the pooled rate, and each task's unbiased
    // estimates averaged, both computed here.
    let sc = scene_at(&mut s, "pass-k", &[]);
    let k_rows = table(&sc, "k");
    let n: u64 = rec.trials.iter().map(|t| t.outcomes.len() as u64).sum();
    let c: u64 = rec
        .trials
        .iter()
        .map(|t| t.outcomes.iter().filter(|o| o.1).count() as u64)
        .sum();
    let p = c as f64 / n as f64;
    assert!(n >= 12 * 5, "{n} trials");
    let per_task = rec.trials[0].outcomes.len() as u64;
    assert_eq!(k_rows.rows.len() as u64, per_task);
    for row in &k_rows.rows {
        let k: u64 = row[0].parse().unwrap();
        let (mut at, mut hat) = (0.0, 0.0);
        for t in &rec.trials {
            let (tn, tc) = (
                t.outcomes.len() as u64,
                t.outcomes.iter().filter(|o| o.1).count() as u64,
            );
            at += 1.0 - binom(tn - tc, k) / binom(tn, k);
            hat += binom(tc, k) / binom(tn, k);
        }
        let m = rec.trials.len() as f64;
        assert_eq!(row[1], format!("{:.2}", 1.0 - (1.0 - p).powi(k as i32)));
        assert_eq!(row[2], format!("{:.2}", at / m));
        assert_eq!(row[3], format!("{:.2}", p.powi(k as i32)));
        assert_eq!(row[4], format!("{:.2}", hat / m));
    }
    let se = (p * (1.0 - p) / n as f64).sqrt();
    assert!(
        text(&sc, "rate").contains(&format!("SE = √(p(1 − p)/n) = {}", lav_lab::items::sig(se)))
    );
}

#[test]
fn the_capstone_scorecard_is_reproducible_from_its_recorded_runs() {
    use lav_labs_agents::capstone::{self, DESIGNS, Recording};
    let labs = lav_testkit::labs_dir();
    let rec = Recording::load(&labs).unwrap();
    let tasks = capstone::tasks(&labs).unwrap();
    assert!(tasks.len() >= 10);
    for t in &tasks {
        for d in DESIGNS {
            let r = rec.get(&t.id, d).unwrap_or_else(|| panic!("{} {d}", t.id));
            // The answer check, recomputed.
            assert_eq!(
                r.passed,
                capstone::check(t, &r.answer).unwrap().is_ok(),
                "{} {d}",
                t.id
            );
            // RAG calls no tool; the workflow's code calls exactly one; the designs'
            // tools are what the exposure is counted from.
            match d {
                "RAG only" => {
                    assert_eq!((r.model_calls, r.tool_calls), (1, 0), "{}", t.id);
                    assert_eq!(r.tools, vec![capstone::ORDER_RECORDS.to_string()]);
                }
                "deterministic workflow" => {
                    assert_eq!((r.model_calls, r.tool_calls), (1, 1), "{}", t.id);
                }
                _ => assert!(r.model_calls >= 1),
            }
        }
    }
    // Exposure from the tools: the agent holds all three legs, RAG and the workflow
    // only private data.
    assert_eq!(
        capstone::legs(&rec.get(&tasks[0].id, "autonomous agent").unwrap().tools),
        [true, true, true]
    );
    assert_eq!(
        capstone::legs(&rec.get(&tasks[0].id, "RAG only").unwrap().tools),
        [true, false, false]
    );

    // The scorecard the lab shows, recomputed here from the runs.
    let mut s = session("capstone-three-designs");
    let sc = scene_at(&mut s, "scorecard", &[]);
    let card = table(&sc, "scorecard");
    assert_eq!(card.rows.len(), DESIGNS.len());
    for d in DESIGNS {
        let mine: Vec<_> = rec.runs.iter().filter(|r| r.design == d).collect();
        let right = mine.iter().filter(|r| r.passed).count();
        assert_eq!(
            card.lookup(d, "answered right").unwrap(),
            format!("{right}/{}", mine.len())
        );
        let tokens = mine.iter().map(|r| r.tokens() as f64).sum::<f64>() / mine.len() as f64;
        assert_eq!(card.lookup(d, "tokens").unwrap(), format!("{tokens:.0}"));
    }
    assert_eq!(
        card.lookup("autonomous agent", "exposure").unwrap(),
        "ALL THREE legs: private data, untrusted content and a way out"
    );
    // The rule never picks a design holding all three legs.
    let rule = text(&sc, "rule");
    assert!(
        !rule.contains("Here that is the autonomous agent")
            && !rule.contains("Here that is the orchestrator"),
        "{rule}"
    );

    let sc = scene_at(&mut s, "traces", &[&format!("task={}", tasks[0].id)]);
    let side = table(&sc, "side-by-side");
    assert_eq!(side.columns.len(), 1 + DESIGNS.len());
    let rag = rec.get(&tasks[0].id, "RAG only").unwrap();
    assert!(side.rows[0][1].starts_with("code: BM25 retrieved orders"));
    assert_eq!(
        side.rows.len(),
        DESIGNS
            .iter()
            .map(|d| rec.get(&tasks[0].id, d).unwrap().steps.len())
            .max()
            .unwrap()
    );
    assert!(rag.steps.len() >= 2);
}

#[test]
fn every_capstone_design_completes_live_on_the_real_model() {
    use lav_labs_agents::capstone::{self, DESIGNS, FullShop};
    let labs = lav_testkit::labs_dir();
    let task = capstone::tasks(&labs).unwrap().remove(0);
    let full = FullShop::new(local_shop(), &labs).unwrap();
    for d in DESIGNS {
        let r = capstone::run(&full, &task, d).unwrap();
        assert!(r.model_calls >= 1, "{d}");
        assert!(r.input_tokens > 50, "{d}: {}", r.input_tokens);
        assert!(!r.steps.is_empty(), "{d}");
    }
    // The workflow's code found the order number and called the tool with it.
    let (name, args) = capstone::route(&task.prompt).unwrap();
    assert_eq!(name, "get_order");
    assert!(task.prompt.contains(&args["order_id"].to_string()));
}

#[test]
fn the_capstone_check_wants_one_candidate_not_a_dump() {
    use lav_labs_agents::capstone;
    let labs = lav_testkit::labs_dir();
    let tasks = capstone::tasks(&labs).unwrap();
    let t = |id: &str| tasks.iter().find(|t| t.id == id).unwrap();
    let ok = |id: &str, a: &str| capstone::check(t(id), a).unwrap();
    // Ada Byron's latest order is the monitor arm.
    assert_eq!(
        ok("order-09", "Her latest order is the monitor arm."),
        Ok(())
    );
    // A list of all her orders names the right one among others: not an answer.
    assert!(
        ok(
            "order-09",
            "mechanical keyboard (1001), USB-C cable (1002), monitor arm (1009)"
        )
        .unwrap_err()
        .contains("also names")
    );
    assert!(ok("order-09", "A USB-C cable.").is_err());
    assert!(ok("order-09", "").is_err());
    // Statuses: one named is right, two is a hedge.
    assert_eq!(ok("order-01", "Order 1003 has shipped."), Ok(()));
    assert!(ok("order-01", "It is shipped or delivered.").is_err());
    // A quantity is a number: the date beside it is no rival.
    assert_eq!(ok("order-03", "3 cables, ordered on 2026-10-02."), Ok(()));
}

#[test]
fn context_failure_modes_show_real_runs_on_the_contexts_the_lab_builds() {
    use lav_labs_agents::context_failures::{self, MODES, Recording};
    let labs = lav_testkit::labs_dir();
    let rec = Recording::load(&labs).unwrap();
    for m in &MODES {
        for fixed in [false, true] {
            let r = rec
                .get(m.name, fixed)
                .unwrap_or_else(|| panic!("{} {fixed}", m.name));
            // The recorded run started from exactly the context the lab builds now.
            let (state, tools) = context_failures::context(m, fixed).unwrap();
            assert_eq!(r.tools, tools, "{} {fixed}", m.name);
            assert_eq!(
                r.run.state.transcript[..state.transcript.len()],
                state.transcript[..],
                "{} {fixed}",
                m.name
            );
            assert_eq!(r.answer, r.run.answer.clone().unwrap_or_default());
            // The verdict is the answer check's, recomputed.
            let t = lav_agent::tasks::Task {
                id: m.name.into(),
                kind: lav_agent::tasks::Kind::Order,
                prompt: m.question.into(),
                tool: None,
                args: None,
                answer: Some(m.answer.into()),
                result: None,
            };
            assert_eq!(
                r.passed,
                lav_labs_agents::capstone::check(&t, &r.answer)
                    .unwrap()
                    .is_ok(),
                "{} {fixed}",
                m.name
            );
        }
    }
    // What each mode breaks, and what its fix removes.
    let text_of = |m: &str, fixed: bool| {
        let (s, _) = context_failures::context(context_failures::mode(m).unwrap(), fixed).unwrap();
        s.transcript
            .iter()
            .map(|x| x.content.clone())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(text_of("poisoning", false).contains("webcam"));
    assert!(!text_of("poisoning", true).contains("webcam"));
    assert!(text_of("poisoning", true).contains("laptop stand"));
    assert_eq!(
        text_of("distraction", false).matches("Order 10").count(),
        12
    );
    assert_eq!(text_of("distraction", true).matches("Order 10").count(), 1);
    assert!(text_of("distraction", true).contains("Order 1006"));
    assert!(text_of("clash", false).contains("status placed"));
    assert!(!text_of("clash", true).contains("status placed"));
    let (_, all) =
        context_failures::context(context_failures::mode("confusion").unwrap(), false).unwrap();
    assert!(all.len() > 5);

    let mut s = session("context-engineering");
    for m in &MODES {
        let sc = scene_at(&mut s, "failures", &[&format!("mode={}", m.name)]);
        let runs = table(&sc, "runs");
        for (row, fixed) in runs.rows.iter().zip([false, true]) {
            let r = rec.get(m.name, fixed).unwrap();
            assert_eq!(row[2] == "right", r.passed, "{} {fixed}", m.name);
            assert_eq!(row[3], r.run.state.usage.input_tokens.to_string());
        }
        assert!(matches!(
            sc.item("contexts").unwrap().provenance,
            lav_scene::Provenance::Scripted { .. }
        ));
    }
    let modes = table(&s.scene().unwrap(), "modes").clone();
    assert_eq!(modes.rows.len(), 4);
}
