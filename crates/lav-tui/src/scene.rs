//! Scene primitives as text graphics: coloured cells for heatmaps, bars of blocks,
//! tables, chips for tokens, braille charts for plots and point clouds.

use lav_scene::text::num;
use lav_scene::*;
use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span, Text as RText};
use ratatui::widgets::{
    Axis, Block, Chart, Dataset, GraphType, Paragraph, Row, Table as RTable, Wrap,
};

fn color(c: Rgb) -> Color {
    Color::Rgb(c.0, c.1, c.2)
}

/// Black or white text, whichever reads better on `bg`.
fn on(bg: Rgb) -> Color {
    color(bg.ink())
}

/// Rows an item would like (borders included), given the width it gets.
fn wanted_height(p: &Primitive, width: u16) -> u16 {
    let w = width.saturating_sub(2).max(1) as usize;
    let h = match p {
        Primitive::TokenStrip(s) => {
            let chars: usize = s.tokens.iter().map(|c| c.text.chars().count() + 2).sum();
            2 * chars.div_ceil(w).max(1)
        }
        Primitive::Heatmap(h) => h.rows.len().min(40) + 3,
        Primitive::TensorBlock(_) => 4,
        Primitive::PointCloud(_) | Primitive::Plot(_) => 14,
        Primitive::Bars(b) => b.bars.len(),
        Primitive::Timeline(t) => t.lanes.len() + 1,
        Primitive::BlockGrid(g) => g.cells.len().div_ceil(g.columns.max(1)) + 1,
        Primitive::Tree(t) => count_nodes(&t.root),
        Primitive::Graph(g) => g.edges.len().max(1) + g.nodes.len() / 4,
        Primitive::Table(t) => t.rows.len() + 1,
        Primitive::Progress(_) => 1,
        Primitive::Blocks(b) => {
            let active = b.blocks.iter().filter(|x| x.active);
            let heat = active
                .clone()
                .find_map(|x| x.values.as_ref())
                .map_or(0, |h| h.rows.len().min(40) + 3);
            active.count() + 1 + heat
        }
        Primitive::Text(t) => t
            .body
            .lines()
            .map(|l| l.chars().count().div_ceil(w).max(1))
            .sum(),
    };
    (h + 2).min(u16::MAX as usize) as u16
}

fn count_nodes(n: &TreeNode) -> usize {
    1 + n.children.iter().map(count_nodes).sum::<usize>()
}

/// Lays the items out top to bottom, skipping the first `scroll`, until space runs out.
/// Returns whether some items are out of view.
pub fn draw_scene(f: &mut Frame, area: Rect, scene: &Scene, scroll: usize) -> bool {
    let mut y = area.y;
    let mut drawn = 0;
    let bottom = area.y + area.height;
    for item in scene.items.iter().skip(scroll) {
        if y >= bottom {
            break;
        }
        let h = wanted_height(&item.primitive, area.width).min(bottom - y);
        if h < 3 {
            break;
        }
        let rect = Rect::new(area.x, y, area.width, h);
        draw_item(f, rect, item);
        drawn += 1;
        y += h;
    }
    // More items than fit, or some scrolled past: the caller says so in its footer.
    scroll > 0 || drawn < scene.items.len().saturating_sub(scroll)
}

