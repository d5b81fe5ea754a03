//! The planner: plan-and-execute with re-planning, and a reflect/retry loop under
//! caps.
//!
//! A planning call writes the steps (one grammar-constrained `choose_plan` call).
//! Each step is an agent run with the task's tools; a step fails when its run gives
//! no answer or a call comes back as an error, and the whole fails when the task's
//! deterministic checker says so. A failure costs a reflection (the model says what
//! went wrong), then a retry of the step with that reflection in its prompt; when a
//! step's retries are spent the planner re-plans from that step. The caps on
//! retries, reflections, re-plans, tokens and time stop it, and [`PlanStop`] says
//! which. Every call is a run of the agent loop, traced like any other.

use crate::agent::{Limits, Result, Role, Run, State, ToolSpec, Usage};
use crate::workflow::{Backend, choose_once};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Where the planner must stop even if it could go on.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Caps {
    /// Retries of one step after its first attempt.
    pub retries: usize,
    /// Reflections over the whole run.
    pub reflections: usize,
    /// Revised plans after the first.
    pub replans: usize,
    /// Input plus output tokens over every call.
    pub tokens: u64,
    #[serde(with = "secs")]
    pub time: Duration,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            retries: 1,
            reflections: 3,
            replans: 1,
            tokens: 40_000,
            time: Duration::from_secs(600),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?))
    }
}

/// Why the planner stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStop {
    /// The checker passed the answer.
    Solved,
    /// A step failed with its retries spent and no re-plan left.
    Retries,
    /// A failure needed a reflection and none was left.
    Reflections,
    /// A re-plan was needed and none was left.
    Replans,
    Tokens,
    Time,
}

impl PlanStop {
    pub fn describe(&self) -> &'static str {
        match self {
            PlanStop::Solved => "solved: the checker passed the answer",
            PlanStop::Retries => "the retry cap: a step kept failing",
            PlanStop::Reflections => "the reflection cap",
            PlanStop::Replans => "the re-plan cap",
            PlanStop::Tokens => "the token cap",
            PlanStop::Time => "the time cap",
        }
    }
}

/// One try at a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub output: String,
    /// Why it failed (empty when it passed).
    pub failure: String,
    /// What the model said went wrong, when a reflection followed.
    pub reflection: Option<String>,
    pub run: Run,
    /// The reflecting call, when one followed.
    #[serde(default)]
    pub reflection_run: Option<Run>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    pub text: String,
    pub attempts: Vec<Attempt>,
}

impl PlanStep {
    pub fn passed(&self) -> bool {
        self.attempts.last().is_some_and(|a| a.failure.is_empty())
    }
}

/// One version of the plan: its steps as they ran, and why it was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub version: usize,
    /// Why this plan was written ("first plan", or the failure it revises).
    pub because: String,
    pub steps: Vec<PlanStep>,
    /// The planning call.
    pub run: Run,
}

/// A finished planner run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub task: String,
    pub plans: Vec<Plan>,
    pub stop: PlanStop,
    pub answer: Option<String>,
    /// Every call's tokens.
    pub usage: Usage,
    /// Model calls (ticks) over every run.
    pub calls: usize,
    pub reflections: usize,
    pub seconds: f64,
}

/// The checker of the planner's task: `Err` says why the answer is wrong.
pub type Check<'a> = &'a dyn Fn(&str) -> std::result::Result<(), String>;

/// How the planner asks: the system prompts of its calls and the step's tools.
#[derive(Clone, Debug)]
pub struct Prompts {
    pub planner: String,
    pub executor: String,
    pub reflector: String,
    pub tools: Vec<String>,
    /// The executor's limits per attempt.
    pub limits: Limits,
}

impl Default for Prompts {
    fn default() -> Self {
        Prompts {
            planner: "You plan. Split the task into a few short steps, each one thing to do or find out.".into(),
            executor: "You carry out one step of a plan. Use a tool when it helps, then say what you found.".into(),
            reflector: "You review a failed step. Say in one sentence what went wrong and what to do differently.".into(),
            tools: Vec::new(),
            limits: Limits {
                max_ticks: 4,
                ..Limits::default()
            },
        }
    }
}

