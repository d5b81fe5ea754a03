//! Presentation data from `scenes/`: sizes for the wall layout (`scenes/layout.toml`)
//! and each lab's camera targets per step (`scenes/<lab>.toml`). Changing a camera
//! path or a spacing is an edit there, not in Rust.

use crate::layout::{Layout, V3};
use crate::views::{Arrangement, PanelMetrics};
use lav_lab::{Value, Values};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Sizes of the wall layout, in world units.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LayoutParams {
    pub gap: f32,
    pub title: f32,
    pub label: f32,
    pub heatmap_width: f32,
    pub max_cell: f32,
    pub cloud_size: f32,
    pub point: f32,
    /// How much bigger flat items are drawn beside a 3-D block layout.
    pub beside_blocks_scale: f32,
    /// The 2-D panels, in pixels.
    pub panels: PanelMetrics,
}

/// Where the camera looks in one step.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Shot {
    /// Item ids, or `item/block` ids (one `*` matches any run of characters); `{key}` is
    /// replaced by the control's value. Empty: the whole scene.
    #[serde(default)]
    pub focus: Vec<String>,
    /// Degrees around the vertical axis (0 looks along −z) and above the horizon.
    pub yaw: Option<f32>,
    pub pitch: Option<f32>,
    /// Multiplies the distance that fits the focus on screen.
    pub zoom: Option<f32>,
    /// The step's panels as rows of item ids, top to bottom (`"3d"` is the 3-D view);
    /// empty: the automatic arrangement.
    #[serde(default)]
    pub panels: Vec<Vec<String>>,
    /// Relative heights of those rows (default equal).
    #[serde(default)]
    pub heights: Vec<f32>,
}

/// A lab's camera file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraPlan {
    #[serde(default)]
    pub default: Shot,
    #[serde(default)]
    pub step: BTreeMap<String, Shot>,
}

/// A camera pose: what it looks at, from where.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pose {
    pub target: V3,
    pub yaw: f32,
    pub pitch: f32,
    pub distance: f32,
}

pub const DEFAULT_YAW: f32 = -25.0;
pub const DEFAULT_PITCH: f32 = 30.0;

/// The `scenes/` folder: `$LAV_SCENES_DIR`, else the sibling of `labs/`.
pub fn scenes_dir() -> anyhow::Result<PathBuf> {
    if let Some(d) = std::env::var_os("LAV_SCENES_DIR") {
        return Ok(PathBuf::from(d));
    }
    let labs = lav_lab::labs_dir()?;
    let d = labs.with_file_name("scenes");
    anyhow::ensure!(
        d.join("layout.toml").is_file(),
        "scene assets not found at {}: set LAV_SCENES_DIR to the scenes/ folder of a lav checkout",
        d.display()
    );
    Ok(d)
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

impl LayoutParams {
    pub fn load(scenes: &Path) -> anyhow::Result<Self> {
        read_toml(&scenes.join("layout.toml"))
    }
}

impl CameraPlan {
    /// `scenes/<lab>.toml`, or an empty plan (frame everything) when there is none.
    pub fn load(scenes: &Path, lab: &str) -> anyhow::Result<Self> {
        let p = scenes.join(format!("{lab}.toml"));
        if p.is_file() {
            read_toml(&p)
        } else {
            Ok(CameraPlan::default())
        }
    }

    /// The step's panel arrangement, when the file gives one.
    pub fn arrangement(&self, step: &str) -> Option<Arrangement> {
        let shot = self.step.get(step)?;
        (!shot.panels.is_empty()).then(|| Arrangement {
            rows: shot.panels.clone(),
            heights: shot.heights.clone(),
        })
    }

    /// The pose for `step`, fitted to where the focus ended up in `layout`, for a view
    /// of aspect ratio `aspect` (width / height) and vertical field of view `fov` (rad).
    pub fn pose(
        &self,
        step: &str,
        values: &Values,
        layout: &Layout,
        aspect: f32,
        fov: f32,
    ) -> Pose {
        let shot = self.step.get(step);
        let pick = |f: fn(&Shot) -> Option<f32>, d: f32| {
            shot.and_then(f).or(f(&self.default)).unwrap_or(d)
        };
        let yaw = pick(|s| s.yaw, DEFAULT_YAW);
        let pitch = pick(|s| s.pitch, DEFAULT_PITCH);
        let zoom = pick(|s| s.zoom, 1.0);
        let focus = shot
            .map(|s| &s.focus)
            .filter(|f| !f.is_empty())
            .unwrap_or(&self.default.focus);
        let bounds = focus_bounds(focus, values, layout).or_else(|| layout.bounds());
        let (min, max) = bounds.unwrap_or(([-1.0; 3], [1.0; 3]));
        let target = std::array::from_fn(|i| (min[i] + max[i]) / 2.0);
        let radius = (0..3)
            .map(|i| (max[i] - min[i]) / 2.0)
            .map(|h| h * h)
            .sum::<f32>()
            .sqrt()
            .max(0.5);
        // Fit the bounding sphere in the narrower of the two fields of view.
        let half = (fov / 2.0).min((aspect * (fov / 2.0).tan()).atan());
        Pose {
            target,
            yaw,
            pitch,
            distance: zoom * radius / half.sin(),
        }
    }
}

/// The bounds of every region a focus list names.
pub fn focus_bounds(focus: &[String], values: &Values, layout: &Layout) -> Option<(V3, V3)> {
    let mut hits: Vec<(V3, V3)> = Vec::new();
    for f in focus {
        let f = substitute(f, values);
        // One `*` matches any run of characters.
        let (prefix, suffix) = f.split_once('*').unwrap_or((f.as_str(), ""));
        let exact = !f.contains('*');
        for r in &layout.regions {
            let hit = if exact {
                r.id == f
            } else {
                r.id.len() >= prefix.len() + suffix.len()
                    && r.id.starts_with(prefix)
                    && r.id.ends_with(suffix)
            };
            if hit {
                hits.push((r.min, r.max));
            }
        }
    }
    lav_scene::union(hits.into_iter())
}

/// `{key}` → the control's current value (numbers without a fraction print as integers).
fn substitute(s: &str, values: &Values) -> String {
    let mut out = s.to_string();
    for (k, v) in values.iter() {
        let pat = format!("{{{k}}}");
        if out.contains(&pat) {
            let text = match v {
                Value::Num(x) if x.fract() == 0.0 => format!("{}", *x as i64),
                Value::Num(x) => x.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Text(t) => t.clone(),
            };
            out = out.replace(&pat, &text);
        }
    }
    out
}
