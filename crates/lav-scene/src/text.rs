//! The plain-text rendering of a scene, for pipes and screen readers: every number
//! in words and digits, no colour, no box drawing beyond ASCII.

use crate::palette::value_range;
use crate::primitive::*;
use std::fmt::Write;

/// Cells of a heatmap printed in full up to this many; larger ones are summarised.
const MAX_CELLS: usize = 400;

pub fn render_text(scene: &Scene) -> String {
    let mut out = String::new();
    for item in &scene.items {
        let _ = writeln!(out, "## {}  [{}]", item.title, item.provenance.label());
        render_item(&mut out, &item.primitive);
        out.push('\n');
    }
    out
}

/// A number in a short, stable form.
pub fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if !v.is_finite() {
        if v.is_nan() {
            "NaN".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else if v.abs() >= 1e5 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// `134515008` → `134,515,008`.
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn render_item(out: &mut String, p: &Primitive) {
    match p {
        Primitive::TokenStrip(s) => {
            let chips: Vec<String> = s
                .tokens
                .iter()
                .map(|c| {
                    let mark = if c.highlight { "*" } else { "" };
                    match c.id {
                        Some(id) => format!("[{mark}{}|{id}]", c.text),
                        None => format!("[{mark}{}]", c.text),
                    }
                })
                .collect();
            let _ = writeln!(out, "{} tokens: {}", s.tokens.len(), chips.join(" "));
        }
        Primitive::Heatmap(h) => {
            let _ = writeln!(
                out,
                "{} × {} ({} by {})",
                h.rows.len(),
                h.cols.len(),
                h.row_axis,
                h.col_axis
            );
            if h.values.len() <= MAX_CELLS {
                let _ = writeln!(out, "\t{}", h.cols.join("\t"));
                for (r, name) in h.rows.iter().enumerate() {
                    let cells: Vec<String> =
                        (0..h.cols.len()).map(|c| num(h.get(r, c) as f64)).collect();
                    let _ = writeln!(out, "{name}\t{}", cells.join("\t"));
                }
            } else {
                if let Some((min, max)) = value_range(&h.values) {
                    let _ = writeln!(out, "values from {} to {}", num(min), num(max));
                }
            }
            if let Some((r, c)) = h.selected {
                let _ = writeln!(
                    out,
                    "selected: {} / {} = {}",
                    h.rows[r],
                    h.cols[c],
                    num(h.get(r, c) as f64)
                );
            }
        }
        Primitive::TensorBlock(t) => {
            let _ = writeln!(out, "tensor: {}", t.describe());
            for (i, (s, e)) in t.highlight.iter().enumerate() {
                if let Some(a) = t.axes.get(i) {
                    let _ = writeln!(out, "highlighted {a}: {s}..{e}");
                }
            }
        }
        Primitive::PointCloud(pc) => {
            let _ = writeln!(
                out,
                "{} points in {}-D ({})",
                pc.points.len(),
                pc.dims,
                pc.axes.join(", ")
            );
            for p in &pc.points {
                let c: Vec<String> = p.coords.iter().map(|&v| num(v as f64)).collect();
                let _ = writeln!(out, "{}\tgroup {}\t({})", p.label, p.group, c.join(", "));
            }
        }
        Primitive::Bars(b) => {
            for bar in &b.bars {
                let _ = writeln!(out, "{}\t{} {}", bar.label, num(bar.value), b.unit);
            }
        }
        Primitive::Timeline(t) => {
            for s in &t.spans {
                let lane = t.lanes.get(s.lane).map(String::as_str).unwrap_or("?");
                let _ = writeln!(
                    out,
                    "{lane}\t{}..{} {}\t{}",
                    num(s.start),
                    num(s.end),
                    t.unit,
                    s.label
                );
            }
        }
        Primitive::BlockGrid(g) => {
            let used = g.cells.iter().filter(|c| c.owner.is_some()).count();
            let _ = writeln!(out, "{} of {} blocks used", used, g.cells.len());
            for row in g.cells.chunks(g.columns.max(1)) {
                let cells: Vec<String> = row
                    .iter()
                    .map(|c| match c.owner {
                        Some(o) => format!("{o}:{}", c.label),
                        None => ".".into(),
                    })
                    .collect();
                let _ = writeln!(out, "{}", cells.join(" "));
            }
        }
        Primitive::Tree(t) => tree(out, &t.root, 0),
        Primitive::Graph(g) => {
            for e in &g.edges {
                let _ = writeln!(out, "{} -> {}  {}", e.from, e.to, e.label);
            }
        }
        Primitive::Plot(p) => {
            let _ = writeln!(
                out,
                "x: {}{}, y: {}{}",
                p.x_label,
                if p.x_log { " (log)" } else { "" },
                p.y_label,
                if p.y_log { " (log)" } else { "" }
            );
            for s in &p.series {
                let pts: Vec<String> = s
                    .points
                    .iter()
                    .map(|(x, y)| format!("({}, {})", num(*x), num(*y)))
                    .collect();
                let _ = writeln!(out, "{}: {}", s.name, pts.join(" "));
            }
        }
        Primitive::Table(t) => {
            let _ = writeln!(out, "{}", t.columns.join("\t"));
            for r in &t.rows {
                let _ = writeln!(out, "{}", r.join("\t"));
            }
        }
        Primitive::Blocks(b) => {
            let active: Vec<&Block> = b.blocks.iter().filter(|x| x.active).collect();
            let _ = writeln!(
                out,
                "{} blocks ({}), {} active:",
                b.blocks.len(),
                b.unit,
                active.len()
            );
            for x in active {
                let range = match &x.values {
                    Some(h) => match value_range(&h.values) {
                        Some((lo, hi)) => format!("\tvalues {} to {}", num(lo), num(hi)),
                        None => String::new(),
                    },
                    None => String::new(),
                };
                let _ = writeln!(out, "{}\t{}\t{}{range}", x.id, x.label, x.describe());
            }
        }
        Primitive::Progress(x) => {
            let n = (x.fraction() * 20.0).round() as usize;
            let _ = writeln!(
                out,
                "[{}{}] {:.0}% {} ({} of {})",
                "#".repeat(n),
                ".".repeat(20 - n),
                x.fraction() * 100.0,
                x.label,
                x.done,
                x.total
            );
        }
        Primitive::Text(t) => {
            let prefix = match t.style {
                TextStyle::Plain => "",
                TextStyle::Callout => "> ",
                TextStyle::Warning => "! ",
            };
            for line in t.body.lines() {
                let _ = writeln!(out, "{prefix}{line}");
            }
        }
    }
}

fn tree(out: &mut String, n: &TreeNode, depth: usize) {
    let v = n
        .value
        .as_deref()
        .map(|v| format!(": {v}"))
        .unwrap_or_default();
    let _ = writeln!(out, "{}{}{}", "  ".repeat(depth), n.label, v);
    for c in &n.children {
        tree(out, c, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::palette::{ColorScale, Role};

    #[test]
    fn text_shows_provenance_values_and_selection() {
        let s = Scene::new()
            .with(Item::new(
                "h",
                "Attention",
                Provenance::model("SmolLM2-135M"),
                Primitive::Heatmap(Heatmap {
                    rows: vec!["a".into(), "b".into()],
                    cols: vec!["a".into(), "b".into()],
                    values: vec![1.0, f32::NEG_INFINITY, 0.25, 0.75],
                    scale: ColorScale::fit(&[0.0, 1.0]),
                    selected: Some((1, 0)),
                    row_axis: "query".into(),
                    col_axis: "key".into(),
                }),
            ))
            .with(Item::new(
                "t",
                "Tokens",
                Provenance::what_if("no mask"),
                Primitive::TokenStrip(TokenStrip {
                    tokens: vec![Chip {
                        text: "hi".into(),
                        id: Some(7),
                        role: Role::Token,
                        highlight: false,
                    }],
                }),
            ));
        let t = render_text(&s);
        assert!(t.contains("## Attention  [model: SmolLM2-135M]"), "{t}");
        assert!(t.contains("a\t1\t-inf"), "{t}");
        assert!(t.contains("selected: b / a = 0.2500"), "{t}");
        assert!(
            t.contains("[what-if: no mask]") && t.contains("[hi|7]"),
            "{t}"
        );
    }
}
