//! Scene → shapes: where every primitive goes in 3-D and what colour it is. Pure data
//! and no Bevy, so the mapping is tested without a GPU; `app` turns shapes into
//! entities one to one.
//!
//! Only spatial items are drawn here (see [`views::view`]); plots, tables, text and
//! the other 2-D kinds are egui panels. Items that carry their own 3-D layout
//! ([`Blocks`]) keep it. The others are laid out on a wall (the x–y plane, facing the
//! default camera) to the left of the blocks, or side by side when there are none.

use crate::presentation::LayoutParams;
use crate::views::{self, View};
use lav_scene::palette::GREY;
use lav_scene::text::num;
use lav_scene::*;

pub type V3 = [f32; 3];

/// Which plane a grid of cells lies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plane {
    /// Facing +z: columns run along +x, rows down along −y.
    Wall,
    /// Facing +y (a block's top face): columns along +x, rows along +z.
    Floor,
}

/// What a shape shows when the pointer is on it.
#[derive(Clone, Debug, PartialEq)]
pub enum Pick {
    /// Fixed lines (a bar, a block, a chip).
    Info(Vec<String>),
    /// A cell of heatmap `heatmap` (an index into [`Layout::heatmaps`]); the renderer
    /// asks [`Layout::cell_info`] for the cell under the pointer.
    Cells { heatmap: usize },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// An axis-aligned box.
    Cuboid {
        center: V3,
        size: V3,
        color: Rgb,
        /// Context rather than subject: drawn faded.
        dim: bool,
    },
    /// A flat grid of cells as one data texture (never one entity per cell).
    Grid {
        center: V3,
        /// Extent along the plane's column and row directions.
        size: [f32; 2],
        plane: Plane,
        /// The texture: `tex_rows × tex_cols` sRGB pixels, row-major. Downsampled from
        /// the data when it is larger than a texture may be.
        tex_rows: usize,
        tex_cols: usize,
        pixels: Vec<[u8; 4]>,
        /// Data cells (for cell lines and the selection outline in the shader).
        rows: usize,
        cols: usize,
        selected: Option<(usize, usize)>,
    },
    /// A straight segment.
    Line {
        from: V3,
        to: V3,
        color: Rgb,
        width: f32,
    },
    /// Text at a point, drawn facing the camera; `height` is in world units. The
    /// point is the text's bottom-left corner, or bottom-right with `right`.
    Label {
        at: V3,
        text: String,
        color: Rgb,
        height: f32,
        right: bool,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Visual {
    /// The scene item it belongs to.
    pub item: usize,
    pub shape: Shape,
    pub pick: Option<Pick>,
}

/// Where an item ended up, for camera targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub id: String,
    pub min: V3,
    pub max: V3,
}

/// A heatmap's data with its place, so hovering can read the true value of a cell.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatRef {
    pub heatmap: Heatmap,
    /// The title of what it belongs to, what it was computed from, and provenance.
    pub title: String,
    pub from: String,
    pub provenance: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    pub visuals: Vec<Visual>,
    pub regions: Vec<Region>,
    pub heatmaps: Vec<HeatRef>,
}

/// The largest texture side the app uploads (every GPU and lavapipe take 4096).
pub const MAX_TEXTURE: usize = 4096;

impl Layout {
    pub fn region(&self, id: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.id == id)
    }

    /// The bounds of everything.
    pub fn bounds(&self) -> Option<(V3, V3)> {
        lav_scene::union(self.regions.iter().map(|r| (r.min, r.max)))
    }

    /// The hover text of cell `(r, c)` of heatmap `h`.
    pub fn cell_info(&self, h: usize, r: usize, c: usize) -> Vec<String> {
        let Some(hr) = self.heatmaps.get(h) else {
            return vec![];
        };
        let m = &hr.heatmap;
        if r >= m.rows.len() || c >= m.cols.len() {
            return vec![];
        }
        let mut out = vec![
            hr.title.clone(),
            format!(
                "{} {}  ·  {} {}",
                m.row_axis, m.rows[r], m.col_axis, m.cols[c]
            ),
            format!("value {}", num(m.get(r, c) as f64)),
        ];
        if !hr.from.is_empty() {
            out.push(format!("computed from {}", hr.from));
        }
        out.push(hr.provenance.clone());
        out
    }
}

