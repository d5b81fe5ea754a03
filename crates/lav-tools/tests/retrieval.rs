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
    .map(|(id, t)| Chunk::new(id, t))
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

/// BM25 as published (Robertson et al.), with Lucene's idf
/// ln(1 + (N − n + 0.5)/(n + 0.5)), k1 = 1.2 and b = 0.75: an independent
/// implementation to check tantivy's scores against.
fn bm25_reference(docs: &[Vec<&str>], query: &[&str], d: usize) -> f64 {
    let (k1, b) = (1.2, 0.75);
    let n = docs.len() as f64;
    let avgdl = docs.iter().map(|d| d.len()).sum::<usize>() as f64 / n;
    let dl = docs[d].len() as f64;
    query
        .iter()
        .map(|t| {
            let df = docs.iter().filter(|d| d.contains(t)).count() as f64;
            if df == 0.0 {
                return 0.0;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            let tf = docs[d].iter().filter(|w| *w == t).count() as f64;
            idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / avgdl))
        })
        .sum()
}

#[test]
fn bm25_scores_equal_the_published_formula() {
    // Words chosen so English stemming leaves them as they are, and documents short
    // enough that tantivy stores their lengths exactly.
    let texts = [
        "memory bandwidth limits decode",
        "decode reads every weight from memory once per token",
        "prefill is compute bound",
        "batch decode shares one weight read",
        "memory memory memory",
    ];
    let chunks: Vec<Chunk> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| Chunk::new(&format!("d{i}"), t))
        .collect();
    let bm = Bm25::new(&chunks).unwrap();
    let docs: Vec<Vec<&str>> = texts.iter().map(|t| t.split(' ').collect()).collect();
    let query = ["memory", "decode"];
    let got = bm.search("memory decode?", 10);
    let mut want: Vec<(String, f64)> = (0..texts.len())
        .map(|d| (format!("d{d}"), bm25_reference(&docs, &query, d)))
        .filter(|x| x.1 > 0.0)
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(
        ids(&got),
        want.iter().map(|x| x.0.as_str()).collect::<Vec<_>>()
    );
    for ((_, g), (id, w)) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() < 1e-4 * w.max(1.0),
            "{id}: tantivy {g} vs formula {w}"
        );
    }
    // Query syntax is just text: quotes, colons and brackets do not error.
    assert!(!bm.search("\"memory: (decode]", 3).is_empty());
}

#[test]
fn dense_ranks_by_cosine_and_hybrid_fuses_by_rrf() {
    // A toy embedder (letter counts) stands in for MiniLM: the ranking logic is
    // what is checked here; MiniLM itself is in tests/retrieval_eval.rs.
    let embed: std::sync::Arc<EmbedFn> = std::sync::Arc::new(|t: &str| {
        let mut v = vec![0f32; 26];
        for c in t.to_lowercase().bytes().filter(u8::is_ascii_lowercase) {
            v[(c - b'a') as usize] += 1.0;
        }
        Ok(v)
    });
    let cs = chunks();
    let dense = Dense::new(&cs, embed.clone()).unwrap();
    let q = "keys and values cached";
    let r = dense.search(q, 4);
    let qv = embed(q).unwrap();
    let mut want: Vec<(String, f64)> = cs
        .iter()
        .map(|c| {
            let v = embed(&c.text).unwrap();
            let dot: f32 = qv.iter().zip(&v).map(|(a, b)| a * b).sum();
            let n = |x: &[f32]| x.iter().map(|a| a * a).sum::<f32>().sqrt();
            (c.id.clone(), (dot / (n(&qv) * n(&v))) as f64)
        })
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    assert_eq!(
        ids(&r),
        want.iter().map(|x| x.0.as_str()).collect::<Vec<_>>()
    );
    let bm = Bm25::new(&cs).unwrap();
    let h = Hybrid {
        bm25: &bm,
        dense: &dense,
        weight: 0.3,
        depth: 4,
    };
    let fused = rrf(&[(0.7, &bm.search(q, 4)), (0.3, &r)], RRF_K, 3);
    assert_eq!(h.search(q, 3), fused);
}
