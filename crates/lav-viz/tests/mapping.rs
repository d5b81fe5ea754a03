//! Scene → shapes without a GPU: every spatial primitive is drawn (2-D kinds are
//! panels), big matrices are one data
//! texture coloured with the shared palette, blocks keep the lab's layout, hovering
//! reads the true value, and the camera files in scenes/ point at real steps.

use lav_scene::*;
use lav_viz::layout::{self, Layout, MAX_TEXTURE, Pick, Plane, Shape, heat_pixels};
use lav_viz::pick;
use lav_viz::presentation::{CameraPlan, LayoutParams, focus_bounds};
use lav_viz::views::{self, View};
use std::path::PathBuf;

fn scenes() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenes")
}

fn params() -> LayoutParams {
    LayoutParams::load(&scenes()).expect("scenes/layout.toml")
}

fn heat(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f32) -> Heatmap {
    let values: Vec<f32> = (0..rows * cols).map(|i| f(i / cols, i % cols)).collect();
    Heatmap {
        rows: (0..rows).map(|r| format!("r{r}")).collect(),
        cols: (0..cols).map(|c| format!("c{c}")).collect(),
        scale: ColorScale::fit_signed(&values),
        values,
        selected: None,
        row_axis: "token".into(),
        col_axis: "channel".into(),
    }
}

fn grids(l: &Layout) -> Vec<&Shape> {
    l.visuals
        .iter()
        .map(|v| &v.shape)
        .filter(|s| matches!(s, Shape::Grid { .. }))
        .collect()
}

