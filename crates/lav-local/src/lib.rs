//! `lav-local`: SmolLM2 (or any local llama GGUF) as a [`lav_agent::Llm`].
//!
//! The tools are described in the system prompt; each reply is decoded greedily
//! under the token mask of the tool-call grammar ([`lav_grammar`]), so whatever the
//! 135M model prefers, it can only write `<tool_call>` blocks whose arguments match
//! the tool's schema, or (when it may choose) a plain answer. Every step's mask is
//! kept ([`Decoded`]) for the tool-use lab to show on the real logits.
//!
//! May depend on `lav-model`, `lav-agent` and `lav-grammar`; never on a renderer.

use lav_agent::{AgentError, Llm, Reply, Role, State, ToolCall, ToolSpec, Usage};
use lav_grammar::{Grammar, Matcher, TokenTrie, ToolChoice};
use lav_model::{ChatMessage, Llama, Tokenizer, chat_prompt, tool_format};
use serde::Serialize;
use std::sync::Arc;

/// One decoding step: what the mask allowed and what the model wanted.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub token: u32,
    /// The chosen token's text (lossy for partial UTF-8).
    pub text: String,
    /// How many tokens the mask allowed (end of turn included when allowed).
    pub allowed: usize,
    /// The best tokens by logit among the allowed, and among the forbidden.
    pub top_allowed: Vec<(u32, String, f32)>,
    pub top_forbidden: Vec<(u32, String, f32)>,
    /// The model's own favourite was allowed (the mask did not change its choice).
    pub unconstrained_agrees: bool,
    /// The token budget was nearly spent: only tokens that close the reply fastest
    /// were allowed.
    pub forced: bool,
}

/// One reply, decoded under the mask.
#[derive(Clone, Debug, Serialize)]
pub struct Decoded {
    pub prompt: String,
    pub prompt_tokens: usize,
    /// Prompt tokens whose K and V came from the previous prompt's cache.
    pub reused_tokens: usize,
    pub text: String,
    pub steps: Vec<Step>,
    pub mask_seconds: f64,
    pub model_seconds: f64,
}

/// Whether and how the model may answer instead of calling a tool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Choice {
    /// The model chooses: among the tools and one more, `answer`, whose text is the
    /// final reply, so the choice is a tool name inside the call rather than the
    /// first token of a free reply. (SmolLM2-135M still mostly picks `answer` for
    /// arithmetic: docs/benchmarks.md.)
    #[default]
    Auto,
    /// The first token decides: `<tool_call>` or plain text (the model's own
    /// preference, which for SmolLM2-135M is nearly always text).
    Free,
    /// A real tool call, until one has come back this turn; then as `free`.
    Required,
}

impl Choice {
    pub const ALL: [Choice; 3] = [Choice::Auto, Choice::Free, Choice::Required];

