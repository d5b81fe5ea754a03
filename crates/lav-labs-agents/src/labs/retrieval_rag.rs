//! retrieval-rag: lav's own docs chunked live and searched four ways (grep, BM25 with
//! tantivy, MiniLM dense, hybrid by reciprocal rank fusion), scored on the labelled
//! question set (`labs/data/rag-questions.toml`) with recall@k, hit rate and MRR.
//! Embedding the chunks runs in the background (seconds on a laptop); embeddings are
//! cached by text, so moving a slider back is instant.

use super::Context;
use lav_lab::items::{bar, bars, sig, table, text};
use lav_lab::job::{Job, State, progress_item};
use lav_lab::{Control, Lab, LabError, LabState, Result, ResultExt, Step, Steps, Values};
use lav_model::{Embedder, Loader};
use lav_scene::*;
use lav_tools::corpus::{self, Chunking, Document, Labelled, Question};
use lav_tools::retrieval::{
    Bm25, Chunk, Dense, EmbedFn, Grep, Hybrid, Memo, RRF_K, Ranking, Retriever,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Cache = Arc<Mutex<HashMap<String, Vec<f32>>>>;

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let docs = corpus::load(&ctx.dir).map_err(LabError::Input)?;
    let questions =
        corpus::questions(&ctx.dir.join("data/rag-questions.toml")).map_err(LabError::Input)?;
    let c = Controls {
        size: Control::slider("size", "Chunk size (words)", 20.0, 240.0, 10.0, 80.0),
        overlap: Control::slider("overlap", "Overlap (words)", 0.0, 60.0, 2.0, 16.0),
        k: Control::slider("k", "k (results read)", 1.0, 10.0, 1.0, 5.0),
        weight: Control::slider(
            "weight",
            "Hybrid weight on dense (0 = BM25 only)",
            0.0,
            1.0,
            0.05,
            0.5,
        ),
        question: Control::slider(
            "question",
            "Question #",
            1.0,
            questions.len() as f64,
            1.0,
            1.0,
        ),
        noise: Control::slider("noise", "Distractor chunks added", 0.0, 300.0, 10.0, 0.0),
    };
    let steps = vec![
        Step::new(
            "chunks",
            &[&c.size, &c.overlap, &c.question],
            RagLab::chunks,
        ),
        Step::new(
            "compare",
            &[&c.size, &c.overlap, &c.k, &c.weight, &c.question],
            RagLab::compare,
        ),
        Step::new(
            "metrics",
            &[&c.size, &c.overlap, &c.k, &c.weight],
            RagLab::metrics,
        ),
        Step::new(
            "noise",
            &[&c.size, &c.overlap, &c.k, &c.weight, &c.noise],
            RagLab::noise,
        ),
    ];
    Steps::lab(
        RagLab {
            c,
            docs,
            questions,
            loader: ctx.loader.clone(),
            cache: Arc::new(Mutex::new(HashMap::new())),
            index: Job::default(),
        },
        steps,
    )
}

struct Controls {
    size: Control,
    overlap: Control,
    k: Control,
    weight: Control,
    question: Control,
    noise: Control,
}

/// Everything built for one chunking (and noise level).
struct Index {
    chunks: Vec<Chunk>,
    set: Vec<Labelled>,
    grep: Grep,
    bm25: Bm25,
    dense: Dense,
    /// MiniLM's time on the texts this index embedded, and how many it embedded (texts
    /// cached by an earlier index are neither timed nor counted).
    embed_seconds: f64,
    embedded: usize,
    /// Texts found in the cache.
    reused: usize,
    /// Every question's ranking by each of grep, BM25 and dense, to [`MEMO_DEPTH`]: a
    /// change of `k` or of the hybrid weight only re-reads them (under 50 ms).
    memo: HashMap<&'static str, Rankings>,
}

/// One retriever's ranking of each question, by question text.
type Rankings = HashMap<String, Ranking>;

/// How deep the kept rankings go: the hybrid's fusion depth.
const MEMO_DEPTH: usize = 50;

impl Index {
    fn memo<'a>(&'a self, r: &'a dyn Retriever) -> Memo<'a> {
        static EMPTY: std::sync::OnceLock<Rankings> = std::sync::OnceLock::new();
        Memo {
            inner: r,
            lists: self
                .memo
                .get(r.name())
                .unwrap_or_else(|| EMPTY.get_or_init(HashMap::new)),
            depth: MEMO_DEPTH,
        }
    }
}

