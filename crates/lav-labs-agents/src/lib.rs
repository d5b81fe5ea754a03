//! `lav-labs-agents`: the AI Agents track (and later Agent Engineering). Each lab runs
//! lav's real agent runtime: the loop (`lav-agent`), tools over MCP (`lav-tools`,
//! `lav-mcp`), SmolLM2 decoding under a tool-call grammar (`lav-local`), retrieval and
//! the trifecta guard. `agent_trace` draws a recorded run, for these labs and for
//! `lav trace show`.
//!
//! May depend on `lav-lab`, `lav-scene`, `lav-model` (through its `Loader`) and the
//! agent crates; never on a renderer or another track.

pub mod agent_trace;
pub mod capstone;
pub mod context_failures;
pub mod eval_traces;
pub mod labs;
pub mod long_task;
pub mod planning;
pub mod workflows;

pub use labs::{Context, Endpoint, LABS, register, register_with_endpoint};