    pub fn name(&self) -> &'static str {
        match self {
            Choice::Auto => "auto",
            Choice::Free => "free",
            Choice::Required => "required",
        }
    }

    pub fn parse(s: &str) -> Option<Choice> {
        Choice::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// The `answer` tool of [`Choice::Auto`]: the final reply, as a call.
pub const ANSWER: &str = "answer";

pub fn answer_spec() -> ToolSpec {
    ToolSpec {
        name: ANSWER.into(),
        description: "Replies to the user directly, when no other tool is needed or once a tool's result is known.".into(),
        input_schema: serde_json::json!({
            "type": "object",
            "properties": {"text": {"type": "string", "maxLength": 240, "examples": ["6 times 7 is 42."]}},
            "required": ["text"],
            "additionalProperties": false
        }),
    }
}

pub struct LocalLlm {
    model: Arc<Llama>,
    tok: Arc<Tokenizer>,
    trie: Arc<TokenTrie>,
    name: String,
    pub choice: Choice,
    /// Calls one reply may make (parallel calls); 1 by default, since the tiny
    /// model otherwise tends to repeat its call.
    pub max_calls: usize,
    pub max_tokens: usize,
    /// Greedy when `None`; else sampled among the allowed tokens at this temperature,
    /// from a generator seeded with this seed (the same seed, the same reply).
    pub sampling: Option<(f32, u64)>,
    /// How the system prompt presents the tools.
    pub style: PromptStyle,
    /// The last reply's decoding trace.
    pub last: Option<Decoded>,
    calls: u64,
    /// The last prompt's tokens and KV cache: the next prompt usually extends it
    /// (same system prompt, one more turn), so only the new tokens are prefilled.
    prefix: std::sync::Mutex<Option<(Vec<u32>, lav_model::KvCache)>>,
    /// The token that ends a turn (`<|im_end|>` in ChatML).
    eos: u32,
}

/// How many tokens of each kind a [`Step`] keeps.
const TOP: usize = 5;

/// One of `ids` (the allowed tokens, most likely first), drawn from the softmax of
/// their logits at `temperature` with a uniform number from SplitMix64 over
/// `(seed, step)`: reproducible, and independent of any other run.
fn sample(ids: &[u32], logits: &[f32], temperature: f32, seed: u64, step: u64) -> u32 {
    let t = temperature.max(1e-3) as f64;
    let max = logits[ids[0] as usize] as f64;
    let w: Vec<f64> = ids
        .iter()
        .map(|&i| ((logits[i as usize] as f64 - max) / t).exp())
        .collect();
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let mut u = (z >> 11) as f64 / (1u64 << 53) as f64 * w.iter().sum::<f64>();
    for (&i, &wi) in ids.iter().zip(&w) {
        if u < wi {
            return i;
        }
        u -= wi;
    }
    ids[ids.len() - 1]
}

/// The vocabulary's byte strings, special tokens left out: the mask's trie.
pub fn vocab_trie(tok: &Tokenizer) -> TokenTrie {
    let vocab: Vec<Option<Vec<u8>>> = (0..tok.vocab_size() as u32)
        .map(|id| (!tok.is_special(id)).then(|| tok.token_bytes(id)))
        .collect();
    TokenTrie::new(&vocab)
}

/// How the system prompt presents the tools. The variants are compared on the
/// labelled tasks (`lav bench --agent-tasks --prompt …`, docs/benchmarks.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PromptStyle {
    /// Each tool's name, argument types and description.
    Plain,
    /// Plus each argument's format: an example value and any bounds.
    Formats,
    /// Plus one example call per tool and how to answer from a result.
    Examples,
    /// Formats, plus worked exchanges as earlier chat turns: a question, the call,
    /// the tool's (scripted) result and the answer, for the tools present, and a
    /// greeting answered without a tool.
    Dialogue,
    /// Dialogue with the worked exchanges chosen for the question: from a larger
    /// pool ([`EXAMPLES`]), the few most like the question whose tools are present,
    /// the most alike last (nearest the question, where the small model copies from).
    #[default]
    Selected,
}

