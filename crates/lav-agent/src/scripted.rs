//! A scripted policy: a fixed list of moves, for deterministic demos and tests.

use crate::agent::{Llm, Reply, Result, State, ToolSpec, Usage};

pub struct ScriptedPolicy {
    name: String,
    moves: Vec<Reply>,
    next: usize,
}

impl ScriptedPolicy {
    pub fn new(name: impl Into<String>, moves: Vec<Reply>) -> Self {
        ScriptedPolicy {
            name: name.into(),
            moves,
            next: 0,
        }
    }
}

impl Llm for ScriptedPolicy {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The next scripted move; once the script is spent, a final answer saying so.
    fn next(&mut self, _state: &State, _tools: &[ToolSpec]) -> Result<Reply> {
        let r = self.moves.get(self.next).cloned().unwrap_or(Reply::Final {
            text: "(the script has no more moves)".into(),
            usage: Usage::default(),
        });
        self.next += 1;
        Ok(r)
    }
}
