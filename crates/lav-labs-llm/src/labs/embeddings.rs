//! embeddings: real rows of the model's embedding matrix (lookups, cosine neighbours,
//! a PCA map computed at run time), positions as sinusoids (a formula this model does
//! not use) and as RoPE rotations of the model's real q and k, and MiniLM sentences.

use super::Context;
use crate::linalg::{cosine, dot, norm, pca};
use crate::pass::{PassCache, values};
use lav_lab::items::ModelSource;
use lav_lab::published::{self, Fact};
use lav_lab::{Control, Values};
use lav_lab::{Lab, LabState, ResultExt, Step, Steps};
use lav_lab::{LabError, Result};
use lav_model::{Embedder, Llama, Tokenizer};
use lav_scene::*;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Channels of an embedding row drawn in the lookup heatmap.
const SHOWN_CHANNELS: usize = 48;
/// Neighbours listed by cosine.
const NEIGHBOURS: usize = 10;

#[derive(Deserialize)]
struct WordFile {
    group: Vec<WordGroup>,
}

#[derive(Deserialize, Clone)]
struct WordGroup {
    name: String,
    words: Vec<String>,
}

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let path = ctx.dir.join("data/embedding-words.toml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LabError::Lesson(format!("cannot read {}: {e}", path.display())))?;
    let words: WordFile = toml::from_str(&text)
        .map_err(|e| LabError::Lesson(format!("{}: {}", path.display(), e.message())))?;
    let c = Controls {
        words: Control::text("words", "Words to look up", 200, "king queen cat"),
        word: Control::text("word", "Word", 40, "cat"),
        other: Control::text("other", "Compare with", 40, "dog"),
        extra: Control::text("extra", "Your words on the map", 200, ""),
        dims: Control::choice("dims", "Dimensions", &["2", "3"], "2"),
        positions: Control::slider("positions", "Positions", 8.0, 128.0, 8.0, 64.0),
        prompt: Control::text(
            "prompt",
            "Prompt",
            200,
            "The cat sat on the mat because it was tired.",
        ),
        layer: Control::slider("layer", "Layer", 0.0, 29.0, 1.0, 0.0),
        head: Control::slider("head", "Query head", 0.0, 8.0, 1.0, 0.0),
        pair: Control::slider("pair", "Channel pair i", 0.0, 31.0, 1.0, 0.0),
        sentences: Control::text(
            "sentences",
            "Sentences (separated by |)",
            1000,
            "A man is playing a guitar. | Someone is strumming an acoustic guitar on stage. | The central bank raised interest rates again this quarter. | Inflation made borrowing more expensive.",
        ),
    };
    let steps = vec![
        Step::new("lookup", &[&c.words], Embeddings::lookup),
        Step::new(
            "neighbours",
            &[&c.word, &c.other],
            Embeddings::neighbours_scene,
        ),
        Step::new("map", &[&c.dims, &c.extra], Embeddings::map),
        Step::new("sinusoidal", &[&c.positions], Embeddings::sinusoidal_step),
        Step::new(
            "rope",
            &[&c.prompt, &c.layer, &c.head, &c.pair],
            Embeddings::rope,
        ),
        Step::new("sentences", &[&c.sentences], Embeddings::sentences),
    ];
    let lab = Embeddings {
        c,
        groups: words.group,
        model: ctx.loader.model().lab()?,
        tokenizer: ctx.loader.tokenizer().lab()?,
        loader: ctx.loader.clone(),
        embedder: None,
        model_name: ModelSource::new(ctx.loader.model_name(), ctx.loader.weights().what_if()),
        neighbours: HashMap::new(),
        pass: PassCache::default(),
        facts: published::facts(&ctx.dir, "embeddings")?,
    };
    Steps::lab(lab, steps)
}

struct Controls {
    words: Control,
    word: Control,
    other: Control,
    extra: Control,
    dims: Control,
    positions: Control,
    prompt: Control,
    layer: Control,
    head: Control,
    pair: Control,
    sentences: Control,
}

