//! The stored weight blocks against f32 activations: each Q4_1 or Q8_0 block is
//! dequantized in registers and fused into f32 multiply-adds. The weights stay 4-bit
//! in memory and the activations are never rounded to 8 bits, so this is the stored
//! model evaluated in f32. [`crate::quant`] keeps llama.cpp's arithmetic (activations
//! quantized to 8 bits, integer dots) as the labelled alternative.
//!
//! **One order.** Every kernel here performs exactly these IEEE operations, so the SIMD
//! kernels equal the portable ones bit for bit, and a token's result does not depend on
//! the batch it comes in. For a weight row of blocks `b` with scale `d` (and minimum `m`
//! for Q4_1), `q` the block's 32 integers as f32 and `x` the activations:
//!
//! ```text
//! s[l]   = q[l]·x[l], then s[l] = fma(q[8c+l], x[8c+l], s[l]) for c = 1, 2, 3   (8 lanes)
//! acc[l] = fma(d, s[l], acc[l])
//! mins   = fma(m, sx[b], mins)          (Q4_1 only; sx from `block_sums`)
//! y      = hsum8(acc) + mins
//! ```
//!
//! Every step is exact but the roundings of the f32 multiply-adds: `d·q + m` is the
//! stored weight, split into its scaled integer and its minimum.

// One horizontal sum for every kernel: the order of its additions is part of the result.
use crate::quant::{BlockQ4_1, BlockQ8_0, QK, hsum8};

/// Tokens per prefill tile: one decode of a weight block feeds this many dots.
pub const TILE: usize = 8;

/// Each block's sum of activations (`out[b] = Σ x[32b..32b+32]`), in a fixed order:
/// lane `l` adds elements `l, l+8, l+16, l+24`, then [`hsum8`].
pub fn block_sums(x: &[f32], out: &mut [f32]) {
    for (xb, o) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let lanes: [f32; 8] =
            std::array::from_fn(|l| ((xb[l] + xb[8 + l]) + xb[16 + l]) + xb[24 + l]);
        *o = hsum8(lanes);
    }
}

/// [`TILE`] tokens' block sums, block-major (`out[b·TILE + t] = sums[t][b]`), so the
/// tile reads one block's sums with one load.
pub fn pack_sums(sums: [&[f32]; TILE], out: &mut [f32]) {
    for (b, o) in out.chunks_exact_mut(TILE).enumerate() {
        for (t, v) in o.iter_mut().enumerate() {
            *v = sums[t][b];
        }
    }
}

/// The block's 32 integers as f32, element order.
#[inline(always)]
fn q4_1_values(b: &BlockQ4_1) -> [f32; QK] {
    std::array::from_fn(|j| {
        if j < 16 {
            (b.qs[j] & 0x0F) as f32
        } else {
            (b.qs[j - 16] >> 4) as f32
        }
    })
}

/// Portable kernels: the reference every SIMD kernel must equal bit for bit.
pub mod portable {
    use super::*;

    #[inline(always)]
    fn block(q: &[f32; QK], x: &[f32], d: f32, acc: &mut [f32; 8]) {
        for l in 0..8 {
            let mut s = q[l] * x[l];
            for c in 1..4 {
                s = q[8 * c + l].mul_add(x[8 * c + l], s);
            }
            acc[l] = d.mul_add(s, acc[l]);
        }
    }

    /// One Q4_1 weight row against one f32 activation row with its block sums.
    pub fn dot_q4_1(w: &[BlockQ4_1], x: &[f32], sx: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        let mut mins = 0f32;
        for (b, (wb, xb)) in w.iter().zip(x.chunks_exact(QK)).enumerate() {
            block(&q4_1_values(wb), xb, wb.d.to_f32(), &mut acc);
            mins = wb.m.to_f32().mul_add(sx[b], mins);
        }
        hsum8(acc) + mins
    }

    /// One Q8_0 weight row against one f32 activation row.
    pub fn dot_q8_0(w: &[BlockQ8_0], x: &[f32]) -> f32 {
        let mut acc = [0f32; 8];
        for (wb, xb) in w.iter().zip(x.chunks_exact(QK)) {
            let q: [f32; QK] = std::array::from_fn(|j| wb.qs[j] as f32);
            block(&q, xb, wb.d.to_f32(), &mut acc);
        }
        hsum8(acc)
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    use crate::quant::avx2::hsum;

    /// A Q4_1 block's 32 integers as four vectors of 8 f32 (elements 0–7, …, 24–31),
    /// and its scale and minimum broadcast.
    #[inline(always)]
    unsafe fn q4_1(b: *const BlockQ4_1) -> ([__m256; 4], __m256, __m256) {
        unsafe {
            let low = _mm_set1_epi8(0x0F);
            let packed = _mm_loadu_si128((*b).qs.as_ptr() as *const __m128i);
            // Low nibbles are elements 0..16, high nibbles 16..32.
            let lo = _mm_and_si128(packed, low);
            let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
            let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
            let q = [
                f(lo),
                f(_mm_unpackhi_epi64(lo, lo)),
                f(hi),
                f(_mm_unpackhi_epi64(hi, hi)),
            ];
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((b as *const i32).read_unaligned()));
            let d = _mm256_broadcastss_ps(dm);
            let m = _mm256_broadcastss_ps(_mm_movehdup_ps(dm));
            (q, d, m)
        }
    }