/// Lays out a whole scene.
pub fn build(scene: &Scene, p: &LayoutParams) -> Layout {
    let mut out = Layout::default();
    // Blocks first: they fix where the wall goes.
    for (i, item) in scene.items.iter().enumerate() {
        if let Primitive::Blocks(b) = &item.primitive {
            blocks(&mut out, i, item, b, p);
        }
    }
    let blocks_bounds = out.bounds();
    let mut wall = Vec::new();
    for (i, item) in scene.items.iter().enumerate() {
        // Blocks are placed; 2-D kinds are drawn as panels, not in the 3-D view.
        if matches!(item.primitive, Primitive::Blocks(_))
            || views::view(&item.primitive) != View::Spatial
        {
            continue;
        }
        // Each item is drawn with its top-left corner at the origin, then moved.
        let mut local = Layout::default();
        let (w, h) = flat(&mut local, i, item, p);
        wall.push((i, local, w, h));
    }
    match blocks_bounds {
        // Beside the blocks: a column down their left side, facing the camera.
        Some((min, max)) => {
            // Blocks scenes are seen from farther away: the wall grows to match.
            let k = p.beside_blocks_scale;
            let mut y = max[1].max(min[1] + 4.0);
            for (i, local, w, h) in wall {
                let local = scaled(local, k);
                let at = [min[0] - k * (p.gap + w), y, max[2]];
                let mut q = p.clone();
                q.title *= k;
                place(&mut out, local, at, i, scene, k * w, k * h, &q);
                y -= k * (h + p.gap + 2.0 * p.title);
            }
        }
        // Side by side, tops aligned.
        None => {
            let mut x = 0.0;
            for (i, local, w, h) in wall {
                place(&mut out, local, [x, 0.0, 0.0], i, scene, w, h, p);
                x += w + p.gap;
            }
        }
    }
    out
}

/// An item drawn at the origin, `k` times bigger.
fn scaled(mut l: Layout, k: f32) -> Layout {
    let m = |v: &mut V3| v.iter_mut().for_each(|x| *x *= k);
    for v in &mut l.visuals {
        match &mut v.shape {
            Shape::Cuboid { center, size, .. } => {
                m(center);
                m(size);
            }
            Shape::Grid { center, size, .. } => {
                m(center);
                size.iter_mut().for_each(|x| *x *= k);
            }
            Shape::Line {
                from, to, width, ..
            } => {
                m(from);
                m(to);
                *width *= k;
            }
            Shape::Label { at, height, .. } => {
                m(at);
                *height *= k;
            }
        }
    }
    for r in &mut l.regions {
        m(&mut r.min);
        m(&mut r.max);
    }
    l
}

/// Moves an item drawn at the origin to `at`, adds its title and provenance.
#[allow(clippy::too_many_arguments)]
fn place(
    out: &mut Layout,
    local: Layout,
    at: V3,
    i: usize,
    scene: &Scene,
    w: f32,
    h: f32,
    p: &LayoutParams,
) {
    let item = &scene.items[i];
    let shift = |v: V3| [v[0] + at[0], v[1] + at[1], v[2] + at[2]];
    for mut v in local.visuals {
        match &mut v.shape {
            Shape::Cuboid { center, .. } | Shape::Grid { center, .. } => *center = shift(*center),
            Shape::Line { from, to, .. } => {
                *from = shift(*from);
                *to = shift(*to);
            }
            Shape::Label { at: a, .. } => *a = shift(*a),
        }
        if let Some(Pick::Cells { heatmap }) = &mut v.pick {
            *heatmap += out.heatmaps.len();
        }
        out.visuals.push(v);
    }
    out.heatmaps.extend(local.heatmaps);
    for r in local.regions {
        out.regions.push(Region {
            id: r.id,
            min: shift(r.min),
            max: shift(r.max),
        });
    }
    titles(out, i, item, [at[0], at[1], at[2]], w, h, p);
    out.regions.push(Region {
        id: item.id.clone(),
        min: [at[0], at[1] - h - p.title, at[2] - 0.1],
        max: [at[0] + w, at[1] + p.title, at[2] + 0.1],
    });
}

