//! Short constructors for the scene items labs build most often, so a lab reads as
//! what it shows rather than as struct literals.

use lav_scene::*;

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
