//! A recorded agent run as a scene: the span waterfall (`invoke_agent`, `chat`,
//! `execute_tool`, as the OpenTelemetry export names them) and the event table.
//! `lav trace show` draws it; the agent labs reuse it.

use lav_agent::{Event, Replay};
use lav_agent_types::Reply;
use lav_lab::items::{sig, table};
use lav_scene::{Item, Primitive, Provenance, Role, Scene, Span, Timeline};

/// The waterfall and table of a recorded run, times in milliseconds from its start.
pub fn trace_scene(r: &Replay, source: &str) -> Scene {
    let prov = || Provenance::engine(format!("lav agent run, recorded in {source}"));
    let mut lanes = vec!["invoke_agent".to_string()];
    let mut spans = Vec::new();
    let mut rows = Vec::new();
    let lane = |name: String, lanes: &mut Vec<String>| -> usize {
        match lanes.iter().position(|l| *l == name) {
            Some(i) => i,
            None => {
                lanes.push(name);
                lanes.len() - 1
            }
        }
    };
    let mut end: f64 = 0.0;
    for e in &r.events {
        match e {
            Event::Reply {
                tick,
                reply,
                seconds,
                at,
            } => {
                let name = format!("chat {}", r.model);
                let l = lane(name.clone(), &mut lanes);
                let u = reply.usage();
                let (what, role) = match reply {
                    Reply::Final { text, .. } => {
                        (format!("answer: {}", clip(text, 60)), Role::Token)
                    }
                    Reply::Calls { calls, .. } => (
                        format!(
                            "calls {}",
                            calls
                                .iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        Role::Head,
                    ),
                };
                spans.push(Span {
                    lane: l,
                    start: at * 1e3,
                    end: (at + seconds) * 1e3,
                    label: format!("tick {tick}"),
                    role,
                });
                end = end.max(at + seconds);
                rows.push(vec![
                    tick.to_string(),
                    name,
                    sig(at * 1e3),
                    sig(seconds * 1e3),
                    format!("{} in / {} out", u.input_tokens, u.output_tokens),
                    what,
                ]);
            }
            Event::Tool {
                tick,
                call,
                result,
                seconds,
                at,
            } => {
                let name = format!("execute_tool {}", call.name);
                let l = lane(name.clone(), &mut lanes);
                spans.push(Span {
                    lane: l,
                    start: at * 1e3,
                    end: (at + seconds) * 1e3,
                    label: call.id.clone(),
                    role: if result.is_error {
                        Role::WhatIf
                    } else {
                        Role::Channel
                    },
                });
                end = end.max(at + seconds);
                rows.push(vec![
                    tick.to_string(),
                    name,
                    sig(at * 1e3),
                    sig(seconds * 1e3),
                    clip(&call.arguments.to_string(), 40),
                    format!(
                        "{}{}",
                        if result.is_error { "ERROR " } else { "" },
                        clip(&result.content, 60)
                    ),
                ]);
            }
            _ => {}
        }
    }
    let (stop, ticks, usage) = match r.recorded() {
        Some(run) => (format!("{:?}", run.stop), run.state.ticks, run.state.usage),
        None => ("did not finish".into(), 0, Default::default()),
    };
    spans.insert(
        0,
        Span {
            lane: 0,
            start: 0.0,
            end: end * 1e3,
            label: format!("{ticks} ticks, {stop}"),
            role: Role::Residual,
        },
    );
    Scene::new()
        .with(Item::new(
            "waterfall",
            format!(
                "Trace: {} ticks, {} input + {} output tokens, stopped by {stop}",
                ticks, usage.input_tokens, usage.output_tokens
            ),
            prov(),
            Primitive::Timeline(Timeline {
                lanes,
                spans,
                unit: "ms".into(),
            }),
        ))
        .with(table(
            "events",
            "Spans in order",
            prov(),
            &[
                "tick",
                "span",
                "start ms",
                "ms",
                "tokens / arguments",
                "result",
            ],
            rows,
        ))
}

/// `s` on one line, cut to `n` characters with an ellipsis.
pub fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        one_line.chars().take(n).collect::<String>() + "…"
    }
}