struct Planner<'a> {
    backend: &'a dyn Backend,
    prompts: &'a Prompts,
    caps: Caps,
    task: &'a str,
    start: Instant,
    usage: Usage,
    calls: usize,
    reflections: usize,
}

impl Planner<'_> {
    /// The cap that forbids another call now, if any.
    fn spent(&self) -> Option<PlanStop> {
        if self.usage.input_tokens + self.usage.output_tokens >= self.caps.tokens {
            Some(PlanStop::Tokens)
        } else if self.start.elapsed() >= self.caps.time {
            Some(PlanStop::Time)
        } else {
            None
        }
    }

    fn count(&mut self, run: &Run) {
        self.usage.input_tokens += run.state.usage.input_tokens;
        self.usage.output_tokens += run.state.usage.output_tokens;
        self.calls += run.state.ticks;
    }

    fn plan(&mut self, ask: &str) -> Result<(Vec<String>, Run)> {
        let spec = ToolSpec {
            name: "choose_plan".into(),
            description: "Write the plan: the steps in order.".into(),
            input_schema: serde_json::json!({
                "type": "object",
                "properties": {"steps": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 120}}},
                "required": ["steps"],
                "additionalProperties": false
            }),
        };
        let mut llm = self.backend.llm(0);
        let state = State::new(&self.prompts.planner, ask);
        let (run, args) = choose_once(llm.as_mut(), state, spec, self.prompts.limits)?;
        self.count(&run);
        let steps: Vec<String> = args
            .and_then(|a| a["steps"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.as_str().map(str::trim).filter(|s| !s.is_empty()))
            .map(str::to_string)
            .take(6)
            .collect();
        // No usable plan: the task itself is the one step.
        let steps = if steps.is_empty() {
            vec![self.task.to_string()]
        } else {
            steps
        };
        Ok((steps, run))
    }

    fn execute(
        &mut self,
        step: &str,
        done: &[String],
        reflection: Option<&str>,
    ) -> Result<Attempt> {
        let mut ask = format!("Task: {}\nStep: {step}", self.task);
        if !done.is_empty() {
            ask.push_str(&format!("\nDone so far:\n{}", done.join("\n")));
        }
        if let Some(r) = reflection {
            ask.push_str(&format!(
                "\nYour last try at this step failed. Reflection: {r}"
            ));
        }
        let mut llm = self.backend.llm(0);
        let mut tools = self.backend.tools(&self.prompts.tools);
        // The step may not outlive the planner's time cap.
        let left = self.caps.time.saturating_sub(self.start.elapsed());
        let limits = Limits {
            deadline: Some(self.prompts.limits.deadline.map_or(left, |d| d.min(left))),
            ..self.prompts.limits
        };
        let run = crate::run(
            llm.as_mut(),
            tools.as_mut(),
            State::new(&self.prompts.executor, &ask),
            limits,
            &mut (),
        )?;
        self.count(&run);
        let failed_call = run
            .state
            .transcript
            .iter()
            .find(|m| m.role == Role::Tool && m.is_error)
            .map(|m| m.content.clone());
        let failure = match (&run.answer, failed_call) {
            (None, _) => format!("no answer (stopped by {})", run.stop.describe()),
            (Some(_), Some(e)) => format!("a tool call failed: {e}"),
            (Some(_), None) => String::new(),
        };
        Ok(Attempt {
            output: run.answer.clone().unwrap_or_default(),
            failure,
            reflection: None,
            run,
            reflection_run: None,
        })
    }

    fn reflect(&mut self, step: &str, attempt: &Attempt) -> Result<(String, Run)> {
        let mut llm = self.backend.llm(0);
        let mut none = self.backend.tools(&[]);
        let ask = format!(
            "Task: {}\nStep: {step}\nWhat happened: {}\nWhy it failed: {}",
            self.task, attempt.output, attempt.failure
        );
        let limits = Limits {
            max_ticks: 1,
            ..self.prompts.limits
        };
        let run = crate::run(
            llm.as_mut(),
            none.as_mut(),
            State::new(&self.prompts.reflector, &ask),
            limits,
            &mut (),
        )?;
        self.count(&run);
        self.reflections += 1;
        Ok((run.answer.clone().unwrap_or_default(), run))
    }
}

