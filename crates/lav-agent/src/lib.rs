//! `lav-agent`: the agent loop of lav's AI-Agents labs.
//!
//! A run is a sequence of ticks. Each tick asks an [`Llm`] for the next move given
//! the [`State`] (the transcript plus the agent's external state): either a final
//! answer, which ends the turn, or tool calls, which the [`Tools`] execute and whose
//! results join the transcript. The loop stops on end of turn, a step cap, a token
//! budget or a deadline ([`Limits`]), and every event is recorded ([`record`]) so a
//! run can be replayed without the model.
//!
//! Beside the loop: [`context`] (the context manager: per-segment token budgets,
//! compaction, memory notes, sub-agents), [`evals`] (pass@k, pass^k, SE, judge
//! TPR/TNR, the failure matrix), [`planner`] (plan-and-execute with
//! re-planning, reflect/retry under caps), [`workflow`] (the five workflow patterns over agent runs) and
//! [`tasks`] (labelled tasks with deterministic checkers).
//!
//! May depend on serde and small utility crates. The model runtime, MCP and telemetry
//! plug in through the [`Llm`] and [`Tools`] traits from crates above this one.

pub mod agent;
pub mod context;
pub mod evals;
pub mod guard;
pub mod openai;
pub mod planner;
pub mod record;
pub mod scripted;
pub mod tasks;
pub mod workflow;

pub use agent::{
    AgentError, Limits, Llm, Message, Observer, Reply, Role, Run, State, Stop, ToolCall,
    ToolResult, ToolSpec, Toolbox, Tools, Usage, run,
};
pub use guard::{Capability, Guarded, Refusal};
pub use openai::OpenAiCompatible;
pub use record::{Collector, Event, Recorder, Replay};
pub use scripted::ScriptedPolicy;
