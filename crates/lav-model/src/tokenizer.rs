//! The tokenizer, rebuilt from GGUF metadata with the `tokenizers` crate.
//!
//! SmolLM2's GGUF says `tokenizer.ggml.model = gpt2` and `tokenizer.ggml.pre = smollm`:
//! byte-level BPE whose pre-tokenizer first isolates every digit, then applies the
//! GPT-2 split. Control tokens (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, …) are
//! special tokens matched before pre-tokenization, as llama.cpp does with `special=true`.
//! No prefix space is added (candle's `Tokenizer::from_gguf` adds one and gets
//! `user` wrong).

use crate::error::{ModelError, Result};
use crate::gguf::GgufFile;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    tokens: Vec<String>,
    special: Vec<bool>,
    byte_of_char: HashMap<char, u8>,
    pub bos_id: Option<u32>,
    pub eos_id: u32,
    /// `<|im_end|>` when the vocabulary has it: the end of a chat turn.
    pub im_end_id: Option<u32>,
    /// `<|endoftext|>` when the vocabulary has it: the end of a document.
    pub end_of_text_id: Option<u32>,
}

/// A chat turn.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

impl Tokenizer {
    pub fn from_gguf_path(path: &Path) -> Result<Self> {
        Self::from_gguf(&GgufFile::open(path)?)
    }

    pub fn from_gguf(gguf: &GgufFile) -> Result<Self> {
        let model = gguf.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(ModelError::Unsupported {
                path: gguf.path.clone(),
                reason: format!("tokenizer model `{model}` (lav reads byte-level BPE, `gpt2`)"),
            });
        }
        let pre = gguf
            .string("tokenizer.ggml.pre")
            .unwrap_or_else(|_| "default".into());
        let tokens = gguf.strings("tokenizer.ggml.tokens")?;
        let merges = gguf.strings("tokenizer.ggml.merges")?;
        let types = if gguf.has("tokenizer.ggml.token_type") {
            gguf.i32s("tokenizer.ggml.token_type")?
        } else {
            vec![1; tokens.len()]
        };
        let special: Vec<bool> = types
            .iter()
            .map(|&t| t == TOKEN_TYPE_CONTROL || t == TOKEN_TYPE_USER_DEFINED)
            .collect();

        let vocab: serde_json::Map<String, serde_json::Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        let added: Vec<serde_json::Value> = tokens
            .iter()
            .enumerate()
            .filter(|(i, _)| special[*i])
            .map(|(i, t)| {
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false,
                                "trim_offsets": true, "use_regex": true});
        // Which split runs before byte-level: llama.cpp's per-model `pre` names.
        let pre_tokenizer = match pre.as_str() {
            "smollm" => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level]}),
            _ => byte_level.clone(),
        };
        let spec = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges}
        });
        let inner: tokenizers::Tokenizer = spec
            .to_string()
            .parse()
            .map_err(|e| ModelError::Tokenizer(format!("building from GGUF metadata: {e}")))?;

        let eos_id = gguf.u32("tokenizer.ggml.eos_token_id").unwrap_or(0);
        let bos_id = gguf.u32("tokenizer.ggml.bos_token_id").ok();
        let find = |name: &str| tokens.iter().position(|t| t == name).map(|i| i as u32);
        let im_end_id = find("<|im_end|>");
        let end_of_text_id = find("<|endoftext|>");
        Ok(Self {
            inner,
            tokens,
            special,
            byte_of_char: byte_level_decoder(),
            bos_id,
            eos_id,
            im_end_id,
            end_of_text_id,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// Token ids for `text`; special-token markup such as `<|im_start|>` becomes its id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text for `ids`, special tokens included as their markup.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.bytes(ids)).into_owned())
    }

    /// The raw bytes `ids` stand for. One token may hold part of a UTF-8 character.
    pub fn bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            out.extend(self.token_bytes(id));
        }
        out
    }

    /// The bytes of one token (byte-level BPE stores bytes as printable characters).
    pub fn token_bytes(&self, id: u32) -> Vec<u8> {
        let Some(tok) = self.tokens.get(id as usize) else {
            return Vec::new();
        };
        if self.special[id as usize] {
            return tok.as_bytes().to_vec();
        }
        tok.chars()
            .flat_map(|c| match self.byte_of_char.get(&c) {
                Some(b) => vec![*b],
                None => c.to_string().into_bytes(),
            })
            .collect()
    }

    /// The token's vocabulary string, as stored (`Ġ` marks a leading space).
    pub fn token_str(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokens
            .iter()
            .position(|t| t == token)
            .map(|i| i as u32)
    }

    /// True for tokens that end a chat reply or the text.
    pub fn is_stop(&self, id: u32) -> bool {
        id == self.eos_id || Some(id) == self.im_end_id || Some(id) == self.end_of_text_id
    }
}

/// The default system prompt of SmolLM2's chat template.
pub const SMOLLM_DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

/// ChatML, the format of SmolLM2's template:
/// `<|im_start|>{role}\n{content}<|im_end|>\n` per turn, then `<|im_start|>assistant\n`
/// to ask for a reply. The GGUF's Jinja template also inserts a default system turn
/// when none is given; pass it in `messages` to get that behaviour.
pub fn chat_prompt(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str("<|im_start|>");
        s.push_str(&m.role);
        s.push('\n');
        s.push_str(&m.content);
        s.push_str("<|im_end|>\n");
    }
    if add_generation_prompt {
        s.push_str("<|im_start|>assistant\n");
    }
    s
}

/// GPT-2's byte ↔ printable-character table, inverted.
fn byte_level_decoder() -> HashMap<char, u8> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..=255u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    bs.into_iter()
        .zip(cs)
        .map(|(b, c)| (char::from_u32(c).expect("valid char"), b as u8))
        .collect()
}

/// Turns a stream of token ids into text pieces, holding back bytes until they form
/// whole UTF-8 characters (an emoji can span several tokens).
#[derive(Default)]
pub struct TextStream {
    pending: Vec<u8>,
}

impl TextStream {
    pub fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        self.pending.extend(tok.token_bytes(id));
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let out = s.to_string();
                self.pending.clear();
                out
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // An invalid sequence (not just an unfinished one) is flushed lossily.
                if e.error_len().is_some() {
                    let out = String::from_utf8_lossy(&self.pending).into_owned();
                    self.pending.clear();
                    return out;
                }
                let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                out
            }
        }
    }

    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}
