//! Threaded quantized mat-vec and mat-mat on the block kernels of [`crate::quant`].
//!
//! `y[t, r] = dot(W[r, :], x[t, :])` for a weight matrix `W` (rows = output features)
//! kept in its stored block format. Each activation row is quantized once, then each
//! weight row is read once per call and reused for every token of a prefill batch,
//! which is what makes prefill faster per token than decode.

use crate::fused::{TILE, block_sums, pack_sums};
use crate::ops::par_rows;
use crate::quant::{
    Block, BlockQ4_1, BlockQ8_0, BlockQ8_1, BlockQ8_1x8, Kernel, PACK, PackedQ4_1, QK, Tiles,
    pack_q8_1x8, quantize_row_q8_0, quantize_row_q8_1,
};
use rayon::prelude::*;

/// A weight matrix in one of the block formats we compute with directly.
#[derive(Clone, Debug)]
pub enum QData {
    Q4_1(Vec<BlockQ4_1>),
    Q8_0(Vec<BlockQ8_0>),
    /// Plain floats: only for embedding tables of other GGUF files.
    F32(Vec<f32>),
}

#[derive(Clone, Debug)]
pub struct QMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: QData,
}

/// Rows handed to one task: enough to amortise scheduling, few enough to balance
/// two cores on the smallest (192-row) projections.
const ROWS_PER_TASK: usize = 32;
/// Tokens per inner tile in a batch: weight rows stay in L1 across them.
const TOKENS_PER_TILE: usize = 64;

/// Raw pointer to the output, shared by tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every task writes a disjoint set of (token, row) elements.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// # Safety
    /// `i` is in bounds and no other task writes element `i`.
    unsafe fn write(self, i: usize, v: f32) {
        unsafe { *self.0.add(i) = v };
    }
}

