//! The project's own reference implementations of integer weight quantization: symmetric
//! and asymmetric INTb at per-tensor, per-channel and group granularity, and QLoRA's NF4.
//! Everything is a pure function on `f32` slices (row-major `rows × cols` matrices): no
//! model and no candle, so the labs can show exactly what each scheme does to a weight and
//! the tests can check it against numbers worked out by hand.
//!
//! Scales are kept as `f32` but *counted* as FP16 in [`IntQuant::bits_per_weight`]: storing
//! them in FP16 moves a scale by at most ~0.05 %, far below the rounding error of the codes,
//! so we don't simulate it.

use std::ops::Range;

/// How the real range maps onto the integer codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// Grid centred on zero: one scale, no zero point. Wastes a level on skewed data but
    /// keeps matmuls simple.
    Symmetric,
    /// Grid stretched over [min, max] with an integer zero point: uses every level even when
    /// the data is not centred.
    Asymmetric,
}

/// Which weights share one set of quantization parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granularity {
    /// One scale for the whole matrix: cheapest, but one outlier sets everyone's step.
    PerTensor,
    /// One scale per row of the row-major `rows × cols` matrix.
    PerChannel,
    /// Consecutive groups of `g` values within each row; the last group of a row is
    /// shorter when `cols % g != 0`. Groups never straddle rows.
    Group(usize),
}

/// An integer quantizer: `bits` per code, a scheme and a granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntQuant {
    pub bits: u32,
    pub scheme: Scheme,
    pub granularity: Granularity,
}

/// The result of quantizing a matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// One integer code per weight, in the input's order. Symmetric: signed q; asymmetric:
    /// q in 0..2^b; NF4: the index of the level, 0..16.
    pub codes: Vec<i32>,
    /// (scale, zero point) per group, groups in row-major order. The zero point is 0 for
    /// symmetric; for NF4 the "scale" is the block's absmax.
    pub params: Vec<(f32, i32)>,
    /// ŵ: what the model actually computes with after quantization.
    pub dequantized: Vec<f32>,
}

/// Storage of one scale (FP16) and, for asymmetric, one zero point. We count the zero point
/// as 16 bits too, as formats that keep it in FP16 beside the scale do; packing it in `b`
/// bits (as GPTQ does) would lower asymmetric overhead a little.
const PARAM_BITS: u32 = 16;

impl IntQuant {
    pub fn new(bits: u32, scheme: Scheme, granularity: Granularity) -> Self {
        Self {
            bits,
            scheme,
            granularity,
        }
    }

    /// Quantizes the row-major `rows × cols` matrix `w` and reconstructs it.
    ///
    /// # Panics
    /// If `w.len() != rows * cols`, if the bit width is unsupported (symmetric 2..=16,
    /// asymmetric 1..=16: symmetric needs ±1 levels) or on `Group(0)`.
    pub fn quantize(&self, w: &[f32], rows: usize, cols: usize) -> Quantized {
        assert_eq!(
            w.len(),
            rows * cols,
            "w has {} values, not {rows}×{cols}",
            w.len()
        );
        self.check_bits();
        let mut codes = vec![0; w.len()];
        let mut dequantized = vec![0.0; w.len()];
        let mut params = Vec::new();
        for r in group_ranges(self.granularity, rows, cols) {
            let group = &w[r.clone()];
            let (scale, zero) = match self.scheme {
                Scheme::Symmetric => (sym_scale(abs_max(group), self.bits), 0),
                Scheme::Asymmetric => {
                    let (lo, hi) = min_max(group);
                    asym_params(lo, hi, self.bits)
                }
            };
            let out = codes[r.clone()].iter_mut().zip(&mut dequantized[r]);
            for (&x, (c, d)) in group.iter().zip(out) {
                *c = self.code(x, scale, zero);
                *d = dequant(*c, scale, zero);
            }
            params.push((scale, zero));
        }
        Quantized {
            codes,
            params,
            dequantized,
        }
    }

