//! tokenization: train BPE merge by merge on the learner's text, then compare with the
//! model's real tokenizer and check that every input round-trips.

use super::Context;
use crate::bpe::{Bpe, show_bytes, split_words};
use lav_lab::published::{self, Fact};
use lav_lab::{Control, Values};
use lav_lab::{Lab, LabState, ResultExt, Step, Steps};
use lav_lab::{LabError, Result};
use lav_model::Tokenizer;
use lav_scene::*;
use std::sync::Arc;

/// Merges the slider can reach. Small texts run out of pairs sooner.
const MAX_MERGES: usize = 200;
/// Chips shown in a token strip (the counts always cover the whole text).
const MAX_CHIPS: usize = 160;
/// Rows of the pair-count table.
const TOP_PAIRS: usize = 12;
/// Inputs the round-trip step always checks besides the learner's text.
const HARD_INPUTS: &[&str] = &[
    "café naïve façade",
    "東京タワー",
    "🙂 👍🏽 🇫🇷",
    "\ttabs,   spaces\nand newlines\r\n",
    "x = f(3.14159) + 2026;",
];

pub fn open(ctx: &Context) -> Result<Box<dyn Lab>> {
    let corpus_path = ctx.dir.join("data/tokenization-corpus.txt");
    let corpus = std::fs::read_to_string(&corpus_path)
        .map_err(|e| LabError::Lesson(format!("cannot read {}: {e}", corpus_path.display())))?;
    let text = Control::text("text", "Your text (empty: the bundled corpus)", 4000, "");
    let merge = Control::slider("merge", "Merges", 0.0, MAX_MERGES as f64, 1.0, 10.0);
    let steps = vec![
        Step::new("bytes", &[&text], Tokenization::bytes),
        Step::new("pairs", &[&text, &merge], Tokenization::pairs),
        Step::new("merges", &[&text, &merge], Tokenization::merges),
        Step::new("model", &[&text, &merge], Tokenization::model),
        Step::new("roundtrip", &[&text], Tokenization::roundtrip),
    ];
    let lab = Tokenization {
        text,
        merge,
        corpus,
        tokenizer: ctx.loader.tokenizer().lab()?,
        model_name: ctx.loader.model_name(),
        facts: published::facts(&ctx.dir, "tokenization")?,
        run: None,
    };
    Steps::lab(lab, steps)
}

struct Tokenization {
    text: Control,
    merge: Control,
    corpus: String,
    tokenizer: Arc<Tokenizer>,
    model_name: String,
    facts: Vec<Fact>,
    /// The last full training run, keyed by its text.
    run: Option<Run>,
}

/// One training run to the end of the slider: the token count after each merge.
struct Run {
    text: String,
    tokens_after: Vec<usize>,
}

impl LabState for Tokenization {}

impl Tokenization {
    /// The learner's text, or the bundled corpus when the box is empty.
    fn text_of(&self, v: &Values) -> String {
        match v.text(&self.text) {
            "" => self.corpus.clone(),
            t => t.to_string(),
        }
    }

    fn bytes(&mut self, v: &Values) -> Result<Scene> {
        Ok(bytes_scene(&self.text_of(v)))
    }

    fn pairs(&mut self, v: &Values) -> Result<Scene> {
        Ok(pairs_scene(&self.text_of(v), v.usize(&self.merge)))
    }

    fn merges(&mut self, v: &Values) -> Result<Scene> {
        let text = self.text_of(v);
        Ok(self.merges_scene(&text, v.usize(&self.merge)))
    }

    fn model(&mut self, v: &Values) -> Result<Scene> {
        let text = self.text_of(v);
        self.model_scene(&text, v.usize(&self.merge))
    }

    fn roundtrip(&mut self, v: &Values) -> Result<Scene> {
        let text = self.text_of(v);
        self.roundtrip_scene(&text)
    }
}

fn utf8() -> Provenance {
    Provenance::computed("UTF-8 encoding of your text")
}