/// The item's title above its top-left corner and its provenance below its bottom.
fn titles(out: &mut Layout, i: usize, item: &Item, top_left: V3, w: f32, h: f32, p: &LayoutParams) {
    let [x, y, z] = top_left;
    // Titles of items side by side would run into each other: each keeps to its item's
    // width (a character is about 0.55 of the text height); hovering shows it whole.
    let fits = |height: f32| ((w + p.gap * 0.8) / (0.55 * height)).max(4.0) as usize;
    out.visuals.push(Visual {
        item: i,
        shape: Shape::Label {
            at: [x, y + 0.7 * p.title, z],
            text: elide(&item.title, fits(p.title)),
            color: Rgb(0xee, 0xee, 0xee),
            height: p.title,
            right: false,
        },
        pick: None,
    });
    out.visuals.push(Visual {
        item: i,
        shape: Shape::Label {
            at: [x, y - h - 0.6 * p.title, z],
            text: elide(&item.provenance.label(), fits(0.6 * p.title)),
            color: provenance_color(&item.provenance),
            height: 0.6 * p.title,
            right: false,
        },
        pick: None,
    });
}

/// `s` cut to `n` characters, with an ellipsis when cut.
pub fn elide(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// What-ifs are marked in the what-if colour; everything else in quiet grey.
pub fn provenance_color(p: &Provenance) -> Rgb {
    if p.is_what_if() {
        Role::WhatIf.color()
    } else {
        GREY
    }
}

/// A data texture for a heatmap: colours from the item's own scale (the palette's),
/// pooled to at most [`MAX_TEXTURE`] per side by keeping the value farthest from the
/// scale's middle, so a spike never disappears.
pub fn heat_pixels(h: &Heatmap) -> (usize, usize, Vec<[u8; 4]>) {
    let (rows, cols) = (h.rows.len(), h.cols.len());
    let tr = rows.clamp(1, MAX_TEXTURE);
    let tc = cols.clamp(1, MAX_TEXTURE);
    let mut px = Vec::with_capacity(tr * tc);
    for r in 0..tr {
        let (r0, r1) = (r * rows / tr, ((r + 1) * rows / tr).max(r * rows / tr + 1));
        for c in 0..tc {
            let (c0, c1) = (c * cols / tc, ((c + 1) * cols / tc).max(c * cols / tc + 1));
            let mut best: Option<f64> = None;
            for rr in r0..r1.min(rows) {
                for cc in c0..c1.min(cols) {
                    let v = h.get(rr, cc) as f64;
                    let far = |x: f64| (h.scale.position(x) - 0.5).abs();
                    best = Some(match best {
                        Some(b) if !v.is_finite() || (b.is_finite() && far(b) >= far(v)) => b,
                        _ => v,
                    });
                }
            }
            let Rgb(r8, g8, b8) = h.scale.color(best.unwrap_or(f64::NAN));
            px.push([r8, g8, b8, 255]);
        }
    }
    (tr, tc, px)
}

fn grid(h: &Heatmap, center: V3, size: [f32; 2], plane: Plane) -> Shape {
    let (tex_rows, tex_cols, pixels) = heat_pixels(h);
    Shape::Grid {
        center,
        size,
        plane,
        tex_rows,
        tex_cols,
        pixels,
        rows: h.rows.len(),
        cols: h.cols.len(),
        selected: h.selected,
    }
}

fn blocks(out: &mut Layout, i: usize, item: &Item, b: &Blocks, p: &LayoutParams) {
    let any_active = b.blocks.iter().any(|x| x.active);
    // Context above the highest active block would sit between a camera looking down
    // and the subject: leave it out.
    let ceiling = b
        .blocks
        .iter()
        .filter(|x| x.active)
        .map(|x| x.center[1] + x.size[1] / 2.0)
        .fold(f32::NEG_INFINITY, f32::max);
    let shown = |x: &Block| !any_active || x.active || x.center[1] - x.size[1] / 2.0 <= ceiling;
    for x in b.blocks.iter().filter(|x| shown(x)) {
        // Inputs, from the flow: what this block was computed from.
        let from: Vec<&str> = b
            .flow
            .iter()
            .filter(|(_, t)| b.blocks.get(*t).is_some_and(|t| t.id == x.id))
            .filter_map(|(f, _)| b.blocks.get(*f).map(|f| f.label.as_str()))
            .collect();
        let mut from_text = from.clone();
        from_text.dedup();
        let mut info = vec![format!("{} ({})", x.label, x.id), x.describe()];
        if !from_text.is_empty() {
            info.push(format!("computed from {}", from_text.join(", ")));
        }
        info.push(item.provenance.label());
        out.visuals.push(Visual {
            item: i,
            shape: Shape::Cuboid {
                center: x.center,
                size: x.size,
                color: x.role.color(),
                dim: any_active && !x.active,
            },
            pick: Some(Pick::Info(info)),
        });
        if let Some(h) = &x.values {
            let top = [
                x.center[0],
                x.center[1] + x.size[1] / 2.0 + 0.01,
                x.center[2],
            ];
            out.heatmaps.push(HeatRef {
                heatmap: h.clone(),
                title: format!("{} ({})", x.label, x.id),
                from: from_text.join(", "),
                provenance: item.provenance.label(),
            });
            out.visuals.push(Visual {
                item: i,
                shape: grid(h, top, [x.size[0], x.size[2]], Plane::Floor),
                pick: Some(Pick::Cells {
                    heatmap: out.heatmaps.len() - 1,
                }),
            });
        }
        if !any_active || x.active {
            out.visuals.push(Visual {
                item: i,
                shape: Shape::Label {
                    at: [
                        x.center[0] - x.size[0] / 2.0,
                        x.center[1] + x.size[1] / 2.0 + 0.3,
                        x.center[2] + x.size[2] / 2.0 + 0.2,
                    ],
                    text: x.label.clone(),
                    color: Rgb(0xdd, 0xdd, 0xdd),
                    height: 1.5 * p.label,
                    right: false,
                },
                pick: None,
            });
        }
    }
    for &(f, t) in &b.flow {
        let (Some(a), Some(c)) = (b.blocks.get(f), b.blocks.get(t)) else {
            continue;
        };
        let hot = a.active || c.active;
        if !shown(a) || !shown(c) || (any_active && !hot && a.center[1] != c.center[1]) {
            // Links between floors of inactive layers are clutter.
            continue;
        }
        out.visuals.push(Visual {
            item: i,
            shape: Shape::Line {
                from: [a.center[0] + a.size[0] / 2.0, a.center[1], a.center[2]],
                to: [c.center[0] - c.size[0] / 2.0, c.center[1], c.center[2]],
                color: if hot { Role::Highlight.color() } else { GREY },
                width: if hot { 0.06 } else { 0.03 },
            },
            pick: None,
        });
    }
    if let Some((min, max)) = b.bounds() {
        out.regions.push(Region {
            id: item.id.clone(),
            min,
            max,
        });
        for x in &b.blocks {
            let (lo, hi) = x.corners();
            out.regions.push(Region {
                id: format!("{}/{}", item.id, x.id),
                min: lo,
                max: hi,
            });
        }
        out.visuals.push(Visual {
            item: i,
            shape: Shape::Label {
                at: [min[0], max[1] + 2.0 * p.title, max[2]],
                text: format!("{}  ·  {}", item.title, item.provenance.label()),
                color: provenance_color(&item.provenance),
                height: p.title,
                right: false,
            },
            pick: None,
        });
    }
}

/// Draws a flat item with its top-left corner at the origin; returns its width and
/// height.
fn flat(out: &mut Layout, i: usize, item: &Item, p: &LayoutParams) -> (f32, f32) {
    let prov = item.provenance.label();
    let mut push = |shape: Shape, pick: Option<Pick>| {
        out.visuals.push(Visual {
            item: i,
            shape,
            pick,
        })
    };
    let label = |at: V3, text: &str, height: f32| Shape::Label {
        at,
        text: text.to_string(),
        color: Rgb(0xdd, 0xdd, 0xdd),
        height,
        right: false,
    };
    let info = |lines: Vec<String>| Some(Pick::Info([lines, vec![prov.clone()]].concat()));
    match &item.primitive {
        Primitive::Heatmap(h) => {
            let (rows, cols) = (h.rows.len().max(1), h.cols.len().max(1));
            let cell = (p.heatmap_width / cols as f32)
                .min(p.heatmap_width / rows as f32)
                .min(p.max_cell);
            let (w, hh) = (cell * cols as f32, cell * rows as f32);
            // Row and column names where they are few enough to read; the column
            // names take a band above the cells, inside the item, so the title
            // (above the item) never sits on them.
            let named = cell >= p.label * 0.8;
            let name_h = p.label.min(cell);
            let head = if named && !h.cols.is_empty() {
                1.6 * name_h
            } else {
                0.0
            };
            let from = format!("{} × {}", h.row_axis, h.col_axis);
            out.heatmaps.push(HeatRef {
                heatmap: h.clone(),
                title: item.title.clone(),
                from,
                provenance: prov.clone(),
            });
            let hid = out.heatmaps.len() - 1;
            out.regions.push(Region {
                id: format!("{}/cells", item.id),
                min: [0.0, -head - hh, 0.0],
                max: [w, -head, 0.0],
            });
            out.visuals.push(Visual {
                item: i,
                shape: grid(h, [w / 2.0, -head - hh / 2.0, 0.0], [w, hh], Plane::Wall),
                pick: Some(Pick::Cells { heatmap: hid }),
            });
            if named {
                for (r, name) in h.rows.iter().enumerate() {
                    out.visuals.push(Visual {
                        item: i,
                        shape: Shape::Label {
                            at: [-0.1, -head - (r as f32 + 0.2) * cell, 0.0],
                            text: name.clone(),
                            color: Rgb(0xdd, 0xdd, 0xdd),
                            height: name_h,
                            right: true,
                        },
                        pick: None,
                    });
                }
                for (c, name) in h.cols.iter().enumerate() {
                    out.visuals.push(Visual {
                        item: i,
                        shape: Shape::Label {
                            at: [(c as f32 + 0.1) * cell, -head + 0.5 * name_h, 0.0],
                            text: name.clone(),
                            color: Rgb(0xdd, 0xdd, 0xdd),
                            height: name_h,
                            right: false,
                        },
                        pick: None,
                    });
                }
            }
            (w, hh + head)
        }
        Primitive::TensorBlock(t) => {
            // Log-scaled sides: a 49,152 × 576 table still fits on screen.
            let side = |k: usize| {
                t.shape
                    .get(k)
                    .map_or(0.5, |&n| 0.8 * ((n as f32) + 1.0).log2())
            };
            let size = [side(1).max(0.5), side(0).max(0.5), side(2).max(0.5)];
            push(
                Shape::Cuboid {
                    center: [size[0] / 2.0, -size[1] / 2.0, 0.0],
                    size,
                    color: t.role.color(),
                    dim: false,
                },
                info(vec![t.describe(), "sides drawn on a log scale".into()]),
            );
            if let Some(&(s, e)) = t.highlight.first()
                && let Some(&n) = t.shape.first()
                && n > 0
            {
                let frac = |v: usize| (v as f32 / n as f32).clamp(0.0, 1.0);
                let h = (frac(e) - frac(s)).max(0.02) * size[1];
                push(
                    Shape::Cuboid {
                        center: [size[0] / 2.0, -frac(s) * size[1] - h / 2.0, 0.0],
                        size: [size[0] * 1.02, h, size[2] * 1.02],
                        color: Role::Highlight.color(),
                        dim: false,
                    },
                    info(vec![format!(
                        "{} {s}..{e}",
                        t.axes.first().cloned().unwrap_or_default()
                    )]),
                );
            }
            push(
                label([0.0, -size[1] - 0.3, size[2] / 2.0], &t.describe(), p.label),
                None,
            );
            (size[0], size[1] + 0.6)
        }
        Primitive::PointCloud(pc) => {
            let s = p.cloud_size;
            let n = pc.dims.clamp(1, 3);
            let range: Vec<(f32, f32)> = (0..n)
                .map(|k| {
                    let it = pc.points.iter().filter_map(|q| q.coords.get(k).copied());
                    let lo = it.clone().fold(f32::INFINITY, f32::min);
                    let hi = it.fold(f32::NEG_INFINITY, f32::max);
                    if lo.is_finite() && hi > lo {
                        (lo, hi)
                    } else {
                        (lo.min(0.0), lo.min(0.0) + 1.0)
                    }
                })
                .collect();
            let at = |q: &Point| -> V3 {
                let u = |k: usize| {
                    let (lo, hi) = range.get(k).copied().unwrap_or((0.0, 1.0));
                    q.coords.get(k).map_or(0.5, |v| (v - lo) / (hi - lo))
                };
                [
                    u(0) * s,
                    -(1.0 - u(1)) * s,
                    if n == 3 { (u(2) - 0.5) * s } else { 0.0 },
                ]
            };
            let few = pc.points.len() <= 60;
            for q in &pc.points {
                let c = at(q);
                let color = if q.highlight {
                    Role::Highlight.color()
                } else {
                    Role::series(q.group)
                };
                let coords: Vec<String> = q.coords.iter().map(|&v| num(v as f64)).collect();
                push(
                    Shape::Cuboid {
                        center: c,
                        size: [p.point; 3],
                        color,
                        dim: false,
                    },
                    info(vec![q.label.clone(), format!("({})", coords.join(", "))]),
                );
                if few || q.highlight {
                    push(
                        label([c[0] + p.point, c[1] + p.point, c[2]], &q.label, p.label),
                        None,
                    );
                }
            }
            // Axes along the box's edges.
            let o = [0.0, -s, if n == 3 { -s / 2.0 } else { 0.0 }];
            let ends = [[s, -s, o[2]], [0.0, 0.0, o[2]], [0.0, -s, s / 2.0]];
            for (k, e) in ends.iter().enumerate().take(n) {
                push(
                    Shape::Line {
                        from: o,
                        to: *e,
                        color: GREY,
                        width: 0.03,
                    },
                    None,
                );
                if let Some(a) = pc.axes.get(k) {
                    push(label(*e, a, p.label), None);
                }
            }
            (s, s)
        }
        Primitive::Graph(g) => {
            let mut per_layer: std::collections::BTreeMap<usize, usize> = Default::default();
            let mut at = std::collections::HashMap::new();
            for nd in &g.nodes {
                let k = per_layer.entry(nd.layer).or_default();
                let c = [nd.layer as f32 * 4.0 + 0.5, -(*k as f32 + 0.5) * 1.2, 0.0];
                *k += 1;
                at.insert(nd.id.as_str(), c);
                push(
                    Shape::Cuboid {
                        center: c,
                        size: [1.0, 0.7, 0.3],
                        color: nd.role.color(),
                        dim: false,
                    },
                    info(vec![nd.label.clone()]),
                );
                push(
                    label([c[0] - 0.5, c[1] + 0.55, 0.2], &nd.label, p.label),
                    None,
                );
            }
            for e in &g.edges {
                if let (Some(a), Some(b)) = (at.get(e.from.as_str()), at.get(e.to.as_str())) {
                    push(
                        Shape::Line {
                            from: *a,
                            to: *b,
                            color: GREY,
                            width: 0.04,
                        },
                        None,
                    );
                }
            }
            let layers = per_layer.keys().max().map_or(1, |m| m + 1);
            let tall = per_layer.values().max().copied().unwrap_or(1);
            (layers as f32 * 4.0, tall as f32 * 1.2)
        }
        // Blocks keep their own layout; the 2-D kinds are panels (`views`), and
        // `build` passes neither here.
        Primitive::Blocks(_)
        | Primitive::TokenStrip(_)
        | Primitive::Bars(_)
        | Primitive::Timeline(_)
        | Primitive::BlockGrid(_)
        | Primitive::Tree(_)
        | Primitive::Plot(_)
        | Primitive::Table(_)
        | Primitive::Text(_)
        | Primitive::Progress(_) => (0.0, 0.0),
    }
}