fn draw_item(f: &mut Frame, area: Rect, item: &Item) {
    let prov_style = if item.provenance.is_what_if() {
        Style::new().fg(color(Role::WhatIf.color())).bold()
    } else {
        Style::new().add_modifier(Modifier::DIM)
    };
    // Long labels keep their start (the kind of provenance) and lose their end.
    let fit = |s: String| -> String {
        let room = area.width.saturating_sub(4) as usize;
        if s.chars().count() <= room {
            s
        } else {
            s.chars().take(room.saturating_sub(1)).collect::<String>() + "…"
        }
    };
    let block = Block::bordered()
        .title(Line::from(format!(" {} ", fit(item.title.clone()))).bold())
        .title_bottom(
            Line::styled(format!(" {} ", fit(item.provenance.label())), prov_style).right_aligned(),
        );
    let inner = block.inner(area);
    f.render_widget(block, area);
    match &item.primitive {
        Primitive::TokenStrip(s) => token_strip(f, inner, s),
        Primitive::Heatmap(h) => heatmap(f, inner, h),
        Primitive::Table(t) => table(f, inner, t),
        Primitive::Bars(b) => bars(f, inner, b),
        Primitive::Plot(p) => plot(f, inner, p),
        Primitive::PointCloud(pc) => point_cloud(f, inner, pc),
        Primitive::Text(t) => {
            let style = match t.style {
                TextStyle::Plain => Style::new(),
                TextStyle::Callout => Style::new().bold(),
                TextStyle::Warning => Style::new().fg(color(Role::WhatIf.color())).bold(),
            };
            f.render_widget(
                Paragraph::new(t.body.as_str())
                    .style(style)
                    .wrap(Wrap { trim: false }),
                inner,
            );
        }
        Primitive::Graph(g) => graph(f, inner, g),
        Primitive::Timeline(t) => timeline(f, inner, t),
        Primitive::BlockGrid(g) => block_grid(f, inner, g),
        Primitive::TensorBlock(t) => tensor_block(f, inner, t),
        Primitive::Blocks(b) => blocks(f, inner, b),
        Primitive::Progress(x) => {
            f.render_widget(
                ratatui::widgets::Gauge::default()
                    .ratio(x.fraction())
                    .label(format!("{:.0}% {}", x.fraction() * 100.0, x.label))
                    .gauge_style(Style::new().fg(color(Role::Highlight.color()))),
                inner,
            );
        }
        other => {
            // Primitives without a dedicated drawing yet use their text rendering.
            let s = lav_scene::render_text(&Scene::new().with(Item::new(
                "",
                "",
                item.provenance.clone(),
                other.clone(),
            )));
            let body: String = s.lines().skip(1).collect::<Vec<_>>().join("\n");
            f.render_widget(Paragraph::new(body).wrap(Wrap { trim: false }), inner);
        }
    }
}

fn token_strip(f: &mut Frame, area: Rect, s: &TokenStrip) {
    // Chips on one line, their ids dimmed on the line below, wrapped by hand so the
    // id stays under its chip.
    let width = area.width.max(1) as usize;
    let mut lines: Vec<Line> = Vec::new();
    let (mut top, mut bottom, mut used) = (Vec::new(), Vec::new(), 0usize);
    for (i, c) in s.tokens.iter().enumerate() {
        let bg = if c.highlight {
            Role::Highlight.color()
        } else {
            c.role.color()
        };
        let text = format!("{} ", c.text);
        let id = c.id.map(|i| i.to_string()).unwrap_or_default();
        let w = text.chars().count().max(id.chars().count() + 1);
        if used + w > width && used > 0 {
            lines.push(Line::from(std::mem::take(&mut top)));
            lines.push(Line::from(std::mem::take(&mut bottom)));
            used = 0;
        }
        // Alternate shades so neighbouring chips stay apart.
        let style = Style::new().bg(color(bg)).fg(on(bg));
        let style = if i % 2 == 1 {
            style.add_modifier(Modifier::DIM)
        } else {
            style
        };
        top.push(Span::styled(format!("{text:<w$}"), style));
        bottom.push(Span::styled(
            format!("{id:<w$}"),
            Style::new().add_modifier(Modifier::DIM),
        ));
        used += w;
    }
    lines.push(Line::from(top));
    lines.push(Line::from(bottom));
    f.render_widget(Paragraph::new(RText::from(lines)), area);
}