impl QMatrix {
    pub fn ggml_type_name(&self) -> &'static str {
        match self.data {
            QData::Q4_1(_) => "Q4_1",
            QData::Q8_0(_) => "Q8_0",
            QData::F32(_) => "F32",
        }
    }

    pub fn bytes(&self) -> usize {
        let blocks = self.rows * self.cols / QK;
        match self.data {
            QData::Q4_1(_) => blocks * BlockQ4_1::BYTES,
            QData::Q8_0(_) => blocks * BlockQ8_0::BYTES,
            QData::F32(_) => self.rows * self.cols * 4,
        }
    }

    /// Dequantizes one row (an embedding lookup).
    pub fn row_f32(&self, r: usize, out: &mut [f32]) {
        let bpr = self.cols / QK;
        match &self.data {
            QData::Q4_1(b) => dequant_row(&b[r * bpr..(r + 1) * bpr], out),
            QData::Q8_0(b) => dequant_row(&b[r * bpr..(r + 1) * bpr], out),
            QData::F32(v) => out.copy_from_slice(&v[r * self.cols..(r + 1) * self.cols]),
        }
    }

    /// The whole matrix as floats, row-major.
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, o) in out.chunks_exact_mut(self.cols).enumerate() {
            self.row_f32(r, o);
        }
        out
    }

    /// `x` is `n_tok × cols` row-major; returns `n_tok × rows`.
    pub fn matmul(&self, x: &[f32], n_tok: usize) -> Vec<f32> {
        assert_eq!(x.len(), n_tok * self.cols, "matmul input shape");
        let mut out = vec![0f32; n_tok * self.rows];
        let kernel = Kernel::detect();
        let bpr = self.cols / QK;
        match &self.data {
            QData::Q4_1(w) => {
                let mut xq = vec![BlockQ8_1::default(); n_tok * bpr];
                par_rows(x, &mut xq, self.cols, bpr, quantize_row_q8_1);
                if let Some(tile) = kernel.packed_q4_1().filter(|_| n_tok >= PACK) {
                    self.run_packed(w, &xq, n_tok, &mut out, tile, |a, b| {
                        kernel.dot_q4_1_q8_1(a, b)
                    });
                    return out;
                }
                // Decode and short batches: single dots.
                self.run(w, &xq, n_tok, &mut out, None, |a, b| {
                    kernel.dot_q4_1_q8_1(a, b)
                });
            }
            QData::Q8_0(w) => {
                let mut xq = vec![BlockQ8_0::default(); n_tok * bpr];
                par_rows(x, &mut xq, self.cols, bpr, quantize_row_q8_0);
                let tiles = kernel.tiles_q8_0();
                self.run(w, &xq, n_tok, &mut out, tiles, |a, b| {
                    kernel.dot_q8_0_q8_0(a, b)
                });
            }
            QData::F32(w) => {
                let c = self.cols;
                self.run_f32(w, x, n_tok, &mut out, c);
            }
        }
        out
    }

    fn run<W: Sync, X: Sync>(
        &self,
        w: &[W],
        xq: &[X],
        n_tok: usize,
        out: &mut [f32],
        tiles: Option<Tiles<W, X>>,
        dot: impl Fn(&[W], &[X]) -> f32 + Sync,
    ) {
        let bpr = self.cols / QK;
        let rows = self.rows;
        let ptr = OutPtr(out.as_mut_ptr());
        let tasks = rows.div_ceil(ROWS_PER_TASK);
        let body = |task: usize| {
            // SAFETY: (t, r) is written by this task only, and is in bounds.
            let put = |r: usize, t: usize, v: f32| unsafe { ptr.write(t * rows + r, v) };
            let wrow = |r: usize| &w[r * bpr..(r + 1) * bpr];
            let xrow = |t: usize| &xq[t * bpr..(t + 1) * bpr];
            let r0 = task * ROWS_PER_TASK;
            let r1 = (r0 + ROWS_PER_TASK).min(rows);
            for t0 in (0..n_tok).step_by(TOKENS_PER_TILE) {
                let t1 = (t0 + TOKENS_PER_TILE).min(n_tok);
                match tiles {
                    // A batch: one weight row against four tokens at a time.
                    Some(tl) if t1 - t0 >= 4 => {
                        for r in r0..r1 {
                            let mut t = t0;
                            while t + 4 <= t1 {
                                let xs = std::array::from_fn(|i| xrow(t + i).as_ptr());
                                // SAFETY: the tiles are only offered after CPU feature
                                // detection, and every row has `bpr` blocks.
                                let v = unsafe { (tl.one_by_four)(wrow(r).as_ptr(), xs, bpr) };
                                for (i, v) in v.iter().enumerate() {
                                    put(r, t + i, *v);
                                }
                                t += 4;
                            }
                            for t in t..t1 {
                                put(r, t, dot(wrow(r), xrow(t)));
                            }
                        }
                    }
                    _ => {
                        for r in r0..r1 {
                            for t in t0..t1 {
                                put(r, t, dot(wrow(r), xrow(t)));
                            }
                        }
                    }
                }
            }
        };
        if rayon::current_num_threads() <= 1 {
            (0..tasks).for_each(body);
        } else {
            (0..tasks).into_par_iter().for_each(body);
        }
    }
}

/// How the activations meet the stored weights in a matrix product.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub enum Activations {
    /// In f32, each weight block dequantized in registers ([`crate::fused`]): the
    /// stored model evaluated in f32.
    #[default]
    F32,
    /// Rounded to 8 bits per 32-value block and multiplied as integers, as llama.cpp
    /// does ([`crate::quant`]): faster in prefill, further from the stored model.
    Q8,
}

impl Activations {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "f32" => Some(Self::F32),
            "q8" => Some(Self::Q8),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::F32 => "f32 activations (the stored weights dequantized in registers)",
            Self::Q8 => "llama.cpp-style 8-bit activations",
        }
    }
}

impl QMatrix {
    /// `y = x Wᵀ` with activations as `act` says.
    pub fn matmul_with(&self, x: &[f32], n_tok: usize, act: Activations) -> Vec<f32> {
        match act {
            Activations::F32 => self.matmul_exact(x, n_tok),
            Activations::Q8 => self.matmul(x, n_tok),
        }
    }

