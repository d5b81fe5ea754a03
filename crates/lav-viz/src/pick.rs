//! What is under the pointer: a ray against the layout's boxes and cell grids. Pure
//! geometry, so hovering is tested without a window.

use crate::layout::{Layout, Pick, Plane, Shape, V3};

/// What the ray hit: a visual, and for a grid the data cell `(row, col)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub visual: usize,
    pub cell: Option<(usize, usize)>,
    pub distance: f32,
}

/// The nearest pickable visual along the ray `origin + t·dir`, `t > 0`.
pub fn pick(layout: &Layout, origin: V3, dir: V3) -> Option<Hit> {
    let mut best: Option<Hit> = None;
    for (i, v) in layout.visuals.iter().enumerate() {
        if v.pick.is_none() {
            continue;
        }
        let hit = match &v.shape {
            Shape::Cuboid { center, size, .. } => {
                ray_box(origin, dir, *center, *size).map(|t| (t, None))
            }
            Shape::Grid {
                center,
                size,
                plane,
                rows,
                cols,
                ..
            } => ray_grid(origin, dir, *center, *size, *plane).map(|(t, u, w)| {
                let r = ((w * *rows as f32) as usize).min(rows.saturating_sub(1));
                let c = ((u * *cols as f32) as usize).min(cols.saturating_sub(1));
                (t, Some((r, c)))
            }),
            _ => None,
        };
        if let Some((t, cell)) = hit {
            // Grids lie on their block's top face: prefer them at (almost) equal depth.
            let t = if cell.is_some() { t - 0.02 } else { t };
            if best.as_ref().is_none_or(|b| t < b.distance) {
                best = Some(Hit {
                    visual: i,
                    cell,
                    distance: t,
                });
            }
        }
    }
    best
}

/// The lines to show for a hit.
pub fn describe(layout: &Layout, hit: &Hit) -> Vec<String> {
    match (&layout.visuals[hit.visual].pick, hit.cell) {
        (Some(Pick::Info(lines)), _) => lines.clone(),
        (Some(Pick::Cells { heatmap }), Some((r, c))) => layout.cell_info(*heatmap, r, c),
        _ => vec![],
    }
}

/// Slab test: the entry distance of the ray into an axis-aligned box.
pub fn ray_box(o: V3, d: V3, center: V3, size: V3) -> Option<f32> {
    let (mut t0, mut t1) = (f32::NEG_INFINITY, f32::INFINITY);
    for k in 0..3 {
        let (lo, hi) = (center[k] - size[k] / 2.0, center[k] + size[k] / 2.0);
        if d[k].abs() < 1e-9 {
            if o[k] < lo || o[k] > hi {
                return None;
            }
            continue;
        }
        let (a, b) = ((lo - o[k]) / d[k], (hi - o[k]) / d[k]);
        t0 = t0.max(a.min(b));
        t1 = t1.min(a.max(b));
    }
    (t1 >= t0.max(0.0)).then_some(t0.max(0.0))
}

/// The ray against a grid's rectangle: distance and the hit's `(u, v)` in 0..1, with
/// `u` along the columns and `v` along the rows.
pub fn ray_grid(o: V3, d: V3, center: V3, size: [f32; 2], plane: Plane) -> Option<(f32, f32, f32)> {
    // Normal axis, and the axes of columns and rows (rows run down the wall, or toward
    // +z on the floor).
    let (n, row_axis, row_sign) = match plane {
        Plane::Wall => (2, 1, -1.0),
        Plane::Floor => (1, 2, 1.0),
    };
    if d[n].abs() < 1e-9 {
        return None;
    }
    let t = (center[n] - o[n]) / d[n];
    if t <= 0.0 {
        return None;
    }
    let p: V3 = std::array::from_fn(|k| o[k] + t * d[k]);
    let u = (p[0] - center[0]) / size[0] + 0.5;
    let v = row_sign * (p[row_axis] - center[row_axis]) / size[1] + 0.5;
    ((0.0..=1.0).contains(&u) && (0.0..=1.0).contains(&v)).then_some((t, u, v))
}