    /// A Q8_0 block's 32 integers as four vectors of 8 f32, and its scale broadcast.
    #[inline(always)]
    unsafe fn q8_0(b: *const BlockQ8_0) -> ([__m256; 4], __m256) {
        unsafe {
            let a = _mm_loadu_si128((*b).qs.as_ptr() as *const __m128i);
            let c = _mm_loadu_si128((*b).qs.as_ptr().add(16) as *const __m128i);
            let f = |v: __m128i| _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
            let q = [
                f(a),
                f(_mm_unpackhi_epi64(a, a)),
                f(c),
                f(_mm_unpackhi_epi64(c, c)),
            ];
            let d = _mm_cvtph_ps(_mm_cvtsi32_si128((b as *const u16).read_unaligned() as i32));
            (q, _mm256_broadcastss_ps(d))
        }
    }

    /// `fma(d, Σ q·x, acc)` for one block, in the module's order.
    #[inline(always)]
    unsafe fn block(q: &[__m256; 4], x: *const f32, d: __m256, acc: __m256) -> __m256 {
        unsafe {
            let mut s = _mm256_mul_ps(q[0], _mm256_loadu_ps(x));
            s = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(x.add(8)), s);
            s = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(x.add(16)), s);
            s = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(x.add(24)), s);
            _mm256_fmadd_ps(d, s, acc)
        }
    }

    /// # Safety
    /// AVX2, FMA and F16C; `w` has `nb` blocks, `x` `nb·32` values, `sx` `nb` sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1(w: *const BlockQ4_1, x: *const f32, sx: *const f32, nb: usize) -> f32 {
        let mut acc = _mm256_setzero_ps();
        // Lane 0 only: the scalar fma(m, sx, mins) of the portable kernel.
        let mut mins = _mm_setzero_ps();
        for b in 0..nb {
            unsafe {
                let (q, d, m) = q4_1(w.add(b));
                acc = block(&q, x.add(b * QK), d, acc);
                mins = _mm_fmadd_ss(_mm256_castps256_ps128(m), _mm_load_ss(sx.add(b)), mins);
            }
        }
        unsafe { hsum(acc) + _mm_cvtss_f32(mins) }
    }

    /// # Safety
    /// AVX2, FMA and F16C; `w` has `nb` blocks and `x` `nb·32` values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q8_0(w: *const BlockQ8_0, x: *const f32, nb: usize) -> f32 {
        let mut acc = _mm256_setzero_ps();
        for b in 0..nb {
            unsafe {
                let (q, d) = q8_0(w.add(b));
                acc = block(&q, x.add(b * QK), d, acc);
            }
        }
        unsafe { hsum(acc) }
    }

    /// One Q4_1 weight row against [`TILE`] tokens (prefill): each block decoded once
    /// for eight dots, each with its own accumulator. `sxp` holds the tokens' block
    /// sums packed by [`pack_sums`].
    ///
    /// # Safety
    /// AVX2, FMA and F16C; `w` has `nb` blocks, every `x[t]` `nb·32` values and `sxp`
    /// `nb·TILE` sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4_1_1x8(
        w: *const BlockQ4_1,
        x: [*const f32; TILE],
        sxp: *const f32,
        nb: usize,
    ) -> [f32; TILE] {
        let mut acc = [_mm256_setzero_ps(); TILE];
        let mut mins = _mm256_setzero_ps();
        for b in 0..nb {
            unsafe {
                let (q, d, m) = q4_1(w.add(b));
                mins = _mm256_fmadd_ps(m, _mm256_loadu_ps(sxp.add(b * TILE)), mins);
                for t in 0..TILE {
                    acc[t] = block(&q, x[t].add(b * QK), d, acc[t]);
                }
            }
        }
        let mut m = [0f32; TILE];
        unsafe {
            _mm256_storeu_ps(m.as_mut_ptr(), mins);
            std::array::from_fn(|t| hsum(acc[t]) + m[t])
        }
    }

    /// One Q4_1 weight row against `N` tokens (a small decode batch): each block
    /// decoded once for `N` dots, each token's accumulators and minimum sum exactly
    /// those of [`dot_q4_1`], so every result equals the single dot bit for bit.
    ///
    /// # Safety
    /// AVX2, FMA and F16C; `w` has `nb` blocks, every `x[t]` `nb·32` values and every
    /// `sx[t]` `nb` sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4_1_1xn<const N: usize>(
        w: *const BlockQ4_1,
        x: [*const f32; N],
        sx: [*const f32; N],
        nb: usize,
    ) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        let mut mins = [_mm_setzero_ps(); N];
        for b in 0..nb {
            unsafe {
                let (q, d, m) = q4_1(w.add(b));
                let m = _mm256_castps256_ps128(m);
                for t in 0..N {
                    acc[t] = block(&q, x[t].add(b * QK), d, acc[t]);
                    mins[t] = _mm_fmadd_ss(m, _mm_load_ss(sx[t].add(b)), mins[t]);
                }
            }
        }
        unsafe { std::array::from_fn(|t| hsum(acc[t]) + _mm_cvtss_f32(mins[t])) }
    }

    /// One Q8_0 weight row against `N` tokens, each equal to [`dot_q8_0`] bit for bit.
    ///
    /// # Safety
    /// AVX2, FMA and F16C; `w` has `nb` blocks and every `x[t]` `nb·32` values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8_0_1xn<const N: usize>(
        w: *const BlockQ8_0,
        x: [*const f32; N],
        nb: usize,
    ) -> [f32; N] {
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..nb {
            unsafe {
                let (q, d) = q8_0(w.add(b));
                for t in 0..N {
                    acc[t] = block(&q, x[t].add(b * QK), d, acc[t]);
                }
            }
        }
        unsafe { std::array::from_fn(|t| hsum(acc[t])) }
    }

    /// One Q8_0 weight row against [`TILE`] tokens (prefill).
    ///
    /// # Safety
    /// AVX2, FMA and F16C; `w` has `nb` blocks and every `x[t]` `nb·32` values.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8_0_1x8(w: *const BlockQ8_0, x: [*const f32; TILE], nb: usize) -> [f32; TILE] {
        let mut acc = [_mm256_setzero_ps(); TILE];
        for b in 0..nb {
            unsafe {
                let (q, d) = q8_0(w.add(b));
                for t in 0..TILE {
                    acc[t] = block(&q, x[t].add(b * QK), d, acc[t]);
                }
            }
        }
        unsafe { std::array::from_fn(|t| hsum(acc[t])) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Kernel;
    use half::f16;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn q4_1_row(rng: &mut ChaCha8Rng, nb: usize) -> Vec<BlockQ4_1> {
        (0..nb)
            .map(|_| BlockQ4_1 {
                d: f16::from_f32(rng.random_range(0.0..0.05)),
                m: f16::from_f32(rng.random_range(-0.5..0.0)),
                qs: std::array::from_fn(|_| rng.random()),
            })
            .collect()
    }

    fn q8_0_row(rng: &mut ChaCha8Rng, nb: usize) -> Vec<BlockQ8_0> {
        (0..nb)
            .map(|_| BlockQ8_0 {
                d: f16::from_f32(rng.random_range(0.0..0.02)),
                qs: std::array::from_fn(|_| rng.random()),
            })
            .collect()
    }

    fn act(rng: &mut ChaCha8Rng, nb: usize) -> Vec<f32> {
        (0..nb * QK).map(|_| rng.random_range(-3.0..3.0)).collect()
    }

    #[test]
    fn simd_dots_and_tiles_equal_the_portable_ones_bit_for_bit() {
        let k = Kernel::detect();
        let mut rng = ChaCha8Rng::seed_from_u64(41);
        let nb = 18;
        for _ in 0..50 {
            let (w4, w8) = (q4_1_row(&mut rng, nb), q8_0_row(&mut rng, nb));
            let xs: Vec<Vec<f32>> = (0..TILE).map(|_| act(&mut rng, nb)).collect();
            let sums: Vec<Vec<f32>> = xs
                .iter()
                .map(|x| {
                    let mut s = vec![0f32; nb];
                    block_sums(x, &mut s);
                    s
                })
                .collect();
            let want4: Vec<f32> = (0..TILE)
                .map(|t| portable::dot_q4_1(&w4, &xs[t], &sums[t]))
                .collect();
            let want8: Vec<f32> = (0..TILE).map(|t| portable::dot_q8_0(&w8, &xs[t])).collect();
            for t in 0..TILE {
                assert_eq!(
                    k.fused_q4_1(&w4, &xs[t], &sums[t]).to_bits(),
                    want4[t].to_bits()
                );
                assert_eq!(k.fused_q8_0(&w8, &xs[t]).to_bits(), want8[t].to_bits());
            }
            if let Some(tl) = k.fused_tiles() {
                let mut packed = vec![0f32; nb * TILE];
                pack_sums(std::array::from_fn(|t| sums[t].as_slice()), &mut packed);
                let ptrs = std::array::from_fn(|t| xs[t].as_ptr());
                // SAFETY: tiles come from runtime detection; every row has `nb` blocks.
                let (g4, g8) = unsafe {
                    (
                        (tl.q4_1)(w4.as_ptr(), ptrs, packed.as_ptr(), nb),
                        (tl.q8_0)(w8.as_ptr(), ptrs, nb),
                    )
                };
                for t in 0..TILE {
                    assert_eq!(g4[t].to_bits(), want4[t].to_bits(), "q4_1 tile token {t}");
                    assert_eq!(g8[t].to_bits(), want8[t].to_bits(), "q8_0 tile token {t}");
                }
                let sx: [*const f32; 4] = std::array::from_fn(|t| sums[t].as_ptr());
                let x4: [*const f32; 4] = std::array::from_fn(|t| xs[t].as_ptr());
                // SAFETY: as above.
                let (s4, s8, p4, p8) = unsafe {
                    (
                        (tl.q4_1_x4)(w4.as_ptr(), x4, sx, nb),
                        (tl.q8_0_x4)(w8.as_ptr(), x4, nb),
                        (tl.q4_1_x2)(w4.as_ptr(), [x4[0], x4[1]], [sx[0], sx[1]], nb),
                        (tl.q8_0_x2)(w8.as_ptr(), [x4[0], x4[1]], nb),
                    )
                };
                for t in 0..4 {
                    assert_eq!(s4[t].to_bits(), want4[t].to_bits(), "q4_1 x4 token {t}");
                    assert_eq!(s8[t].to_bits(), want8[t].to_bits(), "q8_0 x4 token {t}");
                }
                for t in 0..2 {
                    assert_eq!(p4[t].to_bits(), want4[t].to_bits(), "q4_1 x2 token {t}");
                    assert_eq!(p8[t].to_bits(), want8[t].to_bits(), "q8_0 x2 token {t}");
                }
            }
        }
    }

    #[test]
    fn the_fused_dot_is_the_f64_product_of_the_stored_weights_to_f32_rounding() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let nb = 18;
        for _ in 0..20 {
            let w = q4_1_row(&mut rng, nb);
            let x = act(&mut rng, nb);
            let mut sx = vec![0f32; nb];
            block_sums(&x, &mut sx);
            let mut wf = vec![0f32; nb * QK];
            for (b, o) in w.iter().zip(wf.chunks_exact_mut(QK)) {
                // d·q + m in f64: the stored weight exactly.
                for (j, v) in q4_1_values(b).iter().enumerate() {
                    o[j] = (b.d.to_f64() * *v as f64 + b.m.to_f64()) as f32;
                }
            }
            let exact: f64 = w
                .iter()
                .zip(x.chunks_exact(QK))
                .map(|(b, xb)| {
                    q4_1_values(b)
                        .iter()
                        .zip(xb)
                        .map(|(q, x)| (b.d.to_f64() * *q as f64 + b.m.to_f64()) * *x as f64)
                        .sum::<f64>()
                })
                .sum();
            let scale: f64 = wf
                .iter()
                .zip(&x)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            let got = portable::dot_q4_1(&w, &x, &sx) as f64;
            assert!(
                (got - exact).abs() <= 1e-6 * scale,
                "{got} vs {exact} (scale {scale})"
            );
        }
    }

    #[test]
    fn a_block_is_its_stored_weights_times_the_activations() {
        // Small integers and powers of two: every product and sum is exact, so the
        // fused dot must equal Σ (d·q + m)·x exactly.
        let b = BlockQ4_1 {
            d: f16::from_f32(0.5),
            m: f16::from_f32(-2.0),
            qs: std::array::from_fn(|j| (j as u8 % 16) | ((15 - j as u8 % 16) << 4)),
        };
        let x: Vec<f32> = (0..QK).map(|i| (i as f32 - 16.0) * 0.25).collect();
        let mut w = [0f32; QK];
        crate::quant::Block::dequantize(&b, &mut w);
        let want: f32 = w.iter().zip(&x).map(|(a, b)| a * b).sum();
        let mut sx = [0f32; 1];
        block_sums(&x, &mut sx);
        assert_eq!(portable::dot_q4_1(&[b], &x, &sx), want);
    }
}
