//! Views and panels: which kind of view shows each scene item, and where each view
//! sits in the window. Pure data, no Bevy and no egui, so the arrangement is tested
//! without a GPU. The idea is the Rerun viewer's: views typed by their data, and a
//! layout that is data too.
//!
//! Spatial items (heatmaps, tensor blocks, block layouts, 3-D point clouds, graphs)
//! share one 3-D viewport with the orbit camera. Every other item gets a 2-D panel of
//! its own: a plot, bar chart, timeline, table, text, token strip, progress bar, tree
//! or cell grid. A step's arrangement is automatic, or rows of item ids given in
//! `scenes/<lab>.toml` (see [`Arrangement`]).
//!
//! **Invariants** ([`plan`] keeps them, the tests check them): every item of the scene
//! is shown exactly once; panels lie inside the area and never overlap; a panel's
//! title, provenance and body never overlap, so no text is drawn over other text.

use lav_scene::{Primitive, Scene};
use serde::Deserialize;

/// How an item is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum View {
    /// In the 3-D viewport.
    Spatial,
    Plot,
    Bars,
    Timeline,
    Table,
    Text,
    Tokens,
    Progress,
    Tree,
    /// A block grid (an allocator view), as painted cells.
    Cells,
    /// A 2-D point cloud, as a scatter plot.
    Scatter,
}

impl View {
    /// Views whose natural height comes from their content (a paragraph, a row of
    /// chips), laid out full width; the rest share the remaining height.
    fn is_strip(self) -> bool {
        matches!(self, View::Text | View::Tokens | View::Progress)
    }
}

/// The view for a primitive.
pub fn view(p: &Primitive) -> View {
    match p {
        Primitive::Heatmap(_)
        | Primitive::TensorBlock(_)
        | Primitive::Blocks(_)
        | Primitive::Graph(_) => View::Spatial,
        Primitive::PointCloud(pc) if pc.dims >= 3 => View::Spatial,
        Primitive::PointCloud(_) => View::Scatter,
        Primitive::Plot(_) => View::Plot,
        Primitive::Bars(_) => View::Bars,
        Primitive::Timeline(_) => View::Timeline,
        Primitive::Table(_) => View::Table,
        Primitive::Text(_) => View::Text,
        Primitive::TokenStrip(_) => View::Tokens,
        Primitive::Progress(_) => View::Progress,
        Primitive::Tree(_) => View::Tree,
        Primitive::BlockGrid(_) => View::Cells,
    }
}

/// An axis-aligned rectangle in window pixels (logical), y down.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl Rect {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Rect { x0, y0, x1, y1 }
    }
    pub fn w(&self) -> f32 {
        self.x1 - self.x0
    }
    pub fn h(&self) -> f32 {
        self.y1 - self.y0
    }
    pub fn area(&self) -> f32 {
        self.w().max(0.0) * self.h().max(0.0)
    }
    /// Whether the two share more than an edge.
    pub fn overlaps(&self, o: &Rect) -> bool {
        const EPS: f32 = 0.01;
        self.x0 < o.x1 - EPS && o.x0 < self.x1 - EPS && self.y0 < o.y1 - EPS && o.y0 < self.y1 - EPS
    }
    pub fn contains(&self, o: &Rect) -> bool {
        const EPS: f32 = 0.01;
        o.x0 >= self.x0 - EPS
            && o.y0 >= self.y0 - EPS
            && o.x1 <= self.x1 + EPS
            && o.y1 <= self.y1 + EPS
    }
}

/// Panel sizes, in pixels (`[panels]` in `scenes/layout.toml`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PanelMetrics {
    /// Between panels.
    pub gap: f32,
    /// Inside a panel's frame.
    pub pad: f32,
    /// The title row and the provenance row.
    pub title: f32,
    pub provenance: f32,
    /// Body text: line height and average character width, for sizing strips.
    pub line: f32,
    pub char_width: f32,
    /// A token chip's height and its padding around the text.
    pub chip_height: f32,
    pub chip_pad: f32,
    /// The share of the height the 3-D view takes when 2-D panels share the area.
    pub spatial_share: f32,
    /// Full-width strips (text, tokens, progress) take at most this share.
    pub strips_share: f32,
}

