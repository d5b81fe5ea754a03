//! The scene primitives. Plain data: every field is what a renderer needs to draw,
//! already computed. Matrices are row-major `Vec<f32>` with their shape alongside.

use crate::palette::{ColorScale, Role};
use serde::{Deserialize, Serialize};

/// What one lab step shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    pub items: Vec<Item>,
}

impl Scene {
    pub fn new() -> Self {
        Scene { items: Vec::new() }
    }

    /// Adds an item and returns the scene (builder style).
    pub fn with(mut self, item: Item) -> Self {
        self.items.push(item);
        self
    }

    pub fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    /// The first item with this id.
    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.id == id)
    }
}

impl Default for Scene {
    fn default() -> Self {
        Self::new()
    }
}

/// One primitive with a stable id (tests and renderers address it), a caption and
/// the provenance of its numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: String,
    pub title: String,
    pub provenance: Provenance,
    pub primitive: Primitive,
}

impl Item {
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        provenance: Provenance,
        primitive: Primitive,
    ) -> Self {
        Item {
            id: id.into(),
            title: title.into(),
            provenance,
            primitive,
        }
    }
}

/// Where the numbers of an item come from. Renderers always show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provenance {
    /// Computed by the real model on this machine (`model` names it).
    Model { model: String },
    /// Measured from the real inference engine or agent runtime.
    Engine { engine: String },
    /// A simulator driven by a row of the hardware table.
    Simulated { hardware: String },
    /// A published figure, with its source.
    Published { citation: String },
    /// A counterfactual: what would happen if… The model does not do this.
    WhatIf { note: String },
    /// Computed from a formula or by the lab itself on the learner's input (a BPE
    /// trainer, a PCA), not by the model.
    Computed { method: String },
    /// Moves written in advance (an agent's calls) run through the real runtime: the
    /// results are real, the choices are not the model's.
    Scripted { note: String },
    /// A run of the real model or runtime saved earlier and played back (`source`
    /// says what ran, where and how it was recorded): real, but not happening now.
    Recorded { source: String },
}

impl Provenance {
    pub fn model(m: impl Into<String>) -> Self {
        Provenance::Model { model: m.into() }
    }
    pub fn engine(e: impl Into<String>) -> Self {
        Provenance::Engine { engine: e.into() }
    }
    pub fn simulated(h: impl Into<String>) -> Self {
        Provenance::Simulated { hardware: h.into() }
    }
    pub fn published(c: impl Into<String>) -> Self {
        Provenance::Published { citation: c.into() }
    }
    pub fn what_if(n: impl Into<String>) -> Self {
        Provenance::WhatIf { note: n.into() }
    }
    pub fn computed(m: impl Into<String>) -> Self {
        Provenance::Computed { method: m.into() }
    }
    pub fn scripted(n: impl Into<String>) -> Self {
        Provenance::Scripted { note: n.into() }
    }
    pub fn recorded(s: impl Into<String>) -> Self {
        Provenance::Recorded { source: s.into() }
    }

    /// A short label for renderers: "model: SmolLM2-135M", "what-if: …".
    pub fn label(&self) -> String {
        match self {
            Provenance::Model { model } => format!("model: {model}"),
            Provenance::Engine { engine } => format!("engine: {engine}"),
            Provenance::Simulated { hardware } => format!("simulated: {hardware}"),
            Provenance::Published { citation } => format!("published: {citation}"),
            Provenance::WhatIf { note } => format!("what-if: {note}"),
            Provenance::Computed { method } => format!("computed: {method}"),
            Provenance::Scripted { note } => format!("scripted: {note}"),
            Provenance::Recorded { source } => format!("recorded: {source}"),
        }
    }