/// Runs the planner on `task`, judged by `check`.
pub fn run(
    backend: &dyn Backend,
    prompts: &Prompts,
    caps: Caps,
    task: &str,
    check: Check<'_>,
) -> Result<Outcome> {
    let mut p = Planner {
        backend,
        prompts,
        caps,
        task,
        start: Instant::now(),
        usage: Usage::default(),
        calls: 0,
        reflections: 0,
    };
    let mut plans: Vec<Plan> = Vec::new();
    let mut done: Vec<String> = Vec::new();
    let mut because = "first plan".to_string();
    let mut ask = task.to_string();
    let mut answer = None;
    let stop = 'planning: loop {
        if let Some(s) = p.spent() {
            break s;
        }
        let (steps, run) = p.plan(&ask)?;
        plans.push(Plan {
            version: plans.len() + 1,
            because: because.clone(),
            steps: steps
                .iter()
                .map(|s| PlanStep {
                    text: s.clone(),
                    attempts: Vec::new(),
                })
                .collect(),
            run,
        });
        let v = plans.len() - 1;
        let mut reflection: Option<String> = None;
        let mut i = 0;
        while i < plans[v].steps.len() {
            if let Some(s) = p.spent() {
                break 'planning s;
            }
            let text = plans[v].steps[i].text.clone();
            let mut a = p.execute(&text, &done, reflection.as_deref())?;
            let failed = !a.failure.is_empty();
            let last_step = i + 1 == plans[v].steps.len();
            // The last step's answer is the task's answer: the checker judges it.
            if !failed
                && last_step
                && let Err(why) = check(&a.output)
            {
                a.failure = format!("the checker failed the answer: {why}");
            }
            if a.failure.is_empty() {
                done.push(format!("- {text}: {}", a.output));
                if last_step {
                    answer = Some(a.output.clone());
                }
                plans[v].steps[i].attempts.push(a);
                reflection = None;
                i += 1;
                continue;
            }
            // A failure: retry the step, or re-plan, or stop; the first two cost a
            // reflection, if one is left.
            let tries = plans[v].steps[i].attempts.len() + 1;
            let retry = tries <= caps.retries;
            if !retry && plans.len() > caps.replans {
                plans[v].steps[i].attempts.push(a);
                break 'planning if caps.replans == 0 {
                    PlanStop::Retries
                } else {
                    PlanStop::Replans
                };
            }
            if p.reflections >= caps.reflections {
                plans[v].steps[i].attempts.push(a);
                break 'planning PlanStop::Reflections;
            }
            if let Some(s) = p.spent() {
                plans[v].steps[i].attempts.push(a);
                break 'planning s;
            }
            let (r, reflection_run) = p.reflect(&text, &a)?;
            a.reflection = Some(r.clone());
            a.reflection_run = Some(reflection_run);
            let failure = a.failure.clone();
            plans[v].steps[i].attempts.push(a);
            if retry {
                reflection = Some(r);
                continue;
            }
            because = format!("step {} ({text}) failed: {failure}", i + 1);
            ask = format!(
                "{task}\nDone so far:\n{}\nThe step \u{201c}{text}\u{201d} failed: {failure}\nReflection: {r}\nPlan the rest.",
                if done.is_empty() {
                    "(nothing)".to_string()
                } else {
                    done.join("\n")
                }
            );
            continue 'planning;
        }
        break PlanStop::Solved;
    };
    Ok(Outcome {
        task: task.into(),
        plans,
        stop,
        answer: if stop == PlanStop::Solved {
            answer
        } else {
            None
        },
        usage: p.usage,
        calls: p.calls,
        reflections: p.reflections,
        seconds: p.start.elapsed().as_secs_f64(),
    })
}