    /// `x` (`n_tok × cols`, f32) against the stored blocks (see [`crate::fused`]):
    /// every (row, token) is computed in the same order whether the token comes alone
    /// or in a batch, so batches equal single-token calls bit for bit.
    pub fn matmul_exact(&self, x: &[f32], n_tok: usize) -> Vec<f32> {
        assert_eq!(x.len(), n_tok * self.cols, "matmul input shape");
        let mut out = vec![0f32; n_tok * self.rows];
        let kernel = Kernel::detect();
        let tiles = kernel.fused_tiles();
        let cols = self.cols;
        let bpr = cols / QK;
        let groups = if tiles.is_some() { n_tok / TILE } else { 0 };
        let xrow = |t: usize| &x[t * cols..(t + 1) * cols];
        let xs = |g: usize| std::array::from_fn(|i| xrow(TILE * g + i).as_ptr());
        match &self.data {
            QData::Q4_1(w) => {
                let wrow = |r: usize| &w[r * bpr..(r + 1) * bpr];
                let mut sums = vec![0f32; n_tok * bpr];
                sums.par_chunks_exact_mut(bpr)
                    .enumerate()
                    .for_each(|(t, s)| block_sums(xrow(t), s));
                let srow = |t: usize| &sums[t * bpr..(t + 1) * bpr];
                let mut packed = vec![0f32; groups * bpr * TILE];
                packed
                    .par_chunks_exact_mut(bpr * TILE)
                    .enumerate()
                    .for_each(|(g, p)| pack_sums(std::array::from_fn(|i| srow(TILE * g + i)), p));
                self.run_tiled(
                    n_tok,
                    groups,
                    &mut out,
                    // SAFETY: tiles exist only after CPU feature detection; the row,
                    // the tokens and the packed sums have `bpr` blocks.
                    |r, g| unsafe {
                        let tl = tiles.expect("groups are only formed with tiles");
                        (tl.q4_1)(
                            wrow(r).as_ptr(),
                            xs(g),
                            packed[g * bpr * TILE..].as_ptr(),
                            bpr,
                        )
                    },
                    // SAFETY: as above; `t + k <= n_tok` for the `k` tokens taken.
                    |r, t, left| match tiles {
                        Some(tl) if left >= 4 => (
                            unsafe {
                                (tl.q4_1_x4)(
                                    wrow(r).as_ptr(),
                                    std::array::from_fn(|i| xrow(t + i).as_ptr()),
                                    std::array::from_fn(|i| srow(t + i).as_ptr()),
                                    bpr,
                                )
                            },
                            4,
                        ),
                        Some(tl) if left >= 2 => {
                            let y = unsafe {
                                (tl.q4_1_x2)(
                                    wrow(r).as_ptr(),
                                    std::array::from_fn(|i| xrow(t + i).as_ptr()),
                                    std::array::from_fn(|i| srow(t + i).as_ptr()),
                                    bpr,
                                )
                            };
                            ([y[0], y[1], 0.0, 0.0], 2)
                        }
                        _ => (
                            [kernel.fused_q4_1(wrow(r), xrow(t), srow(t)), 0.0, 0.0, 0.0],
                            1,
                        ),
                    },
                );
            }
            QData::Q8_0(w) => {
                let wrow = |r: usize| &w[r * bpr..(r + 1) * bpr];
                self.run_tiled(
                    n_tok,
                    groups,
                    &mut out,
                    // SAFETY: as above, without sums.
                    |r, g| unsafe {
                        let tl = tiles.expect("groups are only formed with tiles");
                        (tl.q8_0)(wrow(r).as_ptr(), xs(g), bpr)
                    },
                    // SAFETY: as above.
                    |r, t, left| match tiles {
                        Some(tl) if left >= 4 => (
                            unsafe {
                                (tl.q8_0_x4)(
                                    wrow(r).as_ptr(),
                                    std::array::from_fn(|i| xrow(t + i).as_ptr()),
                                    bpr,
                                )
                            },
                            4,
                        ),
                        Some(tl) if left >= 2 => {
                            let y = unsafe {
                                (tl.q8_0_x2)(
                                    wrow(r).as_ptr(),
                                    std::array::from_fn(|i| xrow(t + i).as_ptr()),
                                    bpr,
                                )
                            };
                            ([y[0], y[1], 0.0, 0.0], 2)
                        }
                        _ => ([kernel.fused_q8_0(wrow(r), xrow(t)), 0.0, 0.0, 0.0], 1),
                    },
                );
            }
            QData::F32(w) => self.run_f32(w, x, n_tok, &mut out, cols),
        }
        out
    }

