//! Following generated text through a grammar, byte by byte.
//!
//! The state is a set of threads (the grammar is ambiguous until enough bytes
//! decide: `{"name": "` could begin any tool). A thread is a stack of frames, each a
//! node and a position in it; every thread's top is a terminal that can take a byte,
//! or the thread is empty, meaning the whole grammar is complete.

use crate::bounds;
use crate::grammar::{Grammar, Node};
use crate::trie::TokenTrie;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Frame {
    node: u32,
    /// Where in the node: a byte count, a number's state, or (in a pattern) the
    /// DFA state and length; wide enough for a bounded number's exact value.
    pos: u64,
}

type Thread = Vec<Frame>;

// Positions inside the number terminals.
const INT_START: u64 = 0;
const INT_SIGN: u64 = 1;
/// `INT_DIGITS + n`: n ≥ 1 digits, the first non-zero (n < 100).
const INT_DIGITS: u64 = 2;
const INT_ZERO: u64 = 1000;
const FRAC_DOT: u64 = 2000;
/// `FRAC_DIGITS + n`: n ≥ 1 fraction digits.
const FRAC_DIGITS: u64 = 2001;

fn in_digits(p: u64) -> bool {
    (INT_DIGITS + 1..INT_DIGITS + 100).contains(&p)
}
const MAX_FRAC: u64 = 6;
/// A closed string.
const STR_DONE: u64 = u64::MAX;

/// Inside a pattern string (after the opening quote): DFA state and length.
fn pat_pos(state: u16, len: usize) -> u64 {
    1 + ((state as u64) << 8 | len as u64)
}

fn pat_state(pos: u64) -> (u16, usize) {
    (((pos - 1) >> 8) as u16, ((pos - 1) & 0xff) as usize)
}

#[derive(Clone, Debug)]
pub struct Matcher {
    g: Arc<Grammar>,
    threads: Vec<Thread>,
    /// Per node: the fewest bytes that complete it from its start.
    min: Arc<Vec<usize>>,
}

/// The fewest bytes each node needs (the grammar is a tree: no cycles).
fn min_lengths(g: &Grammar) -> Vec<usize> {
    fn go(g: &Grammar, i: usize, memo: &mut Vec<Option<usize>>) -> usize {
        if let Some(v) = memo[i] {
            return v;
        }
        let v = match &g.nodes[i] {
            Node::Lit(b) => b.len(),
            Node::Str { min, .. } => 2 + min,
            Node::Pattern(p) => 2 + g.patterns[*p].need(0, 0) as usize,
            Node::Bounded(b) => b.rest(bounds::START),
            Node::Int { .. } | Node::Num | Node::Text { .. } => 1,
            Node::Seq(c) => c
                .iter()
                .map(|&c| go(g, c, memo))
                .fold(0usize, usize::saturating_add),
            Node::Alt(c) => c
                .iter()
                .map(|&c| go(g, c, memo))
                .min()
                .unwrap_or(usize::MAX / 4),
        };
        memo[i] = Some(v);
        v
    }
    let mut memo = vec![None; g.nodes.len()];
    (0..g.nodes.len()).map(|i| go(g, i, &mut memo)).collect()
}

impl Matcher {
    pub fn new(g: Arc<Grammar>) -> Matcher {
        let mut threads = Vec::new();
        let root = g.root as u32;
        expand(&g, vec![Frame { node: root, pos: 0 }], &mut threads);
        let min = Arc::new(min_lengths(&g));
        let mut m = Matcher { g, threads, min };
        m.dedup();
        m
    }

    fn dedup(&mut self) {
        let mut seen = HashSet::new();
        self.threads.retain(|t| seen.insert(t.clone()));
    }

    /// Takes one byte; `false` (and the state unchanged) if the grammar forbids it.
    pub fn advance(&mut self, b: u8) -> bool {
        match self.advanced(b) {
            Some(m) => {
                *self = m;
                true
            }
            None => false,
        }
    }

