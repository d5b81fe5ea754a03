//! `lav-grammar`: what lets a 135M model always produce a valid tool call.
//!
//! A [`Grammar`] is compiled from the tools' JSON Schemas ([`Grammar::tool_reply`]):
//! a reply is one or more `<tool_call>` blocks, each holding
//! `{"name": …, "arguments": {…}}` whose arguments match that tool's schema, or
//! (when the model may choose) a plain-text answer. A [`Matcher`] follows the text
//! generated so far byte by byte; [`Matcher::mask`] walks a [`TokenTrie`] of the
//! vocabulary's byte strings and allows exactly the tokens that keep the text a
//! valid prefix, so masked sampling can only produce grammatical output.
//!
//! The JSON is canonical (`", "` and `": "` separators; required properties first,
//! in `required` order, then the optional ones by name), which keeps the grammar small and the tiny model on rails; any JSON
//! parser reads it. Supported schema: objects with properties (required and
//! optional), strings (no escapes) with `pattern` (a regex subset, see
//! [`Pattern`]), `minLength` and `maxLength`, integers and numbers with `minimum`
//! and `maximum` (small integer ranges spelled out), booleans, enums, and arrays of
//! those. A constraint the grammar cannot keep is named in [`Grammar::notes`]. An optional
//! property whose schema is not supported is left out; a required one is a string.
//!
//! Depends only on serde_json: no model, no tokenizer crate (the vocabulary comes in
//! as byte strings).

mod bounds;
mod grammar;
mod matcher;
mod pattern;
mod trie;

pub use bounds::Bounds;
pub use grammar::{Grammar, Node, ToolChoice};
pub use matcher::Matcher;
pub use pattern::Pattern;
pub use trie::TokenTrie;