    /// Average storage per weight: the code bits plus each group's parameters (16-bit scale,
    /// plus a 16-bit zero point for asymmetric) spread over the weights they serve.
    /// E.g. symmetric 4-bit, groups of 128: 4 + 16/128 = 4.125.
    pub fn bits_per_weight(&self, cols: usize, rows: usize) -> f64 {
        let n = rows * cols;
        let code_bits = f64::from(self.bits);
        if n == 0 {
            return code_bits;
        }
        let per_group = match self.scheme {
            Scheme::Symmetric => PARAM_BITS,
            Scheme::Asymmetric => 2 * PARAM_BITS,
        };
        let groups = group_count(self.granularity, rows, cols);
        code_bits + f64::from(per_group) * groups as f64 / n as f64
    }

    /// The representable values ŵ of one group whose data spans [lo, hi], ascending, for
    /// drawing the grid over a histogram. Symmetric grids use max(|lo|, |hi|).
    pub fn grid(&self, lo: f32, hi: f32) -> Vec<f32> {
        self.check_bits();
        let (scale, zero, q_range) = match self.scheme {
            Scheme::Symmetric => {
                let m = sym_qmax(self.bits);
                (sym_scale(lo.abs().max(hi.abs()), self.bits), 0, -m..=m)
            }
            Scheme::Asymmetric => {
                let (s, z) = asym_params(lo.min(hi), lo.max(hi), self.bits);
                (s, z, 0..=asym_qmax(self.bits))
            }
        };
        if scale <= 0.0 {
            return vec![0.0];
        }
        q_range.map(|q| dequant(q, scale, zero)).collect()
    }

    fn code(&self, x: f32, scale: f32, zero: i32) -> i32 {
        // A zero scale means an all-zero group: code 0 reconstructs it exactly and we never
        // divide by zero.
        if scale <= 0.0 {
            return 0;
        }
        match self.scheme {
            Scheme::Symmetric => {
                let m = sym_qmax(self.bits);
                ((x / scale).round() as i32).clamp(-m, m)
            }
            Scheme::Asymmetric => ((x / scale).round() as i32)
                .saturating_add(zero)
                .clamp(0, asym_qmax(self.bits)),
        }
    }

    fn check_bits(&self) {
        let lowest = match self.scheme {
            Scheme::Symmetric => 2,
            Scheme::Asymmetric => 1,
        };
        assert!(
            (lowest..=16).contains(&self.bits),
            "{:?} quantization needs {lowest}..=16 bits, got {}",
            self.scheme,
            self.bits
        );
    }
}

/// Largest symmetric code, 2^(b−1) − 1: we drop −2^(b−1) so the grid is symmetric.
fn sym_qmax(bits: u32) -> i32 {
    (1 << (bits - 1)) - 1
}

/// Largest asymmetric code, 2^b − 1.
fn asym_qmax(bits: u32) -> i32 {
    (1 << bits) - 1
}

/// s = max|w| / (2^(b−1) − 1); 0 for an all-zero group.
fn sym_scale(abs_max: f32, bits: u32) -> f32 {
    abs_max / sym_qmax(bits) as f32
}

/// (s, z) with s = (hi − lo)/(2^b − 1), z = round(−lo/s).
fn asym_params(lo: f32, hi: f32, bits: u32) -> (f32, i32) {
    // A constant group has no range to stretch over; widening it to include 0 puts the
    // constant on an end of the grid, so it still reconstructs exactly (instead of as 0).
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo.min(0.0), hi.max(0.0))
    };
    let scale = (hi - lo) / asym_qmax(bits) as f32;
    if scale > 0.0 {
        (scale, (-lo / scale).round() as i32)
    } else {
        (0.0, 0)
    }
}

/// ŵ = s(q − z), in f64 so that q − z cannot overflow.
fn dequant(q: i32, scale: f32, zero: i32) -> f32 {
    (f64::from(scale) * (f64::from(q) - f64::from(zero))) as f32
}