/// The pool [`PromptStyle::Selected`] chooses from: (tool, question, arguments,
/// scripted result, answer). None of them is a labelled task, and their ids, names
/// and numbers are not the shop's.
pub const EXAMPLES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "calculate",
        "What is 6 times 7?",
        r#"{"expression": "6 * 7"}"#,
        "42",
        "6 times 7 is 42.",
    ),
    (
        "calculate",
        "What is 81 divided by 9?",
        r#"{"expression": "81 / 9"}"#,
        "9",
        "81 divided by 9 is 9.",
    ),
    (
        "calculate",
        "What is 3 to the power of 4?",
        r#"{"expression": "3 ^ 4"}"#,
        "81",
        "3 to the power of 4 is 81.",
    ),
    (
        "calculate",
        "What is the square root of 49?",
        r#"{"expression": "sqrt(49)"}"#,
        "7",
        "The square root of 49 is 7.",
    ),
    (
        "calculate",
        "Add 120 and 35.",
        r#"{"expression": "120 + 35"}"#,
        "155",
        "120 plus 35 is 155.",
    ),
    (
        "calculate",
        "What is 500 minus 128?",
        r#"{"expression": "500 - 128"}"#,
        "372",
        "500 minus 128 is 372.",
    ),
    (
        "calculate",
        "What is 15% of 80?",
        r#"{"expression": "0.15 * 80"}"#,
        "12",
        "15% of 80 is 12.",
    ),
    (
        "calculate",
        "What is (4 + 6) * 5?",
        r#"{"expression": "(4 + 6) * 5"}"#,
        "50",
        "(4 + 6) * 5 is 50.",
    ),
    (
        "calculate",
        "How much is 2 times 3 times 4?",
        r#"{"expression": "2 * 3 * 4"}"#,
        "24",
        "2 times 3 times 4 is 24.",
    ),
    (
        "get_order",
        "What is the status of order 1234?",
        r#"{"order_id": 1234}"#,
        r#"{"customer":"Jane Doe","id":1234,"item":"desk","placed_on":"2026-11-01","quantity":1,"status":"placed","total":"150.00"}"#,
        "The status of order 1234 is placed.",
    ),
    (
        "get_order",
        "What item is in order 1240?",
        r#"{"order_id": 1240}"#,
        r#"{"customer":"Tom Reed","id":1240,"item":"floor lamp","placed_on":"2026-10-12","quantity":1,"status":"shipped","total":"89.00"}"#,
        "The item in order 1240 is a floor lamp.",
    ),
    (
        "get_order",
        "How many items were ordered in order 1236?",
        r#"{"order_id": 1236}"#,
        r#"{"customer":"Mia Park","id":1236,"item":"notebook","placed_on":"2026-09-03","quantity":4,"status":"delivered","total":"16.00"}"#,
        "Order 1236 has 4 items (notebooks).",
    ),
    (
        "get_order",
        "Who placed order 1238?",
        r#"{"order_id": 1238}"#,
        r#"{"customer":"Sam Lee","id":1238,"item":"chair","placed_on":"2026-11-20","quantity":2,"status":"placed","total":"240.00"}"#,
        "Sam Lee placed order 1238.",
    ),
    (
        "get_order",
        "On what date was order 1239 placed?",
        r#"{"order_id": 1239}"#,
        r#"{"customer":"Ana Cruz","id":1239,"item":"kettle","placed_on":"2026-10-02","quantity":1,"status":"shipped","total":"35.00"}"#,
        "Order 1239 was placed on 2026-10-02.",
    ),
    (
        "list_orders",
        "What did Tom Reed order most recently?",
        r#"{"customer": "Tom Reed", "limit": 1}"#,
        r#"[{"customer":"Tom Reed","id":1252,"item":"bookshelf","placed_on":"2026-10-12","quantity":1,"status":"shipped","total":"89.00"}]"#,
        "Tom Reed's most recent order is a bookshelf.",
    ),
    (
        "list_orders",
        "What is Mia Park's latest order?",
        r#"{"customer": "Mia Park", "limit": 1}"#,
        r#"[{"customer":"Mia Park","id":1251,"item":"backpack","placed_on":"2026-11-15","quantity":1,"status":"placed","total":"59.00"}]"#,
        "Mia Park's latest order is a backpack.",
    ),
    (
        "list_orders",
        "Show me Sam Lee's newest order.",
        r#"{"customer": "Sam Lee", "limit": 1}"#,
        r#"[{"customer":"Sam Lee","id":1253,"item":"bike helmet","placed_on":"2026-11-24","quantity":1,"status":"placed","total":"64.00"}]"#,
        "Sam Lee's newest order is a bike helmet.",
    ),
    (
        "search_docs",
        "Search the docs for paged attention.",
        r#"{"query": "paged attention"}"#,
        "[c1] (labs/llm-internals/paged-attention.md, score 9.1) Paged attention stores the KV cache in fixed-size blocks.",
        "Paged attention stores the KV cache in fixed-size blocks (paged-attention.md).",
    ),
    (
        "search_docs",
        "What do the docs say about tokenizers?",
        r#"{"query": "tokenizers"}"#,
        "[c1] (labs/llm-internals/tokenization.md, score 8.4) A tokenizer splits text into tokens from a fixed vocabulary.",
        "A tokenizer splits text into tokens from a fixed vocabulary (tokenization.md).",
    ),
];

/// Words that say nothing about which example fits.
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "did", "do", "for", "in", "is", "it", "me", "of", "on", "the", "to", "was",
    "what", "with",
];

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// How alike two questions are: shared words over all words (Jaccard); numbers count
/// as one word kind, so "order 1005" matches "order 1234".
pub fn likeness(a: &str, b: &str) -> f64 {
    let norm = |w: String| {
        if w.chars().all(|c| c.is_ascii_digit()) {
            "#".to_string()
        } else {
            w
        }
    };
    let a: std::collections::BTreeSet<String> = words(a).into_iter().map(norm).collect();
    let b: std::collections::BTreeSet<String> = words(b).into_iter().map(norm).collect();
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f64 / union as f64
}

