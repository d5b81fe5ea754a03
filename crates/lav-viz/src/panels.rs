//! The 2-D panels of a step, drawn with egui where [`crate::views::plan`] put them:
//! plots, bar charts, timelines and scatter plots with egui_plot, tables with
//! egui_extras, text, token chips, progress bars, trees and cell grids. Thin: every
//! string and number comes from the scene, and every panel shows its item's
//! provenance in the palette's colours.
//!
//! Hovering an entry (a row, a bar, a chip, a lane, a series) shows its value and
//! provenance, and names it in [`Link`]; next frame every view highlights entries with
//! the same name, so a token or a layer lights up wherever it appears.

use crate::layout::provenance_color;
use crate::views::{Panel, Plan};
use bevy_egui::egui::{self, Align, Align2, Color32, RichText, Sense, Ui, UiBuilder};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoint, Points};
use lav_scene::text::num;
use lav_scene::*;

/// Text colours on the dark panels.
const INK: Color32 = Color32::from_gray(225);
const QUIET: Color32 = Color32::from_gray(150);
const PANEL: Color32 = Color32::from_gray(22);
const EDGE: Color32 = Color32::from_gray(55);

/// The name the pointer is on (a token, a layer, a row key), shared by every view.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// Named last frame: views highlight entries with this name.
    pub shown: Option<String>,
    /// Named this frame so far.
    pub hovered: Option<String>,
}

impl Link {
    /// Call once per frame after every view has drawn.
    pub fn end_frame(&mut self) {
        self.shown = self.hovered.take();
    }
    fn is(&self, name: &str) -> bool {
        self.shown.as_deref() == Some(name)
    }
}

pub fn color(c: Rgb) -> Color32 {
    Color32::from_rgb(c.0, c.1, c.2)
}

/// Black or white, whichever reads on `bg` (the palette's rule).
fn ink_on(bg: Rgb) -> Color32 {
    color(bg.ink())
}

/// The name of lane or bar `k` on a plot's y axis, where bar `k` sits at y = −k.
fn row_name(names: &[String], y: f64) -> Option<&String> {
    let k = -y;
    (k.fract() == 0.0 && k >= 0.0)
        .then(|| names.get(k as usize))
        .flatten()
}

/// The row under the pointer, if any: the nearest whole −y.
fn row_at<'a>(
    names: &'a [String],
    resp: &egui_plot::PlotResponse<Option<PlotPoint>>,
) -> Option<&'a String> {
    let p = resp.inner.filter(|_| resp.response.hovered())?;
    row_name(names, p.y.round())
}

/// Draws every panel of `plan` into `ui` (a full-window background layer).
pub fn draw(ui: &mut Ui, plan: &Plan, scene: &Scene, link: &mut Link) {
    for p in &plan.panels {
        if let Some(item) = scene.items.get(p.item) {
            draw_panel(ui, p, item, link);
        }
    }
}

fn rect(r: &crate::views::Rect) -> egui::Rect {
    egui::Rect::from_min_max(egui::pos2(r.x0, r.y0), egui::pos2(r.x1, r.y1))
}