struct RagLab {
    c: Controls,
    docs: Vec<Document>,
    questions: Vec<Question>,
    loader: Arc<dyn Loader>,
    cache: Cache,
    index: Job<(usize, usize, usize), Index>,
}

/// Distractors: windows of real corpus text with their words shuffled (seeded), so
/// they share the vocabulary of the documents but answer nothing.
pub fn distractors(docs: &[Document], n: usize, size: usize) -> Vec<Chunk> {
    let words: Vec<&str> = docs
        .iter()
        .flat_map(|d| d.words.iter().map(String::as_str))
        .collect();
    let mut state: u64 = 0x5EED;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let start = (next() as usize) % words.len().saturating_sub(size).max(1);
            let mut w: Vec<&str> = words[start..(start + size).min(words.len())].to_vec();
            for j in (1..w.len()).rev() {
                w.swap(j, (next() as usize) % (j + 1));
            }
            Chunk {
                id: format!("distractor#{i}"),
                text: w.join(" "),
                doc: "distractor".into(),
                start: 0,
                end: w.len(),
            }
        })
        .collect()
}

fn embed_fn(embedder: Arc<Embedder>, cache: Cache) -> Arc<EmbedFn> {
    Arc::new(move |t: &str| {
        if let Some(v) = cache.lock().expect("cache").get(t) {
            return Ok(v.clone());
        }
        let v = embedder.embed(t).map_err(|e| e.to_string())?;
        cache
            .lock()
            .expect("cache")
            .insert(t.to_string(), v.clone());
        Ok(v)
    })
}

impl RagLab {
    fn chunking(&self, v: &Values) -> Chunking {
        let size = v.usize(&self.c.size).max(1);
        Chunking {
            size,
            overlap: v.usize(&self.c.overlap).min(size - 1),
        }
    }

    /// The index for the current inputs, or the progress item while it builds.
    fn index(&mut self, v: &Values, noise: usize) -> Result<std::result::Result<&Index, Item>> {
        let ch = self.chunking(v);
        let key = (ch.size, ch.overlap, noise);
        let docs = self.docs.clone();
        let qs = self.questions.clone();
        let cache = self.cache.clone();
        let loader = self.loader.clone();
        let state = self.index.get(&key, move |p| {
            let mut chunks = corpus::chunk(&docs, ch);
            let set = corpus::label(&docs, &chunks, &qs).map_err(LabError::Input)?;
            chunks.extend(distractors(&docs, noise, ch.size));
            let embed = embed_fn(loader.embedder().lab()?, cache.clone());
            let (mut embed_seconds, mut embedded, mut reused) = (0.0, 0, 0);
            let mut timed = |text: &str| -> Result<Vec<f32>> {
                let cached = cache.lock().expect("cache").contains_key(text);
                let t = std::time::Instant::now();
                let v = embed(text).map_err(LabError::Input)?;
                if cached {
                    reused += 1;
                } else {
                    embed_seconds += t.elapsed().as_secs_f64();
                    embedded += 1;
                }
                Ok(v)
            };
            let mut vectors = Vec::with_capacity(chunks.len());
            for (i, c) in chunks.iter().enumerate() {
                p.check()?;
                p.set(
                    i as u64,
                    chunks.len() as u64,
                    format!("embedding chunk {} of {} with MiniLM", i + 1, chunks.len()),
                );
                vectors.push(timed(&c.text)?);
            }
            // The questions too, so scoring the whole set is quick afterwards.
            for (i, q) in qs.iter().enumerate() {
                p.check()?;
                p.set(i as u64, qs.len() as u64, "embedding the questions");
                timed(&q.text)?;
            }
            let (grep, bm25) = (
                Grep::new(&chunks),
                Bm25::new(&chunks).map_err(LabError::Input)?,
            );
            let dense = Dense::from_vectors(&chunks, vectors, embed);
            p.set(0, 1, "ranking every question with grep, BM25 and MiniLM");
            let queries = || set.iter().map(|l| l.question.text.as_str());
            let memo = HashMap::from([
                ("grep", Memo::rank_all(&grep, queries(), MEMO_DEPTH)),
                ("bm25", Memo::rank_all(&bm25, queries(), MEMO_DEPTH)),
                ("dense", Memo::rank_all(&dense, queries(), MEMO_DEPTH)),
            ]);
            Ok(Index {
                grep,
                bm25,
                dense,
                chunks,
                set,
                embed_seconds,
                embedded,
                reused,
                memo,
            })
        })?;
        Ok(match state {
            State::Running(p) => Err(progress_item(
                "progress",
                "Chunking and embedding the corpus",
                p,
            )),
            State::Ready(ix) => Ok(ix),
        })
    }
}