fn abs_max(w: &[f32]) -> f32 {
    w.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn min_max(w: &[f32]) -> (f32, f32) {
    w.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// The index ranges (into the flat row-major slice) that share parameters, in order.
fn group_ranges(granularity: Granularity, rows: usize, cols: usize) -> Vec<Range<usize>> {
    let n = rows * cols;
    match granularity {
        Granularity::PerTensor if n == 0 => Vec::new(),
        Granularity::PerTensor => std::iter::once(0..n).collect(),
        Granularity::PerChannel if cols == 0 => Vec::new(),
        Granularity::PerChannel => (0..rows).map(|r| r * cols..(r + 1) * cols).collect(),
        Granularity::Group(g) => {
            assert!(g > 0, "group size must be positive");
            (0..rows)
                .flat_map(|r| {
                    (0..cols)
                        .step_by(g)
                        .map(move |c| r * cols + c..r * cols + (c + g).min(cols))
                })
                .collect()
        }
    }
}

fn group_count(granularity: Granularity, rows: usize, cols: usize) -> usize {
    match granularity {
        Granularity::PerTensor => usize::from(rows * cols > 0),
        Granularity::PerChannel => rows,
        Granularity::Group(g) => {
            assert!(g > 0, "group size must be positive");
            rows * cols.div_ceil(g)
        }
    }
}

/// QLoRA's default NF4 block size.
pub const NF4_DEFAULT_BLOCK: usize = 64;

/// Bits per weight of NF4 with double quantization as *published* in the QLoRA paper for
/// block 64 (4 + 8/64 + 32/(64·256) ≈ 4.127). Quoted, not computed: we don't implement
/// double quantization.
pub const NF4_DOUBLE_QUANT_BITS_PUBLISHED: f64 = 4.127;

/// The 16 NormalFloat-4 levels (QLoRA, Dettmers et al. 2023; values as in bitsandbytes):
/// quantiles of N(0, 1) rescaled to [−1, 1], with an exact 0, so that each level is used
/// equally often by normally distributed weights.
pub fn nf4_levels() -> [f32; 16] {
    [
        -1.0,
        -0.696_192_8,
        -0.525_073_05,
        -0.394_917_5,
        -0.284_441_38,
        -0.184_773_43,
        -0.091_050_036,
        0.0,
        0.079_580_3,
        0.160_930_2,
        0.246_112_3,
        0.337_915_24,
        0.440_709_83,
        0.562_617,
        0.722_956_84,
        1.0,
    ]
}

/// NF4: each block of `block` consecutive values within a row is scaled by its absmax to
/// [−1, 1] and every weight becomes the nearest NF4 level. Blocks follow rows like
/// [`Granularity::Group`] (bitsandbytes blocks the flattened tensor; identical whenever
/// `cols % block == 0`), so NF4 and INT4 with the same block compare like for like.
///
/// # Panics
/// If `w.len() != rows * cols` or `block == 0`.
pub fn nf4(w: &[f32], rows: usize, cols: usize, block: usize) -> Quantized {
    assert_eq!(
        w.len(),
        rows * cols,
        "w has {} values, not {rows}×{cols}",
        w.len()
    );
    let levels = nf4_levels();
    let mut codes = vec![0; w.len()];
    let mut dequantized = vec![0.0; w.len()];
    let mut params = Vec::new();
    for r in group_ranges(Granularity::Group(block), rows, cols) {
        let group = &w[r.clone()];
        let absmax = abs_max(group);
        let out = codes[r.clone()].iter_mut().zip(&mut dequantized[r]);
        for (&x, (c, d)) in group.iter().zip(out) {
            // All-zero block: the exact 0 level, no division.
            let scaled = if absmax > 0.0 { x / absmax } else { 0.0 };
            let i = nearest(&levels, scaled);
            *c = i as i32;
            *d = levels[i] * absmax;
        }
        params.push((absmax, 0));
    }
    Quantized {
        codes,
        params,
        dequantized,
    }
}

/// NF4 storage: 4-bit codes plus one FP16 absmax per block, 4 + 16/block (4.25 for block 64).
/// Double quantization would lower this; see [`NF4_DOUBLE_QUANT_BITS_PUBLISHED`].
pub fn nf4_bits_per_weight(block: usize) -> f64 {
    4.0 + f64::from(PARAM_BITS) / block as f64
}

/// Index of the level closest to `x` (the lower one on a tie).
fn nearest(levels: &[f32], x: f32) -> usize {
    let mut best = 0;
    for (i, l) in levels.iter().enumerate() {
        if (l - x).abs() < (levels[best] - x).abs() {
            best = i;
        }
    }
    best
}

/// Mean squared error, in f64; 0 for empty slices.
///
/// # Panics
/// If the slices differ in length.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "mse of slices of different lengths");
    if a.is_empty() {
        return 0.0;
    }
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    sum / a.len() as f64
}

/// Root mean squared error, in f64.
pub fn rmse(a: &[f32], b: &[f32]) -> f64 {
    mse(a, b).sqrt()
}

/// Largest |a − b|, in f64; 0 for empty slices.
///
/// # Panics
/// If the slices differ in length.
pub fn max_abs_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(
        a.len(),
        b.len(),
        "max_abs_err of slices of different lengths"
    );
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs())
        .fold(0.0, f64::max)
}