/// How many worked exchanges [`PromptStyle::Selected`] shows.
/// Two beat one and three on the labelled arithmetic and order tasks (22/26 against
/// 21/26 each, `lav bench --agent-tasks`): one example teaches a single answer
/// shape, three mix shapes the model then blends.
pub const SELECTED: usize = 2;

/// The examples [`PromptStyle::Selected`] shows for `question` with `tools`: the
/// [`SELECTED`] most alike among those whose tool is present (the earlier among
/// ties), least alike first.
pub fn select_examples(
    question: &str,
    tools: &[ToolSpec],
) -> Vec<&'static (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
)> {
    let mut scored: Vec<(f64, usize)> = EXAMPLES
        .iter()
        .enumerate()
        .filter(|(_, e)| tools.iter().any(|t| t.name == e.0))
        .map(|(i, e)| (likeness(question, e.1), i))
        .collect();
    // Most alike first (stable: ties keep the pool's order), then the best few
    // reversed, so the most alike sits next to the question.
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.truncate(SELECTED);
    scored.reverse();
    scored.into_iter().map(|(_, i)| &EXAMPLES[i]).collect()
}

/// The worked exchanges of [`PromptStyle::Dialogue`]: (tool, question, arguments,
/// scripted result, answer). None of them is a labelled task.
const DIALOGUE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "calculate",
        "What is 6 times 7?",
        r#"{"expression": "6 * 7"}"#,
        "42",
        "6 times 7 is 42.",
    ),
    (
        "get_order",
        "What is the status of order 1234?",
        r#"{"order_id": 1234}"#,
        r#"{"id": 1234, "customer": "Jane Doe", "item": "desk", "quantity": 1, "total_cents": 15000, "status": "placed", "placed_on": "2026-11-01"}"#,
        "Order 1234 (a desk) is placed.",
    ),
    (
        "search_docs",
        "Search the docs for paged attention.",
        r#"{"query": "paged attention"}"#,
        "[c1] (labs/llm-internals/paged-attention.md, score 9.1) Paged attention stores the KV cache in fixed-size blocks.",
        "Paged attention stores the KV cache in fixed-size blocks (paged-attention.md).",
    ),
];

impl PromptStyle {
    pub const ALL: [PromptStyle; 5] = [
        PromptStyle::Plain,
        PromptStyle::Formats,
        PromptStyle::Examples,
        PromptStyle::Dialogue,
        PromptStyle::Selected,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            PromptStyle::Plain => "plain",
            PromptStyle::Formats => "formats",
            PromptStyle::Examples => "examples",
            PromptStyle::Dialogue => "dialogue",
            PromptStyle::Selected => "selected",
        }
    }

    pub fn parse(s: &str) -> Option<PromptStyle> {
        PromptStyle::ALL.into_iter().find(|p| p.name() == s)
    }
}

/// The system prompt that tells the model its tools and the call format, in `style`.
pub fn system_prompt(base: &str, tools: &[ToolSpec], style: PromptStyle) -> String {
    let mut s = String::new();
    if !base.is_empty() {
        s.push_str(base);
        s.push_str("\n\n");
    }
    s.push_str(tool_format::TOOLS_HEADER);
    for t in tools {
        let sig = if style == PromptStyle::Plain {
            signature(&t.input_schema)
        } else {
            signature_with_formats(&t.input_schema)
        };
        s.push_str(&tool_format::tool_line(&t.name, &t.description, &sig));
    }
    if style == PromptStyle::Examples {
        let examples: Vec<String> = tools
            .iter()
            .filter_map(|t| {
                example_arguments(&t.input_schema).map(|args| {
                    call_block(
                        &ToolCall {
                            id: String::new(),
                            name: t.name.clone(),
                            arguments: args,
                        },
                        tools,
                    )
                })
            })
            .collect();
        if !examples.is_empty() {
            s.push_str("Examples of calls:\n");
            for e in examples {
                s.push_str(&e);
                s.push('\n');
            }
        }
        s.push_str("Use a tool for arithmetic and for facts about orders or the docs. When a tool's result comes back, answer the user in one sentence that states the result.\n");
    }
    s
}

/// A tool's arguments built from its schema's `examples` (every required
/// property needs one), for a few-shot call.
pub fn example_arguments(schema: &serde_json::Value) -> Option<serde_json::Value> {
    let props = schema["properties"].as_object()?;
    let mut out = serde_json::Map::new();
    for k in schema["required"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_str())
    {
        out.insert(k.to_string(), props.get(k)?["examples"].get(0)?.clone());
    }
    Some(serde_json::Value::Object(out))
}

