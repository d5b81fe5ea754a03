//! Retrieval over text chunks: the retriever interface, the grep baseline,
//! reciprocal rank fusion, and the metrics the retrieval lab computes live
//! (recall@k, reciprocal rank). BM25 (tantivy) and dense (MiniLM) retrievers plug in
//! behind the same trait.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq)]
pub struct Chunk {
    pub id: String,
    pub text: String,
}

/// Chunk ids, best first, with the retriever's score.
pub type Ranking = Vec<(String, f64)>;

pub trait Retriever {
    fn name(&self) -> &'static str;
    fn search(&self, query: &str, k: usize) -> Ranking;
}

/// Lower-case words of two or more letters or digits: the terms grep matches on.
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(|w| w.to_lowercase())
        .collect()
}

/// The baseline an agent reaches for first: score a chunk by how many distinct query
/// terms it contains (ties: the shorter chunk, then the id).
pub struct Grep {
    chunks: Vec<(Chunk, BTreeSet<String>)>,
}

impl Grep {
    pub fn new(chunks: &[Chunk]) -> Grep {
        Grep {
            chunks: chunks
                .iter()
                .map(|c| (c.clone(), terms(&c.text).into_iter().collect()))
                .collect(),
        }
    }
}

impl Retriever for Grep {
    fn name(&self) -> &'static str {
        "grep"
    }

    fn search(&self, query: &str, k: usize) -> Ranking {
        let q: BTreeSet<String> = terms(query).into_iter().collect();
        let mut hits: Vec<(&Chunk, usize)> = self
            .chunks
            .iter()
            .map(|(c, t)| (c, q.intersection(t).count()))
            .filter(|(_, n)| *n > 0)
            .collect();
        hits.sort_by(|a, b| {
            b.1.cmp(&a.1)
                .then(a.0.text.len().cmp(&b.0.text.len()))
                .then(a.0.id.cmp(&b.0.id))
        });
        hits.into_iter()
            .take(k)
            .map(|(c, n)| (c.id.clone(), n as f64))
            .collect()
    }
}

/// Reciprocal rank fusion: each list gives a chunk `weight / (k + rank)` (rank from
/// 1); the fused list sorts by the sum. `k = 60` is the usual constant (Cormack et
/// al. 2009).
pub fn rrf(lists: &[(f64, &Ranking)], k: f64, top: usize) -> Ranking {
    let mut score: BTreeMap<&str, f64> = BTreeMap::new();
    for (w, list) in lists {
        for (rank, (id, _)) in list.iter().enumerate() {
            *score.entry(id.as_str()).or_default() += w / (k + (rank + 1) as f64);
        }
    }
    let mut v: Ranking = score
        .into_iter()
        .map(|(id, s)| (id.to_string(), s))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(top);
    v
}

/// Fraction of the relevant chunks found in the first `k` results.
pub fn recall_at_k(ranking: &Ranking, relevant: &[&str], k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let found = ranking
        .iter()
        .take(k)
        .filter(|(id, _)| relevant.contains(&id.as_str()))
        .count();
    found as f64 / relevant.len() as f64
}

/// 1 / rank of the first relevant result (0 if none): averaged over questions, MRR.
pub fn reciprocal_rank(ranking: &Ranking, relevant: &[&str]) -> f64 {
    ranking
        .iter()
        .position(|(id, _)| relevant.contains(&id.as_str()))
        .map_or(0.0, |i| 1.0 / (i + 1) as f64)
}