    pub fn is_what_if(&self) -> bool {
        matches!(self, Provenance::WhatIf { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Primitive {
    TokenStrip(TokenStrip),
    Heatmap(Heatmap),
    TensorBlock(TensorBlock),
    PointCloud(PointCloud),
    Bars(Bars),
    Timeline(Timeline),
    BlockGrid(BlockGrid),
    Tree(Tree),
    Graph(Graph),
    Plot(Plot),
    Table(Table),
    Text(Text),
    Blocks(Blocks),
    Progress(Progress),
}

/// A row of token chips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenStrip {
    pub tokens: Vec<Chip>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Chip {
    /// The text as shown (whitespace made visible by the lab where it matters).
    pub text: String,
    /// The token id, where there is one.
    pub id: Option<u32>,
    pub role: Role,
    /// Selected or new in this step.
    #[serde(default)]
    pub highlight: bool,
}

/// A labelled matrix drawn as coloured cells.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heatmap {
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// Row-major, `rows.len() × cols.len()`. Masked cells may be −∞ (drawn grey).
    pub values: Vec<f32>,
    pub scale: ColorScale,
    /// The cell the learner selected, `(row, col)`.
    pub selected: Option<(usize, usize)>,
    pub row_axis: String,
    pub col_axis: String,
}

impl Heatmap {
    pub fn get(&self, r: usize, c: usize) -> f32 {
        self.values[r * self.cols.len() + c]
    }
}

/// A 3-D tensor drawn as a block: its shape, axis names, and optionally a highlighted
/// slab (e.g. the rows a lookup selects) and a small sample of values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorBlock {
    pub shape: Vec<usize>,
    pub axes: Vec<String>,
    pub role: Role,
    /// Index ranges per axis that are highlighted, `[start, end)`.
    pub highlight: Vec<(usize, usize)>,
}

impl TensorBlock {
    /// Its shape in words, e.g. `49152 token id × 576 channel`.
    pub fn describe(&self) -> String {
        describe_shape(&self.shape, &self.axes)
    }
}

/// A tensor shape in words: `[49152, 576]` with axes `token id`, `channel` →
/// `49152 token id × 576 channel`.
pub fn describe_shape(shape: &[usize], axes: &[String]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .zip(axes)
        .map(|(n, a)| format!("{n} {a}"))
        .collect();
    dims.join(" × ")
}

/// Labelled points in 2-D or 3-D.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointCloud {
    /// 2 or 3.
    pub dims: usize,
    pub axes: Vec<String>,
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub label: String,
    /// `dims` coordinates.
    pub coords: Vec<f32>,
    /// Group index (colour via [`Role::series`]).
    pub group: usize,
    #[serde(default)]
    pub highlight: bool,
}

/// A bar chart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bars {
    pub bars: Vec<Bar>,
    pub unit: String,
    #[serde(default)]
    pub log: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub role: Role,
}

/// Lanes of spans over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub lanes: Vec<String>,
    pub spans: Vec<Span>,
    pub unit: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    pub lane: usize,
    pub start: f64,
    pub end: f64,
    pub label: String,
    pub role: Role,
}

/// A grid of blocks (an allocator view): each cell free or owned by someone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockGrid {
    pub columns: usize,
    pub cells: Vec<Cell>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Who holds the block; `None` is free.
    pub owner: Option<usize>,
    pub label: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub root: TreeNode,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TreeNode {
    pub label: String,
    pub value: Option<String>,
    pub children: Vec<TreeNode>,
}

/// Nodes and directed edges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub label: String,
    pub role: Role,
    /// Column for layered layouts (renderers may ignore it).
    pub layer: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: String,
}

/// Lines and points on two axes, either of which may be logarithmic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plot {
    pub x_label: String,
    pub y_label: String,
    #[serde(default)]
    pub x_log: bool,
    #[serde(default)]
    pub y_log: bool,
    pub series: Vec<Series>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Joined by lines (else drawn as points).
    pub line: bool,
    pub role: Role,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The cell in the row whose first column is `key`, under column `col`.
    pub fn lookup(&self, key: &str, col: &str) -> Option<&str> {
        let c = self.columns.iter().position(|x| x == col)?;
        let r = self
            .rows
            .iter()
            .find(|r| r.first().is_some_and(|k| k == key))?;
        r.get(c).map(String::as_str)
    }
}

