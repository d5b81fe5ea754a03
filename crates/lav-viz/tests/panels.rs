//! The panel arrangement without a GPU: for any mix of items, at the window sizes a
//! learner uses, every item is shown once, views never overlap, text boxes never
//! overlap, and the views fill the area beside the lesson panel.

use lav_scene::*;
use lav_viz::presentation::{CameraPlan, LayoutParams};
use lav_viz::views::{self, Arrangement, View};
use proptest::prelude::*;
use std::path::PathBuf;

fn params() -> LayoutParams {
    LayoutParams::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenes"))
        .expect("scenes/layout.toml")
}

use views::WINDOWS as AREAS;

fn prov() -> Provenance {
    Provenance::computed("a test")
}

/// One item of kind `k` (0..=12), sized by `n`.
fn item(k: u8, n: usize, i: usize) -> Item {
    let n = n.max(1);
    let words = |m: usize| {
        (0..m)
            .map(|w| format!("word{w}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let p = match k {
        0 => Primitive::Heatmap(Heatmap {
            rows: (0..n).map(|r| r.to_string()).collect(),
            cols: vec!["a".into(), "b".into()],
            values: vec![0.5; 2 * n],
            scale: ColorScale::fit(&[0.0, 1.0]),
            selected: None,
            row_axis: "token".into(),
            col_axis: "x".into(),
        }),
        1 => Primitive::Table(Table {
            columns: (0..(n % 7 + 1)).map(|c| format!("column {c}")).collect(),
            rows: (0..n * 3)
                .map(|r| vec![format!("{r} ms"); n % 7 + 1])
                .collect(),
        }),
        2 => Primitive::Text(Text {
            body: words(n * 20),
            style: TextStyle::Callout,
        }),
        3 => Primitive::TokenStrip(TokenStrip {
            tokens: (0..n * 6)
                .map(|t| Chip {
                    text: format!("tok{t}"),
                    id: Some(t as u32),
                    role: Role::Token,
                    highlight: false,
                })
                .collect(),
        }),
        4 => Primitive::Bars(Bars {
            bars: (0..n)
                .map(|b| Bar {
                    label: format!("layer {b}"),
                    value: b as f64 + 1.0,
                    role: Role::Head,
                })
                .collect(),
            unit: "ms".into(),
            log: n.is_multiple_of(2),
        }),
        5 => Primitive::Plot(Plot {
            x_label: "n".into(),
            y_label: "t".into(),
            x_log: false,
            y_log: true,
            series: vec![Series {
                name: "s".into(),
                points: (1..=n).map(|x| (x as f64, x as f64 * 2.0)).collect(),
                line: true,
                role: Role::Attention,
            }],
        }),
        6 => Primitive::Timeline(Timeline {
            lanes: (0..n).map(|l| format!("lane {l}")).collect(),
            spans: vec![],
            unit: "ms".into(),
        }),
        7 => Primitive::Progress(Progress {
            label: "working".into(),
            done: 1,
            total: 3,
        }),
        8 => Primitive::Blocks(Blocks {
            blocks: vec![],
            flow: vec![],
            unit: String::new(),
        }),
        9 => Primitive::PointCloud(PointCloud {
            dims: 2 + n % 2,
            axes: vec!["x".into(), "y".into(), "z".into()],
            points: vec![],
        }),
        10 => Primitive::Tree(Tree {
            root: TreeNode {
                label: "root".into(),
                value: None,
                children: vec![],
            },
        }),
        11 => Primitive::BlockGrid(BlockGrid {
            columns: n,
            cells: vec![],
        }),
        _ => Primitive::Graph(Graph {
            nodes: vec![],
            edges: vec![],
        }),
    };
    Item::new(format!("item{i}"), words(n % 9 + 1), prov(), p)
}

fn scene(kinds: &[(u8, usize)]) -> Scene {
    Scene {
        items: kinds
            .iter()
            .enumerate()
            .map(|(i, &(k, n))| item(k, n, i))
            .collect(),
    }
}

proptest! {
    #[test]
    fn any_mix_of_items_is_arranged_without_overlap(
        kinds in prop::collection::vec((0u8..13, 1usize..12), 1..9),
    ) {
        let s = scene(&kinds);
        let m = params().panels;
        for area in AREAS {
            let plan = views::plan(&s, area, None, &m);
            if let Err(e) = plan.check(&s, area, &m) {
                return Err(TestCaseError::fail(format!("{area:?}: {e}")));
            }
        }
    }

    #[test]
    fn any_arrangement_keeps_every_item(
        kinds in prop::collection::vec((0u8..13, 1usize..12), 1..7),
        rows in prop::collection::vec(prop::collection::vec(0usize..9, 1..4), 0..4),
    ) {
        let s = scene(&kinds);
        let m = params().panels;
        // Ids past the scene's end name nothing, as in a stale scene file.
        let a = Arrangement {
            rows: rows
                .iter()
                .map(|r| r.iter().map(|&i| if i == 8 { "3d".into() } else { format!("item{i}") }).collect())
                .collect(),
            heights: vec![],
        };
        for area in AREAS {
            let plan = views::plan(&s, area, Some(&a), &m);
            if let Err(e) = plan.check(&s, area, &m) {
                return Err(TestCaseError::fail(format!("{area:?}: {e}")));
            }
        }
    }
}

#[test]
fn each_primitive_has_the_view_the_issue_names() {
    let v = |k: u8, n: usize| views::view(&item(k, n, 0).primitive);
    assert_eq!(v(0, 1), View::Spatial);
    assert_eq!(v(1, 1), View::Table);
    assert_eq!(v(4, 1), View::Bars);
    assert_eq!(v(5, 1), View::Plot);
    assert_eq!(v(6, 1), View::Timeline);
    assert_eq!(v(8, 1), View::Spatial);
    assert_eq!(v(9, 2), View::Scatter);
    assert_eq!(v(9, 1), View::Spatial, "a 3-D point cloud");
    assert_eq!(v(12, 1), View::Spatial);
}

/// A scene file's arrangement names rows; the reader keeps them.
#[test]
fn a_scene_file_arrangement_is_read_per_step() {
    let plan: CameraPlan = toml::from_str(
        r#"
        [step.recompute]
        panels = [["timing", "cost"], ["3d"]]
        heights = [2, 1]
        "#,
    )
    .unwrap();
    let a = plan.arrangement("recompute").unwrap();
    assert_eq!(
        a.rows,
        vec![vec!["timing".to_string(), "cost".into()], vec!["3d".into()]]
    );
    assert_eq!(a.heights, vec![2.0, 1.0]);
    assert_eq!(plan.arrangement("other"), None);
}
