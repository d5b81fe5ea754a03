//! Retrieval metrics on a fixture small enough to check by hand.

use lav_tools::retrieval::*;

fn chunks() -> Vec<Chunk> {
    [
        ("a", "The KV cache stores keys and values."),
        ("b", "Quantization rounds weights to a grid."),
        (
            "c",
            "Keys and values are cached per layer in the KV cache of the model.",
        ),
        ("d", "Sampling picks the next token."),
    ]
    .iter()
    .map(|(id, t)| Chunk {
        id: id.to_string(),
        text: t.to_string(),
    })
    .collect()
}

fn ids(r: &Ranking) -> Vec<&str> {
    r.iter().map(|(i, _)| i.as_str()).collect()
}

#[test]
fn grep_ranks_by_distinct_terms_then_length() {
    let g = Grep::new(&chunks());
    // "kv cache keys": a has kv, cache, keys (3); c has keys, kv, cache (3) but is
    // longer; nothing else matches.
    let r = g.search("KV cache keys?", 10);
    assert_eq!(ids(&r), ["a", "c"]);
    assert_eq!(r[0].1, 3.0);
    assert!(g.search("zebra", 10).is_empty());
    assert_eq!(g.search("the", 2).len(), 2, "k caps the list");
}

#[test]
fn metrics_match_hand_computed_values() {
    let r: Ranking = ["d", "a", "b", "c"]
        .iter()
        .map(|i| (i.to_string(), 1.0))
        .collect();
    // Relevant: a and c. In the top 2 only a: recall@2 = 1/2; top 4: both, 1.
    assert_eq!(recall_at_k(&r, &["a", "c"], 2), 0.5);
    assert_eq!(recall_at_k(&r, &["a", "c"], 4), 1.0);
    assert_eq!(recall_at_k(&r, &["a", "c"], 1), 0.0);
    // First relevant (a) at rank 2: reciprocal rank 1/2; none found: 0.
    assert_eq!(reciprocal_rank(&r, &["a", "c"]), 0.5);
    assert_eq!(reciprocal_rank(&r, &["z"]), 0.0);
    // MRR over two questions: (1/2 + 1/4) / 2 = 0.375.
    let mrr = (reciprocal_rank(&r, &["a"]) + reciprocal_rank(&r, &["c"])) / 2.0;
    assert_eq!(mrr, 0.375);
}

#[test]
fn rrf_sums_reciprocal_ranks() {
    let x: Ranking = vec![("a".into(), 9.0), ("b".into(), 5.0)];
    let y: Ranking = vec![("b".into(), 0.9), ("c".into(), 0.8)];
    let f = rrf(&[(1.0, &x), (1.0, &y)], 60.0, 10);
    // b: 1/62 + 1/61; a: 1/61; c: 1/62.
    assert_eq!(ids(&f), ["b", "a", "c"]);
    assert!((f[0].1 - (1.0 / 62.0 + 1.0 / 61.0)).abs() < 1e-12);
    // A weight of 0 drops a list's say entirely.
    let g = rrf(&[(1.0, &x), (0.0, &y)], 60.0, 10);
    assert_eq!(ids(&g)[..2], ["a", "b"]);
}
