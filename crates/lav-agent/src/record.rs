//! Runs recorded as JSONL (one event per line: the start, every model reply, every
//! tool call with its result and timing, the end) and replayed without the model:
//! the recorded replies stand in for the model and the recorded results for the
//! tools, so a replay walks the same states.

use crate::agent::{
    AgentError, Limits, Llm, Observer, Reply, Result, Run, State, ToolCall, ToolResult, ToolSpec,
    Tools, run,
};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Start {
        model: String,
        limits: Limits,
        tools: Vec<ToolSpec>,
        state: State,
    },
    Reply {
        tick: usize,
        reply: Reply,
        seconds: f64,
        /// When the model call began, in seconds from the start of the run.
        #[serde(default)]
        at: f64,
    },
    Tool {
        tick: usize,
        call: ToolCall,
        result: ToolResult,
        seconds: f64,
        #[serde(default)]
        at: f64,
    },
    Stop {
        run: Run,
    },
}

/// Writes a run's events to a JSONL file as they happen.
pub struct Recorder {
    clock: Clock,
    path: PathBuf,
    out: BufWriter<std::fs::File>,
    error: Option<String>,
}

impl Recorder {
    /// Creates (or truncates) `path` and writes the start event.
    pub fn create(
        path: &Path,
        model: &str,
        limits: Limits,
        tools: Vec<ToolSpec>,
        state: &State,
    ) -> Result<Recorder> {
        let bad = |e: std::io::Error| AgentError::Record {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let file = std::fs::File::create(path).map_err(bad)?;
        let mut r = Recorder {
            clock: Clock::start(),
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            error: None,
        };
        r.write(&Event::Start {
            model: model.into(),
            limits,
            tools,
            state: state.clone(),
        });
        r.finish_check()?;
        Ok(r)
    }

    fn write(&mut self, e: &Event) {
        if self.error.is_some() {
            return;
        }
        let line = serde_json::to_string(e).expect("events serialize");
        if let Err(e) = writeln!(self.out, "{line}").and_then(|_| self.out.flush()) {
            self.error = Some(e.to_string());
        }
    }

    fn finish_check(&mut self) -> Result<()> {
        match self.error.take() {
            Some(reason) => Err(AgentError::Record {
                path: self.path.display().to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Any write error that happened during the run.
    pub fn finish(mut self) -> Result<()> {
        self.finish_check()
    }
}

/// Stamps events with when they began, in seconds from the start of the run (the
/// observer is told after the fact, with the duration).
struct Clock(std::time::Instant);

impl Clock {
    fn start() -> Clock {
        Clock(std::time::Instant::now())
    }

    fn at(&self, seconds: f64) -> f64 {
        (self.0.elapsed().as_secs_f64() - seconds).max(0.0)
    }

    fn reply(&self, tick: usize, reply: &Reply, seconds: f64) -> Event {
        Event::Reply {
            tick,
            reply: reply.clone(),
            seconds,
            at: self.at(seconds),
        }
    }

    fn tool(&self, tick: usize, call: &ToolCall, result: &ToolResult, seconds: f64) -> Event {
        Event::Tool {
            tick,
            call: call.clone(),
            result: result.clone(),
            seconds,
            at: self.at(seconds),
        }
    }
}

impl Observer for Recorder {
    fn reply(&mut self, tick: usize, _model: &str, reply: &Reply, seconds: f64) {
        let e = self.clock.reply(tick, reply, seconds);
        self.write(&e);
    }
    fn tool(&mut self, tick: usize, call: &ToolCall, result: &ToolResult, seconds: f64) {
        let e = self.clock.tool(tick, call, result, seconds);
        self.write(&e);
    }
    fn stop(&mut self, run: &Run) {
        self.write(&Event::Stop { run: run.clone() });
    }
}

/// The same events as a [`Recorder`] writes, kept in memory (for a lab's live trace).
pub struct Collector {
    clock: Clock,
    pub events: Vec<Event>,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            clock: Clock::start(),
            events: Vec::new(),
        }
    }
}

impl Observer for Collector {
    fn reply(&mut self, tick: usize, _model: &str, reply: &Reply, seconds: f64) {
        self.events.push(self.clock.reply(tick, reply, seconds));
    }
    fn tool(&mut self, tick: usize, call: &ToolCall, result: &ToolResult, seconds: f64) {
        self.events
            .push(self.clock.tool(tick, call, result, seconds));
    }
    fn stop(&mut self, run: &Run) {
        self.events.push(Event::Stop { run: run.clone() });
    }
}

/// A recorded run, read back.
#[derive(Clone, Debug)]
pub struct Replay {
    pub model: String,
    pub limits: Limits,
    pub tools: Vec<ToolSpec>,
    pub start: State,
    pub events: Vec<Event>,
}

impl Replay {
    pub fn load(path: &Path) -> Result<Replay> {
        let bad = |reason: String| AgentError::Replay {
            path: path.display().to_string(),
            reason,
        };
        let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
        let mut events = Vec::new();
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| bad(e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let e: Event =
                serde_json::from_str(&line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
            events.push(e);
        }
        let Some(Event::Start {
            model,
            limits,
            tools,
            state,
        }) = events.first().cloned()
        else {
            return Err(bad("it does not begin with a start event".into()));
        };
        Ok(Replay {
            model,
            limits,
            tools,
            start: state,
            events,
        })
    }

    /// The run as recorded (its stop event), if it finished.
    pub fn recorded(&self) -> Option<&Run> {
        self.events.iter().find_map(|e| match e {
            Event::Stop { run } => Some(run),
            _ => None,
        })
    }

    /// Runs the loop again with the recorded replies as the model and the recorded
    /// results as the tools. A call the record does not hold is an error result.
    pub fn rerun(&self, observer: &mut dyn Observer) -> Result<Run> {
        let mut llm = Recorded {
            model: self.model.clone(),
            replies: self
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Reply { reply, .. } => Some(reply.clone()),
                    _ => None,
                })
                .collect(),
            next: 0,
        };
        let mut tools = RecordedTools {
            specs: self.tools.clone(),
            results: self
                .events
                .iter()
                .filter_map(|e| match e {
                    Event::Tool { call, result, .. } => Some((call.clone(), result.clone())),
                    _ => None,
                })
                .collect(),
            next: 0,
        };
        run(
            &mut llm,
            &mut tools,
            self.start.clone(),
            self.limits,
            observer,
        )
    }
}

struct Recorded {
    model: String,
    replies: Vec<Reply>,
    next: usize,
}

impl Llm for Recorded {
    fn name(&self) -> String {
        format!("{} (replayed)", self.model)
    }
    fn next(&mut self, _state: &State, _tools: &[ToolSpec]) -> Result<Reply> {
        let r = self
            .replies
            .get(self.next)
            .cloned()
            .ok_or_else(|| AgentError::Llm("the record has no more model replies".into()))?;
        self.next += 1;
        Ok(r)
    }
}

struct RecordedTools {
    specs: Vec<ToolSpec>,
    results: Vec<(ToolCall, ToolResult)>,
    next: usize,
}

impl Tools for RecordedTools {
    fn list(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }
    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let r = match self.results.get(self.next) {
            Some((c, r)) if c == call => r.clone(),
            _ => ToolResult {
                content: format!("the record holds no result for {} here", call.name),
                is_error: true,
            },
        };
        self.next += 1;
        r
    }
}
