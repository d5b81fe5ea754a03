//! Short constructors for the scene items labs build most often, so a lab reads as
//! what it shows rather than as struct literals.

use lav_scene::*;

/// The model whose numbers a lab shows: its display name, and why its numbers are a
/// what-if when its weights are not the stored ones (re-quantized with `--weights`).
/// Build it from the loader (`model_name()`, `weights().what_if()`).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSource {
    pub name: String,
    pub what_if: Option<String>,
}

impl ModelSource {
    pub fn new(name: impl Into<String>, what_if: Option<String>) -> Self {
        ModelSource {
            name: name.into(),
            what_if,
        }
    }

    /// The provenance of numbers the model computed, `label` naming what they are
    /// ("SmolLM2…: layer 3"): the model's, or a what-if for changed weights.
    pub fn prov(&self, label: impl Into<String>) -> Provenance {
        let label = label.into();
        match &self.what_if {
            None => Provenance::model(label),
            Some(why) => Provenance::what_if(format!("{label}: {why}")),
        }
    }
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

pub fn text(id: &str, title: &str, prov: Provenance, body: impl Into<String>) -> Item {
    styled(id, title, prov, body, TextStyle::Plain)
}

pub fn styled(
    id: &str,
    title: &str,
    prov: Provenance,
    body: impl Into<String>,
    style: TextStyle,
) -> Item {
    Item::new(
        id,
        title,
        prov,
        Primitive::Text(Text {
            body: body.into(),
            style,
        }),
    )
}

pub fn table(
    id: &str,
    title: &str,
    prov: Provenance,
    columns: &[&str],
    rows: Vec<Vec<String>>,
) -> Item {
    Item::new(
        id,
        title,
        prov,
        Primitive::Table(Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        }),
    )
}

pub fn bars(id: &str, title: &str, prov: Provenance, unit: &str, bars: Vec<Bar>) -> Item {
    Item::new(
        id,
        title,
        prov,
        Primitive::Bars(Bars {
            bars,
            unit: unit.into(),
            log: false,
        }),
    )
}

pub fn bar(label: impl Into<String>, value: f64, role: Role) -> Bar {
    Bar {
        label: label.into(),
        value,
        role,
    }
}

pub fn strip(id: &str, title: &str, prov: Provenance, chips: Vec<Chip>) -> Item {
    Item::new(
        id,
        title,
        prov,
        Primitive::TokenStrip(TokenStrip { tokens: chips }),
    )
}

pub fn chip(text: impl Into<String>, id: Option<u32>, role: Role, highlight: bool) -> Chip {
    Chip {
        text: text.into(),
        id,
        role,
        highlight,
    }
}

/// A number with a sensible number of significant digits for a table cell.
pub fn sig(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    }
}