fn labels(l: &Layout) -> Vec<&str> {
    l.visuals
        .iter()
        .filter_map(|v| match &v.shape {
            Shape::Label { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_576_by_1536_matrix_is_one_texture_in_the_palette_colours() {
    let h = heat(576, 1536, |r, c| ((r * 7 + c * 13) % 101) as f32 - 50.0);
    let scene = Scene::new().with(Item::new(
        "w",
        "W_up",
        Provenance::model("SmolLM2"),
        Primitive::Heatmap(h.clone()),
    ));
    let l = layout::build(&scene, &params());
    let g = grids(&l);
    assert_eq!(g.len(), 1, "one data texture, not one entity per cell");
    // Boxes and lines are entities; a heatmap adds none per cell.
    let entities = l
        .visuals
        .iter()
        .filter(|v| !matches!(v.shape, Shape::Label { .. }))
        .count();
    assert_eq!(entities, 1);
    let Shape::Grid {
        tex_rows,
        tex_cols,
        pixels,
        rows,
        cols,
        size,
        plane,
        ..
    } = g[0]
    else {
        unreachable!()
    };
    assert_eq!((*tex_rows, *tex_cols, *rows, *cols), (576, 1536, 576, 1536));
    assert_eq!(*plane, Plane::Wall);
    // Cells stay square.
    assert!((size[0] / size[1] - 1536.0 / 576.0).abs() < 1e-4);
    for (r, c) in [(0, 0), (100, 999), (575, 1535)] {
        let Rgb(a, b, d) = h.scale.color(h.get(r, c) as f64);
        assert_eq!(pixels[r * 1536 + c], [a, b, d, 255], "cell {r},{c}");
    }
    // Titles and provenance are drawn.
    let t = labels(&l);
    assert!(
        t.contains(&"W_up") && t.contains(&"model: SmolLM2"),
        "{t:?}"
    );
}

#[test]
fn wider_than_a_texture_is_pooled_and_keeps_its_spike() {
    let mut h = heat(1, 49152, |_, c| (c % 7) as f32 * 0.01);
    h.values[30001] = 9.0;
    h.scale = ColorScale::fit_signed(&h.values);
    let (tr, tc, px) = heat_pixels(&h);
    assert_eq!((tr, tc), (1, MAX_TEXTURE));
    let spike = h.scale.color(9.0);
    let col = 30001 * MAX_TEXTURE / 49152;
    assert_eq!(px[col], [spike.0, spike.1, spike.2, 255]);
    assert_eq!(px.iter().filter(|p| **p == px[col]).count(), 1);
}

fn one_of_each() -> Scene {
    let prov = Provenance::computed("test");
    let what_if = Provenance::what_if("post-norm");
    let items: Vec<(Provenance, Primitive)> = vec![
        (
            prov.clone(),
            Primitive::TokenStrip(TokenStrip {
                tokens: vec![Chip {
                    text: "cat".into(),
                    id: Some(9),
                    role: Role::Token,
                    highlight: true,
                }],
            }),
        ),
        (
            prov.clone(),
            Primitive::Heatmap(heat(3, 4, |r, c| (r + c) as f32)),
        ),
        (
            prov.clone(),
            Primitive::TensorBlock(TensorBlock {
                shape: vec![49152, 576],
                axes: vec!["token id".into(), "channel".into()],
                role: Role::Weight,
                highlight: vec![(10, 20)],
            }),
        ),
        (
            prov.clone(),
            Primitive::PointCloud(PointCloud {
                dims: 3,
                axes: vec!["x".into(), "y".into(), "z".into()],
                points: (0..5)
                    .map(|i| Point {
                        label: format!("p{i}"),
                        coords: vec![i as f32, 1.0, -(i as f32)],
                        group: i,
                        highlight: i == 2,
                    })
                    .collect(),
            }),
        ),
        (
            prov.clone(),
            Primitive::Bars(Bars {
                bars: vec![
                    Bar {
                        label: "a".into(),
                        value: 2.0,
                        role: Role::Head,
                    },
                    Bar {
                        label: "b".into(),
                        value: 4.0,
                        role: Role::Vocab,
                    },
                ],
                unit: "ms".into(),
                log: false,
            }),
        ),
        (
            prov.clone(),
            Primitive::Timeline(Timeline {
                lanes: vec!["gpu".into()],
                spans: vec![Span {
                    lane: 0,
                    start: 0.0,
                    end: 2.0,
                    label: "prefill".into(),
                    role: Role::Token,
                }],
                unit: "ms".into(),
            }),
        ),
        (
            prov.clone(),
            Primitive::BlockGrid(BlockGrid {
                columns: 2,
                cells: vec![
                    Cell {
                        owner: Some(0),
                        label: "a".into(),
                    },
                    Cell {
                        owner: None,
                        label: String::new(),
                    },
                ],
            }),
        ),
        (
            prov.clone(),
            Primitive::Tree(Tree {
                root: TreeNode {
                    label: "root".into(),
                    value: None,
                    children: vec![TreeNode {
                        label: "leaf".into(),
                        value: Some("1".into()),
                        children: vec![],
                    }],
                },
            }),
        ),
        (
            prov.clone(),
            Primitive::Graph(Graph {
                nodes: vec![
                    Node {
                        id: "q".into(),
                        label: "Q".into(),
                        role: Role::Head,
                        layer: 0,
                    },
                    Node {
                        id: "k".into(),
                        label: "K".into(),
                        role: Role::Position,
                        layer: 1,
                    },
                ],
                edges: vec![Edge {
                    from: "q".into(),
                    to: "k".into(),
                    label: String::new(),
                }],
            }),
        ),
        (
            prov.clone(),
            Primitive::Plot(Plot {
                x_label: "n".into(),
                y_label: "t".into(),
                x_log: true,
                y_log: false,
                series: vec![Series {
                    name: "s".into(),
                    points: vec![(1.0, 1.0), (10.0, 2.0), (100.0, 4.0)],
                    line: true,
                    role: Role::Attention,
                }],
            }),
        ),
        (
            prov.clone(),
            Primitive::Table(Table {
                columns: vec!["k".into(), "v".into()],
                rows: vec![vec!["a".into(), "1".into()]],
            }),
        ),
        (
            what_if,
            Primitive::Text(Text {
                body: "not what the model does".into(),
                style: TextStyle::Warning,
            }),
        ),
    ];
    let mut s = Scene::new();
    for (i, (p, prim)) in items.into_iter().enumerate() {
        s.push(Item::new(format!("i{i}"), format!("item {i}"), p, prim));
    }
    s
}

#[test]
fn every_spatial_primitive_is_drawn_with_its_provenance_and_2d_kinds_are_left_to_panels() {
    let mut scene = one_of_each();
    // A heatmap marked what-if, to check the provenance colour.
    scene.push(Item::new(
        "wi",
        "what if",
        Provenance::what_if("post-norm"),
        Primitive::Heatmap(heat(2, 2, |r, c| (r * c) as f32)),
    ));
    let l = layout::build(&scene, &params());
    let mut spatial = 0;
    for (i, item) in scene.items.iter().enumerate() {
        let mine: Vec<&Shape> = l
            .visuals
            .iter()
            .filter(|v| v.item == i)
            .map(|v| &v.shape)
            .collect();
        if views::view(&item.primitive) != View::Spatial {
            assert!(mine.is_empty(), "{} is a 2-D panel: {mine:?}", item.id);
            assert!(l.region(&item.id).is_none());
            continue;
        }
        spatial += 1;
        // Title, provenance, and at least one drawing of its own.
        assert!(mine.len() >= 3, "{}: {mine:?}", item.id);
        let prov = item.provenance.label();
        // Whole, or cut to the item's width with an ellipsis (hovering shows it whole).
        let shows = |text: &str| {
            text == prov
                || text
                    .strip_suffix('…')
                    .is_some_and(|t| t.chars().count() >= 3 && prov.starts_with(t))
        };
        assert!(
            mine.iter()
                .any(|s| matches!(s, Shape::Label { text, .. } if shows(text))),
            "{} has no provenance label",
            item.id
        );
        assert!(l.region(&item.id).is_some());
    }
    // The heatmaps, the tensor block, the 3-D cloud and the graph.
    assert_eq!(spatial, 5);
    // What-ifs are marked in the what-if colour.
    let wi = l
        .visuals
        .iter()
        .find_map(|v| match &v.shape {
            Shape::Label { text, color, .. } if text.starts_with("what-if") => Some(*color),
            _ => None,
        })
        .unwrap();
    assert_eq!(wi, Role::WhatIf.color());
    // Side by side: no two items' regions overlap along x.
    let mut r: Vec<_> = scene.items.iter().filter_map(|i| l.region(&i.id)).collect();
    r.sort_by(|a, b| a.min[0].total_cmp(&b.min[0]));
    for w in r.windows(2) {
        assert!(
            w[0].max[0] <= w[1].min[0],
            "{} overlaps {}",
            w[0].id,
            w[1].id
        );
    }
}

fn arch() -> Scene {
    let b = |id: &str, x: f32, active: bool, values: Option<Heatmap>| Block {
        id: id.into(),
        label: id.to_uppercase(),
        center: [x, 0.0, 0.0],
        size: [4.0, 0.25, 2.0],
        role: Role::Activation,
        shape: vec![4, 8],
        axes: vec!["token".into(), "channel".into()],
        values,
        active,
    };
    Scene::new()
        .with(Item::new(
            "arch",
            "blocks",
            Provenance::model("SmolLM2"),
            Primitive::Blocks(Blocks {
                blocks: vec![
                    b("norm", 0.0, false, None),
                    b("q", 10.0, true, Some(heat(4, 8, |r, c| (r * 8 + c) as f32))),
                ],
                flow: vec![(0, 1)],
                unit: "1 unit = 64 channels".into(),
            }),
        ))
        .with(Item::new(
            "next",
            "next token",
            Provenance::model("SmolLM2"),
            Primitive::Heatmap(heat(1, 2, |_, c| 41.0 + c as f32)),
        ))
}

#[test]
fn blocks_keep_their_place_and_hovering_reads_the_true_value() {
    let scene = arch();
    let l = layout::build(&scene, &params());
    let boxes: Vec<(&[f32; 3], bool)> = l
        .visuals
        .iter()
        .filter(|v| v.item == 0)
        .filter_map(|v| match &v.shape {
            Shape::Cuboid { center, dim, .. } => Some((center, *dim)),
            _ => None,
        })
        .collect();
    // One box per block at the lab's coordinates; the inactive one is drawn dim.
    assert_eq!(
        boxes,
        vec![(&[0.0, 0.0, 0.0], true), (&[10.0, 0.0, 0.0], false)]
    );
    assert_eq!(l.region("arch/q").unwrap().min, [8.0, -0.125, -1.0]);
    // The values lie on the block's top face (the other grid is the heatmap beside).
    let g: Vec<&Shape> = l
        .visuals
        .iter()
        .filter(|v| v.item == 0 && matches!(v.shape, Shape::Grid { .. }))
        .map(|v| &v.shape)
        .collect();
    assert_eq!(g.len(), 1);
    assert_eq!(grids(&l).len(), 2);
    let Shape::Grid { center, plane, .. } = g[0] else {
        unreachable!()
    };
    assert_eq!(*plane, Plane::Floor);
    assert!(center[1] > 0.125);
    // Straight down onto the block at cell (row 3, col 6): x = 8 + 6.5 · 0.5, z = -1 + 3.5 · 0.5.
    let hit = pick::pick(&l, [11.25, 10.0, 0.75], [0.0, -1.0, 0.0]).expect("a hit");
    assert_eq!(hit.cell, Some((3, 6)));
    let lines = pick::describe(&l, &hit);
    assert!(
        lines.contains(&"token r3  ·  channel c6".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"value 30".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"computed from NORM".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"model: SmolLM2".to_string()), "{lines:?}");
    // The heatmap sits on the wall beside the blocks, not inside them.
    let next = l.region("next").unwrap();
    assert!(next.max[0] < -1.0);
    // A ray at its second cell reads that cell's value.
    let cell = l
        .visuals
        .iter()
        .find(|v| v.item == 1 && matches!(v.pick, Some(Pick::Cells { .. })))
        .unwrap();
    let Shape::Grid { center, size, .. } = cell.shape else {
        unreachable!()
    };
    let at = [center[0] + size[0] / 4.0, center[1], center[2] + 50.0];
    let hit = pick::pick(&l, at, [0.0, 0.0, -1.0]).unwrap();
    assert_eq!(hit.cell, Some((0, 1)));
    assert!(
        pick::describe(&l, &hit).contains(&"value 42".to_string()),
        "{:?}",
        pick::describe(&l, &hit)
    );
    // Nothing there: no hit.
    assert!(pick::pick(&l, [500.0, 500.0, 500.0], [0.0, 1.0, 0.0]).is_none());
}

#[test]
fn camera_files_parse_and_name_real_steps() {
    let labs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../labs");
    // The renderer knows no lab implementation: an empty catalogue lists every lab of
    // the index as planned, which is enough to find its lesson.
    let reg = lav_lab::Registry::load(&labs, &lav_lab::Catalogue::default()).unwrap();
    let mut seen = 0;
    for e in std::fs::read_dir(scenes()).unwrap() {
        let p = e.unwrap().path();
        let Some(stem) = p.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if p.extension().is_none_or(|x| x != "toml") || stem == "layout" {
            continue;
        }
        let entry = reg
            .get(stem)
            .unwrap_or_else(|| panic!("scenes/{stem}.toml: no lab `{stem}` in labs/index.toml"));
        let lesson = lav_lab::Lesson::load(&reg.lesson_path(entry)).unwrap();
        let plan = CameraPlan::load(&scenes(), stem).unwrap();
        for step in plan.step.keys() {
            assert!(
                lesson.step(step).is_some(),
                "scenes/{stem}.toml: no step `{step}`"
            );
        }
        seen += 1;
    }
    assert!(seen >= 2, "camera files for forward-pass and attention");
}

#[test]
fn focus_patterns_follow_the_controls() {
    let cfg_scene = {
        let mut s = arch();
        if let Primitive::Blocks(b) = &mut s.items[0].primitive {
            b.blocks[0].id = "L3.q.0".into();
            b.blocks[1].id = "L3.k.0".into();
        }
        s
    };
    let l = layout::build(&cfg_scene, &params());
    let layer = lav_lab::Control::slider("layer", "Layer", 0.0, 29.0, 1.0, 0.0);
    let mut v = lav_lab::Values::default();
    v.set(&layer, lav_lab::Value::Num(3.0)).unwrap();
    let one = focus_bounds(&["arch/L{layer}.q.*".into()], &v, &l).unwrap();
    assert_eq!(one.0[0], -2.0);
    assert_eq!(one.1[0], 2.0);
    let both = focus_bounds(&["arch/L*.0".into()], &v, &l).unwrap();
    assert_eq!((both.0[0], both.1[0]), (-2.0, 12.0));
    v.set(&layer, lav_lab::Value::Num(4.0)).unwrap();
    assert!(focus_bounds(&["arch/L{layer}.q.*".into()], &v, &l).is_none());
    // A pose frames its focus: the target is the focus's centre.
    let plan: CameraPlan = toml::from_str(
        r#"
        [step.qkv]
        focus = ["arch/L{layer}.k.*"]
        yaw = 10.0
        "#,
    )
    .unwrap();
    v.set(&layer, lav_lab::Value::Num(3.0)).unwrap();
    let p = plan.pose("qkv", &v, &l, 16.0 / 9.0, std::f32::consts::FRAC_PI_4);
    assert_eq!(p.target, [10.0, 0.0, 0.0]);
    assert_eq!(p.yaw, 10.0);
    assert!(p.distance > 2.0 && p.distance < 20.0, "{}", p.distance);
}

/// A heatmap's column names get their own band inside the item, so the title above
/// it and the names never share a line (they did on the evals matrix).
#[test]
fn a_heatmaps_column_names_sit_clear_of_its_title() {
    let p = params();
    let scene = Scene::new().with(Item::new(
        "m",
        "Failures",
        Provenance::computed("labels"),
        Primitive::Heatmap(heat(3, 4, |r, c| (r + c) as f32)),
    ));
    let l = layout::build(&scene, &p);
    let label_at = |want: &str| {
        l.visuals
            .iter()
            .find_map(|v| match &v.shape {
                Shape::Label {
                    text, at, height, ..
                } if text == want => Some((at[1], *height)),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no label {want}: {:?}", labels(&l)))
    };
    let (title_y, title_h) = label_at("Failures");
    let cells = l.regions.iter().find(|r| r.id == "m/cells").unwrap();
    for c in 0..4 {
        let (y, h) = label_at(&format!("c{c}"));
        // Neither text reaches the other, whichever way a label hangs from its point.
        assert!(
            title_y - y >= title_h.max(h),
            "c{c}: {y} vs title {title_y}"
        );
        // The names are still above the cells, next to them.
        assert!(y > cells.max[1] && y - cells.max[1] < 2.0 * h, "c{c}: {y}");
    }
}