fn trainer() -> Provenance {
    Provenance::computed("BPE trainer on your text (most frequent pair; ties by byte order)")
}

fn chars_per_token(text: &str, tokens: usize) -> f64 {
    text.chars().count() as f64 / tokens.max(1) as f64
}

fn bytes_scene(text: &str) -> Scene {
    let bytes = text.as_bytes();
    let chips = bytes
        .iter()
        .take(MAX_CHIPS)
        .map(|&b| Chip {
            text: show_bytes(&[b]),
            id: Some(b as u32),
            role: if b < 0x80 {
                Role::Token
            } else {
                Role::Highlight
            },
            highlight: b >= 0x80,
        })
        .collect();
    let multi: Vec<String> = text
        .chars()
        .filter(|c| c.len_utf8() > 1)
        .fold(Vec::<char>::new(), |mut acc, c| {
            if !acc.contains(&c) {
                acc.push(c);
            }
            acc
        })
        .into_iter()
        .take(8)
        .map(|c| {
            let mut buf = [0u8; 4];
            let enc = c.encode_utf8(&mut buf);
            let hex: Vec<String> = enc.bytes().map(|b| format!("{b:02X}")).collect();
            format!("{c} = {} bytes ({})", c.len_utf8(), hex.join(" "))
        })
        .collect();
    let chars = text.chars().count();
    let mut scene = Scene::new()
        .with(Item::new(
            "bytes",
            "Your text as UTF-8 bytes (the 256 starting symbols)",
            utf8(),
            Primitive::TokenStrip(TokenStrip { tokens: chips }),
        ))
        .with(Item::new(
            "counts",
            "Characters, bytes, words",
            utf8(),
            Primitive::Table(Table {
                columns: vec!["measure".into(), "value".into()],
                rows: vec![
                    vec!["characters".into(), chars.to_string()],
                    vec!["bytes".into(), bytes.len().to_string()],
                    vec!["words".into(), split_words(text).len().to_string()],
                    vec![
                        "bytes per character".into(),
                        format!("{:.2}", bytes.len() as f64 / chars.max(1) as f64),
                    ],
                ],
            }),
        ));
    if !multi.is_empty() {
        scene.push(Item::new(
            "multibyte",
            "Characters that need more than one byte",
            utf8(),
            Primitive::Text(Text {
                body: multi.join("\n"),
                style: TextStyle::Callout,
            }),
        ));
    }
    scene
}

fn strip(bpe: &Bpe, highlight: impl Fn(u32) -> bool) -> TokenStrip {
    TokenStrip {
        tokens: bpe
            .tokens()
            .into_iter()
            .take(MAX_CHIPS)
            .map(|t| Chip {
                text: bpe.show(t),
                id: Some(t),
                role: Role::Token,
                highlight: highlight(t),
            })
            .collect(),
    }
}