fn prov() -> Provenance {
    Provenance::engine("lav-tools retrieval over lav's docs (tantivy BM25, MiniLM-L6 dense)")
}

fn scores_table(ix: &Index, k: usize, weight: f64) -> (Item, Item) {
    let (grep, bm25, dense) = (ix.memo(&ix.grep), ix.memo(&ix.bm25), ix.memo(&ix.dense));
    let hybrid = Hybrid {
        bm25: &bm25,
        dense: &dense,
        weight,
        depth: MEMO_DEPTH,
    };
    let rs: [&dyn Retriever; 4] = [&grep, &bm25, &dense, &hybrid];
    let mut rows = Vec::new();
    let mut bs = Vec::new();
    for r in rs {
        let all = corpus::evaluate(r, &ix.set, k, 20);
        let part = |kind: &str| {
            let s: Vec<Labelled> = ix
                .set
                .iter()
                .filter(|l| l.question.kind == kind)
                .cloned()
                .collect();
            corpus::evaluate(r, &s, k, 20)
        };
        let (lex, para) = (part("lexical"), part("paraphrase"));
        rows.push(vec![
            r.name().to_string(),
            sig(all.recall),
            sig(all.hit_rate),
            sig(all.mrr),
            sig(lex.hit_rate),
            sig(para.hit_rate),
        ]);
        bs.push(bar(
            r.name(),
            all.hit_rate,
            if r.name() == "hybrid" {
                Role::Highlight
            } else {
                Role::Channel
            },
        ));
    }
    (
        table(
            "scores",
            &format!("All {} labelled questions, computed now", ix.set.len()),
            Provenance::computed("recall@k, hit rate and MRR against labelled relevance"),
            &[
                "retriever",
                &format!("recall@{k}"),
                &format!("hit@{k}"),
                "MRR",
                "hit (lexical)",
                "hit (paraphrase)",
            ],
            rows,
        ),
        bars(
            "hits",
            &format!("Questions with a relevant chunk in the top {k}"),
            Provenance::computed("over the labelled set"),
            "share",
            bs,
        ),
    )
}

impl LabState for RagLab {
    fn busy(&self) -> bool {
        self.index.busy()
    }
}

impl RagLab {
    /// k, the results read (at least 1).
    fn k(&self, v: &Values) -> usize {
        v.usize(&self.c.k).max(1)
    }

    /// The chosen question's index (0-based) into the question set.
    fn question_index(&self, v: &Values) -> usize {
        v.usize(&self.c.question).clamp(1, self.questions.len()) - 1
    }

    fn chunks(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let qi = self.question_index(v);
        let ch = self.chunking(v);
        let chunks = corpus::chunk(&self.docs, ch);
        let q = &self.questions[qi];
        let span = corpus::answer_span(&self.docs, q);
        let rel = span
            .map(|s| corpus::relevant(&chunks, s, &q.doc))
            .unwrap_or_default();
        scene.push(text(
            "summary",
            "The corpus, chunked",
            prov(),
            format!(
                "{} documents, {} words → {} chunks of up to {} words, each starting {} words after the last ({} overlap).",
                self.docs.len(),
                self.docs.iter().map(|d| d.words.len()).sum::<usize>(),
                chunks.len(),
                ch.size,
                ch.stride(),
                ch.overlap
            ),
        ));
        scene.push(table(
            "doc",
            &format!(
                "Chunks of {} (question {}'s document); relevant ones hold its answer",
                q.doc, q.id
            ),
            prov(),
            &["chunk", "words", "relevant", "text"],
            chunks
                .iter()
                .filter(|c| c.doc == q.doc)
                .map(|c| {
                    vec![
                        c.id.clone(),
                        format!("{}–{}", c.start, c.end),
                        if rel.contains(&c.id) {
                            "✓".into()
                        } else {
                            String::new()
                        },
                        c.text.chars().take(140).collect(),
                    ]
                })
                .collect(),
        ));
        scene.push(text(
            "question",
            "The question and its labelled answer",
            Provenance::scripted("lav's own question set, written and labelled by hand"),
            format!(
                "{} ({}): {}\nanswer: \"{}\"",
                q.id, q.kind, q.text, q.answer
            ),
        ));
        Ok(scene)
    }