    /// The state after `b`, if allowed.
    pub fn advanced(&self, b: u8) -> Option<Matcher> {
        let mut next = Vec::new();
        for t in &self.threads {
            if let Some(t2) = feed(&self.g, t, b) {
                expand(&self.g, t2, &mut next);
            }
        }
        if next.is_empty() {
            return None;
        }
        let mut m = Matcher {
            g: self.g.clone(),
            threads: next,
            min: self.min.clone(),
        };
        m.dedup();
        Some(m)
    }

    /// Takes all of `bytes`, or none of them.
    pub fn advance_bytes(&mut self, bytes: &[u8]) -> bool {
        let mut m = self.clone();
        for &b in bytes {
            if !m.advance(b) {
                return false;
            }
        }
        *self = m;
        true
    }

    /// The fewest bytes that would complete the text from here. A decoder that is
    /// running out of tokens steers along such a path, so output always ends
    /// grammatical (every byte is a token in a byte-level vocabulary).
    pub fn min_completion(&self) -> usize {
        self.threads
            .iter()
            .map(|t| {
                let mut need = 0usize;
                for (i, f) in t.iter().enumerate().rev() {
                    let node = &self.g.nodes[f.node as usize];
                    need = need.saturating_add(if i == t.len() - 1 {
                        terminal_rest(&self.g, node, f.pos)
                    } else {
                        match node {
                            Node::Seq(c) => c[f.pos as usize..].iter().map(|&c| self.min[c]).sum(),
                            _ => 0,
                        }
                    });
                }
                need
            })
            .min()
            .unwrap_or(usize::MAX / 4)
    }

    /// The text so far is a complete sentence of the grammar.
    pub fn accepting(&self) -> bool {
        self.threads.iter().any(|t| t.is_empty())
    }

    /// More bytes may follow.
    pub fn can_continue(&self) -> bool {
        self.threads.iter().any(|t| !t.is_empty())
    }

    /// Which tokens may come next: `allowed[id]` for every token in `trie` whose
    /// bytes all keep the text a valid prefix. (End of sequence is the caller's:
    /// allowed exactly when [`Matcher::accepting`].)
    pub fn mask(&self, trie: &TokenTrie) -> Vec<bool> {
        // Deep inside free content every plain token is allowed: start from the
        // precomputed set and check only the tokens holding other bytes.
        if let Some(free) = self.free().filter(|f| f.left >= trie.max_len) {
            let k = free.text as usize;
            let mut allowed = trie.plain[k].clone();
            for &id in &trie.other[k] {
                let bytes = trie.bytes[id as usize].as_deref().unwrap_or_default();
                let mut m = self.clone();
                allowed[id as usize] = m.advance_bytes(bytes);
            }
            return allowed;
        }
        let mut allowed = vec![false; trie.vocab_size()];
        self.walk(trie, 0, &mut allowed);
        allowed
    }

    fn walk(&self, trie: &TokenTrie, node: usize, allowed: &mut [bool]) {
        for &t in trie.tokens_at(node) {
            allowed[t as usize] = true;
        }
        if let Some(free) = self.free() {
            let mut path = Vec::new();
            return self.walk_free(trie, node, free, &mut path, allowed);
        }
        for &(b, child) in trie.children(node) {
            if let Some(m) = self.advanced(b) {
                m.walk(trie, child as usize, allowed);
            }
        }
    }

