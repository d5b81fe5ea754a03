//! `search_docs`: the docs corpus as a tool, with a choice of retriever.

use crate::corpus::{self, Chunking, Document};
use crate::retrieval::{Bm25, Chunk, Dense, EmbedFn, Grep, Hybrid, Retriever};
use lav_agent_types::{ToolCall, ToolResult, ToolSpec, Tools};
use serde_json::json;
use std::sync::Arc;

/// The chunking the tool and the retrieval lab start from: 277 chunks of lav's docs.
pub const DEFAULT_CHUNKING: Chunking = Chunking {
    size: 80,
    overlap: 16,
};

pub struct DocsSearch {
    pub chunks: Vec<Chunk>,
    grep: Grep,
    bm25: Bm25,
    /// Built on the first dense or hybrid search: embedding every chunk takes seconds.
    dense: Option<Dense>,
    embed: Option<Arc<EmbedFn>>,
}

impl DocsSearch {
    /// Over `docs`; `embed` enables the dense and hybrid retrievers.
    pub fn new(
        docs: &[Document],
        chunking: Chunking,
        embed: Option<Arc<EmbedFn>>,
    ) -> Result<DocsSearch, String> {
        let chunks = corpus::chunk(docs, chunking);
        Ok(DocsSearch {
            grep: Grep::new(&chunks),
            bm25: Bm25::new(&chunks)?,
            chunks,
            dense: None,
            embed,
        })
    }

    pub fn search(
        &mut self,
        query: &str,
        k: usize,
        retriever: &str,
    ) -> Result<Vec<(Chunk, f64)>, String> {
        if matches!(retriever, "dense" | "hybrid") && self.dense.is_none() {
            let embed = self
                .embed
                .clone()
                .ok_or("this server has no embedding model; use retriever \"bm25\" or \"grep\"")?;
            self.dense = Some(Dense::new(&self.chunks, embed)?);
        }
        let ranking = match retriever {
            "grep" => self.grep.search(query, k),
            "bm25" => self.bm25.search(query, k),
            "dense" => self.dense.as_ref().expect("built above").search(query, k),
            "hybrid" => Hybrid {
                bm25: &self.bm25,
                dense: self.dense.as_ref().expect("built above"),
                weight: 0.5,
                depth: 50,
            }
            .search(query, k),
            other => {
                return Err(format!(
                    "retriever must be grep, bm25, dense or hybrid, got {other:?}"
                ));
            }
        };
        Ok(ranking
            .into_iter()
            .filter_map(|(id, s)| Some((self.chunks.iter().find(|c| c.id == id)?.clone(), s)))
            .collect())
    }

    pub fn spec() -> ToolSpec {
        ToolSpec {
            name: "search_docs".into(),
            description: "Searches lav's documentation (how LLMs, GPUs, inference engines and agents work) and returns the best passages with their ids.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "what to look for, in words", "examples": ["paged attention"]},
                    "k": {"type": "integer", "minimum": 1, "maximum": 10, "description": "how many passages (default 3)"},
                    "retriever": {"type": "string", "enum": ["grep", "bm25", "dense", "hybrid"], "description": "how to rank (default bm25)"}
                },
                "required": ["query"],
                "additionalProperties": false
            }),
        }
    }
}

impl Tools for DocsSearch {
    fn list(&self) -> Vec<ToolSpec> {
        vec![DocsSearch::spec()]
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let a = &call.arguments;
        let Some(query) = a.get("query").and_then(|v| v.as_str()) else {
            return ToolResult::error("search_docs needs a string `query`");
        };
        let k = match a.get("k") {
            None => 3,
            Some(v) => match v.as_u64() {
                Some(k @ 1..=10) => k as usize,
                _ => {
                    return ToolResult::error(format!(
                        "`k` must be an integer from 1 to 10, got {v}"
                    ));
                }
            },
        };
        let retriever = match a.get("retriever") {
            None => "bm25",
            Some(v) => match v.as_str() {
                Some(r) => r,
                None => return ToolResult::error(format!("`retriever` must be a string, got {v}")),
            },
        };
        ToolResult::from_result(self.search(query, k, retriever).map(|hits| {
            if hits.is_empty() {
                return "no passage matches".to_string();
            }
            hits.iter()
                .map(|(c, s)| format!("[{}] ({}, score {s:.3}) {}", c.id, c.doc, c.text))
                .collect::<Vec<_>>()
                .join("\n\n")
        }))
    }
}
