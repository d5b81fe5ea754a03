//! The docs corpus the agent searches: lav's own writing about the labs (the
//! lessons, and `labs/data/corpus/`), cut into overlapping word windows, and the
//! labelled questions the retrieval lab scores retrievers on.

use crate::retrieval::Chunk;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One markdown document.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// Its path relative to the project root, e.g. `labs/data/corpus/why-gpus.md`:
    /// the name the questions use.
    pub path: String,
    pub title: String,
    /// The document's words, in order (markdown anchors like `{#step}` removed).
    pub words: Vec<String>,
}

impl Document {
    pub fn parse(path: &str, markdown: &str) -> Document {
        let title = markdown
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .unwrap_or(path)
            .trim()
            .to_string();
        let words = markdown
            .split_whitespace()
            .filter(|w| !(w.starts_with("{#") && w.ends_with('}')))
            .map(str::to_string)
            .collect();
        Document {
            path: path.to_string(),
            title,
            words,
        }
    }
}

/// Every corpus document under `labs` (the labs folder), sorted by path: the lessons
/// in each track folder and the documents in `data/corpus/`.
pub fn load(labs: &Path) -> Result<Vec<Document>, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    let list = |dir: &Path, files: &mut Vec<PathBuf>| -> Result<(), String> {
        let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "md") {
                files.push(p);
            }
        }
        Ok(())
    };
    let rd = std::fs::read_dir(labs).map_err(|e| format!("{}: {e}", labs.display()))?;
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() && p.file_name().is_some_and(|n| n != "data") {
            list(&p, &mut files)?;
        }
    }
    list(&labs.join("data/corpus"), &mut files)?;
    files.sort();
    let root = labs.parent().unwrap_or(labs);
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let rel = p
                .strip_prefix(root)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/");
            Ok(Document::parse(&rel, &text))
        })
        .collect()
}

/// How documents are cut: windows of `size` words, each starting `size - overlap`
/// words after the last. A window never spans two documents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunking {
    pub size: usize,
    pub overlap: usize,
}

impl Chunking {
    pub fn stride(&self) -> usize {
        self.size.saturating_sub(self.overlap).max(1)
    }
}

/// Cuts every document into chunks with ids `<file stem>#<n>`; a stem that two
/// documents share (a lesson and a corpus page on one topic) is qualified by its
/// folder, `<folder>/<file stem>#<n>`, so ids stay unique and fusion never adds up
/// two chunks as one.
pub fn chunk(docs: &[Document], c: Chunking) -> Vec<Chunk> {
    let stem_of = |path: &str| -> String {
        path.rsplit('/')
            .next()
            .unwrap_or(path)
            .trim_end_matches(".md")
            .to_string()
    };
    let mut out = Vec::new();
    for d in docs {
        let mut stem = stem_of(&d.path);
        if docs
            .iter()
            .any(|o| o.path != d.path && stem_of(&o.path) == stem)
        {
            let folder = d.path.rsplit('/').nth(1).unwrap_or("");
            stem = format!("{folder}/{stem}");
        }
        let mut start = 0;
        let mut n = 0;
        while start < d.words.len() {
            let end = (start + c.size).min(d.words.len());
            out.push(Chunk {
                id: format!("{stem}#{n}"),
                text: d.words[start..end].join(" "),
                doc: d.path.clone(),
                start,
                end,
            });
            n += 1;
            if end == d.words.len() {
                break;
            }
            start += c.stride();
        }
    }
    out
}

/// One labelled question: its answer is an exact passage of one document.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Question {
    pub id: String,
    pub text: String,
    pub doc: String,
    pub answer: String,
    /// "lexical" (shares the passage's words) or "paraphrase" (says it differently).
    pub kind: String,
}

#[derive(Deserialize)]
struct QuestionFile {
    question: Vec<Question>,
}

pub fn questions(path: &Path) -> Result<Vec<Question>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let f: QuestionFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(f.question)
}