    /// Inside free content (a string's characters, an answer's text) almost every
    /// byte is allowed and leaves the state the same but for a count. Walking those
    /// bytes without cloning the state makes the mask cheap where it would be
    /// dearest (the whole vocabulary is allowed there); only a byte that may end the
    /// content (`"`) or is forbidden takes the full path.
    fn walk_free(
        &self,
        trie: &TokenTrie,
        node: usize,
        free: Free,
        path: &mut Vec<u8>,
        allowed: &mut [bool],
    ) {
        for &(b, child) in trie.children(node) {
            let child = child as usize;
            if path.len() < free.left && free.plain(b) {
                for &t in trie.tokens_at(child) {
                    allowed[t as usize] = true;
                }
                path.push(b);
                self.walk_free(trie, child, free, path, allowed);
                path.pop();
            } else {
                // Replay the plain bytes, then this one, through the real state.
                let mut m = self.clone();
                if !path.iter().all(|&p| m.advance(p)) {
                    continue;
                }
                if let Some(m) = m.advanced(b) {
                    m.walk(trie, child, allowed);
                }
            }
        }
    }

    /// The state is a single thread inside free content: which kind, and how many
    /// more bytes it may take.
    fn free(&self) -> Option<Free> {
        // An empty thread (the grammar complete here) takes no bytes: ignore it.
        let mut live = self.threads.iter().filter(|t| !t.is_empty());
        let (Some(t), None) = (live.next(), live.next()) else {
            return None;
        };
        let top = t.last()?;
        match &self.g.nodes[top.node as usize] {
            // `"` is not a plain byte, so it always takes the full path (which knows
            // the minimum length).
            Node::Str { max, .. } if top.pos != 0 && top.pos != STR_DONE => Some(Free {
                text: false,
                left: (*max + 1).saturating_sub(top.pos as usize),
            }),
            // The last frame of the whole grammar, so nothing follows the text.
            Node::Text { max } if top.pos > 0 && t.len() <= 2 => Some(Free {
                text: true,
                left: max.saturating_sub(top.pos as usize),
            }),
            _ => None,
        }
    }
}

#[derive(Clone, Copy)]
struct Free {
    text: bool,
    left: usize,
}

impl Free {
    /// A byte that keeps the content going and changes nothing else.
    fn plain(&self, b: u8) -> bool {
        crate::trie::plain_byte(self.text, b)
    }
}

/// Expands `t` until every resulting thread's top is a terminal that can take a
/// byte (or the thread is empty: complete).
fn expand(g: &Grammar, mut t: Thread, out: &mut Vec<Thread>) {
    let Some(&top) = t.last() else {
        out.push(t);
        return;
    };
    let node = &g.nodes[top.node as usize];
    match node {
        Node::Seq(children) => {
            if (top.pos as usize) < children.len() {
                t.last_mut().expect("top").pos += 1;
                t.push(Frame {
                    node: children[top.pos as usize] as u32,
                    pos: 0,
                });
            } else {
                t.pop();
            }
            expand(g, t, out);
        }
        Node::Alt(children) => {
            if top.pos == 0 {
                for &c in children {
                    let mut t2 = t.clone();
                    t2.last_mut().expect("top").pos = 1;
                    t2.push(Frame {
                        node: c as u32,
                        pos: 0,
                    });
                    expand(g, t2, out);
                }
            } else {
                t.pop();
                expand(g, t, out);
            }
        }
        _ => {
            if can_take(node, top.pos) {
                out.push(t.clone());
            }
            if complete(node, top.pos) {
                t.pop();
                expand(g, t, out);
            }
        }
    }
}

/// The fewest bytes a terminal at `pos` still needs.
fn terminal_rest(g: &Grammar, node: &Node, pos: u64) -> usize {
    if complete(node, pos) {
        return 0;
    }
    match node {
        Node::Lit(b) => b.len() - pos as usize,
        Node::Str { min, .. } if pos == 0 => 2 + min,
        Node::Str { min, .. } => (min + 2).saturating_sub(pos as usize).max(1),
        Node::Pattern(p) if pos == 0 => 2 + g.patterns[*p].need(0, 0) as usize,
        Node::Pattern(p) => {
            let (s, len) = pat_state(pos);
            1 + g.patterns[*p].need(s, len) as usize
        }
        Node::Bounded(b) => b.rest(pos),
        _ => 1,
    }
}