fn pairs_scene(text: &str, k: usize) -> Scene {
    let bpe = Bpe::train(text, k);
    let ranked = bpe.ranked_pairs();
    let done = bpe.merges.len();
    let mut scene = Scene::new();
    let rows = ranked
        .iter()
        .take(TOP_PAIRS)
        .enumerate()
        .map(|(i, ((l, r), c))| {
            vec![
                (i + 1).to_string(),
                bpe.show(*l),
                bpe.show(*r),
                c.to_string(),
                if i == 0 {
                    "← merged next".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    scene.push(Item::new(
        "pairs",
        format!("Adjacent pairs after {done} merges, most frequent first"),
        trainer(),
        Primitive::Table(Table {
            columns: vec![
                "rank".into(),
                "left".into(),
                "right".into(),
                "count".into(),
                "".into(),
            ],
            rows,
        }),
    ));
    let body = match ranked.first() {
        Some(((l, r), c)) => {
            let ties = ranked.iter().filter(|(_, n)| n == c).count();
            let tie = if ties > 1 {
                format!(" {ties} pairs share that count; the one whose bytes sort first wins.")
            } else {
                String::new()
            };
            format!(
                "Merge {}: \"{}\" + \"{}\" → \"{}{}\" ({c} times).{tie}",
                done + 1,
                bpe.show(*l),
                bpe.show(*r),
                bpe.show(*l),
                bpe.show(*r)
            )
        }
        None => {
            format!("After {done} merges every word is a single symbol: nothing left to merge.")
        }
    };
    if done < k {
        scene.push(Item::new(
            "exhausted",
            "Out of pairs",
            trainer(),
            Primitive::Text(Text {
                body: format!(
                    "Your text ran out of pairs after {done} merges (you asked for {k})."
                ),
                style: TextStyle::Warning,
            }),
        ));
    }
    scene.push(Item::new(
        "next",
        "The next merge",
        trainer(),
        Primitive::Text(Text {
            body,
            style: TextStyle::Callout,
        }),
    ));
    let next = ranked.first().map(|(p, _)| *p);
    scene.push(Item::new(
        "symbols",
        "Your text as symbols now",
        trainer(),
        Primitive::TokenStrip(strip(&bpe, |t| next.is_some_and(|(l, r)| t == l || t == r))),
    ));
    scene
}

impl Tokenization {
    fn run(&mut self, text: &str) -> &Run {
        if self.run.as_ref().is_none_or(|r| r.text != text) {
            let mut bpe = Bpe::new(text);
            let mut tokens_after = vec![bpe.tokens().len()];
            for _ in 0..MAX_MERGES {
                if !bpe.merge_once() {
                    break;
                }
                tokens_after.push(bpe.tokens().len());
            }
            self.run = Some(Run {
                text: text.to_string(),
                tokens_after,
            });
        }
        self.run.as_ref().expect("just set")
    }

    fn merges_scene(&mut self, text: &str, k: usize) -> Scene {
        let bpe = Bpe::train(text, k);
        let n = bpe.tokens().len();
        let latest = bpe.merges.last().map(|m| m.id);
        let run = self.run(text);
        let growth = Plot {
            x_label: "merges".into(),
            y_label: "count".into(),
            x_log: false,
            y_log: false,
            series: vec![
                Series {
                    name: "tokens in your text".into(),
                    points: run
                        .tokens_after
                        .iter()
                        .enumerate()
                        .map(|(i, &t)| (i as f64, t as f64))
                        .collect(),
                    line: true,
                    role: Role::Token,
                },
                Series {
                    name: "you are here".into(),
                    points: vec![(bpe.merges.len() as f64, n as f64)],
                    line: false,
                    role: Role::Highlight,
                },
                Series {
                    name: "vocabulary size".into(),
                    points: (0..run.tokens_after.len())
                        .map(|i| (i as f64, (256 + i) as f64))
                        .collect(),
                    line: true,
                    role: Role::Vocab,
                },
            ],
        };
        let recent = bpe
            .merges
            .iter()
            .rev()
            .take(10)
            .map(|m| {
                vec![
                    (m.id - 255).to_string(),
                    bpe.show(m.left),
                    bpe.show(m.right),
                    bpe.show(m.id),
                    m.count.to_string(),
                ]
            })
            .collect();
        Scene::new()
            .with(Item::new(
                "tokens",
                format!("Your text after {} merges", bpe.merges.len()),
                trainer(),
                Primitive::TokenStrip(strip(&bpe, |t| Some(t) == latest)),
            ))
            .with(Item::new(
                "stats",
                "Vocabulary and length",
                trainer(),
                Primitive::Table(Table {
                    columns: vec!["measure".into(), "value".into()],
                    rows: vec![
                        vec!["vocabulary".into(), bpe.vocab.len().to_string()],
                        vec!["tokens".into(), n.to_string()],
                        vec![
                            "chars/token".into(),
                            format!("{:.2}", chars_per_token(text, n)),
                        ],
                    ],
                }),
            ))
            .with(Item::new(
                "growth",
                "Each merge adds a symbol and shortens the text",
                trainer(),
                Primitive::Plot(growth),
            ))
            .with(Item::new(
                "merges",
                "Latest merges",
                trainer(),
                Primitive::Table(Table {
                    columns: vec![
                        "#".into(),
                        "left".into(),
                        "right".into(),
                        "new symbol".into(),
                        "count".into(),
                    ],
                    rows: recent,
                }),
            ))
    }

    fn model_chips(&self, ids: &[u32]) -> TokenStrip {
        TokenStrip {
            tokens: ids
                .iter()
                .take(MAX_CHIPS)
                .map(|&id| Chip {
                    text: show_bytes(&self.tokenizer.token_bytes(id)),
                    id: Some(id),
                    role: if self.tokenizer.is_special(id) {
                        Role::Highlight
                    } else {
                        Role::Token
                    },
                    highlight: false,
                })
                .collect(),
        }
    }

    fn model_scene(&mut self, text: &str, k: usize) -> Result<Scene> {
        let ids = self.tokenizer.encode(text).lab()?;
        let bpe = Bpe::train(text, k);
        let model = Provenance::model(&self.model_name);
        let cmp = Table {
            columns: vec![
                "tokenizer".into(),
                "vocabulary".into(),
                "tokens".into(),
                "chars/token".into(),
            ],
            rows: vec![
                vec![
                    format!("your BPE, {} merges", bpe.merges.len()),
                    bpe.vocab.len().to_string(),
                    bpe.tokens().len().to_string(),
                    format!("{:.2}", chars_per_token(text, bpe.tokens().len())),
                ],
                vec![
                    self.model_name.clone(),
                    self.tokenizer.vocab_size().to_string(),
                    ids.len().to_string(),
                    format!("{:.2}", chars_per_token(text, ids.len())),
                ],
            ],
        };
        Ok(Scene::new()
            .with(Item::new(
                "model-tokens",
                "The model's tokenizer on your text (id under each token)",
                model.clone(),
                Primitive::TokenStrip(self.model_chips(&ids)),
            ))
            .with(Item::new(
                "compare",
                "Your tokenizer and the model's",
                model,
                Primitive::Table(cmp),
            ))
            .with(published::table(
                "published",
                "Other tokenizers",
                &self.facts,
            )))
    }

    fn roundtrip_scene(&mut self, text: &str) -> Result<Scene> {
        let model = Provenance::model(&self.model_name);
        let mut rows = Vec::new();
        let mut all_ok = true;
        for input in std::iter::once(text).chain(HARD_INPUTS.iter().copied()) {
            let ids = self.tokenizer.encode(input).lab()?;
            let back = self.tokenizer.decode(&ids).lab()?;
            let ok = back == input;
            all_ok &= ok;
            let shown: String = input.chars().take(40).collect();
            rows.push(vec![
                show_bytes(shown.as_bytes()),
                input.len().to_string(),
                ids.len().to_string(),
                if ok { "yes".into() } else { "NO".into() },
            ]);
        }
        let emoji = self.tokenizer.encode("🙂").lab()?;
        Ok(Scene::new()
            .with(Item::new(
                "roundtrip",
                "decode(encode(x)) == x",
                model.clone(),
                Primitive::Table(Table {
                    columns: vec!["input".into(), "bytes".into(), "tokens".into(), "round-trips".into()],
                    rows,
                }),
            ))
            .with(Item::new(
                "fallback",
                "A rare character falls back to byte tokens",
                model.clone(),
                Primitive::TokenStrip(self.model_chips(&emoji)),
            ))
            .with(Item::new(
                "verdict",
                "Out of vocabulary?",
                model,
                Primitive::Text(Text {
                    body: if all_ok {
                        "Every input came back byte for byte: with all 256 bytes in the vocabulary, nothing is out of vocabulary.".into()
                    } else {
                        "An input did not round-trip: that is a bug in the tokenizer setup.".into()
                    },
                    style: if all_ok { TextStyle::Callout } else { TextStyle::Warning },
                }),
            )))
    }
}