/// Where a question's answer lies in its document, as a word range.
pub fn answer_span(docs: &[Document], q: &Question) -> Option<(usize, usize)> {
    let d = docs.iter().find(|d| d.path == q.doc)?;
    let a: Vec<&str> = q.answer.split_whitespace().collect();
    // Words keep their punctuation, so the answer's first and last words may be
    // parts of document words ("cache." ends "…the KV cache."): match those loosely.
    let n = a.len();
    (0..d.words.len().saturating_sub(n - 1)).find_map(|i| {
        let w = &d.words[i..i + n];
        let ok = (0..n).all(|j| {
            if n == 1 {
                w[j].contains(a[j])
            } else if j == 0 {
                w[j].ends_with(a[j])
            } else if j == n - 1 {
                w[j].starts_with(a[j])
            } else {
                w[j] == a[j]
            }
        });
        ok.then_some((i, i + n))
    })
}

/// The chunks relevant to `q`: those of its document that hold at least half of the
/// answer's words (so an answer cut by a chunk boundary still has a relevant chunk,
/// and with enough overlap, one that holds it whole).
pub fn relevant(chunks: &[Chunk], span: (usize, usize), doc: &str) -> Vec<String> {
    let (a, b) = span;
    let need = (b - a).div_ceil(2);
    chunks
        .iter()
        .filter(|c| c.doc == doc)
        .filter(|c| c.end.min(b).saturating_sub(c.start.max(a)) >= need)
        .map(|c| c.id.clone())
        .collect()
}

/// A question with its relevant chunks under one chunking.
#[derive(Clone, Debug, PartialEq)]
pub struct Labelled {
    pub question: Question,
    pub relevant: Vec<String>,
}

/// Labels every question against `chunks`. A question whose answer is not found in
/// its document is an error: the set and the corpus have drifted apart.
pub fn label(
    docs: &[Document],
    chunks: &[Chunk],
    qs: &[Question],
) -> Result<Vec<Labelled>, String> {
    qs.iter()
        .map(|q| {
            let span = answer_span(docs, q).ok_or_else(|| {
                format!(
                    "question {}: answer {:?} is not in {}",
                    q.id, q.answer, q.doc
                )
            })?;
            Ok(Labelled {
                question: q.clone(),
                relevant: relevant(chunks, span, &q.doc),
            })
        })
        .collect()
}

/// One retriever's scores on a labelled set.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    pub k: usize,
    /// Mean recall@k: the share of each question's relevant chunks in its top k.
    pub recall: f64,
    /// The share of questions with at least one relevant chunk in the top k.
    pub hit_rate: f64,
    /// Mean reciprocal rank (of the first relevant chunk in the top `depth`).
    pub mrr: f64,
    /// Per question: the rank (from 1) of its first relevant chunk, if found.
    pub first_hit: Vec<Option<usize>>,
}

/// Scores `r` on `set`: recall@k and MRR (reading each ranking to `depth`).
pub fn evaluate(
    r: &dyn crate::retrieval::Retriever,
    set: &[Labelled],
    k: usize,
    depth: usize,
) -> Scores {
    use crate::retrieval::{recall_at_k, reciprocal_rank};
    let mut recall = 0.0;
    let mut hits = 0.0;
    let mut mrr = 0.0;
    let mut first_hit = Vec::new();
    for l in set {
        let ranking = r.search(&l.question.text, depth.max(k));
        let rel: Vec<&str> = l.relevant.iter().map(String::as_str).collect();
        let r = recall_at_k(&ranking, &rel, k);
        recall += r;
        if r > 0.0 {
            hits += 1.0;
        }
        let rr = reciprocal_rank(&ranking, &rel);
        mrr += rr;
        first_hit.push((rr > 0.0).then(|| (1.0 / rr).round() as usize));
    }
    let n = set.len().max(1) as f64;
    Scores {
        k,
        recall: recall / n,
        hit_rate: hits / n,
        mrr: mrr / n,
        first_hit,
    }
}