fn heatmap(f: &mut Frame, area: Rect, h: &Heatmap) {
    let label_w = h
        .rows
        .iter()
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0)
        .min(10) as u16
        + 1;
    let cols_fit = ((area.width.saturating_sub(label_w)) / 2) as usize;
    let rows_fit = area.height.saturating_sub(1) as usize;
    let (nr, nc) = (h.rows.len().min(rows_fit), h.cols.len().min(cols_fit));
    let mut lines = Vec::with_capacity(nr + 1);
    // Column labels every fifth column, where there is room for them.
    let mut head = " ".repeat(label_w as usize);
    for c in (0..nc).step_by(5) {
        let l: String = h.cols[c].chars().take(9).collect();
        head.push_str(&format!("{l:<10}"));
    }
    let head = vec![Span::styled(head, Style::new().add_modifier(Modifier::DIM))];
    lines.push(Line::from(head));
    for r in 0..nr {
        let mut spans = vec![Span::raw(format!(
            "{:>w$} ",
            h.rows[r].chars().take(10).collect::<String>(),
            w = label_w as usize - 1
        ))];
        for c in 0..nc {
            let v = h.get(r, c) as f64;
            let bg = h.scale.color(v);
            let mark = if h.selected == Some((r, c)) {
                "◆◆"
            } else {
                "  "
            };
            spans.push(Span::styled(mark, Style::new().bg(color(bg)).fg(on(bg))));
        }
        lines.push(Line::from(spans));
    }
    // The colour scale, low to high, with its end values.
    let (lo, hi) = match h.scale {
        ColorScale::Sequential { min, max } => (min, max),
        ColorScale::Diverging { min, max, .. } => (min, max),
    };
    let mut legend = vec![Span::raw(format!(
        "{:>w$} ",
        num(lo),
        w = label_w as usize - 1
    ))];
    for i in 0..12 {
        let c = h.scale.color(lo + (hi - lo) * i as f64 / 11.0);
        legend.push(Span::styled("█", Style::new().fg(color(c))));
    }
    legend.push(Span::raw(format!(" {}", num(hi))));
    if rows_fit > nr {
        lines.push(Line::from(legend));
    }
    if nr < h.rows.len() || nc < h.cols.len() {
        lines.push(Line::styled(
            format!(
                "showing {nr} of {} rows, {nc} of {} columns",
                h.rows.len(),
                h.cols.len()
            ),
            Style::new().add_modifier(Modifier::DIM),
        ));
    }
    f.render_widget(Paragraph::new(RText::from(lines)), area);
}

fn table(f: &mut Frame, area: Rect, t: &lav_scene::Table) {
    let n = t.columns.len().max(1);
    let widths: Vec<Constraint> = (0..n)
        .map(|c| {
            let w = t
                .rows
                .iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .chain(std::iter::once(
                    t.columns.get(c).map_or(0, |s| s.chars().count()),
                ))
                .max()
                .unwrap_or(1);
            Constraint::Max(w.min(60) as u16 + 1)
        })
        .collect();
    let rows = t
        .rows
        .iter()
        .map(|r| Row::new(r.iter().map(String::as_str)));
    let header = Row::new(t.columns.iter().map(String::as_str)).style(Style::new().bold());
    f.render_widget(RTable::new(rows, widths).header(header), area);
}