pub use lav_model::tool_format::{signature, signature_with_formats};

/// A tool call as the model writes it (and reads it back in the transcript), its
/// arguments in the grammar's order for the tool of that name in `tools`.
pub fn call_block(call: &ToolCall, tools: &[ToolSpec]) -> String {
    let schema = tools
        .iter()
        .find(|t| t.name == call.name)
        .map(|t| &t.input_schema)
        .unwrap_or(&serde_json::Value::Null);
    tool_format::call_block(&call.name, &call.arguments, schema)
}

/// Reads a reply: `<tool_call>` blocks become calls (ids `call_<n>_<i>`), anything
/// else is the final answer.
pub fn parse_reply(text: &str, n: u64) -> Result<Vec<ToolCall>, String> {
    Ok(tool_format::parse_calls(text)?
        .into_iter()
        .enumerate()
        .map(|(i, (name, arguments))| ToolCall {
            id: format!("call_{n}_{i}"),
            name,
            arguments,
        })
        .collect())
}

/// One worked exchange as chat turns: the question, the call, the tool's result and
/// the answer in text (as the model answers after a result, see `next`).
fn worked(msgs: &mut Vec<ChatMessage>, e: &(&str, &str, &str, &str, &str), tools: &[ToolSpec]) {
    let (tool, q, args, result, answer) = *e;
    let call = ToolCall {
        id: String::new(),
        name: tool.to_string(),
        arguments: serde_json::from_str(args).unwrap_or_default(),
    };
    msgs.push(ChatMessage::new("user", q));
    msgs.push(ChatMessage::new("assistant", &call_block(&call, tools)));
    msgs.push(ChatMessage::new(
        "tool",
        &tool_format::tool_response(result),
    ));
    msgs.push(ChatMessage::new("assistant", answer));
}

impl LocalLlm {
    pub fn new(model: Arc<Llama>, tok: Arc<Tokenizer>, name: &str) -> LocalLlm {
        let trie = Arc::new(vocab_trie(&tok));
        LocalLlm::with_trie(model, tok, trie, name)
    }

    /// Shares a trie built earlier (building one walks the 49,152-token vocabulary).
    pub fn with_trie(
        model: Arc<Llama>,
        tok: Arc<Tokenizer>,
        trie: Arc<TokenTrie>,
        name: &str,
    ) -> LocalLlm {
        let eos = tok
            .token_id("<|im_end|>")
            .filter(|&i| tok.is_stop(i))
            .unwrap_or(2);
        LocalLlm {
            model,
            tok,
            trie,
            name: name.to_string(),
            choice: Choice::Auto,
            max_calls: 1,
            max_tokens: 320,
            sampling: None,
            style: PromptStyle::default(),
            last: None,
            calls: 0,
            prefix: std::sync::Mutex::new(None),
            eos,
        }
    }

    /// The chat prompt for `state` with `tools`: exactly what the model reads (the
    /// tools in the system prompt, calls and results in their tags).
    pub fn prompt(state: &State, tools: &[ToolSpec]) -> String {
        Self::prompt_styled(state, tools, PromptStyle::default())
    }