fn draw_panel(ui: &mut Ui, p: &Panel, item: &Item, link: &mut Link) {
    let frame = rect(&p.rect);
    ui.painter().rect(
        frame,
        4.0,
        PANEL,
        egui::Stroke::new(1.0, EDGE),
        egui::StrokeKind::Inside,
    );
    let mut child = ui.new_child(
        UiBuilder::new()
            .max_rect(frame)
            .id_salt(("panel", &item.id)),
    );
    child.set_clip_rect(frame);
    let title = drawable(ui.ctx(), &item.title);
    child
        .put(
            rect(&p.title),
            egui::Label::new(RichText::new(title.as_ref()).strong().size(15.0).color(INK))
                .truncate()
                .halign(Align::Min),
        )
        .on_hover_text(item.title.as_str());
    let prov = item.provenance.label();
    child
        .put(
            rect(&p.provenance),
            egui::Label::new(
                RichText::new(&prov)
                    .size(12.0)
                    .color(color(provenance_color(&item.provenance))),
            )
            .truncate()
            .halign(Align::Min),
        )
        .on_hover_text(prov.as_str());
    let body = rect(&p.body);
    if body.height() < 4.0 || body.width() < 4.0 {
        return;
    }
    let mut ui = child.new_child(
        UiBuilder::new()
            .max_rect(body)
            .id_salt(("body", &item.id))
            .layout(egui::Layout::top_down(Align::Min)),
    );
    ui.set_clip_rect(body);
    let ctx = Ctx {
        id: &item.id,
        prov: &prov,
    };
    match &item.primitive {
        Primitive::Table(t) => table(&mut ui, &ctx, t, link),
        Primitive::Plot(pl) => plot(&mut ui, &ctx, pl, link),
        Primitive::Bars(b) => bars(&mut ui, &ctx, b, link),
        Primitive::Timeline(t) => timeline(&mut ui, &ctx, t, link),
        Primitive::PointCloud(pc) => scatter(&mut ui, &ctx, pc, link),
        Primitive::Text(t) => text(&mut ui, t),
        Primitive::TokenStrip(s) => tokens(&mut ui, &ctx, s, link),
        Primitive::Progress(pr) => progress(&mut ui, pr),
        Primitive::Tree(t) => tree(&mut ui, &ctx, t),
        Primitive::BlockGrid(g) => cells(&mut ui, &ctx, g, link),
        // Spatial items are drawn in 3-D, never in a panel.
        Primitive::Heatmap(_)
        | Primitive::TensorBlock(_)
        | Primitive::Blocks(_)
        | Primitive::Graph(_) => {}
    }
}

/// What every view needs besides its data.
struct Ctx<'a> {
    id: &'a str,
    prov: &'a str,
}

/// Whether a cell reads as a number (with or without a unit): those are right-aligned.
pub fn is_numeric(s: &str) -> bool {
    let t = s.trim().trim_start_matches(['-', '+', '−', '~', '≈', '×']);
    t.chars().next().is_some_and(|c| c.is_ascii_digit()) && t.split_whitespace().count() <= 2
}

fn table(ui: &mut Ui, cx: &Ctx, t: &Table, link: &mut Link) {
    use egui_extras::{Column, TableBuilder};
    let n = t.columns.len().max(1);
    let numeric: Vec<bool> = (0..n)
        .map(|c| {
            let mut cells = t
                .rows
                .iter()
                .filter_map(|r| r.get(c))
                .filter(|s| !s.is_empty());
            cells.clone().next().is_some() && cells.all(|s| is_numeric(s))
        })
        .collect();
    let cell = |ui: &mut Ui, s: &str, right: bool, strong: bool| {
        let text = drawable(ui.ctx(), s);
        let rt = if strong {
            RichText::new(text.as_ref()).strong().color(INK)
        } else {
            RichText::new(text.as_ref()).color(INK)
        };
        // Full width, so auto-sized columns fit their text; the column clips.
        let label = egui::Label::new(rt).extend();
        if right {
            ui.with_layout(egui::Layout::right_to_left(Align::Center), |ui| {
                ui.add(label)
            });
        } else {
            ui.add(label);
        }
    };
    let mut hovered = None;
    // Columns size to their text, but none takes much more than its share of the
    // panel: a long row name is cut (hovering the row shows it whole) before the
    // numbers beside it are pushed out of view.
    let cap = (ui.available_width() / n as f32 * 2.5).max(60.0);
    TableBuilder::new(ui)
        .id_salt(("table", cx.id))
        .striped(true)
        .vscroll(true)
        .auto_shrink(false)
        .sense(Sense::hover())
        .cell_layout(egui::Layout::left_to_right(Align::Center))
        .columns(
            Column::auto().at_least(36.0).at_most(cap).clip(true),
            n.saturating_sub(1),
        )
        .column(Column::remainder().at_least(36.0).clip(true))
        .header(20.0, |mut h| {
            for (c, name) in t.columns.iter().enumerate() {
                h.col(|ui| cell(ui, name, numeric[c], true));
            }
        })
        .body(|mut b| {
            for (ri, row) in t.rows.iter().enumerate() {
                b.row(18.0, |mut r| {
                    let key = row.first().map(String::as_str).unwrap_or("");
                    if link.is(key) {
                        r.set_selected(true);
                    }
                    for (c, &right) in numeric.iter().enumerate() {
                        r.col(|ui| cell(ui, row.get(c).map_or("", String::as_str), right, false));
                    }
                    let resp = r.response();
                    if resp.hovered() {
                        hovered = Some(ri);
                        resp.on_hover_ui(|ui| {
                            for (name, v) in t.columns.iter().zip(row) {
                                ui.label(format!("{name}: {v}"));
                            }
                            ui.label(RichText::new(cx.prov).color(QUIET));
                        });
                    }
                });
            }
        });
    if let Some(ri) = hovered
        && let Some(k) = t.rows[ri].first()
    {
        link.hovered = Some(k.clone());
    }
}

