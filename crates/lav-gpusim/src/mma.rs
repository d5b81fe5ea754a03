//! Tensor-core arithmetic: D = A × B + C on small tiles with low-precision inputs.
//! Inputs are rounded into the input format; each product of two such values is exact
//! in FP32 (their mantissas are short), and the running sum is kept in the
//! accumulator format, rounded after every add. An FP32 accumulator is what mixed
//! precision means; an FP16 one shows why it matters.

use crate::formats::Format;

/// A row-major `rows × cols` tile.
#[derive(Clone, Debug, PartialEq)]
pub struct Tile {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f64>,
}

impl Tile {
    pub fn get(&self, r: usize, c: usize) -> f64 {
        self.values[r * self.cols + c]
    }
}

/// Adds `x` to `acc` in format `acc_fmt` (the sum rounded into it).
fn add(acc: f64, x: f64, acc_fmt: &Format) -> f64 {
    acc_fmt.round((acc + x) as f32)
}

/// Σ a[i]·b[i] with inputs rounded to `input` and the sum kept in `acc`, in order (a
/// tensor core sums a tile's k products per step; the order of a sum of k exact
/// products matters only at the accumulator's rounding, which this keeps).
pub fn dot(a: &[f32], b: &[f32], input: &Format, acc: &Format) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        let p = input.round(*x) * input.round(*y);
        s = add(s, p, acc);
    }
    s
}

/// The same sum in f64 from the unrounded inputs: the reference.
pub fn dot_exact(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// D = A × B + C: A is m × k, B is k × n, C is m × n (all row-major f32), inputs
/// rounded into `input`, C and the sums kept in `acc`.
pub fn mma(
    a: &[f32],
    b: &[f32],
    c: &[f32],
    (m, k, n): (usize, usize, usize),
    input: &Format,
    acc: &Format,
) -> Tile {
    let mut values = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let mut s = acc.round(c[i * n + j]);
            for p in 0..k {
                s = add(
                    s,
                    input.round(a[i * k + p]) * input.round(b[p * n + j]),
                    acc,
                );
            }
            values.push(s);
        }
    }
    Tile {
        rows: m,
        cols: n,
        values,
    }
}

/// The teaching model's throughput: a CUDA core makes one multiply-add result per
/// cycle; a tensor core one `tile × tile` block of results per cycle.
pub fn results_per_cycle(tile: usize) -> usize {
    tile * tile
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{BF16, FP16, FP32};

    #[test]
    fn an_fp32_accumulator_keeps_a_long_sum_that_fp16_loses() {
        // 4,096 products of 1 · 1: exact in FP32; FP16 stops at 2,048, where its
        // spacing becomes 2 and every +1 is a tie rounded back to even.
        let a = vec![1.0f32; 4096];
        assert_eq!(dot(&a, &a, &FP16, &FP32), 4096.0);
        assert_eq!(dot(&a, &a, &FP16, &FP16), 2048.0);
        let x: Vec<f32> = (0..576)
            .map(|i| ((i as f32) * 0.731).sin() * 0.05)
            .collect();
        let y: Vec<f32> = (0..576).map(|i| ((i as f32) * 1.37).cos()).collect();
        let exact = dot_exact(&x, &y);
        let e32 = (dot(&x, &y, &FP16, &FP32) - exact).abs();
        let e16 = (dot(&x, &y, &FP16, &FP16) - exact).abs();
        assert!(e32 < e16, "{e32} {e16}");
        assert!((dot(&x, &y, &FP32, &FP32) - exact).abs() < 1e-4);
    }

    #[test]
    fn mma_adds_c_and_matches_a_plain_product() {
        // 4 × 4 × 4 with small integers: exact in every format here.
        let a: Vec<f32> = (0..16).map(|i| (i % 5) as f32).collect();
        let b: Vec<f32> = (0..16).map(|i| (i % 3) as f32 - 1.0).collect();
        let c: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let d = mma(&a, &b, &c, (4, 4, 4), &BF16, &FP32);
        for i in 0..4 {
            for j in 0..4 {
                let want: f32 =
                    c[i * 4 + j] + (0..4).map(|p| a[i * 4 + p] * b[p * 4 + j]).sum::<f32>();
                assert_eq!(d.get(i, j), want as f64);
            }
        }
        assert_eq!(results_per_cycle(4), 16);
    }
}