    /// The chat prompt with the tools presented in `style`.
    pub fn prompt_styled(state: &State, tools: &[ToolSpec], style: PromptStyle) -> String {
        let mut msgs = Vec::new();
        for m in &state.transcript {
            // With the `answer` tool on offer, an answer is shown as its call.
            let answers = tools.iter().any(|t| t.name == ANSWER);
            let say = |text: &str| {
                if answers {
                    call_block(
                        &ToolCall {
                            id: String::new(),
                            name: ANSWER.into(),
                            arguments: serde_json::json!({ "text": text }),
                        },
                        tools,
                    )
                } else {
                    text.to_string()
                }
            };
            let first_question = m.role == Role::User && msgs.len() == 1;
            if first_question && style == PromptStyle::Dialogue {
                // The worked exchanges go between the system prompt and the first
                // question, as turns the model has "already" taken.
                let chosen = DIALOGUE
                    .iter()
                    .filter(|e| tools.iter().any(|t| t.name == e.0));
                for e in chosen {
                    worked(&mut msgs, e, tools);
                }
                if !tools.is_empty() {
                    msgs.push(ChatMessage::new("user", "Hi there!"));
                    msgs.push(ChatMessage::new(
                        "assistant",
                        &say("Hello! How can I help you today?"),
                    ));
                }
            }
            if first_question && style == PromptStyle::Selected && !tools.is_empty() {
                // The greeting first, then the examples, the most alike last.
                msgs.push(ChatMessage::new("user", "Hi there!"));
                msgs.push(ChatMessage::new(
                    "assistant",
                    &say("Hello! How can I help you today?"),
                ));
                for e in select_examples(&m.content, tools) {
                    worked(&mut msgs, e, tools);
                }
            }
            let (role, content) = match m.role {
                Role::System => ("system", system_prompt(&m.content, tools, style)),
                Role::User => ("user", m.content.clone()),
                Role::Assistant => {
                    let mut c = m.content.clone();
                    for call in &m.tool_calls {
                        if !c.is_empty() {
                            c.push('\n');
                        }
                        c.push_str(&call_block(call, tools));
                    }
                    ("assistant", c)
                }
                Role::Tool => ("tool", tool_format::tool_response(&m.content)),
            };
            msgs.push(ChatMessage::new(role, &content));
        }
        chat_prompt(&msgs, true)
    }

    /// Decodes one reply to `prompt` under `grammar`.
    pub fn decode(&self, prompt: &str, grammar: Grammar) -> lav_model::Result<Decoded> {
        use std::time::Instant;
        let ids = self.tok.encode(prompt)?;
        let t = Instant::now();
        let (mut cache, reused) = {
            let prefix = self.prefix.lock().unwrap_or_else(|p| p.into_inner());
            match &*prefix {
                Some((old, cache)) => {
                    let same = old.iter().zip(&ids).take_while(|(a, b)| a == b).count();
                    // At least one token must run to get the next-token logits.
                    let keep = same.min(ids.len() - 1);
                    let mut c = cache.clone();
                    c.truncate(keep);
                    (c, keep)
                }
                None => (self.model.new_cache(), 0),
            }
        };
        let mut logits = self.model.next_logits(&ids[reused..], &mut cache)?;
        *self.prefix.lock().unwrap_or_else(|p| p.into_inner()) = Some((ids.clone(), cache.clone()));
        let mut model_seconds = t.elapsed().as_secs_f64();
        let mut mask_seconds = 0.0;
        let mut m = Matcher::new(Arc::new(grammar));
        let mut out: Vec<u8> = Vec::new();
        let mut steps = Vec::new();
        let eos = self.eos;
        let label = |id: u32| String::from_utf8_lossy(&self.tok.token_bytes(id)).into_owned();
        while steps.len() < self.max_tokens {
            let t = Instant::now();
            let mut allowed = m.mask(&self.trie);
            let end_ok = m.accepting();
            if (eos as usize) < allowed.len() {
                allowed[eos as usize] = end_ok;
            }
            mask_seconds += t.elapsed().as_secs_f64();
            if end_ok && !m.can_continue() {
                break;
            }
            let ok = |i: u32| allowed.get(i as usize).copied().unwrap_or(false);
            // Near the token budget, only tokens on a shortest path to the end of
            // the grammar: the reply always closes, however the model rambles.
            let need = m.min_completion();
            let left = self.max_tokens - steps.len();
            let forced = need + 1 >= left;
            let on_path = |i: u32| {
                if i == eos {
                    return end_ok;
                }
                let bytes = self.tok.token_bytes(i);
                let mut n = m.clone();
                n.advance_bytes(&bytes) && n.min_completion() + bytes.len() == need
            };
            // Only the best few of each kind are needed (ranking all 49,152 per token
            // was a tenth of a decode); near the budget, every allowed token in order.
            let vocab = logits.len() as u32;
            let keep = if forced { usize::MAX } else { RANKED };
            let allowed_rank = ranked(&logits, (0..vocab).filter(|&i| ok(i)), keep);
            let forbidden_rank = ranked(&logits, (0..vocab).filter(|&i| !ok(i)), TOP);
            let Some(&best) = allowed_rank.iter().find(|&&i| !forced || on_path(i)) else {
                break;
            };
            // The token the model would have chosen without the mask.
            let unmasked = lav_model::sampler::argmax(&logits).0;
            let choice = match self.sampling {
                // Near the budget the reply must close: no sampling there.
                Some((temperature, seed)) if !forced => {
                    let allowed: Vec<u32> = allowed_rank.iter().copied().take(40).collect();
                    sample(&allowed, &logits, temperature, seed, steps.len() as u64)
                }
                _ => best,
            };
            let pick = |rank: &[u32]| -> Vec<(u32, String, f32)> {
                rank.iter()
                    .take(TOP)
                    .map(|&i| (i, label(i), logits[i as usize]))
                    .collect()
            };
            steps.push(Step {
                token: choice,
                text: label(choice),
                allowed: allowed.iter().filter(|a| **a).count(),
                top_allowed: pick(&allowed_rank),
                top_forbidden: pick(&forbidden_rank),
                unconstrained_agrees: unmasked == choice,
                forced,
            });
            if choice == eos {
                break;
            }
            let bytes = self.tok.token_bytes(choice);
            m.advance_bytes(&bytes);
            out.extend_from_slice(&bytes);
            let t = Instant::now();
            logits = self.model.next_logits(&[choice], &mut cache)?;
            model_seconds += t.elapsed().as_secs_f64();
        }
        Ok(Decoded {
            prompt: prompt.to_string(),
            prompt_tokens: ids.len(),
            reused_tokens: reused,
            text: String::from_utf8_lossy(&out).into_owned(),
            steps,
            mask_seconds,
            model_seconds,
        })
    }
}