    /// Fills `out[t * rows + r]` for every row and token: the first `groups × TILE`
    /// tokens through `tile(r, g)`, the rest through `tail(r, t, left)`, which
    /// computes up to four tokens from `t` (of `left` remaining) and says how many.
    /// Both formats share this loop so that their order of work cannot drift apart.
    fn run_tiled(
        &self,
        n_tok: usize,
        groups: usize,
        out: &mut [f32],
        tile: impl Fn(usize, usize) -> [f32; TILE] + Sync,
        tail: impl Fn(usize, usize, usize) -> ([f32; 4], usize) + Sync,
    ) {
        let rows = self.rows;
        let ptr = OutPtr(out.as_mut_ptr());
        par_tasks(rows, |r0, r1| {
            // SAFETY: (t, r) is written by this task only, and is in bounds.
            let put = |r: usize, t: usize, v: f32| unsafe { ptr.write(t * rows + r, v) };
            for g in 0..groups {
                for r in r0..r1 {
                    for (j, &y) in tile(r, g).iter().enumerate() {
                        put(r, TILE * g + j, y);
                    }
                }
            }
            for r in r0..r1 {
                let mut t = TILE * groups;
                while t < n_tok {
                    let (ys, k) = tail(r, t, n_tok - t);
                    for (j, &y) in ys[..k].iter().enumerate() {
                        put(r, t + j, y);
                    }
                    t += k;
                }
            }
        });
    }
}

/// Runs `body(r0, r1)` over `rows` in tasks of [`ROWS_PER_TASK`], in parallel when
/// there is more than one thread.
fn par_tasks(rows: usize, body: impl Fn(usize, usize) + Sync) {
    let tasks = rows.div_ceil(ROWS_PER_TASK);
    let task = |i: usize| body(i * ROWS_PER_TASK, ((i + 1) * ROWS_PER_TASK).min(rows));
    if rayon::current_num_threads() <= 1 {
        (0..tasks).for_each(task);
    } else {
        (0..tasks).into_par_iter().for_each(task);
    }
}

impl QMatrix {
    /// A Q4_1 batch: tokens packed [`PACK`] at a time, one weight row per tile step;
    /// the leftover tokens take single dots.
    fn run_packed(
        &self,
        w: &[BlockQ4_1],
        xq: &[BlockQ8_1],
        n_tok: usize,
        out: &mut [f32],
        tile: PackedQ4_1,
        dot: impl Fn(&[BlockQ4_1], &[BlockQ8_1]) -> f32 + Sync,
    ) {
        let bpr = self.cols / QK;
        let rows = self.rows;
        let groups = n_tok / PACK;
        let xrow = |t: usize| &xq[t * bpr..(t + 1) * bpr];
        let mut packed = vec![BlockQ8_1x8::default(); groups * bpr];
        packed
            .par_chunks_exact_mut(bpr)
            .enumerate()
            .for_each(|(g, p)| pack_q8_1x8(std::array::from_fn(|i| xrow(PACK * g + i)), p));
        let ptr = OutPtr(out.as_mut_ptr());
        let body = |task: usize| {
            // SAFETY: (t, r) is written by this task only, and is in bounds.
            let put = |r: usize, t: usize, v: f32| unsafe { ptr.write(t * rows + r, v) };
            let wrow = |r: usize| &w[r * bpr..(r + 1) * bpr];
            let r0 = task * ROWS_PER_TASK;
            let r1 = (r0 + ROWS_PER_TASK).min(rows);
            for g in 0..groups {
                let x = packed[g * bpr..].as_ptr();
                for r in r0..r1 {
                    // SAFETY: the tile is only offered after CPU feature detection; the
                    // row and the packed group have `bpr` blocks.
                    let v = unsafe { tile(wrow(r).as_ptr(), x, bpr) };
                    for (j, &y) in v.iter().enumerate() {
                        put(r, PACK * g + j, y);
                    }
                }
            }
            for r in r0..r1 {
                for t in PACK * groups..n_tok {
                    put(r, t, dot(wrow(r), xrow(t)));
                }
            }
        };
        let tasks = rows.div_ceil(ROWS_PER_TASK);
        if rayon::current_num_threads() <= 1 {
            (0..tasks).for_each(body);
        } else {
            (0..tasks).into_par_iter().for_each(body);
        }
    }