/// Counts `w` into `bins` equal bins over [lo, hi]; values outside (and `hi` itself) land
/// in the edge bins, so the counts always sum to `w.len()`. Empty when `bins == 0`.
pub fn histogram(w: &[f32], bins: usize, lo: f32, hi: f32) -> Vec<usize> {
    let mut counts = vec![0; bins];
    if bins == 0 {
        return counts;
    }
    let width = f64::from(hi) - f64::from(lo);
    for &x in w {
        let t = if width > 0.0 {
            (f64::from(x) - f64::from(lo)) / width
        } else {
            0.0
        };
        // The float→usize cast saturates (negative and NaN give 0), which does the clamping
        // at the low edge; `min` does it at the high edge.
        let i = ((t * bins as f64).floor() as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
}

/// Sets `w[index]` to `factor × max|w|`, keeping its sign (positive if it was 0): one
/// outlier of this kind stretches a per-tensor scale so far that ordinary weights collapse
/// to zero, which per-group scales confine to one group.
///
/// # Panics
/// If `index` is out of bounds.
pub fn inject_outlier(w: &mut [f32], index: usize, factor: f32) {
    let m = abs_max(w);
    let sign = if w[index] < 0.0 { -1.0 } else { 1.0 };
    w[index] = sign * factor * m;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic, no rand crate.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in (0, 1], never 0 so that ln() is finite.
        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
        }

        /// Standard normal by Box–Muller.
        fn gaussian(&mut self) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
        }
    }

    fn gaussian_matrix(n: usize, std: f64, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        (0..n).map(|_| (rng.gaussian() * std) as f32).collect()
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn symmetric_int8_matches_hand_computation() {
        let w = [0.5, -1.27, 0.01, 1.27];
        let q = IntQuant::new(8, Scheme::Symmetric, Granularity::PerTensor).quantize(&w, 1, 4);
        // s = 1.27 / 127 = 0.01; q = round(w / 0.01).
        assert_eq!(q.params.len(), 1);
        assert!(close(q.params[0].0, 0.01), "scale {}", q.params[0].0);
        assert_eq!(q.params[0].1, 0);
        assert_eq!(q.codes, vec![50, -127, 1, 127]);
        for (d, e) in q.dequantized.iter().zip([0.5, -1.27, 0.01, 1.27]) {
            assert!(close(*d, e), "{d} vs {e}");
        }
    }

    #[test]
    fn asymmetric_int4_matches_hand_computation() {
        // min −1.5, max 3 → s = 4.5 / 15 = 0.3, z = round(1.5 / 0.3) = 5.
        // 0.7 / 0.3 = 2.33 → 2 + 5 = 7 → ŵ = 0.6; −0.4 / 0.3 = −1.33 → 4 → ŵ = −0.3.
        let w = [-1.5, 0.0, 0.7, -0.4, 1.5, 3.0];
        let quant = IntQuant::new(4, Scheme::Asymmetric, Granularity::PerChannel);
        let q = quant.quantize(&w, 1, 6);
        assert_eq!(q.params.len(), 1);
        assert!(close(q.params[0].0, 0.3), "scale {}", q.params[0].0);
        assert_eq!(q.params[0].1, 5);
        assert_eq!(q.codes, vec![0, 5, 7, 4, 10, 15]);
        for (d, e) in q.dequantized.iter().zip([-1.5, 0.0, 0.6, -0.3, 1.5, 3.0]) {
            assert!(close(*d, e), "{d} vs {e}");
        }
    }

    #[test]
    fn zero_range_groups_never_produce_nan() {
        let zeros = [0.0; 6];
        for scheme in [Scheme::Symmetric, Scheme::Asymmetric] {
            let q = IntQuant::new(4, scheme, Granularity::Group(3)).quantize(&zeros, 2, 3);
            assert_eq!(q.dequantized, zeros.to_vec());
            assert!(q.params.iter().all(|&(s, _)| s == 0.0));
        }
        assert_eq!(nf4(&zeros, 2, 3, 3).dequantized, zeros.to_vec());
        // A constant non-zero group still reconstructs to itself under asymmetric.
        let q =
            IntQuant::new(4, Scheme::Asymmetric, Granularity::PerTensor).quantize(&[2.5; 4], 1, 4);
        assert!(
            q.dequantized.iter().all(|&d| close(d, 2.5)),
            "{:?}",
            q.dequantized
        );
    }

    #[test]
    fn reconstruction_error_is_at_most_half_a_step() {
        let (rows, cols) = (16, 100);
        let w = gaussian_matrix(rows * cols, 0.05, 0x9E37_79B9_7F4A_7C15);
        for bits in [2, 3, 4, 8] {
            for scheme in [Scheme::Symmetric, Scheme::Asymmetric] {
                let granularities = [
                    Granularity::PerTensor,
                    Granularity::PerChannel,
                    Granularity::Group(32),
                ];
                for granularity in granularities {
                    let quant = IntQuant::new(bits, scheme, granularity);
                    let q = quant.quantize(&w, rows, cols);
                    let ranges = group_ranges(granularity, rows, cols);
                    assert_eq!(ranges.len(), q.params.len());
                    for (r, &(s, _)) in ranges.into_iter().zip(&q.params) {
                        for i in r {
                            let err = (w[i] - q.dequantized[i]).abs();
                            assert!(
                                err <= s / 2.0 * (1.0 + 1e-5) + 1e-7,
                                "{quant:?}: w[{i}] = {}, ŵ = {}, s = {s}",
                                w[i],
                                q.dequantized[i]
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn error_falls_as_bits_rise() {
        let (rows, cols) = (32, 128);
        let w = gaussian_matrix(rows * cols, 0.02, 12345);
        let err = |bits| {
            let quant = IntQuant::new(bits, Scheme::Symmetric, Granularity::PerChannel);
            rmse(&w, &quant.quantize(&w, rows, cols).dequantized)
        };
        let (e8, e4, e3, e2) = (err(8), err(4), err(3), err(2));
        assert!(e8 < e4 && e4 < e3 && e3 < e2, "{e8} {e4} {e3} {e2}");
    }

    #[test]
    fn outlier_hurts_per_tensor_far_more_than_groups() {
        let (rows, cols) = (32, 128);
        let mut w = gaussian_matrix(rows * cols, 0.02, 777);
        let at = 1000;
        inject_outlier(&mut w, at, 50.0);
        let others = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .enumerate()
                .filter(|&(i, _)| i != at)
                .map(|(_, &x)| x)
                .collect()
        };
        let err = |granularity| {
            let quant = IntQuant::new(4, Scheme::Symmetric, granularity);
            rmse(
                &others(&w),
                &others(&quant.quantize(&w, rows, cols).dequantized),
            )
        };
        let (tensor, group) = (err(Granularity::PerTensor), err(Granularity::Group(32)));
        assert!(
            tensor >= 3.0 * group,
            "per-tensor {tensor} vs group {group}"
        );
    }

    #[test]
    fn inject_outlier_scales_max_and_keeps_sign() {
        let mut w = [0.1, -0.4, 0.0, 0.2];
        inject_outlier(&mut w, 1, 10.0);
        assert!(close(w[1], -4.0));
        inject_outlier(&mut w, 2, 2.0);
        assert!(close(w[2], 8.0));
    }

    #[test]
    fn bits_per_weight_counts_fp16_parameters() {
        let sym4 = IntQuant::new(4, Scheme::Symmetric, Granularity::Group(128));
        assert!((sym4.bits_per_weight(4096, 64) - 4.125).abs() < 1e-12);
        let asym4 = IntQuant::new(4, Scheme::Asymmetric, Granularity::Group(32));
        assert!((asym4.bits_per_weight(4096, 64) - 5.0).abs() < 1e-12);
        let sym8 = IntQuant::new(8, Scheme::Symmetric, Granularity::PerTensor);
        let expected = 8.0 + 16.0 / 331_776.0;
        assert!((sym8.bits_per_weight(576, 576) - expected).abs() < 1e-12);
        // A short last group still costs a full scale: 100 cols → 4 groups of ≤ 32.
        let sym4_32 = IntQuant::new(4, Scheme::Symmetric, Granularity::Group(32));
        assert!((sym4_32.bits_per_weight(100, 3) - (4.0 + 64.0 / 100.0)).abs() < 1e-12);
        assert!((nf4_bits_per_weight(64) - 4.25).abs() < 1e-12);
    }

    #[test]
    fn groups_split_rows_with_a_short_tail() {
        let r = group_ranges(Granularity::Group(4), 2, 10);
        assert_eq!(r, vec![0..4, 4..8, 8..10, 10..14, 14..18, 18..20]);
        assert_eq!(group_count(Granularity::Group(4), 2, 10), r.len());
        assert_eq!(
            group_ranges(Granularity::PerChannel, 2, 3),
            vec![0..3, 3..6]
        );
    }

    #[test]
    fn grid_lists_the_representable_values() {
        let sym = IntQuant::new(3, Scheme::Symmetric, Granularity::PerTensor);
        let g = sym.grid(-0.5, 1.5);
        // max(|lo|, |hi|) = 1.5, s = 1.5 / 3 = 0.5 → −1.5..=1.5 in steps of 0.5.
        assert_eq!(g.len(), 7);
        for (a, e) in g.iter().zip([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]) {
            assert!(close(*a, e), "{g:?}");
        }
        let asym = IntQuant::new(4, Scheme::Asymmetric, Granularity::PerTensor);
        let g = asym.grid(-1.5, 3.0);
        assert_eq!(g.len(), 16);
        assert!(close(g[0], -1.5) && close(g[15], 3.0), "{g:?}");
        assert!(g.windows(2).all(|p| close(p[1] - p[0], 0.3)));
        assert_eq!(sym.grid(0.0, 0.0), vec![0.0]);
    }

    #[test]
    fn nf4_levels_are_sorted_with_unit_endpoints() {
        let l = nf4_levels();
        assert!(l.windows(2).all(|p| p[0] < p[1]));
        assert_eq!((l[0], l[7], l[15]), (-1.0, 0.0, 1.0));
    }

    #[test]
    fn nf4_values_on_levels_round_trip_exactly() {
        let absmax = 0.37;
        let w: Vec<f32> = nf4_levels().iter().map(|l| l * absmax).collect();
        let q = nf4(&w, 1, 16, 16);
        assert_eq!(q.codes, (0..16).collect::<Vec<_>>());
        assert_eq!(q.params, vec![(absmax, 0)]);
        assert_eq!(q.dequantized, w);
    }

    #[test]
    fn nf4_beats_int4_on_gaussian_weights() {
        let (rows, cols) = (64, 256);
        let w = gaussian_matrix(rows * cols, 0.02, 2024);
        let block = NF4_DEFAULT_BLOCK;
        let int4 = IntQuant::new(4, Scheme::Symmetric, Granularity::Group(block));
        let e_int4 = rmse(&w, &int4.quantize(&w, rows, cols).dequantized);
        let e_nf4 = rmse(&w, &nf4(&w, rows, cols, block).dequantized);
        assert!(e_nf4 < e_int4, "NF4 {e_nf4} vs INT4 {e_int4}");
    }

    #[test]
    fn error_helpers_compute_in_f64() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [1.0, 2.5, 2.0, 4.0];
        assert!((mse(&a, &b) - 1.25 / 4.0).abs() < 1e-12);
        assert!((rmse(&a, &b) - (1.25f64 / 4.0).sqrt()).abs() < 1e-12);
        assert!((max_abs_err(&a, &b) - 1.0).abs() < 1e-12);
        assert_eq!(mse(&[], &[]), 0.0);
    }

    #[test]
    fn histogram_counts_everything_and_clamps_edges() {
        let w = [-5.0, 0.0, 0.1, 0.5, 0.99, 1.0, 7.0];
        let h = histogram(&w, 4, 0.0, 1.0);
        // Bins [0, .25) [.25, .5) [.5, .75) [.75, 1]: −5 clamps low, 1.0 and 7 clamp high.
        assert_eq!(h, vec![3, 0, 1, 3]);
        assert_eq!(h.iter().sum::<usize>(), w.len());
        let g = gaussian_matrix(1000, 1.0, 5);
        assert_eq!(histogram(&g, 20, -1.0, 1.0).iter().sum::<usize>(), 1000);
        assert!(histogram(&w, 0, 0.0, 1.0).is_empty());
    }
}