/// A value on a possibly logarithmic axis, as plotted.
fn to_axis(v: f64, log: bool) -> Option<f64> {
    if !v.is_finite() {
        None
    } else if log {
        (v > 0.0).then(|| v.log10())
    } else {
        Some(v)
    }
}

fn from_axis(v: f64, log: bool) -> f64 {
    if log { 10f64.powf(v) } else { v }
}

fn plot(ui: &mut Ui, cx: &Ctx, pl: &lav_scene::Plot, link: &mut Link) {
    let (xl, yl) = (pl.x_log, pl.y_log);
    let (xn, yn) = (pl.x_label.clone(), pl.y_label.clone());
    let prov = cx.prov.to_string();
    let ids: Vec<egui::Id> = (0..pl.series.len())
        .map(|k| egui::Id::new(("series", cx.id, k)))
        .collect();
    let resp = Plot::new(("plot", cx.id))
        .legend(Legend::default())
        .x_axis_label(axis_name(&pl.x_label, xl))
        .y_axis_label(axis_name(&pl.y_label, yl))
        .x_axis_formatter(move |m, _| num(from_axis(m.value, xl)))
        .y_axis_formatter(move |m, _| num(from_axis(m.value, yl)))
        .label_formatter(move |pos| match pos {
            egui_plot::HoverPosition::NearDataPoint {
                plot_name,
                position,
                ..
            } => Some(format!(
                "{plot_name}\n{xn} {}\n{yn} {}\n{prov}",
                num(from_axis(position.x, xl)),
                num(from_axis(position.y, yl))
            )),
            _ => None,
        })
        .show(ui, |pu| {
            for (k, s) in pl.series.iter().enumerate() {
                let pts: Vec<[f64; 2]> = s
                    .points
                    .iter()
                    .filter_map(|&(x, y)| Some([to_axis(x, xl)?, to_axis(y, yl)?]))
                    .collect();
                let c = color(s.role.color());
                let hi = link.is(&s.name);
                if s.line {
                    pu.line(
                        Line::new(s.name.clone(), pts)
                            .color(c)
                            .width(if hi { 3.5 } else { 2.0 })
                            .id(ids[k]),
                    );
                } else {
                    pu.points(
                        Points::new(s.name.clone(), pts)
                            .color(c)
                            .radius(if hi { 5.0 } else { 3.5 })
                            .filled(true)
                            .id(ids[k]),
                    );
                }
            }
        });
    if let Some(h) = resp.hovered_plot_item
        && let Some(k) = ids.iter().position(|i| *i == h)
    {
        link.hovered = Some(pl.series[k].name.clone());
    }
}

fn axis_name(name: &str, log: bool) -> String {
    if log {
        format!("{name} (log)")
    } else {
        name.to_string()
    }
}