fn can_take(node: &Node, pos: u64) -> bool {
    match node {
        Node::Lit(b) => (pos as usize) < b.len(),
        Node::Str { .. } | Node::Pattern(_) => pos != STR_DONE,
        Node::Bounded(b) => b.can_take(pos),
        Node::Int { max_digits } => match pos {
            INT_START | INT_SIGN => true,
            INT_ZERO => false,
            p => p - INT_DIGITS < (*max_digits as u64).min(99),
        },
        Node::Num => match pos {
            p if p >= FRAC_DIGITS => p - FRAC_DIGITS < MAX_FRAC,
            _ => true,
        },
        Node::Text { max } => (pos as usize) < *max,
        Node::Seq(_) | Node::Alt(_) => false,
    }
}

fn complete(node: &Node, pos: u64) -> bool {
    match node {
        Node::Lit(b) => pos as usize == b.len(),
        Node::Str { .. } | Node::Pattern(_) => pos == STR_DONE,
        Node::Bounded(b) => b.complete(pos),
        Node::Int { .. } => pos == INT_ZERO || in_digits(pos),
        Node::Num => pos == INT_ZERO || in_digits(pos) || pos > FRAC_DIGITS,
        Node::Text { .. } => pos > 0,
        Node::Seq(_) | Node::Alt(_) => false,
    }
}

/// `t`'s top terminal takes `b`: the new thread, or `None`.
fn feed(g: &Grammar, t: &Thread, b: u8) -> Option<Thread> {
    let top = *t.last()?;
    let node = &g.nodes[top.node as usize];
    let pos = match node {
        Node::Lit(bytes) => (bytes.get(top.pos as usize) == Some(&b)).then_some(top.pos + 1)?,
        Node::Str { min, max } => match top.pos {
            0 => (b == b'"').then_some(1)?,
            STR_DONE => return None,
            p => {
                if b == b'"' {
                    // p − 1 bytes so far.
                    if ((p - 1) as usize) < *min {
                        return None;
                    }
                    STR_DONE
                } else if b < 0x20 || b == b'\\' || b == 0x7f || (p - 1) as usize >= *max {
                    return None;
                } else {
                    p + 1
                }
            }
        },
        Node::Pattern(i) => {
            let pat = &g.patterns[*i];
            match top.pos {
                0 => (b == b'"').then_some(pat_pos(0, 0))?,
                STR_DONE => return None,
                p => {
                    let (s, len) = pat_state(p);
                    if b == b'"' {
                        pat.can_end(s, len).then_some(STR_DONE)?
                    } else {
                        pat_pos(pat.step(s, len, b)?, len + 1)
                    }
                }
            }
        }
        Node::Bounded(bd) => bd.feed(top.pos, b)?,
        Node::Int { .. } | Node::Num => {
            let digit = b.is_ascii_digit();
            let is_num = matches!(node, Node::Num);
            match top.pos {
                INT_START if b == b'-' => INT_SIGN,
                // "-0" is a float to most JSON parsers: not an integer.
                INT_START if b == b'0' => INT_ZERO,
                INT_SIGN if b == b'0' && is_num => INT_ZERO,
                INT_START | INT_SIGN if digit && b != b'0' => INT_DIGITS + 1,
                p if is_num && b == b'.' && (p == INT_ZERO || in_digits(p)) => FRAC_DOT,
                p if in_digits(p) && digit => p + 1,
                FRAC_DOT if is_num && digit => FRAC_DIGITS + 1,
                p if is_num && p > FRAC_DIGITS && digit => p + 1,
                _ => return None,
            }
        }
        Node::Text { .. } => {
            if (top.pos == 0 && b == b'<') || (b < 0x20 && b != b'\n') || b == 0x7f {
                return None;
            }
            top.pos + 1
        }
        Node::Seq(_) | Node::Alt(_) => return None,
    };
    let mut t2 = t.clone();
    t2.last_mut().expect("top").pos = pos;
    Some(t2)
}