struct Embeddings {
    c: Controls,
    groups: Vec<WordGroup>,
    model: Arc<Llama>,
    tokenizer: Arc<Tokenizer>,
    loader: Arc<dyn lav_model::Loader>,
    embedder: Option<Arc<Embedder>>,
    model_name: ModelSource,
    /// Nearest neighbours by token id (a full scan of the vocabulary each).
    neighbours: HashMap<u32, Vec<(u32, f64)>>,
    pass: PassCache,
    /// Published figures (`labs/data/published.toml`).
    facts: Vec<Fact>,
}

/// A word as the model sees it mid-sentence: its first token and how many it takes.
struct Word {
    text: String,
    id: u32,
    piece: String,
    tokens: usize,
}

impl LabState for Embeddings {}

impl Embeddings {
    fn sinusoidal_step(&mut self, v: &Values) -> Result<Scene> {
        Ok(sinusoidal(
            v.usize(&self.c.positions),
            self.model.config.hidden_size,
            &self.model.config.name,
        )
        .with(published::table("formula", "The formula", &self.facts)))
    }
}

impl Embeddings {
    fn prov(&self) -> Provenance {
        self.model_name
            .prov(format!("{} embedding matrix", self.model_name))
    }

    fn word(&self, w: &str) -> Result<Word> {
        let w = w.trim();
        if w.is_empty() {
            return Err(LabError::Input("type a word".into()));
        }
        let spaced = self.tokenizer.encode(&format!(" {w}")).lab()?;
        let plain = self.tokenizer.encode(w).lab()?;
        let ids = if spaced.len() == 1 || plain.len() != 1 {
            spaced
        } else {
            plain
        };
        let id = ids[0];
        Ok(Word {
            text: w.to_string(),
            id,
            piece: crate::bpe::show_bytes(&self.tokenizer.token_bytes(id)),
            tokens: ids.len(),
        })
    }

    fn row(&self, id: u32) -> Vec<f32> {
        let mut r = vec![0f32; self.model.config.hidden_size];
        self.model.embeddings.row_f32(id as usize, &mut r);
        r
    }

    fn lookup(&mut self, v: &Values) -> Result<Scene> {
        let words: Vec<Word> = v
            .text(&self.c.words)
            .split_whitespace()
            .take(12)
            .map(|w| self.word(w))
            .collect::<Result<_>>()?;
        if words.is_empty() {
            return Err(LabError::Input("type one or more words".into()));
        }
        let cfg = &self.model.config;
        let rows: Vec<Vec<f32>> = words.iter().map(|w| self.row(w.id)).collect();
        let shown: Vec<f32> = rows
            .iter()
            .flat_map(|r| r[..SHOWN_CHANNELS].to_vec())
            .collect();
        // The first word's row, across every channel.
        let highlight = vec![
            (words[0].id as usize, words[0].id as usize + 1),
            (0, cfg.hidden_size),
        ];
        Ok(Scene::new()
            .with(Item::new(
                "ids",
                "Your words as token ids",
                self.model_name.prov(self.model_name.to_string()),
                Primitive::TokenStrip(TokenStrip {
                    tokens: words
                        .iter()
                        .map(|w| Chip {
                            text: w.piece.clone(),
                            id: Some(w.id),
                            role: Role::Token,
                            highlight: w.tokens > 1,
                        })
                        .collect(),
                }),
            ))
            .with(Item::new(
                "matrix",
                format!(
                    "The embedding matrix E: {} rows × {} columns; a lookup reads row id",
                    cfg.vocab_size, cfg.hidden_size
                ),
                self.prov(),
                Primitive::TensorBlock(TensorBlock {
                    shape: vec![cfg.vocab_size, cfg.hidden_size],
                    axes: vec!["token id".into(), "channel".into()],
                    role: Role::Vocab,
                    highlight,
                }),
            ))
            .with(Item::new(
                "rows",
                format!(
                    "The rows themselves (first {SHOWN_CHANNELS} of {} channels)",
                    cfg.hidden_size
                ),
                self.prov(),
                Primitive::Heatmap(Heatmap {
                    rows: words.iter().map(|w| w.piece.clone()).collect(),
                    cols: (0..SHOWN_CHANNELS).map(|c| c.to_string()).collect(),
                    scale: ColorScale::fit_signed(&shown),
                    values: shown,
                    selected: None,
                    row_axis: "token".into(),
                    col_axis: "channel".into(),
                }),
            ))
            .with(Item::new(
                "norms",
                "Row lengths ‖E[id]‖",
                self.prov(),
                Primitive::Table(Table {
                    columns: vec![
                        "word".into(),
                        "token".into(),
                        "id".into(),
                        "tokens in word".into(),
                        "norm".into(),
                    ],
                    rows: words
                        .iter()
                        .zip(&rows)
                        .map(|(w, r)| {
                            vec![
                                w.text.clone(),
                                w.piece.clone(),
                                w.id.to_string(),
                                w.tokens.to_string(),
                                format!("{:.4}", norm(r)),
                            ]
                        })
                        .collect(),
                }),
            )))
    }

