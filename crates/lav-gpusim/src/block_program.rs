//! Block-level programs, the way Triton writes them: one program instance per row,
//! each working on a whole block of `BLOCK` elements at once (`tl.arange(0, BLOCK)`),
//! with masked loads for the elements past the row's end. The compiler, not the
//! programmer, decides how the block maps to threads; here the block is a vector.

/// What one program instance did.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub pid: usize,
    /// Offsets loaded: BLOCK, of which `masked` lay past the row end.
    pub block: usize,
    pub masked: usize,
    pub row_max: f32,
    pub row_sum: f32,
}

/// Row softmax of a `rows × cols` matrix as a Triton-style program:
///
/// ```text
/// pid = tl.program_id(0)
/// offs = tl.arange(0, BLOCK)
/// x = tl.load(ptr + pid * cols + offs, mask=offs < cols, other=-inf)
/// e = tl.exp(x - tl.max(x))
/// tl.store(out + pid * cols + offs, e / tl.sum(e), mask=offs < cols)
/// ```
///
/// `BLOCK` is the next power of two ≥ cols (a constexpr in Triton).
pub fn softmax(x: &[f32], rows: usize, cols: usize) -> (Vec<f32>, Vec<Program>) {
    let block = cols.next_power_of_two();
    let mut out = vec![0.0f32; rows * cols];
    let mut programs = Vec::with_capacity(rows);
    for pid in 0..rows {
        let offs: Vec<usize> = (0..block).collect();
        let mask: Vec<bool> = offs.iter().map(|&o| o < cols).collect();
        let v: Vec<f32> = offs
            .iter()
            .zip(&mask)
            .map(|(&o, &m)| {
                if m {
                    x[pid * cols + o]
                } else {
                    f32::NEG_INFINITY
                }
            })
            .collect();
        let m = tree(&v, f32::max);
        let e: Vec<f32> = v.iter().map(|t| (t - m).exp()).collect();
        let s = tree(&e, |a, b| a + b);
        for (&o, (&keep, ev)) in offs.iter().zip(mask.iter().zip(&e)) {
            if keep {
                out[pid * cols + o] = ev / s;
            }
        }
        programs.push(Program {
            pid,
            block,
            masked: block - cols,
            row_max: m,
            row_sum: s,
        });
    }
    (out, programs)
}

/// A block-wide reduction as the compiled program does it: halve the block, combining
/// element i with element i + half, until one value is left (a power-of-two block).
fn tree(v: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut a = v.to_vec();
    let mut n = a.len();
    while n > 1 {
        n /= 2;
        for i in 0..n {
            a[i] = f(a[i], a[i + n]);
        }
    }
    a[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_lanes_change_nothing() {
        let (rows, cols) = (3, 100);
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| (i as f32 * 0.1).sin() * 5.0)
            .collect();
        let (y, p) = softmax(&x, rows, cols);
        assert_eq!((p[0].block, p[0].masked), (128, 28));
        // The tree sum of a long row is closer to the exact sum than a loop's.
        let long: Vec<f32> = (0..65536).map(|i| 1.0 + (i % 3) as f32 * 1e-3).collect();
        let exact: f64 = long.iter().map(|&x| x as f64).sum();
        let looped: f32 = long.iter().sum();
        let treed = tree(&long, |a, b| a + b);
        assert!((treed as f64 - exact).abs() < (looped as f64 - exact).abs());
        for r in 0..rows {
            let row = &y[r * cols..][..cols];
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            let xs = &x[r * cols..][..cols];
            let m = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let s: f32 = xs.iter().map(|v| (v - m).exp()).sum();
            for c in 0..cols {
                assert!((row[c] - (xs[c] - m).exp() / s).abs() < 1e-6);
            }
        }
    }
}
