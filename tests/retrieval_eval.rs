//! The four retrievers on lav's own docs corpus and its labelled questions, with the
//! real MiniLM embedder: the corpus and the labels hold together, and the retrievers
//! behave as the retrieval lab says they do.

use lav_tools::corpus::{self, Chunking, Labelled};
use lav_tools::retrieval::{Bm25, Dense, Grep, Hybrid, Retriever};
use std::sync::Arc;

const DEFAULT: Chunking = Chunking {
    size: 80,
    overlap: 16,
};

fn embed_fn() -> Arc<lav_tools::retrieval::EmbedFn> {
    let e = lav_model::Embedder::load(&lav_tests::embedder_dir()).expect("MiniLM");
    Arc::new(move |t: &str| e.embed(t).map_err(|e| e.to_string()))
}

fn setup() -> (
    Vec<corpus::Document>,
    Vec<lav_tools::retrieval::Chunk>,
    Vec<Labelled>,
) {
    let labs = lav_tests::labs_dir();
    let docs = corpus::load(&labs).unwrap();
    let qs = corpus::questions(&labs.join("data/rag-questions.toml")).unwrap();
    let chunks = corpus::chunk(&docs, DEFAULT);
    let set = corpus::label(&docs, &chunks, &qs).unwrap();
    (docs, chunks, set)
}

#[test]
fn corpus_and_labels_hold_together() {
    let (docs, chunks, set) = setup();
    assert!(chunks.len() >= 200, "{} chunks", chunks.len());
    assert!(set.len() >= 40, "{} questions", set.len());
    let mut ids: Vec<&str> = set.iter().map(|l| l.question.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), set.len(), "question ids are unique");
    for l in &set {
        let q = &l.question;
        assert!(
            ["lexical", "paraphrase"].contains(&q.kind.as_str()),
            "{}",
            q.id
        );
        // The answer is in exactly one document, so its chunks are the only right ones.
        let holders: Vec<&str> = docs
            .iter()
            .filter(|d| d.words.join(" ").contains(&q.answer))
            .map(|d| d.path.as_str())
            .collect();
        assert_eq!(holders, [q.doc.as_str()], "{}: {:?}", q.id, q.answer);
        assert!(!l.relevant.is_empty(), "{} has a relevant chunk", q.id);
        // With 16 words of overlap and answers of at most 14, one chunk holds it whole.
        assert!(
            chunks
                .iter()
                .any(|c| l.relevant.contains(&c.id) && c.text.contains(&q.answer)),
            "{}: no relevant chunk holds {:?}",
            q.id,
            q.answer
        );
    }
    // Chunk ids are unique, even where a lesson and a corpus page share a file name
    // (fusion adds up scores by id).
    let mut seen = std::collections::HashSet::new();
    for c in &chunks {
        assert!(seen.insert(c.id.as_str()), "chunk id {} twice", c.id);
    }
    // Windows cover every word, overlap by exactly `overlap`, and never cross documents.
    for d in &docs {
        let mine: Vec<_> = chunks.iter().filter(|c| c.doc == d.path).collect();
        assert_eq!(mine[0].start, 0);
        assert_eq!(mine.last().unwrap().end, d.words.len());
        for w in mine.windows(2) {
            assert_eq!(w[0].end - w[1].start, DEFAULT.overlap, "{}", w[1].id);
        }
    }
}

#[test]
fn retrievers_rank_as_the_lab_claims() {
    let (_, chunks, set) = setup();
    let grep = Grep::new(&chunks);
    let bm25 = Bm25::new(&chunks).unwrap();
    let dense = Dense::new(&chunks, embed_fn()).unwrap();
    let hybrid = Hybrid {
        bm25: &bm25,
        dense: &dense,
        weight: 0.5,
        depth: 50,
    };
    let kind = |k: &str| -> Vec<Labelled> {
        set.iter()
            .filter(|l| l.question.kind == k)
            .cloned()
            .collect()
    };
    let (lexical, paraphrase) = (kind("lexical"), kind("paraphrase"));
    let score = |r: &dyn Retriever, s: &[Labelled]| corpus::evaluate(r, s, 5, 20);
    for r in [&grep as &dyn Retriever, &bm25, &dense, &hybrid] {
        for s in [&lexical, &paraphrase, &set] {
            let sc = score(r, s);
            assert!((0.0..=1.0).contains(&sc.recall) && sc.recall <= sc.hit_rate + 1e-12);
            assert!(sc.mrr <= sc.hit_rate + 1e-12 || sc.k < 20);
        }
    }
    // Term matching finds questions that reuse the text's words...
    assert!(score(&bm25, &lexical).hit_rate >= 0.9);
    // ...BM25's weighting beats counting shared words...
    assert!(score(&bm25, &set).mrr > score(&grep, &set).mrr);
    // ...embeddings find paraphrases that BM25 misses...
    assert!(score(&dense, &paraphrase).hit_rate > score(&bm25, &paraphrase).hit_rate);
    // ...and fusing the two is at least as good as either on the whole set.
    let h = score(&hybrid, &set).hit_rate;
    assert!(h >= score(&bm25, &set).hit_rate && h >= score(&dense, &set).hit_rate);
    // Weight 0 and 1 are the two inputs' orders.
    let q = &set[0].question.text;
    let ids = |r: lav_tools::retrieval::Ranking| r.into_iter().map(|x| x.0).collect::<Vec<_>>();
    let only = |w| Hybrid {
        bm25: &bm25,
        dense: &dense,
        weight: w,
        depth: 10,
    };
    assert_eq!(ids(only(0.0).search(q, 10)), ids(bm25.search(q, 10)));
    assert_eq!(ids(only(1.0).search(q, 10)), ids(dense.search(q, 10)));
}
