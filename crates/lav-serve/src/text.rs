//! A choice's text as it streams: token ids become UTF-8 pieces (held back until a
//! character is whole), special tokens are skipped (as servers do by default), and
//! text that could be the start of a stop string is held back until it is known not
//! to be one, so a stop string never reaches the client.

use lav_model::{TextStream, Tokenizer};

pub struct ChoiceText {
    bytes: TextStream,
    stop: Vec<String>,
    held: String,
    stopped: bool,
}

impl ChoiceText {
    /// Empty stop strings are ignored (they would match everywhere).
    pub fn new(stop: &[String]) -> Self {
        Self {
            bytes: TextStream::default(),
            stop: stop.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string has matched (nothing more comes out after it).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The text `token` releases: possibly empty, never past a stop string.
    pub fn push(&mut self, tok: &Tokenizer, token: u32) -> String {
        if self.stopped || tok.is_special(token) {
            return String::new();
        }
        let piece = self.bytes.push(tok, token);
        self.release(&piece)
    }

    /// Adds decoded text; returns what is safe to send.
    pub fn release(&mut self, piece: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.held.push_str(piece);
        let first = self
            .stop
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min();
        if let Some(at) = first {
            self.stopped = true;
            let out = self.held[..at].to_string();
            self.held.clear();
            return out;
        }
        // Keep the longest tail that is the start of some stop string.
        let keep = self
            .held
            .char_indices()
            .map(|(i, _)| i)
            .find(|&i| {
                let tail = &self.held[i..];
                self.stop.iter().any(|s| s.starts_with(tail))
            })
            .unwrap_or(self.held.len());
        let out = self.held[..keep].to_string();
        self.held.drain(..keep);
        out
    }

    /// The text still held when the sequence ends without a stop string.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let rest = self.bytes.finish();
        let mut out = self.release(&rest);
        if !self.stopped {
            out.push_str(&std::mem::take(&mut self.held));
        }
        out
    }
}
