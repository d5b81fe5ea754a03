//! The controls a lab declares (slider, toggle, choice, text input, button) and the
//! values the learner gives them. Renderers draw controls from these declarations;
//! `--set key=value` is checked against them.

use crate::error::{LabError, Result};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Control {
    pub key: &'static str,
    pub label: &'static str,
    pub kind: ControlKind,
    pub default: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlKind {
    Slider {
        min: f64,
        max: f64,
        step: f64,
    },
    Toggle,
    Choice {
        options: Vec<String>,
    },
    Text {
        max_chars: usize,
    },
    /// A press advances a counter (e.g. "next merge"); the value is the press count,
    /// wrapping at `cycle`.
    Button {
        cycle: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Num(f64),
    Bool(bool),
    Text(String),
}

impl Control {
    pub fn slider(
        key: &'static str,
        label: &'static str,
        min: f64,
        max: f64,
        step: f64,
        default: f64,
    ) -> Self {
        Control {
            key,
            label,
            kind: ControlKind::Slider { min, max, step },
            default: Value::Num(default),
        }
    }
    pub fn toggle(key: &'static str, label: &'static str, default: bool) -> Self {
        Control {
            key,
            label,
            kind: ControlKind::Toggle,
            default: Value::Bool(default),
        }
    }
    pub fn choice(key: &'static str, label: &'static str, options: &[&str], default: &str) -> Self {
        Control {
            key,
            label,
            kind: ControlKind::Choice {
                options: options.iter().map(|s| s.to_string()).collect(),
            },
            default: Value::Text(default.to_string()),
        }
    }
    pub fn text(key: &'static str, label: &'static str, max_chars: usize, default: &str) -> Self {
        Control {
            key,
            label,
            kind: ControlKind::Text { max_chars },
            default: Value::Text(default.to_string()),
        }
    }
    pub fn button(key: &'static str, label: &'static str, cycle: u32) -> Self {
        Control {
            key,
            label,
            kind: ControlKind::Button { cycle },
            default: Value::Num(0.0),
        }
    }

    /// Parses and checks a value typed by the learner (`--set key=value`).
    pub fn parse(&self, raw: &str) -> Result<Value> {
        // Echo at most 40 characters of what was typed, so the error stays one line.
        let shown: String = if raw.chars().count() > 40 {
            raw.chars().take(40).collect::<String>() + "…"
        } else {
            raw.to_string()
        };
        let bad = |what: String| LabError::Control(format!("--set {}={shown}: {what}", self.key));
        match &self.kind {
            ControlKind::Slider { min, max, step } => {
                let v: f64 = raw
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("expected a number from {min} to {max}")))?;
                if !(v.is_finite() && *min <= v && v <= *max) {
                    return Err(bad(format!(
                        "out of range: {} takes {min} to {max}",
                        self.key
                    )));
                }
                let k = ((v - min) / step).round();
                Ok(Value::Num((min + k * step).min(*max)))
            }
            ControlKind::Toggle => match raw.trim() {
                "on" | "true" | "1" | "yes" => Ok(Value::Bool(true)),
                "off" | "false" | "0" | "no" => Ok(Value::Bool(false)),
                _ => Err(bad("expected on or off".into())),
            },
            ControlKind::Choice { options } => {
                if options.iter().any(|o| o == raw) {
                    Ok(Value::Text(raw.to_string()))
                } else {
                    Err(bad(format!("choose one of: {}", options.join(", "))))
                }
            }
            ControlKind::Text { max_chars } => {
                if raw.chars().count() > *max_chars {
                    Err(bad(format!("at most {max_chars} characters")))
                } else {
                    Ok(Value::Text(raw.to_string()))
                }
            }
            ControlKind::Button { cycle } => {
                let v: u32 = raw
                    .trim()
                    .parse()
                    .map_err(|_| bad("expected a press count".into()))?;
                Ok(Value::Num((v % cycle.max(&1)) as f64))
            }
        }
    }

    /// A one-line description for help and error messages.
    pub fn describe(&self) -> String {
        match &self.kind {
            ControlKind::Slider { min, max, step } => {
                format!("{} ({min}..{max} step {step})", self.key)
            }
            ControlKind::Toggle => format!("{} (on|off)", self.key),
            ControlKind::Choice { options } => format!("{} ({})", self.key, options.join("|")),
            ControlKind::Text { .. } => format!("{} (text)", self.key),
            ControlKind::Button { .. } => format!("{} (presses)", self.key),
        }
    }
}

/// The learner's control values, by key. Missing keys take the control's default.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Values(pub BTreeMap<String, Value>);

impl Values {
    pub fn set(&mut self, key: &str, v: Value) {
        self.0.insert(key.to_string(), v);
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// Numeric value of `c` (slider or button), or its default.
    pub fn num(&self, c: &Control) -> f64 {
        match self.0.get(c.key).unwrap_or(&c.default) {
            Value::Num(v) => *v,
            _ => match c.default {
                Value::Num(v) => v,
                _ => 0.0,
            },
        }
    }

    pub fn usize(&self, c: &Control) -> usize {
        self.num(c).max(0.0) as usize
    }

    pub fn flag(&self, c: &Control) -> bool {
        match self.0.get(c.key).unwrap_or(&c.default) {
            Value::Bool(b) => *b,
            _ => matches!(c.default, Value::Bool(true)),
        }
    }

    pub fn text<'a>(&'a self, c: &'a Control) -> &'a str {
        match self.0.get(c.key) {
            Some(Value::Text(t)) => t,
            _ => match &c.default {
                Value::Text(t) => t,
                _ => "",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliders_snap_and_reject_out_of_range() {
        let c = Control::slider("layer", "Layer", 0.0, 29.0, 1.0, 0.0);
        assert_eq!(c.parse("3.4").unwrap(), Value::Num(3.0));
        let e = c.parse("30").unwrap_err().to_string();
        assert!(e.contains("0 to 29"), "{e}");
        assert!(c.parse("x").is_err());
        let long = Control::text("t", "T", 5, "")
            .parse(&"y".repeat(500))
            .unwrap_err()
            .to_string();
        assert!(
            long.len() < 100 && long.contains("at most 5 characters"),
            "{long}"
        );
        let t = Control::choice("dims", "Dims", &["2", "3"], "2");
        assert!(t.parse("4").unwrap_err().to_string().contains("2, 3"));
        assert_eq!(
            Control::toggle("mask", "Mask", true).parse("off").unwrap(),
            Value::Bool(false)
        );
    }
}