/// A step's arrangement from `scenes/<lab>.toml`: rows of item ids from top to bottom
/// (`"3d"` is the 3-D viewport), with relative row heights. Items it does not name
/// are added in a last row, so nothing a lab shows can be lost by a stale file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Arrangement {
    pub rows: Vec<Vec<String>>,
    #[serde(default)]
    pub heights: Vec<f32>,
}

/// The views' area beside a 360-pixel lesson panel at 1280×720 and 1920×1080, the
/// window sizes the invariants are checked at.
pub const WINDOWS: [Rect; 2] = [
    Rect {
        x0: 372.0,
        y0: 0.0,
        x1: 1280.0,
        y1: 720.0,
    },
    Rect {
        x0: 372.0,
        y0: 0.0,
        x1: 1920.0,
        y1: 1080.0,
    },
];

/// The id of the 3-D viewport in an [`Arrangement`].
pub const SPATIAL: &str = "3d";

/// One 2-D panel: the item it shows, its frame, and the rows inside it.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub item: usize,
    pub rect: Rect,
    pub title: Rect,
    pub provenance: Rect,
    pub body: Rect,
}

/// Where everything goes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// The 3-D viewport and the items drawn in it, when the step has any.
    pub spatial: Option<Rect>,
    pub spatial_items: Vec<usize>,
    pub panels: Vec<Panel>,
}

impl Plan {
    /// Every text box of the plan: each panel's title and provenance rows.
    pub fn text_boxes(&self) -> Vec<Rect> {
        self.panels
            .iter()
            .flat_map(|p| [p.title, p.provenance])
            .collect()
    }
}