    /// The `NEIGHBOURS` closest other tokens to `id` by cosine, scanning every row.
    fn nearest(&mut self, id: u32) -> &[(u32, f64)] {
        let model = self.model.clone();
        self.neighbours.entry(id).or_insert_with(|| {
            let h = model.config.hidden_size;
            let mut q = vec![0f32; h];
            model.embeddings.row_f32(id as usize, &mut q);
            let mut row = vec![0f32; h];
            let mut best: Vec<(u32, f64)> = Vec::with_capacity(NEIGHBOURS + 1);
            for t in 0..model.config.vocab_size as u32 {
                if t == id {
                    continue;
                }
                model.embeddings.row_f32(t as usize, &mut row);
                let c = cosine(&q, &row);
                if best.len() < NEIGHBOURS || c > best[best.len() - 1].1 {
                    let at = best.partition_point(|&(_, b)| b >= c);
                    best.insert(at, (t, c));
                    best.truncate(NEIGHBOURS);
                }
            }
            best
        })
    }

    fn neighbours_scene(&mut self, v: &Values) -> Result<Scene> {
        let a = self.word(v.text(&self.c.word))?;
        let b = self.word(v.text(&self.c.other))?;
        let (ra, rb) = (self.row(a.id), self.row(b.id));
        let near: Vec<(u32, f64)> = self.nearest(a.id).to_vec();
        let show = |t: u32| crate::bpe::show_bytes(&self.tokenizer.token_bytes(t));
        let d = dot(&ra, &rb);
        let (na, nb) = (norm(&ra), norm(&rb));
        Ok(Scene::new()
            .with(Item::new(
                "nearest",
                format!(
                    "Closest rows to \"{}\" (id {}) by cosine, over all {} tokens",
                    a.piece, a.id, self.model.config.vocab_size
                ),
                self.prov(),
                Primitive::Bars(Bars {
                    bars: near
                        .iter()
                        .map(|&(t, c)| Bar {
                            label: show(t),
                            value: c,
                            role: Role::Token,
                        })
                        .collect(),
                    unit: "cos".into(),
                    log: false,
                }),
            ))
            .with(Item::new(
                "pair",
                format!("cos(\"{}\", \"{}\") = a·b / (‖a‖‖b‖)", a.piece, b.piece),
                self.prov(),
                Primitive::Table(Table {
                    columns: vec!["quantity".into(), "value".into()],
                    rows: vec![
                        vec!["a·b".into(), format!("{d:.4}")],
                        vec!["‖a‖".into(), format!("{na:.4}")],
                        vec!["‖b‖".into(), format!("{nb:.4}")],
                        vec!["cos(a, b)".into(), format!("{:.4}", cosine(&ra, &rb))],
                        vec!["cos(a, a)".into(), format!("{:.4}", cosine(&ra, &ra))],
                    ],
                }),
            )))
    }

