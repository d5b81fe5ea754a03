//! A byte-level BPE trainer for the tokenization lab, run merge by merge on the
//! learner's own text (Sennrich et al. 2016; byte-level as in GPT-2).
//!
//! The text is split into words the way GPT-2 does it in spirit (a word keeps the
//! space in front of it), each word starts as its UTF-8 bytes, and every round merges
//! the most frequent adjacent pair everywhere. Ties go to the pair whose left part,
//! then right part, sorts first as bytes, so the same text always gives the same
//! merges.

use std::collections::BTreeMap;

/// One merge: the two symbols joined, how often the pair occurred, and the new id.
#[derive(Clone, Debug, PartialEq)]
pub struct Merge {
    pub left: u32,
    pub right: u32,
    pub count: usize,
    pub id: u32,
}

/// The trainer's state after some number of merges.
#[derive(Clone, Debug)]
pub struct Bpe {
    /// Bytes of every symbol: ids 0..256 are single bytes, later ids are merges.
    pub vocab: Vec<Vec<u8>>,
    pub merges: Vec<Merge>,
    /// The text as a sequence of words, each a sequence of symbol ids.
    pub words: Vec<Vec<u32>>,
}

/// Splits text into words: a run of non-space characters together with the spaces
/// just before it; trailing spaces form a word of their own.
pub fn split_words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut seen_non_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if seen_non_space {
                out.push(&text[start..i]);
                start = i;
                seen_non_space = false;
            }
        } else {
            seen_non_space = true;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

impl Bpe {
    pub fn new(text: &str) -> Bpe {
        Bpe {
            vocab: (0..=255u8).map(|b| vec![b]).collect(),
            merges: Vec::new(),
            words: split_words(text)
                .into_iter()
                .map(|w| w.bytes().map(u32::from).collect())
                .collect(),
        }
    }

    /// Trains `n` merges (fewer if every word is already one symbol).
    pub fn train(text: &str, n: usize) -> Bpe {
        let mut b = Bpe::new(text);
        for _ in 0..n {
            if !b.merge_once() {
                break;
            }
        }
        b
    }

    /// Counts of every adjacent pair, summed over the text.
    pub fn pair_counts(&self) -> BTreeMap<(u32, u32), usize> {
        let mut counts = BTreeMap::new();
        for w in &self.words {
            for p in w.windows(2) {
                *counts.entry((p[0], p[1])).or_insert(0) += 1;
            }
        }
        counts
    }

    /// Pairs by count, most frequent first, ties in the trainer's order.
    pub fn ranked_pairs(&self) -> Vec<((u32, u32), usize)> {
        let mut v: Vec<_> = self.pair_counts().into_iter().collect();
        v.sort_by(|(pa, ca), (pb, cb)| {
            cb.cmp(ca)
                .then_with(|| self.vocab[pa.0 as usize].cmp(&self.vocab[pb.0 as usize]))
                .then_with(|| self.vocab[pa.1 as usize].cmp(&self.vocab[pb.1 as usize]))
        });
        v
    }

    /// Merges the best pair; false when no pair is left.
    pub fn merge_once(&mut self) -> bool {
        let Some(&((l, r), count)) = self.ranked_pairs().first() else {
            return false;
        };
        let id = self.vocab.len() as u32;
        let mut bytes = self.vocab[l as usize].clone();
        bytes.extend_from_slice(&self.vocab[r as usize]);
        self.vocab.push(bytes);
        self.merges.push(Merge {
            left: l,
            right: r,
            count,
            id,
        });
        for w in &mut self.words {
            // Left to right, without overlaps: "aaa" with (a, a) becomes [aa, a].
            let mut out = Vec::with_capacity(w.len());
            let mut i = 0;
            while i < w.len() {
                if i + 1 < w.len() && w[i] == l && w[i + 1] == r {
                    out.push(id);
                    i += 2;
                } else {
                    out.push(w[i]);
                    i += 1;
                }
            }
            *w = out;
        }
        true
    }

    /// All symbols of the text in order.
    pub fn tokens(&self) -> Vec<u32> {
        self.words.iter().flatten().copied().collect()
    }

    /// The text back from the symbols: always the input, byte for byte.
    pub fn decode(&self) -> Vec<u8> {
        self.tokens()
            .iter()
            .flat_map(|&t| self.vocab[t as usize].iter().copied())
            .collect()
    }

    /// A symbol for display: its text with spaces and newlines made visible, or hex
    /// for bytes that are not whole UTF-8 characters.
    pub fn show(&self, id: u32) -> String {
        show_bytes(&self.vocab[id as usize])
    }
}

/// Bytes for display: UTF-8 with ␣ for space and ↵ for newline; anything that is not
/// valid UTF-8 on its own (half a character) as `<0xE2>`.
pub fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.replace(' ', "␣").replace('\n', "↵").replace('\t', "⇥"),
        Err(_) => b.iter().map(|x| format!("<0x{x:02X}>")).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_textbook_example_merges_aa_then_ab_then_aaab() {
        // Wikipedia's "aaabdaaabac": aa (4 pairs, overlaps counted), then ab and aa·a
        // tie at 2 and the byte order picks ab, then aa·ab.
        let b = Bpe::train("aaabdaaabac", 3);
        let shown: Vec<(String, String, usize)> = b
            .merges
            .iter()
            .map(|m| (b.show(m.left), b.show(m.right), m.count))
            .collect();
        assert_eq!(
            shown,
            [
                ("a".into(), "a".into(), 4),
                ("a".into(), "b".into(), 2),
                ("aa".into(), "ab".into(), 2)
            ]
        );
        let toks: Vec<String> = b.tokens().iter().map(|&t| b.show(t)).collect();
        assert_eq!(toks, ["aaab", "d", "aaab", "a", "c"]);
    }

    #[test]
    fn words_keep_their_leading_space() {
        assert_eq!(split_words("the cat  sat "), ["the", " cat", "  sat", " "]);
        assert_eq!(split_words(""), Vec::<&str>::new());
    }

    proptest! {
        #[test]
        fn any_text_round_trips_after_any_number_of_merges(s in "\\PC{0,60}", n in 0usize..30) {
            let b = Bpe::train(&s, n);
            prop_assert_eq!(b.decode(), s.as_bytes());
            // Vocabulary grows by exactly one symbol per merge.
            prop_assert_eq!(b.vocab.len(), 256 + b.merges.len());
        }
    }
}
