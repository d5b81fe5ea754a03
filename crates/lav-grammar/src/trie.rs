//! The vocabulary as a trie of byte strings, so a mask is one walk that prunes every
//! token sharing a forbidden prefix at once.

pub struct TokenTrie {
    /// Per node: children by byte, and the tokens whose bytes end here.
    children: Vec<Vec<(u8, u32)>>,
    tokens: Vec<Vec<u32>>,
    vocab_size: usize,
    pub(crate) bytes: Vec<Option<Vec<u8>>>,
    pub(crate) max_len: usize,
    /// Per content kind (0: a string's characters, 1: free text): which tokens are
    /// made only of bytes that keep the content going, and the others.
    pub(crate) plain: [Vec<bool>; 2],
    pub(crate) other: [Vec<u32>; 2],
}

/// A byte that continues a string's characters (`text: false`) or free text.
pub(crate) fn plain_byte(text: bool, b: u8) -> bool {
    if text {
        (b >= 0x20 && b != 0x7f) || b == b'\n'
    } else {
        b >= 0x20 && b != 0x7f && b != b'"' && b != b'\\'
    }
}

impl TokenTrie {
    /// From each token id's bytes; `None` (special tokens) never enters the trie.
    pub fn new(vocab: &[Option<Vec<u8>>]) -> TokenTrie {
        let mut t = TokenTrie {
            children: vec![Vec::new()],
            tokens: vec![Vec::new()],
            vocab_size: vocab.len(),
            bytes: vocab.to_vec(),
            max_len: vocab.iter().flatten().map(Vec::len).max().unwrap_or(0),
            plain: [vec![false; vocab.len()], vec![false; vocab.len()]],
            other: [Vec::new(), Vec::new()],
        };
        for (id, bytes) in vocab.iter().enumerate() {
            let Some(bytes) = bytes.as_ref().filter(|b| !b.is_empty()) else {
                continue;
            };
            for (k, text) in [false, true].into_iter().enumerate() {
                if bytes.iter().all(|&b| plain_byte(text, b)) {
                    t.plain[k][id] = true;
                } else {
                    t.other[k].push(id as u32);
                }
            }
        }
        for (id, bytes) in vocab.iter().enumerate() {
            let Some(bytes) = bytes else { continue };
            if bytes.is_empty() {
                continue;
            }
            let mut n = 0usize;
            for &b in bytes {
                n = match t.children[n].iter().find(|(c, _)| *c == b) {
                    Some(&(_, child)) => child as usize,
                    None => {
                        t.children.push(Vec::new());
                        t.tokens.push(Vec::new());
                        let child = t.children.len() - 1;
                        t.children[n].push((b, child as u32));
                        child
                    }
                };
            }
            t.tokens[n].push(id as u32);
        }
        t
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    pub fn children(&self, node: usize) -> &[(u8, u32)] {
        &self.children[node]
    }

    pub fn tokens_at(&self, node: usize) -> &[u32] {
        &self.tokens[node]
    }

    pub fn nodes(&self) -> usize {
        self.children.len()
    }
}