    fn map(&mut self, v: &Values) -> Result<Scene> {
        let dims: usize = if v.text(&self.c.dims) == "3" { 3 } else { 2 };
        let mut words: Vec<(Word, usize)> = Vec::new();
        for (g, group) in self.groups.iter().enumerate() {
            for w in &group.words {
                words.push((self.word(w)?, g));
            }
        }
        let yours = self.groups.len();
        for w in v.text(&self.c.extra).split_whitespace().take(16) {
            words.push((self.word(w)?, yours));
        }
        let rows: Vec<Vec<f32>> = words.iter().map(|(w, _)| self.row(w.id)).collect();
        let p = pca(&rows, dims);
        let mut legend: Vec<String> = self.groups.iter().map(|g| g.name.clone()).collect();
        if words.iter().any(|(_, g)| *g == yours) {
            legend.push("your words".into());
        }
        let method = Provenance::computed(format!(
            "PCA of {} real embedding rows ({} channels) to {dims}-D, computed now",
            rows.len(),
            self.model.config.hidden_size
        ));
        Ok(Scene::new()
            .with(Item::new(
                "map",
                "Embedding rows projected on their principal components",
                method.clone(),
                Primitive::PointCloud(PointCloud {
                    dims,
                    axes: (1..=dims).map(|i| format!("PC{i}")).collect(),
                    points: words
                        .iter()
                        .zip(&p.coords)
                        .map(|((w, g), c)| Point {
                            label: w.piece.trim_start_matches('␣').to_string(),
                            coords: c.iter().map(|&x| x as f32).collect(),
                            group: *g,
                            highlight: *g == yours,
                        })
                        .collect(),
                }),
            ))
            .with(Item::new(
                "legend",
                "Groups",
                method.clone(),
                Primitive::Table(Table {
                    columns: vec!["colour".into(), "group".into()],
                    rows: legend
                        .iter()
                        .enumerate()
                        .map(|(i, n)| vec![Role::series(i).hex(), n.clone()])
                        .collect(),
                }),
            ))
            .with(Item::new(
                "variance",
                "Share of the spread each axis shows",
                method,
                Primitive::Bars(Bars {
                    bars: p
                        .explained
                        .iter()
                        .enumerate()
                        .map(|(i, e)| Bar {
                            label: format!("PC{}", i + 1),
                            value: 100.0 * e,
                            role: Role::Channel,
                        })
                        .collect(),
                    unit: "%".into(),
                    log: false,
                }),
            )))
    }

    fn rope(&mut self, v: &Values) -> Result<Scene> {
        let cfg = self.model.config.clone();
        let (layer, head, i) = (
            v.usize(&self.c.layer),
            v.usize(&self.c.head),
            v.usize(&self.c.pair),
        );
        let hd = cfg.head_dim;
        let theta = |i: usize| (cfg.rope_theta as f64).powf(-2.0 * i as f64 / hd as f64);
        let pass = self
            .pass
            .get(&self.model, &self.tokenizer, v.text(&self.c.prompt))?;
        let n = pass.tokens.len();
        let lc = &pass.capture.layers[layer];
        let q = values(&lc.q)?; // (heads, L, hd)
        let k = values(&lc.k)?; // (kv_heads, L, hd)
        let kvh = head / (cfg.num_heads / cfg.num_kv_heads);
        let t = n - 1; // the last token's query
        let qv = |h: usize, p: usize| &q[(h * n + p) * hd..][..hd];
        let kv = |h: usize, p: usize| &k[(h * n + p) * hd..][..hd];
        // Undo the rotation at the token's own position to get the unrotated vector.
        let unrotate = |x: &[f32], p: usize| -> Vec<f64> {
            rotate(
                &x.iter().map(|&a| a as f64).collect::<Vec<_>>(),
                -(p as f64),
                theta,
            )
        };
        let q0 = unrotate(qv(head, t), t);
        let k0 = unrotate(kv(kvh, 0), 0);
        let circle: Vec<(f64, f64)> = (0..=32)
            .map(|m| {
                let r = rotate(&q0, m as f64, theta);
                (r[2 * i], r[2 * i + 1])
            })
            .collect();
        let here = rotate(&q0, t as f64, theta);
        // The model computed q and k at their own positions only; moving them to other
        // positions is the lab's own RoPE formula (tested against the model's).
        let prov = Provenance::computed(format!(
            "{}'s captured q and k (layer {layer}, query head {head}), re-rotated by RoPE's formula",
            self.model_name
        ));
        let offsets = [(3usize, 0usize), (10, 7), (25, 22), (40, 37), (10, 2)];
        let rel_rows = offsets
            .iter()
            .map(|&(m, p)| {
                let s: f64 = rotate(&q0, m as f64, theta)
                    .iter()
                    .zip(rotate(&k0, p as f64, theta))
                    .map(|(a, b)| a * b)
                    .sum();
                vec![
                    m.to_string(),
                    p.to_string(),
                    (m as i64 - p as i64).to_string(),
                    format!("{s:.5}"),
                ]
            })
            .collect();
        let freq_rows = [0, 4, 8, 16, 24, 31]
            .iter()
            .map(|&j| {
                let th = theta(j);
                vec![
                    j.to_string(),
                    format!("{th:.3e}"),
                    format!("{:.1}", 2.0 * std::f64::consts::PI / th),
                ]
            })
            .collect();
        Ok(Scene::new()
            .with(Item::new(
                "circle",
                format!("Pair {i} of the query of \"{}\" rotated to positions 0–32 (θ_{i} = {:.3e} rad per position)", pass.pieces[t], theta(i)),
                prov.clone(),
                Primitive::Plot(Plot {
                    x_label: format!("q[{}]", 2 * i),
                    y_label: format!("q[{}]", 2 * i + 1),
                    x_log: false,
                    y_log: false,
                    series: vec![
                        Series { name: "positions 0–32".into(), points: circle, line: true, role: Role::Position },
                        Series { name: format!("its real position {t}"), points: vec![(here[2 * i], here[2 * i + 1])], line: false, role: Role::Highlight },
                    ],
                }),
            ))
            .with(Item::new(
                "relative",
                format!("q·k depends only on the distance: \"{}\"'s query against \"{}\"'s key", pass.pieces[t], pass.pieces[0]),
                prov,
                Primitive::Table(Table {
                    columns: vec!["query at".into(), "key at".into(), "distance".into(), "q·k".into()],
                    rows: rel_rows,
                }),
            ))
            .with(Item::new(
                "frequencies",
                format!("θ_i = {}^(−2i/{hd}): fast pairs turn quickly, slow pairs barely move", cfg.rope_theta),
                Provenance::computed(format!("the model's RoPE base {} and head_dim {hd}", cfg.rope_theta)),
                Primitive::Table(Table {
                    columns: vec!["pair i".into(), "θ_i (rad/position)".into(), "wavelength (positions)".into()],
                    rows: freq_rows,
                }),
            )))
    }