impl Llm for LocalLlm {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn next(&mut self, state: &State, tools: &[ToolSpec]) -> lav_agent::agent::Result<Reply> {
        let mut specs = tools.to_vec();
        // Once a tool has answered this turn, the model's first token decides between
        // another call and a text answer: `required` resets (as agent SDKs reset it,
        // else no reply could end), and the `answer` tool is no longer offered (with
        // it, the small model mostly repeats its call; measured).
        let called = state
            .transcript
            .iter()
            .rev()
            .take_while(|m| m.role != Role::User)
            .any(|m| m.role == Role::Tool);
        let mode = match self.choice {
            Choice::Required | Choice::Auto if called => Choice::Free,
            c => c,
        };
        let choice = match mode {
            _ if tools.is_empty() => ToolChoice::Auto,
            Choice::Free => ToolChoice::Auto,
            Choice::Required => ToolChoice::Required,
            Choice::Auto => {
                specs.push(answer_spec());
                ToolChoice::Required
            }
        };
        let grammar = Grammar::tool_reply(&specs, choice, self.max_calls);
        let prompt = Self::prompt_styled(state, &specs, self.style);
        let d = self
            .decode(&prompt, grammar)
            .map_err(|e| AgentError::Llm(e.to_string()))?;
        self.calls += 1;
        let usage = Usage {
            input_tokens: d.prompt_tokens as u64,
            output_tokens: d.steps.len() as u64,
            // The KV of the prompt's prefix shared with the previous call is reused.
            cached_tokens: Some(d.reused_tokens as u64),
        };
        let calls = parse_reply(&d.text, self.calls).map_err(|e| {
            AgentError::Llm(format!(
                "the local model's reply did not parse ({e}): {:?}",
                d.text
            ))
        })?;
        let text = d.text.clone();
        self.last = Some(d);
        // An `answer` call is the final reply (calls made beside it are dropped: the
        // turn ends with the answer).
        let answered = calls
            .iter()
            .find(|c| c.name == ANSWER && mode == Choice::Auto)
            .map(|c| c.arguments["text"].as_str().unwrap_or("").to_string());
        Ok(match answered {
            Some(text) => Reply::Final { text, usage },
            None if calls.is_empty() => Reply::Final { text, usage },
            None => Reply::Calls {
                text: String::new(),
                calls,
                usage,
            },
        })
    }
}

/// Tokens ranked for sampling and display: at least 40 (the sampler's candidates)
/// and [`TOP`].
const RANKED: usize = 64;

/// The best `n` of `ids` by logit, best first; ties go to the lower id, as in a
/// stable sort of every id by logit, so a partial ranking picks what a full one would.
pub fn ranked(logits: &[f32], ids: impl Iterator<Item = u32>, n: usize) -> Vec<u32> {
    let cmp = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    let mut v: Vec<u32> = ids.collect();
    if v.len() > n {
        v.select_nth_unstable_by(n, cmp);
        v.truncate(n);
    }
    v.sort_unstable_by(cmp);
    v
}