    fn run_f32(&self, w: &[f32], x: &[f32], n_tok: usize, out: &mut [f32], c: usize) {
        for t in 0..n_tok {
            for r in 0..self.rows {
                out[t * self.rows + r] = w[r * c..(r + 1) * c]
                    .iter()
                    .zip(&x[t * c..(t + 1) * c])
                    .map(|(a, b)| a * b)
                    .sum();
            }
        }
    }
}

fn dequant_row<B: Block>(blocks: &[B], out: &mut [f32]) {
    for (b, o) in blocks.iter().zip(out.chunks_exact_mut(QK)) {
        b.dequantize(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::quantize_weights_q8_0;

    #[test]
    fn batch_rows_equal_single_token_calls() {
        // Reusing weight blocks across a batch must not change any result.
        let cols = 64;
        let rows = 70;
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 100.0)
            .collect();
        let m = QMatrix {
            rows,
            cols,
            data: QData::Q8_0(quantize_weights_q8_0(&w)),
        };
        let n_tok = 5;
        let x: Vec<f32> = (0..n_tok * cols)
            .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
            .collect();
        let batch = m.matmul(&x, n_tok);
        for t in 0..n_tok {
            let one = m.matmul(&x[t * cols..(t + 1) * cols], 1);
            assert_eq!(&batch[t * rows..(t + 1) * rows], &one[..]);
        }
        // The same for Q4_1 with two full packed groups of tokens and a tail.
        let q41 = QMatrix {
            rows,
            cols,
            data: QData::Q4_1(
                (0..rows * cols / QK)
                    .map(|i| BlockQ4_1 {
                        d: half::f16::from_f32(0.01 + (i % 7) as f32 * 0.003),
                        m: half::f16::from_f32(-0.05 - (i % 5) as f32 * 0.01),
                        qs: std::array::from_fn(|j| (i * 31 + j * 17) as u8),
                    })
                    .collect(),
            ),
        };
        let n41 = 2 * crate::quant::PACK + 3;
        let x41: Vec<f32> = (0..n41 * cols)
            .map(|i| ((i * 29 % 37) as f32 - 18.0) / 9.0)
            .collect();
        let batch41 = q41.matmul(&x41, n41);
        for t in 0..n41 {
            let one = q41.matmul(&x41[t * cols..(t + 1) * cols], 1);
            assert_eq!(
                &batch41[t * rows..(t + 1) * rows],
                &one[..],
                "q4_1 token {t}"
            );
        }
        // The f32-activation path too: full tiles and a tail, both formats.
        for (m, name) in [(&m, "q8_0"), (&q41, "q4_1")] {
            // Two full tiles, then a tail of 4 + 2 + 1.
            let n = 2 * TILE + 7;
            let xs: Vec<f32> = (0..n * cols)
                .map(|i| ((i * 23 % 41) as f32 - 20.0) / 11.0)
                .collect();
            let batch = m.matmul_exact(&xs, n);
            for t in 0..n {
                let one = m.matmul_exact(&xs[t * cols..(t + 1) * cols], 1);
                assert_eq!(
                    &batch[t * rows..(t + 1) * rows],
                    &one[..],
                    "exact {name} token {t}"
                );
            }
            // Closer to the float product than the 8-bit path.
            let wf = m.to_f32();
            for t in 0..n {
                for r in 0..rows {
                    let exact: f64 = (0..cols)
                        .map(|c| wf[r * cols + c] as f64 * xs[t * cols + c] as f64)
                        .sum();
                    assert!((batch[t * rows + r] as f64 - exact).abs() < 1e-4, "{name}");
                }
            }
        }
        // And it approximates the float product.
        let wf = m.to_f32();
        for t in 0..n_tok {
            for r in 0..rows {
                let exact: f32 = (0..cols).map(|c| wf[r * cols + c] * x[t * cols + c]).sum();
                assert!((batch[t * rows + r] - exact).abs() < 0.05);
            }
        }
    }
}