    fn compare(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let k = self.k(v);
        let weight = v.num(&self.c.weight);
        let qi = self.question_index(v);
        let ix = match self.index(v, 0)? {
            Ok(ix) => ix,
            Err(p) => return Ok(scene.with(p)),
        };
        let l = &ix.set[qi];
        scene.push(text(
            "question",
            "Question",
            Provenance::scripted("lav's own question set, written and labelled by hand"),
            format!(
                "{} ({}): {}",
                l.question.id, l.question.kind, l.question.text
            ),
        ));
        let (grep, bm25, dense) = (ix.memo(&ix.grep), ix.memo(&ix.bm25), ix.memo(&ix.dense));
        let bm = bm25.search(&l.question.text, MEMO_DEPTH);
        let de = dense.search(&l.question.text, MEMO_DEPTH);
        let hybrid = Hybrid {
            bm25: &bm25,
            dense: &dense,
            weight,
            depth: MEMO_DEPTH,
        };
        let rs: [(&str, Vec<(String, f64)>); 4] = [
            ("grep", grep.search(&l.question.text, k)),
            ("bm25", bm.iter().take(k).cloned().collect()),
            ("dense", de.iter().take(k).cloned().collect()),
            ("hybrid", hybrid.search(&l.question.text, k)),
        ];
        for (name, ranking) in rs {
            let rows = ranking
                .iter()
                .enumerate()
                .map(|(i, (id, s))| {
                    let chunk = ix.chunks.iter().find(|c| &c.id == id);
                    vec![
                        (i + 1).to_string(),
                        id.clone(),
                        sig(*s),
                        if l.relevant.contains(id) {
                            "✓ relevant".into()
                        } else {
                            String::new()
                        },
                        chunk
                            .map(|c| c.text.chars().take(90).collect())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            scene.push(table(
                name,
                &format!("{name}: top {k}"),
                prov(),
                &["rank", "chunk", "score", "", "text"],
                rows,
            ));
        }
        // How RRF added up the hybrid's first result.
        if let Some((top, score)) = hybrid.search(&l.question.text, 1).first() {
            let rank = |r: &Vec<(String, f64)>| r.iter().position(|(i, _)| i == top).map(|p| p + 1);
            let term = |w: f64, r: Option<usize>| r.map_or(0.0, |r| w / (RRF_K + r as f64));
            let (rb, rd) = (rank(&bm), rank(&de));
            scene.push(table(
                "rrf",
                &format!("RRF for {top}: Σ weight / (60 + rank)"),
                Provenance::computed("reciprocal rank fusion, k = 60"),
                &["list", "rank", "weight", "term"],
                vec![
                    vec![
                        "bm25".into(),
                        rb.map_or("—".into(), |r| r.to_string()),
                        sig(1.0 - weight),
                        sig(term(1.0 - weight, rb)),
                    ],
                    vec![
                        "dense".into(),
                        rd.map_or("—".into(), |r| r.to_string()),
                        sig(weight),
                        sig(term(weight, rd)),
                    ],
                    vec!["sum".into(), String::new(), String::new(), sig(*score)],
                ],
            ));
        }
        Ok(scene)
    }

    fn metrics(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let k = self.k(v);
        let weight = v.num(&self.c.weight);
        let ix = match self.index(v, 0)? {
            Ok(ix) => ix,
            Err(p) => return Ok(scene.with(p)),
        };
        let (t, b) = scores_table(ix, k, weight);
        scene.push(b);
        scene.push(t);
        scene.push(text(
            "cost",
            "Index cost",
            Provenance::engine("measured on this machine"),
            format!(
                "{} chunks and {} questions. MiniLM embedded {} of these texts in {:.2} s; {} came from the cache of an earlier index.",
                ix.chunks.len(),
                ix.set.len(),
                ix.embedded,
                ix.embed_seconds,
                ix.reused
            ),
        ));
        Ok(scene)
    }

    fn noise(&mut self, v: &Values) -> Result<Scene> {
        let mut scene = Scene::new();
        let k = self.k(v);
        let weight = v.num(&self.c.weight);
        let noise = v.usize(&self.c.noise);
        let ix = match self.index(v, noise)? {
            Ok(ix) => ix,
            Err(p) => return Ok(scene.with(p)),
        };
        let (t, b) = scores_table(ix, k, weight);
        scene.push(text(
            "noise",
            "Distractors",
            prov(),
            format!(
                "{noise} distractor chunks (real corpus words, shuffled) added to {} real ones.",
                ix.chunks.len() - noise
            ),
        ));
        scene.push(b);
        scene.push(t);
        Ok(scene)
    }
}
