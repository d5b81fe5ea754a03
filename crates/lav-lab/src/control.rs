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

    /// Checks a typed value (from a renderer's widget) against this control: the
    /// right kind, in range, snapped to the slider's step, at most `max_chars`, one of
    /// the choices; a button's press count wraps at its cycle.
    pub fn check(&self, v: Value) -> Result<Value> {
        match (&self.kind, v) {
            (ControlKind::Slider { .. }, Value::Num(x)) => self.parse(&x.to_string()),
            (ControlKind::Button { cycle }, Value::Num(x)) if x.is_finite() && x >= 0.0 => {
                Ok(Value::Num(((x as u64) % u64::from((*cycle).max(1))) as f64))
            }
            (ControlKind::Toggle, Value::Bool(b)) => Ok(Value::Bool(b)),
            (ControlKind::Choice { .. } | ControlKind::Text { .. }, Value::Text(t)) => {
                self.parse(&t)
            }
            (_, v) => Err(LabError::Control(format!(
                "{}: {v:?} is not a value for {}",
                self.key,
                self.describe()
            ))),
        }
    }

    /// The value after one press or nudge of `steps` (±1, ±10): a slider moves by
    /// its step within its range, a toggle flips, a choice moves to the next or
    /// previous option (wrapping), a button counts a press (wrapping at its cycle);
    /// text has no nudge and stays as it is.
    pub fn nudged(&self, cur: &Value, steps: f64) -> Value {
        match (&self.kind, cur) {
            (ControlKind::Slider { min, max, step }, Value::Num(v)) => {
                Value::Num((v + steps * step).clamp(*min, *max))
            }
            (ControlKind::Toggle, Value::Bool(b)) => Value::Bool(!b),
            (ControlKind::Choice { options }, Value::Text(t)) if !options.is_empty() => {
                let n = options.len() as i64;
                let i = options.iter().position(|o| o == t).unwrap_or(0) as i64;
                let j = (i + steps.signum() as i64).rem_euclid(n);
                Value::Text(options[j as usize].clone())
            }
            (ControlKind::Button { cycle }, Value::Num(v)) => {
                Value::Num(((*v as u64 + 1) % u64::from((*cycle).max(1))) as f64)
            }
            _ => cur.clone(),
        }
    }

    /// Whether `v` is of the kind this control holds.
    fn accepts(&self, v: &Value) -> bool {
        matches!(
            (&self.kind, v),
            (
                ControlKind::Slider { .. } | ControlKind::Button { .. },
                Value::Num(_)
            ) | (ControlKind::Toggle, Value::Bool(_))
                | (
                    ControlKind::Choice { .. } | ControlKind::Text { .. },
                    Value::Text(_)
                )
        )
    }

    /// Whether two declarations of the same key agree on what the value is, so a
    /// value set through one reads correctly through the other.
    pub fn same_kind(&self, other: &Control) -> bool {
        std::mem::discriminant(&self.kind) == std::mem::discriminant(&other.kind)
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
///
/// Invariant: every stored value passed [`Control::check`] for a control of that key,
/// and a lab declares each key with one kind ([`crate::Steps`] checks it), so a read
/// through any declaration of the key finds a value of the kind it expects.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Values(BTreeMap<String, Value>);

impl Values {
    /// Sets `c`'s value after checking it against `c` (see [`Control::check`]).
    pub fn set(&mut self, c: &Control, v: Value) -> Result<()> {
        let v = c.check(v)?;
        self.0.insert(c.key.to_string(), v);
        Ok(())
    }

    /// Stores `c`'s own default: valid by construction ([`crate::Steps`] checks every
    /// default when a lab's table is built), so it needs no check here.
    pub(crate) fn set_default(&mut self, c: &Control) {
        self.0.insert(c.key.to_string(), c.default.clone());
    }

    /// The value set for `key`, if any (not the default).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The value of `c`: the one set, or its default.
    pub fn value<'a>(&'a self, c: &'a Control) -> &'a Value {
        match self.0.get(c.key) {
            Some(v) if c.accepts(v) => v,
            other => {
                debug_assert!(other.is_none(), "{} holds {other:?}", c.key);
                &c.default
            }
        }
    }

    /// Numeric value of `c` (slider or button).
    pub fn num(&self, c: &Control) -> f64 {
        match self.value(c) {
            Value::Num(v) => *v,
            v => {
                debug_assert!(false, "{} is not numeric: {v:?}", c.key);
                0.0
            }
        }
    }

    pub fn usize(&self, c: &Control) -> usize {
        self.num(c).max(0.0) as usize
    }

    pub fn flag(&self, c: &Control) -> bool {
        match self.value(c) {
            Value::Bool(b) => *b,
            v => {
                debug_assert!(false, "{} is not a toggle: {v:?}", c.key);
                false
            }
        }
    }

    pub fn text<'a>(&'a self, c: &'a Control) -> &'a str {
        match self.value(c) {
            Value::Text(t) => t,
            v => {
                debug_assert!(false, "{} is not text: {v:?}", c.key);
                ""
            }
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

    #[test]
    fn typed_values_are_checked_and_nudges_wrap() {
        let s = Control::slider("k", "K", 1.0, 8.0, 1.0, 4.0);
        assert!(s.check(Value::Num(9.0)).is_err());
        assert!(s.check(Value::Bool(true)).is_err());
        assert_eq!(s.check(Value::Num(2.6)).unwrap(), Value::Num(3.0));
        assert_eq!(s.nudged(&Value::Num(8.0), 1.0), Value::Num(8.0));
        assert_eq!(s.nudged(&Value::Num(4.0), -10.0), Value::Num(1.0));
        let b = Control::button("next", "Next", 3);
        assert_eq!(b.nudged(&Value::Num(2.0), 1.0), Value::Num(0.0));
        assert_eq!(b.check(Value::Num(7.0)).unwrap(), Value::Num(1.0));
        let c = Control::choice("m", "M", &["a", "b", "c"], "a");
        assert_eq!(
            c.nudged(&Value::Text("c".into()), 1.0),
            Value::Text("a".into())
        );
        assert_eq!(
            c.nudged(&Value::Text("a".into()), -1.0),
            Value::Text("c".into())
        );
        assert!(c.check(Value::Text("d".into())).is_err());
        let t = Control::toggle("on", "On", false);
        assert_eq!(t.nudged(&Value::Bool(false), 1.0), Value::Bool(true));
        let mut v = Values::default();
        assert!(v.set(&s, Value::Text("x".into())).is_err());
        assert_eq!(v.num(&s), 4.0, "unset takes the default");
        v.set(&s, Value::Num(6.0)).unwrap();
        assert_eq!(v.num(&s), 6.0);
    }
}