fn bars(f: &mut Frame, area: Rect, b: &Bars) {
    let label_w = b
        .bars
        .iter()
        .map(|x| x.label.chars().count())
        .max()
        .unwrap_or(0)
        .min(24);
    let value = |v: f64| if b.log { v.max(1e-12).log10() } else { v };
    let lo = if b.log {
        b.bars
            .iter()
            .map(|x| value(x.value))
            .fold(f64::INFINITY, f64::min)
    } else {
        0f64.min(b.bars.iter().map(|x| x.value).fold(0.0, f64::min))
    };
    let hi = b
        .bars
        .iter()
        .map(|x| value(x.value))
        .fold(f64::NEG_INFINITY, f64::max);
    let room = (area.width as usize).saturating_sub(label_w + 14).max(1);
    let lines: Vec<Line> = b
        .bars
        .iter()
        .map(|x| {
            let frac = if hi > lo {
                (value(x.value) - lo) / (hi - lo)
            } else {
                1.0
            };
            let n = (frac * room as f64).round().max(0.0) as usize;
            Line::from(vec![
                Span::raw(format!(
                    "{:>label_w$} ",
                    x.label.chars().take(label_w).collect::<String>()
                )),
                Span::styled("█".repeat(n), Style::new().fg(color(x.role.color()))),
                Span::raw(format!(" {} {}", num(x.value), b.unit)),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(RText::from(lines)), area);
}

fn bounds(v: impl Iterator<Item = f64>) -> [f64; 2] {
    let (lo, hi) = v
        .filter(|x| x.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
    if !lo.is_finite() {
        [0.0, 1.0]
    } else if lo == hi {
        [lo - 1.0, hi + 1.0]
    } else {
        [lo, hi]
    }
}

fn axis(title: &str, b: [f64; 2], log: bool) -> Axis<'static> {
    let show = |v: f64| if log { num(10f64.powf(v)) } else { num(v) };
    Axis::default()
        .title(if log {
            format!("{title} (log)")
        } else {
            title.to_string()
        })
        .bounds(b)
        .labels([show(b[0]), show((b[0] + b[1]) / 2.0), show(b[1])])
}

fn plot(f: &mut Frame, area: Rect, p: &Plot) {
    let tx = |x: f64| if p.x_log { x.max(1e-300).log10() } else { x };
    let ty = |y: f64| if p.y_log { y.max(1e-300).log10() } else { y };
    let data: Vec<Vec<(f64, f64)>> = p
        .series
        .iter()
        .map(|s| s.points.iter().map(|&(x, y)| (tx(x), ty(y))).collect())
        .collect();
    let xb = bounds(data.iter().flatten().map(|p| p.0));
    let yb = bounds(data.iter().flatten().map(|p| p.1));
    let sets: Vec<Dataset> = p
        .series
        .iter()
        .zip(&data)
        .map(|(s, d)| {
            Dataset::default()
                .name(s.name.clone())
                .marker(Marker::Braille)
                .graph_type(if s.line {
                    GraphType::Line
                } else {
                    GraphType::Scatter
                })
                .style(Style::new().fg(color(s.role.color())))
                .data(d)
        })
        .collect();
    f.render_widget(
        Chart::new(sets)
            .x_axis(axis(&p.x_label, xb, p.x_log))
            .y_axis(axis(&p.y_label, yb, p.y_log)),
        area,
    );
}

fn point_cloud(f: &mut Frame, area: Rect, pc: &PointCloud) {
    // 3-D clouds show their first two axes here; the 3-D app shows all three.
    let groups = pc.points.iter().map(|p| p.group).max().map_or(0, |g| g + 1);
    let data: Vec<Vec<(f64, f64)>> = (0..groups)
        .map(|g| {
            pc.points
                .iter()
                .filter(|p| p.group == g)
                .map(|p| {
                    (
                        p.coords[0] as f64,
                        p.coords.get(1).copied().unwrap_or(0.0) as f64,
                    )
                })
                .collect()
        })
        .collect();
    let xb = bounds(data.iter().flatten().map(|p| p.0));
    let yb = bounds(data.iter().flatten().map(|p| p.1));
    let sets: Vec<Dataset> = data
        .iter()
        .enumerate()
        .map(|(g, d)| {
            Dataset::default()
                .marker(Marker::Dot)
                .graph_type(GraphType::Scatter)
                .style(Style::new().fg(color(Role::series(g))))
                .data(d)
        })
        .collect();
    let x = pc.axes.first().cloned().unwrap_or_default();
    let y = pc.axes.get(1).cloned().unwrap_or_default();
    f.render_widget(
        Chart::new(sets)
            .x_axis(axis(&x, xb, false))
            .y_axis(axis(&y, yb, false)),
        area,
    );
}

/// Edges grouped by target: each target's sources bracketed into one arrow, which
/// draws fan-in shapes like grouped-query attention cleanly.
fn graph(f: &mut Frame, area: Rect, g: &Graph) {
    let label = |id: &str| -> (String, Role) {
        g.nodes
            .iter()
            .find(|n| n.id == id)
            .map_or((id.to_string(), Role::Muted), |n| (n.label.clone(), n.role))
    };
    let mut targets: Vec<&str> = Vec::new();
    for e in &g.edges {
        if !targets.contains(&e.to.as_str()) {
            targets.push(&e.to);
        }
    }
    let width = g
        .edges
        .iter()
        .map(|e| label(&e.from).0.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::new();
    for t in targets {
        let from: Vec<&Edge> = g.edges.iter().filter(|e| e.to == t).collect();
        let mid = from.len() / 2;
        for (i, e) in from.iter().enumerate() {
            let (name, role) = label(&e.from);
            let joint = match (i, from.len()) {
                (_, 1) => "──",
                (0, _) => "─┐",
                (i, n) if i == n - 1 => "─┘",
                _ => "─┤",
            };
            let mut spans = vec![
                Span::styled(
                    format!("{name:>width$}"),
                    Style::new().fg(color(role.color())),
                ),
                Span::raw(format!(" {joint}")),
            ];
            if i == mid {
                let (tname, trole) = label(t);
                spans.push(Span::raw("──▶ "));
                spans.push(Span::styled(
                    tname,
                    Style::new().fg(color(trole.color())).bold(),
                ));
                if !e.label.is_empty() {
                    spans.push(Span::raw(format!("  {}", e.label)));
                }
            }
            lines.push(Line::from(spans));
        }
    }
    f.render_widget(Paragraph::new(RText::from(lines)), area);
}

/// Lanes as rows; each span a run of blocks placed by its start and end on a shared
/// time axis.
fn timeline(f: &mut Frame, area: Rect, t: &Timeline) {
    let label_w = t
        .lanes
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0)
        .min(16);
    let room = (area.width as usize).saturating_sub(label_w + 1).max(1);
    let (lo, hi) = t
        .spans
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), s| {
            (a.min(s.start), b.max(s.end))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let col = |x: f64| (((x - lo) / (hi - lo)) * room as f64).round() as usize;
    let mut lines = Vec::new();
    for (i, lane) in t.lanes.iter().enumerate() {
        let mut cells: Vec<Span> = vec![Span::raw(format!(
            "{:>label_w$} ",
            lane.chars().take(label_w).collect::<String>()
        ))];
        let mut at = 0;
        let mut spans: Vec<&lav_scene::Span> = t.spans.iter().filter(|s| s.lane == i).collect();
        spans.sort_by(|a, b| a.start.total_cmp(&b.start));
        for s in spans {
            let (a, b) = (col(s.start).max(at), col(s.end).max(col(s.start) + 1));
            if a > at {
                cells.push(Span::raw(" ".repeat(a - at)));
            }
            let w = b.saturating_sub(a).max(1);
            let text: String = s
                .label
                .chars()
                .chain(std::iter::repeat(' '))
                .take(w)
                .collect();
            let bg = s.role.color();
            cells.push(Span::styled(text, Style::new().bg(color(bg)).fg(on(bg))));
            at = a + w;
        }
        lines.push(Line::from(cells));
    }
    lines.push(Line::styled(
        format!("{:>label_w$} {} … {} {}", "", num(lo), num(hi), t.unit),
        Style::new().add_modifier(Modifier::DIM),
    ));
    f.render_widget(Paragraph::new(RText::from(lines)), area);
}

/// One coloured square per block: free blocks dim, owned ones in their owner's colour.
fn block_grid(f: &mut Frame, area: Rect, g: &BlockGrid) {
    let cols = g.columns.max(1);
    let lines: Vec<Line> = g
        .cells
        .chunks(cols)
        .map(|row| {
            Line::from(
                row.iter()
                    .map(|c| match c.owner {
                        Some(o) => {
                            let bg = Role::series(o);
                            let l: String = c
                                .label
                                .chars()
                                .chain(std::iter::repeat(' '))
                                .take(2)
                                .collect();
                            Span::styled(l, Style::new().bg(color(bg)).fg(on(bg)))
                        }
                        None => Span::styled("· ", Style::new().add_modifier(Modifier::DIM)),
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    f.render_widget(Paragraph::new(RText::from(lines)), area);
}

/// A tensor as its shape with the highlighted ranges, e.g. `49152 token id × 576 channel`.
/// The active blocks as a list (a flat terminal cannot show their 3-D layout), then
/// the values of the first one that has them.
fn blocks(f: &mut Frame, area: Rect, b: &Blocks) {
    let active: Vec<&lav_scene::Block> = b.blocks.iter().filter(|x| x.active).collect();
    let mut lines = vec![
        Line::from(format!(
            "{} of {} blocks in this step ({})",
            active.len(),
            b.blocks.len(),
            b.unit
        ))
        .add_modifier(Modifier::DIM),
    ];
    for x in &active {
        lines.push(Line::from(vec![
            Span::styled("■ ", Style::new().fg(color(x.role.color()))),
            Span::raw(format!("{}  ", x.label)),
            Span::styled(x.describe(), Style::new().add_modifier(Modifier::DIM)),
        ]));
    }
    let n = lines.len() as u16;
    f.render_widget(Paragraph::new(lines), area);
    if let Some(h) = active.iter().find_map(|x| x.values.as_ref())
        && area.height > n + 2
    {
        let rest = Rect::new(area.x, area.y + n, area.width, area.height - n);
        heatmap(f, rest, h);
    }
}

fn tensor_block(f: &mut Frame, area: Rect, t: &TensorBlock) {
    let mut lines = vec![Line::from(vec![
        Span::styled("▇▇▇ ", Style::new().fg(color(t.role.color()))),
        Span::raw(t.describe()),
    ])];
    for ((s, e), a) in t.highlight.iter().zip(&t.axes) {
        lines.push(Line::styled(
            format!("    {a} {s}..{e}"),
            Style::new().fg(color(Role::Highlight.color())),
        ));
    }
    f.render_widget(Paragraph::new(RText::from(lines)), area);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    fn render(scene: &Scene) -> String {
        let mut t = Terminal::new(TestBackend::new(80, 30)).unwrap();
        t.draw(|f| {
            draw_scene(f, f.area(), scene, 0);
        })
        .unwrap();
        let buf = t.backend().buffer();
        (0..buf.area.height)
            .map(|y| {
                (0..buf.area.width)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    + "\n"
            })
            .collect()
    }

    #[test]
    fn timelines_grids_trees_and_blocks_draw_their_labels() {
        let prov = Provenance::Simulated {
            hardware: "H100 SXM".into(),
        };
        let scene = Scene::new()
            .with(Item::new(
                "t",
                "Two requests",
                prov.clone(),
                Primitive::Timeline(Timeline {
                    lanes: vec!["req A".into(), "req B".into()],
                    spans: vec![
                        lav_scene::Span {
                            lane: 0,
                            start: 0.0,
                            end: 4.0,
                            label: "prefill".into(),
                            role: Role::Token,
                        },
                        lav_scene::Span {
                            lane: 1,
                            start: 4.0,
                            end: 10.0,
                            label: "decode".into(),
                            role: Role::Head,
                        },
                    ],
                    unit: "ms".into(),
                }),
            ))
            .with(Item::new(
                "g",
                "KV blocks",
                prov.clone(),
                Primitive::BlockGrid(BlockGrid {
                    columns: 4,
                    cells: vec![
                        Cell {
                            owner: Some(0),
                            label: "A0".into(),
                        },
                        Cell {
                            owner: None,
                            label: String::new(),
                        },
                    ],
                }),
            ))
            .with(Item::new(
                "b",
                "E",
                Provenance::model("m"),
                Primitive::TensorBlock(TensorBlock {
                    shape: vec![49152, 576],
                    axes: vec!["token id".into(), "channel".into()],
                    role: Role::Vocab,
                    highlight: vec![(7, 8)],
                }),
            ))
            .with(Item::new(
                "tree",
                "Plan",
                Provenance::computed("x"),
                Primitive::Tree(Tree {
                    root: TreeNode {
                        label: "goal".into(),
                        value: None,
                        children: vec![TreeNode {
                            label: "step 1".into(),
                            value: Some("done".into()),
                            children: vec![],
                        }],
                    },
                }),
            ));
        let text = render(&scene);
        for needle in [
            "req A",
            "prefill",
            "decode",
            "0 … 10 ms",
            "A0",
            "49152 token id × 576 channel",
            "token id 7..8",
            "step 1: done",
            "simulated: H100 SXM",
        ] {
            assert!(text.contains(needle), "{needle}:\n{text}");
        }
    }
}