/// Horizontal bars, first on top, each with its value written at its end when there
/// are few enough to read.
fn bars(ui: &mut Ui, cx: &Ctx, b: &Bars, link: &mut Link) {
    let log = b.log;
    let base = if log {
        b.bars
            .iter()
            .filter(|x| x.value > 0.0)
            .map(|x| x.value.log10().floor())
            .fold(f64::INFINITY, f64::min)
    } else {
        0.0
    };
    let base = if base.is_finite() { base } else { 0.0 };
    let labels: Vec<String> = b.bars.iter().map(|x| x.label.clone()).collect();
    let unit = b.unit.clone();
    let prov = cx.prov.to_string();
    let few = b.bars.len() <= 16;
    let chart_bars: Vec<Bar> = b
        .bars
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let v = to_axis(x.value, log).map_or(0.0, |v| v - base);
            let mut bar = Bar::new(-(i as f64), v)
                .name(format!("{}\n{} {}", x.label, num(x.value), b.unit))
                .fill(color(x.role.color()))
                .width(0.7);
            if log {
                bar = bar.base_offset(base);
            }
            if link.is(&x.label) {
                bar = bar.stroke(egui::Stroke::new(2.0, Color32::WHITE));
            }
            bar
        })
        .collect();
    let label_of = labels.clone();
    // Room right of the longest bar for its value.
    let longest = b
        .bars
        .iter()
        .filter_map(|x| to_axis(x.value, log))
        .fold(base, f64::max);
    let room = base + (longest - base) * if few { 1.3 } else { 1.05 };
    let resp = Plot::new(("bars", cx.id))
        .x_axis_label(axis_name(&b.unit, log))
        .x_axis_formatter(move |m, _| num(from_axis(m.value, log)))
        .y_axis_formatter(move |m, _| row_name(&label_of, m.value).cloned().unwrap_or_default())
        .y_axis_min_width(60.0)
        .include_x(room)
        .show_grid([true, false])
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .show(ui, |pu| {
            pu.bar_chart(
                BarChart::new("bars", chart_bars)
                    .horizontal()
                    .element_formatter(Box::new(move |bar, _| format!("{}\n{prov}", bar.name))),
            );
            if few {
                for (i, x) in b.bars.iter().enumerate() {
                    let end = to_axis(x.value, log).unwrap_or(base).max(if log {
                        base
                    } else {
                        f64::MIN
                    });
                    pu.text(
                        egui_plot::Text::new(
                            "",
                            PlotPoint::new(end, -(i as f64)),
                            RichText::new(format!(" {} {}", num(x.value), unit)).color(INK),
                        )
                        .anchor(Align2::LEFT_CENTER),
                    );
                }
            }
            pu.pointer_coordinate()
        });
    if let Some(name) = row_at(&labels, &resp) {
        link.hovered = Some(name.clone());
    }
}

/// Lanes top to bottom, spans as floating horizontal bars, labelled inside when wide.
fn timeline(ui: &mut Ui, cx: &Ctx, t: &Timeline, link: &mut Link) {
    let lanes = t.lanes.clone();
    let lo = t
        .spans
        .iter()
        .map(|s| s.start)
        .fold(f64::INFINITY, f64::min);
    let hi = t
        .spans
        .iter()
        .map(|s| s.end)
        .fold(f64::NEG_INFINITY, f64::max);
    let range = if hi > lo { hi - lo } else { 1.0 };
    let prov = cx.prov.to_string();
    let unit = t.unit.clone();
    let bars: Vec<Bar> = t
        .spans
        .iter()
        .map(|s| {
            let lane = lanes.get(s.lane).cloned().unwrap_or_default();
            let mut bar = Bar::new(-(s.lane as f64), (s.end - s.start).max(range * 1e-3))
                .base_offset(s.start)
                .name(format!(
                    "{}\n{lane}\n{} – {} {unit}",
                    s.label,
                    num(s.start),
                    num(s.end)
                ))
                .fill(color(s.role.color()))
                .width(0.7);
            if link.is(&s.label) || link.is(&lane) {
                bar = bar.stroke(egui::Stroke::new(2.0, Color32::WHITE));
            }
            bar
        })
        .collect();
    let label_of = lanes.clone();
    let resp = Plot::new(("timeline", cx.id))
        .x_axis_label(t.unit.clone())
        .y_axis_formatter(move |m, _| row_name(&label_of, m.value).cloned().unwrap_or_default())
        .y_axis_min_width(60.0)
        .show_grid([true, false])
        .show(ui, |pu| {
            pu.bar_chart(
                BarChart::new("spans", bars)
                    .horizontal()
                    .element_formatter(Box::new(move |bar, _| format!("{}\n{prov}", bar.name))),
            );
            if t.spans.len() <= 40 {
                for s in t.spans.iter().filter(|s| s.end - s.start > range * 0.12) {
                    pu.text(
                        egui_plot::Text::new(
                            "",
                            PlotPoint::new((s.start + s.end) / 2.0, -(s.lane as f64)),
                            RichText::new(&s.label).color(ink_on(s.role.color())),
                        )
                        .anchor(Align2::CENTER_CENTER),
                    );
                }
            }
            pu.pointer_coordinate()
        });
    if let Some(name) = row_at(&lanes, &resp) {
        link.hovered = Some(name.clone());
    }
}

