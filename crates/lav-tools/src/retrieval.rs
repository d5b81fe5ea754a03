//! Retrieval over text chunks: the retriever interface, four retrievers (grep, BM25
//! with tantivy, dense over sentence embeddings, hybrid by reciprocal rank fusion),
//! and the metrics the retrieval lab computes live (recall@k, reciprocal rank).

use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chunk {
    pub id: String,
    pub text: String,
    /// The document it was cut from, and its word range there.
    pub doc: String,
    pub start: usize,
    pub end: usize,
}

impl Chunk {
    pub fn new(id: &str, text: &str) -> Chunk {
        Chunk {
            id: id.to_string(),
            text: text.to_string(),
            ..Chunk::default()
        }
    }
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

/// BM25 over the chunks with tantivy: an in-memory index, English stemming, and
/// tantivy's defaults (k1 = 1.2, b = 0.75). Query syntax errors are forgiven (a
/// question mark or quote is just text).
pub struct Bm25 {
    index: tantivy::Index,
    reader: tantivy::IndexReader,
    id: tantivy::schema::Field,
    text: tantivy::schema::Field,
}

impl Bm25 {
    pub fn new(chunks: &[Chunk]) -> Result<Bm25, String> {
        use tantivy::schema::{STORED, STRING, Schema, TextFieldIndexing, TextOptions};
        let e = |e: tantivy::TantivyError| format!("BM25 index: {e}");
        let mut sb = Schema::builder();
        let id = sb.add_text_field("id", STRING | STORED);
        let indexing = TextFieldIndexing::default()
            .set_tokenizer("en_stem")
            .set_index_option(tantivy::schema::IndexRecordOption::WithFreqsAndPositions);
        let text = sb.add_text_field(
            "text",
            TextOptions::default().set_indexing_options(indexing),
        );
        let index = tantivy::Index::create_in_ram(sb.build());
        // One thread and the smallest arena: a few hundred chunks index in
        // milliseconds, and the lab rebuilds on every chunking change.
        let mut w: tantivy::IndexWriter =
            index.writer_with_num_threads(1, 15_000_000).map_err(e)?;
        for c in chunks {
            w.add_document(tantivy::doc!(id => c.id.clone(), text => c.text.clone()))
                .map_err(e)?;
        }
        w.commit().map_err(e)?;
        let reader = index.reader().map_err(e)?;
        Ok(Bm25 {
            index,
            reader,
            id,
            text,
        })
    }
}

impl Retriever for Bm25 {
    fn name(&self) -> &'static str {
        "bm25"
    }

    fn search(&self, query: &str, k: usize) -> Ranking {
        use tantivy::schema::Value;
        if k == 0 {
            return Vec::new();
        }
        let parser = tantivy::query::QueryParser::for_index(&self.index, vec![self.text]);
        // Plain words, not query syntax: drop the characters tantivy would parse.
        let plain: String = query
            .chars()
            .map(|c| if c.is_alphanumeric() { c } else { ' ' })
            .collect();
        let (q, _) = parser.parse_query_lenient(&plain);
        let searcher = self.reader.searcher();
        let top = searcher
            .search(
                &q,
                &tantivy::collector::TopDocs::with_limit(k).order_by_score(),
            )
            .unwrap_or_default();
        top.into_iter()
            .filter_map(|(score, addr)| {
                let d: tantivy::TantivyDocument = searcher.doc(addr).ok()?;
                let id = d.get_first(self.id)?.as_str()?.to_string();
                Some((id, score as f64))
            })
            .collect()
    }
}

/// Turns text into a unit-length vector (MiniLM in lav; any sentence embedder).
pub type EmbedFn = dyn Fn(&str) -> Result<Vec<f32>, String> + Send + Sync;

/// Dense retrieval: cosine similarity between the query's embedding and each chunk's.
pub struct Dense {
    ids: Vec<String>,
    vectors: Vec<Vec<f32>>,
    embed: std::sync::Arc<EmbedFn>,
}

impl Dense {
    /// Embeds every chunk now (the slow part: the lab runs it in the background).
    pub fn new(chunks: &[Chunk], embed: std::sync::Arc<EmbedFn>) -> Result<Dense, String> {
        let vectors = chunks
            .iter()
            .map(|c| embed(&c.text))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Dense::from_vectors(chunks, vectors, embed))
    }

    /// From vectors computed earlier (a cache keyed by the chunking).
    pub fn from_vectors(
        chunks: &[Chunk],
        vectors: Vec<Vec<f32>>,
        embed: std::sync::Arc<EmbedFn>,
    ) -> Dense {
        Dense {
            ids: chunks.iter().map(|c| c.id.clone()).collect(),
            vectors,
            embed,
        }
    }

    pub fn vectors(&self) -> &[Vec<f32>] {
        &self.vectors
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    let n = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let d = n(a) * n(b);
    if d == 0.0 { 0.0 } else { dot / d }
}

impl Retriever for Dense {
    fn name(&self) -> &'static str {
        "dense"
    }

    fn search(&self, query: &str, k: usize) -> Ranking {
        let Ok(q) = (self.embed)(query) else {
            return Vec::new();
        };
        let mut v: Ranking = self
            .ids
            .iter()
            .zip(&self.vectors)
            .map(|(id, e)| (id.clone(), cosine(&q, e)))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }
}

/// Hybrid: BM25 and dense fused by reciprocal rank fusion. `weight` is the dense
/// list's share (0 = BM25 only, 1 = dense only); each list is read to `depth`.
pub struct Hybrid<'a> {
    pub bm25: &'a dyn Retriever,
    pub dense: &'a dyn Retriever,
    pub weight: f64,
    pub depth: usize,
}

/// A retriever's rankings kept for known queries: answers from `lists` (each ranked
/// to `depth`) when it can, else asks `inner`. The same results, without searching
/// again when only a fusion weight or `k` changes.
pub struct Memo<'a> {
    pub inner: &'a dyn Retriever,
    pub lists: &'a std::collections::HashMap<String, Ranking>,
    pub depth: usize,
}

impl<'a> Memo<'a> {
    /// `r`'s rankings of `queries`, each to `depth`.
    pub fn rank_all<'q>(
        r: &dyn Retriever,
        queries: impl IntoIterator<Item = &'q str>,
        depth: usize,
    ) -> std::collections::HashMap<String, Ranking> {
        queries
            .into_iter()
            .map(|q| (q.to_string(), r.search(q, depth)))
            .collect()
    }
}

impl Retriever for Memo<'_> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn search(&self, query: &str, k: usize) -> Ranking {
        match self.lists.get(query) {
            Some(list) if k <= self.depth => list.iter().take(k).cloned().collect(),
            _ => self.inner.search(query, k),
        }
    }
}

impl Retriever for Hybrid<'_> {
    fn name(&self) -> &'static str {
        "hybrid"
    }

    fn search(&self, query: &str, k: usize) -> Ranking {
        let a = self.bm25.search(query, self.depth.max(k));
        let b = self.dense.search(query, self.depth.max(k));
        rrf(&[(1.0 - self.weight, &a), (self.weight, &b)], RRF_K, k)
    }
}

/// The usual RRF constant (Cormack, Clarke and Büttcher 2009).
pub const RRF_K: f64 = 60.0;

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