impl Plan {
    /// Checks the invariants for `scene` arranged in `area`: every item shown exactly
    /// once, every view inside the area, no two views overlapping, no text box
    /// overlapping another or leaving its panel, and the views covering the area but
    /// for the gaps between them. The tests call it on every step of every lab.
    pub fn check(&self, scene: &Scene, area: Rect, m: &PanelMetrics) -> Result<(), String> {
        let mut seen = vec![0usize; scene.items.len()];
        for &i in &self.spatial_items {
            seen[i] += 1;
        }
        for p in &self.panels {
            seen[p.item] += 1;
        }
        if let Some(i) = seen.iter().position(|&n| n != 1) {
            return Err(format!(
                "item {} is shown {} times",
                scene.items[i].id, seen[i]
            ));
        }
        if self.spatial.is_some() == self.spatial_items.is_empty() {
            return Err("a 3-D view without spatial items, or the reverse".into());
        }
        let mut views: Vec<(String, Rect)> = self
            .panels
            .iter()
            .map(|p| (scene.items[p.item].id.clone(), p.rect))
            .collect();
        if let Some(r) = self.spatial {
            views.push((SPATIAL.into(), r));
        }
        for (id, r) in &views {
            if !area.contains(r) || r.w() <= 0.0 || r.h() <= 0.0 {
                return Err(format!("{id} at {r:?} is not inside {area:?}"));
            }
        }
        for (k, (a, ra)) in views.iter().enumerate() {
            for (b, rb) in &views[k + 1..] {
                if ra.overlaps(rb) {
                    return Err(format!("{a} {ra:?} overlaps {b} {rb:?}"));
                }
            }
        }
        for p in &self.panels {
            let id = &scene.items[p.item].id;
            for (what, t) in [
                ("title", p.title),
                ("provenance", p.provenance),
                ("body", p.body),
            ] {
                if !p.rect.contains(&t) {
                    return Err(format!(
                        "{id}: its {what} {t:?} leaves the panel {:?}",
                        p.rect
                    ));
                }
            }
            if p.title.overlaps(&p.provenance)
                || p.body.overlaps(&p.title)
                || p.body.overlaps(&p.provenance)
            {
                return Err(format!("{id}: title, body and provenance overlap: {p:?}"));
            }
        }
        let boxes = self.text_boxes();
        for (k, a) in boxes.iter().enumerate() {
            if let Some(b) = boxes[k + 1..].iter().find(|b| a.overlaps(b)) {
                return Err(format!("text boxes {a:?} and {b:?} overlap"));
            }
        }
        if !views.is_empty() {
            let covered: f32 = views.iter().map(|(_, r)| r.area()).sum();
            // Gaps: at most one per row and column of views, a gap wide each.
            let n = views.len() as f32;
            let slack = m.gap * n * (area.w() + area.h());
            if covered + slack < area.area() * 0.999 {
                return Err(format!(
                    "the views cover {covered} of {} px² (gaps allow {slack})",
                    area.area()
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    Spatial,
    Item(usize),
}

struct Row {
    cells: Vec<Cell>,
    /// Pixels, before scaling to the area.
    height: f32,
}

/// Arranges `scene` in `area`.
pub fn plan(
    scene: &Scene,
    area: Rect,
    arrangement: Option<&Arrangement>,
    m: &PanelMetrics,
) -> Plan {
    let views: Vec<View> = scene.items.iter().map(|i| view(&i.primitive)).collect();
    let spatial_items: Vec<usize> = (0..views.len())
        .filter(|&i| views[i] == View::Spatial)
        .collect();
    let rows = match arrangement {
        Some(a) => arranged(scene, &views, a),
        None => automatic(scene, &views, area, m),
    };
    let mut out = Plan {
        spatial: None,
        spatial_items: spatial_items.clone(),
        panels: vec![],
    };
    // Heights: scaled so the rows fill the area exactly, gaps included.
    let gaps = m.gap * rows.len().saturating_sub(1) as f32;
    let want: f32 = rows.iter().map(|r| r.height).sum();
    let k = if want > 0.0 {
        (area.h() - gaps).max(0.0) / want
    } else {
        0.0
    };
    let mut y = area.y0;
    for (ri, row) in rows.iter().enumerate() {
        let h = if ri + 1 == rows.len() {
            area.y1 - y
        } else {
            row.height * k
        };
        let weights: Vec<f32> = row
            .cells
            .iter()
            .map(|c| match c {
                Cell::Spatial => 2.0,
                Cell::Item(i) => width_weight(scene, *i),
            })
            .collect();
        let total: f32 = weights.iter().sum();
        let col_gaps = m.gap * row.cells.len().saturating_sub(1) as f32;
        let mut x = area.x0;
        for (ci, cell) in row.cells.iter().enumerate() {
            let w = if ci + 1 == row.cells.len() {
                area.x1 - x
            } else {
                (area.w() - col_gaps) * weights[ci] / total
            };
            let r = Rect::new(x, y, x + w, y + h);
            match cell {
                Cell::Spatial => out.spatial = Some(r),
                Cell::Item(i) => out.panels.push(panel(*i, r, m)),
            }
            x += w + m.gap;
        }
        y += h + m.gap;
    }
    out
}

/// A table's share of a row follows its text: the widest cell of each column (capped,
/// since long cells are cut and shown whole on hover), in units of a chart's width
/// (about 40 characters). Charts and the rest weigh 1.
fn width_weight(scene: &Scene, i: usize) -> f32 {
    match &scene.items[i].primitive {
        Primitive::Table(t) => {
            let chars: usize = (0..t.columns.len())
                .map(|c| {
                    t.rows
                        .iter()
                        .filter_map(|r| r.get(c))
                        .chain(std::iter::once(&t.columns[c]))
                        .map(|s| s.chars().count())
                        .max()
                        .unwrap_or(0)
                        .clamp(4, 36)
                        + 2
                })
                .sum();
            (chars as f32 / 40.0).clamp(0.6, 3.0)
        }
        _ => 1.0,
    }
}

/// A panel's frame split into title, body and provenance rows. A panel too short for
/// all three keeps the provenance at the right end of the title row.
fn panel(item: usize, rect: Rect, m: &PanelMetrics) -> Panel {
    let inner = Rect::new(
        rect.x0 + m.pad,
        rect.y0 + m.pad,
        rect.x1 - m.pad,
        rect.y1 - m.pad,
    );
    let title = Rect::new(
        inner.x0,
        inner.y0,
        inner.x1,
        (inner.y0 + m.title).min(inner.y1),
    );
    if inner.h() >= m.title + m.provenance + m.line {
        let provenance = Rect::new(inner.x0, inner.y1 - m.provenance, inner.x1, inner.y1);
        let body = Rect::new(inner.x0, title.y1, inner.x1, provenance.y0);
        Panel {
            item,
            rect,
            title,
            provenance,
            body,
        }
    } else {
        let split = inner.x0 + inner.w() * 0.6;
        Panel {
            item,
            rect,
            title: Rect { x1: split, ..title },
            provenance: Rect { x0: split, ..title },
            body: Rect::new(inner.x0, title.y1, inner.x1, title.y1.max(inner.y1)),
        }
    }
}

/// The height a strip's content needs at width `w`.
fn strip_height(scene: &Scene, i: usize, w: f32, m: &PanelMetrics) -> f32 {
    let inner = (w - 2.0 * m.pad).max(m.char_width);
    let chrome = 2.0 * m.pad + m.title + m.provenance;
    let body = match &scene.items[i].primitive {
        Primitive::Text(t) => {
            let per_line = (inner / m.char_width).floor().max(1.0);
            let lines: f32 = t
                .body
                .lines()
                .map(|l| (l.chars().count() as f32 / per_line).ceil().max(1.0))
                .sum();
            lines.max(1.0) * m.line
        }
        Primitive::TokenStrip(s) => {
            let (mut lines, mut x) = (1.0f32, 0.0f32);
            for c in &s.tokens {
                let cw = c.text.chars().count().max(1) as f32 * m.char_width + 2.0 * m.chip_pad;
                if x > 0.0 && x + cw > inner {
                    lines += 1.0;
                    x = 0.0;
                }
                x += cw + m.chip_pad;
            }
            lines * (m.chip_height + m.chip_pad)
        }
        _ => m.line + m.pad,
    };
    chrome + body
}

/// Strips on top, full width; then the 3-D view; then the charts and tables in rows.
fn automatic(scene: &Scene, views: &[View], area: Rect, m: &PanelMetrics) -> Vec<Row> {
    let has_spatial = views.contains(&View::Spatial);
    let strips: Vec<usize> = (0..views.len()).filter(|&i| views[i].is_strip()).collect();
    let charts: Vec<usize> = (0..views.len())
        .filter(|&i| views[i] != View::Spatial && !views[i].is_strip())
        .collect();
    let mut rows: Vec<Row> = strips
        .iter()
        .map(|&i| Row {
            cells: vec![Cell::Item(i)],
            height: strip_height(scene, i, area.w(), m),
        })
        .collect();
    let strip_h: f32 = rows.iter().map(|r| r.height).sum();
    let others = has_spatial || !charts.is_empty();
    if others {
        // Strips never crowd out the views below them: past their share they scroll.
        let cap = m.strips_share * area.h();
        if strip_h > cap {
            rows.iter_mut().for_each(|r| r.height *= cap / strip_h);
        }
    }
    let used: f32 = rows.iter().map(|r| r.height + m.gap).sum();
    let chart_rows: Vec<Vec<Cell>> = grid(&charts, area, has_spatial);
    // The views below the strips, with the gaps between them taken off first so the
    // heights handed out are the heights drawn.
    let below = chart_rows.len() + usize::from(has_spatial);
    let rest = (area.h() - used - m.gap * below.saturating_sub(1) as f32).max(0.0);
    // Each row's share of the rest, and the height its content needs if it stops
    // needing more (a short table); the 3-D view and charts use any height.
    let mut shares: Vec<(f32, Option<f32>)> = Vec::new();
    if has_spatial {
        let share = if chart_rows.is_empty() {
            1.0
        } else {
            m.spatial_share
        };
        shares.push((share, None));
    }
    let chart_share = if has_spatial {
        1.0 - m.spatial_share
    } else {
        1.0
    };
    for cells in &chart_rows {
        let need = cells.iter().try_fold(0.0f32, |acc, c| match c {
            Cell::Item(i) => content_height(scene, *i, m).map(|h| acc.max(h)),
            Cell::Spatial => None,
        });
        shares.push((chart_share / chart_rows.len() as f32, need));
    }
    let heights = fill(rest, &shares);
    let mut heights = heights.into_iter();
    if has_spatial {
        rows.push(Row {
            cells: vec![Cell::Spatial],
            height: heights.next().unwrap_or(0.0),
        });
    }
    for cells in chart_rows {
        rows.push(Row {
            cells,
            height: heights.next().unwrap_or(0.0),
        });
    }
    // Strips alone share the whole height, in proportion to their content.
    rows
}

/// The height an item's content needs when it is bounded (a table, as tall as its
/// rows); `None` for views that use any height they get (plots, charts, cells).
fn content_height(scene: &Scene, i: usize, m: &PanelMetrics) -> Option<f32> {
    let chrome = 2.0 * m.pad + m.title + m.provenance;
    match &scene.items[i].primitive {
        // The header and each row are a line; a pad keeps the last row off the frame.
        Primitive::Table(t) => Some(chrome + (t.rows.len() as f32 + 1.0) * m.line + m.pad),
        _ => None,
    }
}

/// Splits `total` among rows by their shares, water-filling: a row that needs less
/// than its share gets what it needs, and what it leaves goes to the others by their
/// shares. When every row has all it needs, they grow in proportion to their needs,
/// so the heights always sum to `total`.
fn fill(total: f32, rows: &[(f32, Option<f32>)]) -> Vec<f32> {
    let mut out: Vec<Option<f32>> = vec![None; rows.len()];
    loop {
        let open: Vec<usize> = (0..rows.len()).filter(|&k| out[k].is_none()).collect();
        if open.is_empty() {
            break;
        }
        let left = total - out.iter().flatten().sum::<f32>();
        let weight: f32 = open.iter().map(|&k| rows[k].0.max(1e-6)).sum();
        let mut settled = false;
        for &k in &open {
            let share = left * rows[k].0.max(1e-6) / weight;
            if let Some(need) = rows[k].1
                && need <= share
            {
                out[k] = Some(need);
                settled = true;
            }
        }
        if !settled {
            for &k in &open {
                out[k] = Some(left * rows[k].0.max(1e-6) / weight);
            }
        }
    }
    let out: Vec<f32> = out.into_iter().map(|h| h.unwrap_or(0.0).max(0.0)).collect();
    let sum: f32 = out.iter().sum();
    if sum > 0.0 && sum < total {
        out.iter().map(|h| h * total / sum).collect()
    } else {
        out
    }
}

/// Charts in rows: one row under a 3-D view when there are three or fewer, else a
/// grid about as wide as the area is.
fn grid(charts: &[usize], area: Rect, below_spatial: bool) -> Vec<Vec<Cell>> {
    let n = charts.len();
    if n == 0 {
        return vec![];
    }
    let cols = if below_spatial {
        if n <= 3 { n } else { n.div_ceil(2) }
    } else {
        // Cells near 4:3 on this area's aspect ratio.
        let aspect = (area.w() / area.h().max(1.0)).max(0.1);
        ((n as f32 * aspect / 1.33).sqrt().round() as usize).clamp(1, n)
    };
    charts
        .chunks(cols)
        .map(|c| c.iter().map(|&i| Cell::Item(i)).collect())
        .collect()
}

/// Rows from a scene file. Unknown ids are skipped (the tests check the files against
/// every lab); items it leaves out go in a last row.
fn arranged(scene: &Scene, views: &[View], a: &Arrangement) -> Vec<Row> {
    let has_spatial = views.contains(&View::Spatial);
    let mut placed = vec![false; views.len()];
    let mut spatial_placed = false;
    let mut rows: Vec<Row> = Vec::new();
    for (ri, ids) in a.rows.iter().enumerate() {
        let mut cells = Vec::new();
        for id in ids {
            if id == SPATIAL {
                if has_spatial && !spatial_placed {
                    spatial_placed = true;
                    cells.push(Cell::Spatial);
                }
            } else if let Some(i) = scene.items.iter().position(|it| &it.id == id)
                && views[i] != View::Spatial
                && !placed[i]
            {
                placed[i] = true;
                cells.push(Cell::Item(i));
            }
        }
        if !cells.is_empty() {
            rows.push(Row {
                cells,
                height: a.heights.get(ri).copied().unwrap_or(1.0).max(0.01),
            });
        }
    }
    let mut rest: Vec<Cell> = (0..views.len())
        .filter(|&i| views[i] != View::Spatial && !placed[i])
        .map(Cell::Item)
        .collect();
    if has_spatial && !spatial_placed {
        rest.insert(0, Cell::Spatial);
    }
    if !rest.is_empty() {
        let total: f32 = rows.iter().map(|r| r.height).sum::<f32>().max(1.0);
        rows.push(Row {
            cells: rest,
            height: total / rows.len().max(1) as f32,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use lav_scene::*;

    fn metrics() -> PanelMetrics {
        PanelMetrics {
            gap: 6.0,
            pad: 6.0,
            title: 20.0,
            provenance: 16.0,
            line: 18.0,
            char_width: 7.5,
            chip_height: 24.0,
            chip_pad: 4.0,
            spatial_share: 0.58,
            strips_share: 0.4,
        }
    }

    fn item(id: &str, p: Primitive) -> Item {
        Item::new(
            id,
            format!("title of {id}"),
            Provenance::computed("test"),
            p,
        )
    }

    fn table(cols: usize, rows: usize) -> Primitive {
        Primitive::Table(Table {
            columns: (0..cols).map(|c| format!("c{c}")).collect(),
            rows: (0..rows)
                .map(|r| (0..cols).map(|c| format!("{r}.{c}")).collect())
                .collect(),
        })
    }

    fn text(s: &str) -> Primitive {
        Primitive::Text(Text {
            body: s.into(),
            style: TextStyle::Plain,
        })
    }

    fn heat() -> Primitive {
        Primitive::Heatmap(Heatmap {
            rows: vec!["a".into()],
            cols: vec!["b".into()],
            values: vec![1.0],
            scale: ColorScale::fit_signed(&[1.0]),
            selected: None,
            row_axis: "r".into(),
            col_axis: "c".into(),
        })
    }

    #[test]
    fn a_step_without_spatial_items_has_no_3d_view() {
        let s = Scene::new()
            .with(item("t", table(3, 4)))
            .with(item("x", text("hello")));
        let p = plan(&s, Rect::new(360.0, 0.0, 1280.0, 720.0), None, &metrics());
        assert_eq!(p.spatial, None);
        assert_eq!(p.panels.len(), 2);
        // The text strip is on top and only as tall as it needs.
        let x = p.panels.iter().find(|q| q.item == 1).unwrap();
        assert_eq!(x.rect.y0, 0.0);
        assert!(x.rect.h() < 100.0, "{:?}", x.rect);
    }

    #[test]
    fn a_spatial_item_takes_the_top_and_charts_share_the_row_below() {
        let s = Scene::new()
            .with(item("h", heat()))
            .with(item("a", table(2, 2)))
            .with(item("b", table(2, 2)));
        let p = plan(&s, Rect::new(0.0, 0.0, 1000.0, 700.0), None, &metrics());
        let sp = p.spatial.unwrap();
        assert_eq!((sp.x0, sp.y0, sp.x1), (0.0, 0.0, 1000.0));
        assert!(p.panels.iter().all(|q| q.rect.y0 >= sp.y1));
        assert_eq!(p.panels[0].rect.y0, p.panels[1].rect.y0);
    }

    #[test]
    fn an_arrangement_places_named_items_and_keeps_the_rest() {
        let s = Scene::new()
            .with(item("h", heat()))
            .with(item("a", table(2, 2)))
            .with(item("b", table(2, 2)))
            .with(item("c", text("x")));
        let a = Arrangement {
            rows: vec![vec!["b".into(), "3d".into()], vec!["gone".into()]],
            heights: vec![2.0],
        };
        let p = plan(&s, Rect::new(0.0, 0.0, 900.0, 600.0), Some(&a), &metrics());
        let b = p.panels.iter().find(|q| q.item == 2).unwrap();
        assert_eq!((b.rect.x0, b.rect.y0), (0.0, 0.0));
        let sp = p.spatial.unwrap();
        assert!(sp.x0 > b.rect.x1 && sp.y0 == 0.0);
        // "a" and "c" were not named: they share a last row.
        let rest: Vec<usize> = p
            .panels
            .iter()
            .filter(|q| q.rect.y0 > 0.0)
            .map(|q| q.item)
            .collect();
        assert_eq!(rest, vec![1, 3]);
    }

    #[test]
    fn rows_get_what_their_content_needs_and_the_rest_goes_to_the_others() {
        let near = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-3);
        // A short table leaves its share to the 3-D view.
        let h = fill(100.0, &[(0.6, None), (0.4, Some(20.0))]);
        assert!(near(&h, &[80.0, 20.0]), "{h:?}");
        // A tall one takes only its share.
        let h = fill(100.0, &[(0.6, None), (0.4, Some(70.0))]);
        assert!(near(&h, &[60.0, 40.0]), "{h:?}");
        // Settling one row can leave enough for another to settle.
        let h = fill(90.0, &[(1.0, Some(10.0)), (1.0, Some(35.0)), (1.0, None)]);
        assert!(near(&h, &[10.0, 35.0, 45.0]), "{h:?}");
        // All bounded and all short: they grow in proportion, filling the total.
        let h = fill(100.0, &[(1.0, Some(10.0)), (1.0, Some(30.0))]);
        assert!(near(&h, &[25.0, 75.0]), "{h:?}");
    }

    #[test]
    fn a_short_table_under_a_heatmap_gives_the_3d_view_its_spare_height() {
        let m = metrics();
        let s = Scene::new()
            .with(item("h", heat()))
            .with(item("t", table(3, 2)));
        let area = Rect::new(0.0, 0.0, 900.0, 700.0);
        let p = plan(&s, area, None, &m);
        let t = &p.panels[0].rect;
        let need = content_height(&s, 1, &m).unwrap();
        assert!((t.h() - need).abs() < 0.5, "{t:?} needs {need}");
        assert!(p.spatial.unwrap().h() > area.h() * m.spatial_share + 50.0);
        p.check(&s, area, &m).unwrap();
    }

    #[test]
    fn a_short_panel_keeps_its_provenance_beside_the_title() {
        let m = metrics();
        let p = panel(0, Rect::new(0.0, 0.0, 400.0, 50.0), &m);
        assert!(!p.title.overlaps(&p.provenance));
        assert_eq!(p.title.y0, p.provenance.y0);
        let q = panel(0, Rect::new(0.0, 0.0, 400.0, 300.0), &m);
        assert!(q.provenance.y0 >= q.body.y1 && q.body.y0 >= q.title.y1);
    }
}