/// Boxes placed in 3-D by the lab: a model's architecture laid out from its config
/// (the layout is the lab's, so every renderer shows the same arrangement). The 3-D
/// app draws them where they say; flat renderers list them and draw their values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Blocks {
    pub blocks: Vec<Block>,
    /// Data flow between blocks, as indices into `blocks`.
    pub flow: Vec<(usize, usize)>,
    /// What one unit of the coordinates stands for, e.g. "1 unit = 64 channels".
    pub unit: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub id: String,
    pub label: String,
    /// Centre `(x, y, z)`, y up.
    pub center: [f32; 3],
    /// Extent along x, y and z.
    pub size: [f32; 3],
    pub role: Role,
    /// The tensor the block holds or produces, and its axis names.
    pub shape: Vec<usize>,
    pub axes: Vec<String>,
    /// Real values painted on the block's top face (rows run along z, columns along
    /// x), when this step has them.
    pub values: Option<Heatmap>,
    /// Part of what the step is about; the others are context (drawn dim).
    pub active: bool,
}

impl Block {
    /// Its tensor's shape in words.
    pub fn describe(&self) -> String {
        describe_shape(&self.shape, &self.axes)
    }

    /// Its `(min, max)` corners.
    pub fn corners(&self) -> ([f32; 3], [f32; 3]) {
        (
            std::array::from_fn(|i| self.center[i] - self.size[i] / 2.0),
            std::array::from_fn(|i| self.center[i] + self.size[i] / 2.0),
        )
    }
}

impl Blocks {
    /// The block with this id.
    pub fn block(&self, id: &str) -> Option<&Block> {
        self.blocks.iter().find(|b| b.id == id)
    }

    /// The smallest box holding every block: `(min, max)` corners.
    pub fn bounds(&self) -> Option<([f32; 3], [f32; 3])> {
        bounds_of(self.blocks.iter())
    }
}

/// The smallest box holding `blocks`: `(min, max)` corners.
pub fn bounds_of<'a>(blocks: impl Iterator<Item = &'a Block>) -> Option<([f32; 3], [f32; 3])> {
    union(blocks.map(Block::corners))
}

/// The smallest box holding every `(min, max)` box, if any.
pub fn union(boxes: impl Iterator<Item = ([f32; 3], [f32; 3])>) -> Option<([f32; 3], [f32; 3])> {
    boxes.reduce(|(a, b), (c, d)| {
        (
            std::array::from_fn(|i| a[i].min(c[i])),
            std::array::from_fn(|i| b[i].max(d[i])),
        )
    })
}

/// Work under way (re-quantizing a model, timing a decode): the scene is shown while
/// it runs and recomputed when it ends, so the UI never waits on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// What is being done, e.g. "re-quantizing layer 12 of 30".
    pub label: String,
    pub done: u64,
    pub total: u64,
}