/// A 2-D point cloud: one series per group, labels beside points when few.
fn scatter(ui: &mut Ui, cx: &Ctx, pc: &PointCloud, link: &mut Link) {
    let ax = |k: usize| pc.axes.get(k).cloned().unwrap_or_default();
    let (xn, yn) = (ax(0), ax(1));
    let prov = cx.prov.to_string();
    let mut groups: Vec<usize> = pc.points.iter().map(|p| p.group).collect();
    groups.sort_unstable();
    groups.dedup();
    let labels: Vec<(String, [f64; 2])> = pc
        .points
        .iter()
        .filter_map(|p| {
            Some((
                p.label.clone(),
                [*p.coords.first()? as f64, *p.coords.get(1)? as f64],
            ))
        })
        .collect();
    let few = pc.points.len() <= 30;
    Plot::new(("scatter", cx.id))
        .x_axis_label(xn.clone())
        .y_axis_label(yn.clone())
        .data_aspect(1.0)
        .label_formatter(move |pos| match pos {
            egui_plot::HoverPosition::NearDataPoint { position, .. } => {
                let near = labels
                    .iter()
                    .filter(|(_, q)| {
                        (q[0] - position.x).abs() < 1e-9 && (q[1] - position.y).abs() < 1e-9
                    })
                    .map(|(l, _)| l.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                Some(format!(
                    "{near}\n{xn} {}  {yn} {}\n{prov}",
                    num(position.x),
                    num(position.y)
                ))
            }
            _ => None,
        })
        .show(ui, |pu| {
            for g in &groups {
                let pts: Vec<[f64; 2]> = pc
                    .points
                    .iter()
                    .filter(|p| p.group == *g && !p.highlight)
                    .filter_map(|p| Some([*p.coords.first()? as f64, *p.coords.get(1)? as f64]))
                    .collect();
                pu.points(
                    Points::new(format!("group {g}"), pts)
                        .color(color(Role::series(*g)))
                        .radius(3.5)
                        .filled(true),
                );
            }
            let hot: Vec<[f64; 2]> = pc
                .points
                .iter()
                .filter(|p| p.highlight || link.is(&p.label))
                .filter_map(|p| Some([*p.coords.first()? as f64, *p.coords.get(1)? as f64]))
                .collect();
            pu.points(
                Points::new("highlighted", hot)
                    .color(color(Role::Highlight.color()))
                    .radius(6.0)
                    .filled(true),
            );
            for p in pc.points.iter().filter(|p| few || p.highlight) {
                if let (Some(&x), Some(&y)) = (p.coords.first(), p.coords.get(1)) {
                    pu.text(
                        egui_plot::Text::new(
                            "",
                            PlotPoint::new(x as f64, y as f64),
                            RichText::new(format!("  {}", p.label))
                                .size(11.0)
                                .color(INK),
                        )
                        .anchor(Align2::LEFT_CENTER),
                    );
                }
            }
        });
}

fn text(ui: &mut Ui, t: &lav_scene::Text) {
    let body = drawable(ui.ctx(), &t.body);
    let rt = RichText::new(body.as_ref()).size(14.0);
    let rt = match t.style {
        TextStyle::Plain => rt.color(INK),
        TextStyle::Callout => rt.strong().color(Color32::WHITE),
        TextStyle::Warning => rt.strong().color(color(Role::WhatIf.color())),
    };
    egui::ScrollArea::vertical()
        .id_salt("text")
        .auto_shrink(false)
        .show(ui, |ui| {
            ui.add(egui::Label::new(rt).wrap());
        });
}

fn tokens(ui: &mut Ui, cx: &Ctx, s: &TokenStrip, link: &mut Link) {
    egui::ScrollArea::vertical()
        .id_salt("tokens")
        .auto_shrink(false)
        .show(ui, |ui| {
            ui.horizontal_wrapped(|ui| {
                ui.spacing_mut().item_spacing = egui::vec2(4.0, 4.0);
                for c in &s.tokens {
                    let bg = if c.highlight {
                        Role::Highlight.color()
                    } else {
                        c.role.color()
                    };
                    let hi = link.is(&c.text);
                    let shown = drawable(ui.ctx(), &c.text);
                    let r = egui::Frame::new()
                        .fill(color(bg))
                        .stroke(if hi {
                            egui::Stroke::new(2.0, Color32::WHITE)
                        } else {
                            egui::Stroke::NONE
                        })
                        .inner_margin(egui::Margin::symmetric(5, 3))
                        .corner_radius(3.0)
                        .show(ui, |ui| {
                            ui.label(
                                RichText::new(shown.as_ref())
                                    .monospace()
                                    .size(14.0)
                                    .color(ink_on(bg)),
                            )
                        })
                        .response
                        .interact(Sense::hover());
                    if r.hovered() {
                        link.hovered = Some(c.text.clone());
                    }
                    r.on_hover_ui(|ui| {
                        ui.strong(format!("token {:?}", c.text));
                        if let Some(id) = c.id {
                            ui.label(format!("id {id}"));
                        }
                        ui.label(RichText::new(cx.prov).color(QUIET));
                    });
                }
            });
        });
}

fn progress(ui: &mut Ui, p: &Progress) {
    ui.add(
        egui::ProgressBar::new(p.fraction() as f32)
            .text(format!("{}  ·  {} of {}", p.label, p.done, p.total))
            .desired_width(ui.available_width()),
    );
}

fn tree(ui: &mut Ui, cx: &Ctx, t: &Tree) {
    fn node(ui: &mut Ui, n: &TreeNode, path: String, depth: usize) {
        let line = match &n.value {
            Some(v) => format!("{}: {v}", n.label),
            None => n.label.clone(),
        };
        if n.children.is_empty() {
            ui.label(RichText::new(line).color(INK));
        } else {
            egui::CollapsingHeader::new(RichText::new(line).color(INK))
                .id_salt(&path)
                .default_open(depth < 3)
                .show(ui, |ui| {
                    for (k, c) in n.children.iter().enumerate() {
                        node(ui, c, format!("{path}/{k}"), depth + 1);
                    }
                });
        }
    }
    egui::ScrollArea::vertical()
        .id_salt("tree")
        .auto_shrink(false)
        .show(ui, |ui| node(ui, &t.root, cx.id.to_string(), 0));
}

/// A block grid as painted cells: owners in the series colours, free blocks dark.
fn cells(ui: &mut Ui, cx: &Ctx, g: &BlockGrid, link: &mut Link) {
    let cols = g.columns.max(1);
    let rows = g.cells.len().div_ceil(cols).max(1);
    let area = ui.available_rect_before_wrap();
    let side = (area.width() / cols as f32)
        .min(area.height() / rows as f32)
        .max(2.0);
    let (resp, painter) = ui.allocate_painter(
        egui::vec2(side * cols as f32, side * rows as f32),
        Sense::hover(),
    );
    let origin = resp.rect.min;
    let font = egui::FontId::proportional((side * 0.4).min(13.0));
    for (i, c) in g.cells.iter().enumerate() {
        let (r, k) = (i / cols, i % cols);
        let cell = egui::Rect::from_min_size(
            origin + egui::vec2(k as f32 * side, r as f32 * side),
            egui::vec2(side, side),
        )
        .shrink(1.0);
        let bg = c.owner.map_or(Rgb(45, 45, 50), Role::series);
        let hi = link.is(&c.label);
        painter.rect(
            cell,
            2.0,
            color(bg),
            if hi {
                egui::Stroke::new(2.0, Color32::WHITE)
            } else {
                egui::Stroke::NONE
            },
            egui::StrokeKind::Inside,
        );
        if side >= 22.0 && !c.label.is_empty() && c.label.chars().count() as f32 * 7.0 < side {
            painter.text(
                cell.center(),
                Align2::CENTER_CENTER,
                &c.label,
                font.clone(),
                ink_on(bg),
            );
        }
    }
    if let Some(p) = resp.hover_pos() {
        let k = ((p.x - origin.x) / side) as usize;
        let r = ((p.y - origin.y) / side) as usize;
        let i = r * cols + k;
        if k < cols
            && let Some(c) = g.cells.get(i)
        {
            if !c.label.is_empty() {
                link.hovered = Some(c.label.clone());
            }
            let owner = c.owner.map_or("free".to_string(), |o| format!("owner {o}"));
            resp.on_hover_ui(|ui| {
                ui.strong(format!("block {i}"));
                if !c.label.is_empty() {
                    ui.label(&c.label);
                }
                ui.label(owner);
                ui.label(RichText::new(cx.prov).color(QUIET));
            });
        }
    }
}

/// Adds egui's monospace font (Hack) behind the proportional one, so arrows, box
/// drawing and ↵ ⇥ in lesson text draw as themselves: the proportional font lacks them.
pub fn install_fonts(ctx: &egui::Context) {
    let mut fonts = egui::FontDefinitions::default();
    let hack = fonts
        .families
        .get(&egui::FontFamily::Monospace)
        .and_then(|f| f.first().cloned());
    if let (Some(hack), Some(prop)) = (
        hack,
        fonts.families.get_mut(&egui::FontFamily::Proportional),
    ) && !prop.contains(&hack)
    {
        prop.push(hack);
    }
    ctx.set_fonts(fonts);
}

/// Spellings, in characters egui's built-in font has, of marks the labs use that it
/// lacks: visible whitespace (␣ ↵ ⇥), arrows and comparisons.
const SPELLED: [(char, &str); 11] = [
    ('␣', "·"),
    ('↵', "\\n"),
    ('⇥', "\\t"),
    ('→', "->"),
    ('←', "<-"),
    ('↔', "<->"),
    ('⇒', "=>"),
    ('≤', "<="),
    ('≥', ">="),
    ('≈', "~"),
    ('≠', "!="),
];

/// The text with each mark the font cannot draw spelled out (see [`SPELLED`]), so a
/// label never shows a box where an arrow was.
pub fn drawable<'a>(ctx: &egui::Context, s: &'a str) -> std::borrow::Cow<'a, str> {
    let font = egui::FontId::proportional(14.0);
    if s.is_ascii() || ctx.fonts_mut(|f| f.has_glyphs(&font, s)) {
        return s.into();
    }
    ctx.fonts_mut(|f| {
        let mut out = String::with_capacity(s.len() + 8);
        for c in s.chars() {
            match SPELLED.iter().find(|(k, _)| *k == c) {
                Some((_, r)) if !f.has_glyph(&font, c) => out.push_str(r),
                _ => out.push(c),
            }
        }
        out
    })
    .into()
}

#[cfg(test)]
mod tests {
    use super::is_numeric;

    #[test]
    fn numbers_with_units_are_numeric_and_words_are_not() {
        for s in [
            "41", "917 ms", "-3.5", "22.5 KiB", "1.2e-3", "×4.0", "~12 GB",
        ] {
            assert!(is_numeric(s), "{s}");
        }
        for s in ["", "with cache", "LEAKS", "Q4_1", "n/a", "3 of the 4 legs"] {
            assert!(!is_numeric(s), "{s}");
        }
    }
}