    fn sentences(&mut self, v: &Values) -> Result<Scene> {
        let texts: Vec<String> = v
            .text(&self.c.sentences)
            .split('|')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .take(8)
            .collect();
        if texts.len() < 2 {
            return Err(LabError::Input(
                "type at least two sentences separated by |".into(),
            ));
        }
        if self.embedder.is_none() {
            self.embedder = Some(self.loader.embedder().lab()?);
        }
        let emb = self.embedder.as_ref().expect("just loaded");
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vecs = emb.embed_all(&refs).lab()?;
        let n = vecs.len();
        let m: Vec<f32> = (0..n * n)
            .map(|x| cosine(&vecs[x / n], &vecs[x % n]) as f32)
            .collect();
        let labels: Vec<String> = (0..n).map(|i| format!("S{}", i + 1)).collect();
        let prov = Provenance::model(format!(
            "all-MiniLM-L6-v2 ({} dims, mean pooled, L2-normalised)",
            emb.dim
        ));
        Ok(Scene::new()
            .with(Item::new(
                "cosines",
                "Sentence similarity (cosine of MiniLM vectors)",
                prov.clone(),
                Primitive::Heatmap(Heatmap {
                    rows: labels.clone(),
                    cols: labels.clone(),
                    values: m.clone(),
                    scale: ColorScale::Sequential { min: 0.0, max: 1.0 },
                    selected: None,
                    row_axis: "sentence".into(),
                    col_axis: "sentence".into(),
                }),
            ))
            .with(Item::new(
                "sentences",
                "The sentences, and each one's closest other sentence",
                prov,
                Primitive::Table(Table {
                    columns: vec![
                        "".into(),
                        "sentence".into(),
                        "closest".into(),
                        "cosine".into(),
                    ],
                    rows: (0..n)
                        .map(|i| {
                            let (j, c) = (0..n)
                                .filter(|&j| j != i)
                                .map(|j| (j, m[i * n + j]))
                                .fold((i, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
                            vec![
                                labels[i].clone(),
                                texts[i].clone(),
                                labels[j].clone(),
                                format!("{c:.3}"),
                            ]
                        })
                        .collect(),
                }),
            )))
    }
}

/// Rotates each pair `(x[2j], x[2j+1])` by `pos · θ_j` (llama's RoPE, in f64).
fn rotate(x: &[f64], pos: f64, theta: impl Fn(usize) -> f64) -> Vec<f64> {
    let mut out = x.to_vec();
    for j in 0..x.len() / 2 {
        let (s, c) = (pos * theta(j)).sin_cos();
        out[2 * j] = x[2 * j] * c - x[2 * j + 1] * s;
        out[2 * j + 1] = x[2 * j] * s + x[2 * j + 1] * c;
    }
    out
}

/// PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(…) for the first 64 channels.
fn sinusoidal(positions: usize, d: usize, model: &str) -> Scene {
    let chans = 64;
    let vals: Vec<f32> = (0..positions)
        .flat_map(|p| {
            (0..chans).map(move |c| {
                let i = c / 2;
                let a = p as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
                (if c % 2 == 0 { a.sin() } else { a.cos() }) as f32
            })
        })
        .collect();
    Scene::new()
        .with(Item::new(
            "pe",
            format!("Sinusoidal position encoding, d = {d}: positions × first {chans} channels"),
            Provenance::what_if(format!("Vaswani et al. 2017's formula; {model} does not add it (it rotates q and k with RoPE instead)")),
            Primitive::Heatmap(Heatmap {
                rows: (0..positions).map(|p| p.to_string()).collect(),
                cols: (0..chans).map(|c| c.to_string()).collect(),
                values: vals,
                scale: ColorScale::Diverging { min: -1.0, center: 0.0, max: 1.0 },
                selected: None,
                row_axis: "position".into(),
                col_axis: "channel".into(),
            }),
        ))
}

#[cfg(test)]
mod tests {
    use super::rotate;
    use lav_model::{Capture, Logits};

    /// At layer 0 a query depends only on its token (an RMSNorm and a projection of
    /// its embedding), so one token at several positions has one query before RoPE.
    /// Re-rotating the model's query from one position with the lab's `rotate` must
    /// land on the query the model itself computed at another: a pair layout that
    /// differs from the model's RoPE (adjacent vs half-split pairs) fails here.
    #[test]
    fn the_labs_rope_moves_a_query_to_where_the_model_puts_it() {
        let m = lav_testkit::model();
        let tok = lav_testkit::tokenizer();
        let id = tok.encode(" the").unwrap()[0];
        let n = 12;
        let ids = vec![id; n];
        let mut cap = Capture::new();
        m.forward(&ids, &mut m.new_cache(), Logits::Last, Some(&mut cap))
            .unwrap();
        let cfg = &m.config;
        let hd = cfg.head_dim;
        let theta = |i: usize| (cfg.rope_theta as f64).powf(-2.0 * i as f64 / hd as f64);
        let q: Vec<f32> = cap.layers[0]
            .q
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .unwrap();
        let mut checked = 0;
        for h in [0, cfg.num_heads - 1] {
            let at = |p: usize| -> Vec<f64> {
                q[(h * n + p) * hd..][..hd]
                    .iter()
                    .map(|&x| x as f64)
                    .collect()
            };
            for (a, b) in [(1usize, 7usize), (11, 2), (0, 9), (5, 6)] {
                let moved = rotate(&rotate(&at(a), -(a as f64), theta), b as f64, theta);
                let want = at(b);
                let scale = want.iter().fold(0f64, |m, x| m.max(x.abs()));
                let err = moved
                    .iter()
                    .zip(&want)
                    .fold(0f64, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    err <= 1e-4 * scale.max(1.0),
                    "head {h}: position {a} moved to {b} is off by {err} (scale {scale})"
                );
                // A different position is a different vector: the check has teeth.
                assert!(
                    a == b
                        || at(a)
                            .iter()
                            .zip(&want)
                            .any(|(x, y)| (x - y).abs() > 1e-2 * scale)
                );
                checked += 1;
            }
        }
        assert_eq!(checked, 8);
    }
}