impl Progress {
    /// Fraction done, in `[0, 1]`.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f64 / self.total as f64).clamp(0.0, 1.0)
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Text {
    pub body: String,
    pub style: TextStyle,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextStyle {
    Plain,
    /// A fact or result worth pausing on.
    Callout,
    /// Something went wrong or is not what the model does.
    Warning,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_bounds_cover_every_corner() {
        let b = |c: [f32; 3], s: [f32; 3]| Block {
            id: String::new(),
            label: String::new(),
            center: c,
            size: s,
            role: Role::Weight,
            shape: vec![],
            axes: vec![],
            values: None,
            active: false,
        };
        let bl = Blocks {
            blocks: vec![b([0.0; 3], [2.0; 3]), b([5.0, 0.0, -1.0], [1.0, 4.0, 1.0])],
            flow: vec![],
            unit: String::new(),
        };
        assert_eq!(bl.bounds(), Some(([-1.0, -2.0, -1.5], [5.5, 2.0, 1.0])));
        assert_eq!(bounds_of([].iter()), None);
    }

    /// One of every primitive: the JSON a renderer reads must come back unchanged.
    #[test]
    fn every_primitive_round_trips_through_json() {
        let p = Provenance::published("Vaswani et al. 2017");
        let prims = vec![
            Primitive::TokenStrip(TokenStrip {
                tokens: vec![Chip {
                    text: "a".into(),
                    id: Some(1),
                    role: Role::Token,
                    highlight: true,
                }],
            }),
            Primitive::Heatmap(Heatmap {
                rows: vec!["r".into()],
                cols: vec!["c".into(), "d".into()],
                values: vec![0.5, -1.0],
                scale: ColorScale::fit_signed(&[0.5, -1.0]),
                selected: Some((0, 1)),
                row_axis: "query".into(),
                col_axis: "key".into(),
            }),
            Primitive::TensorBlock(TensorBlock {
                shape: vec![2, 3, 4],
                axes: vec!["a".into(), "b".into(), "c".into()],
                role: Role::Weight,
                highlight: vec![(0, 1)],
            }),
            Primitive::PointCloud(PointCloud {
                dims: 3,
                axes: vec!["x".into(), "y".into(), "z".into()],
                points: vec![Point {
                    label: "p".into(),
                    coords: vec![1.0, 2.0, 3.0],
                    group: 2,
                    highlight: false,
                }],
            }),
            Primitive::Bars(Bars {
                bars: vec![Bar {
                    label: "b".into(),
                    value: 3.0,
                    role: Role::Head,
                }],
                unit: "ms".into(),
                log: true,
            }),
            Primitive::Timeline(Timeline {
                lanes: vec!["l".into()],
                spans: vec![Span {
                    lane: 0,
                    start: 0.0,
                    end: 1.5,
                    label: "s".into(),
                    role: Role::Token,
                }],
                unit: "ms".into(),
            }),
            Primitive::BlockGrid(BlockGrid {
                columns: 2,
                cells: vec![
                    Cell {
                        owner: Some(1),
                        label: "x".into(),
                    },
                    Cell {
                        owner: None,
                        label: String::new(),
                    },
                ],
            }),
            Primitive::Tree(Tree {
                root: TreeNode {
                    label: "root".into(),
                    value: Some("1".into()),
                    children: vec![],
                },
            }),
            Primitive::Graph(Graph {
                nodes: vec![Node {
                    id: "a".into(),
                    label: "A".into(),
                    role: Role::Head,
                    layer: 0,
                }],
                edges: vec![Edge {
                    from: "a".into(),
                    to: "a".into(),
                    label: "self".into(),
                }],
            }),
            Primitive::Plot(Plot {
                x_label: "n".into(),
                y_label: "t".into(),
                x_log: true,
                y_log: false,
                series: vec![Series {
                    name: "s".into(),
                    points: vec![(1.0, 2.0)],
                    line: true,
                    role: Role::Attention,
                }],
            }),
            Primitive::Table(Table {
                columns: vec!["k".into(), "v".into()],
                rows: vec![vec!["a".into(), "1".into()]],
            }),
            Primitive::Text(Text {
                body: "hello".into(),
                style: TextStyle::Warning,
            }),
            Primitive::Blocks(Blocks {
                blocks: vec![Block {
                    id: "b".into(),
                    label: "B".into(),
                    center: [0.0, 1.0, 2.0],
                    size: [1.0, 0.5, 2.0],
                    role: Role::Activation,
                    shape: vec![2, 3],
                    axes: vec!["token".into(), "channel".into()],
                    values: None,
                    active: true,
                }],
                flow: vec![(0, 0)],
                unit: "1 unit = 64 channels".into(),
            }),
        ];
        assert_eq!(prims.len(), 13);
        let scene = Scene {
            items: prims
                .into_iter()
                .enumerate()
                .map(|(i, pr)| Item::new(format!("i{i}"), "t", p.clone(), pr))
                .collect(),
        };
        let json = serde_json::to_string(&scene).unwrap();
        let back: Scene = serde_json::from_str(&json).unwrap();
        assert_eq!(back, scene);
        assert!(json.contains(r#""kind":"published""#) && json.contains(r#""type":"block_grid""#));
        assert_eq!(
            scene.item("i10").map(|i| &i.primitive),
            Some(&scene.items[10].primitive)
        );
    }
}
