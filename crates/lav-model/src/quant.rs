//! GGML block formats and the integer dot products that llama.cpp computes with.
//!
//! The stored SmolLM2 weights are Q4_1 (token embeddings Q8_0). llama.cpp does not
//! dequantize them: it quantizes each activation row to Q8_1 (or Q8_0) per 32-value
//! block and takes an integer dot product per block, then scales. We do the same, in
//! the same order, so our answers are the stored model's answers.
//!
//! Every kernel has a portable version and SIMD versions (AVX2 on x86-64, picked at
//! run time; NEON on aarch64). They give bit-identical results: the integer part is
//! exact, and the float part follows one fixed order, the one llama.cpp's AVX2 code
//! uses (8 lanes of 4-value partial sums, fused multiply-add, then a pairwise
//! horizontal sum).

use half::f16;

/// Values per block for every format here.
pub const QK: usize = 32;

/// 32 weights as 4-bit unsigned values with a scale and a minimum: `w = d * q + m`.
/// Element `j < 16` is the low nibble of `qs[j]`, element `16 + j` the high nibble.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}

/// 32 values as signed bytes with a scale: `x = d * q`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}

/// Like [`BlockQ8_0`], plus `s = d * sum(q)` so a Q4_1 minimum costs one multiply.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK],
}

impl Default for BlockQ8_1 {
    fn default() -> Self {
        Self {
            d: f16::ZERO,
            s: f16::ZERO,
            qs: [0; QK],
        }
    }
}

/// Tokens per packed activation group (the prefill tile's width).
pub const PACK: usize = 8;

/// Block `b` of [`PACK`] consecutive tokens' Q8_1 rows, packed for the prefill tile:
/// the scales already in f32 (exact conversions of the f16 fields) and each token's
/// quants 32-byte aligned, so one tile step reads everything with plain vector loads.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(32))]
pub struct BlockQ8_1x8 {
    pub d: [f32; PACK],
    pub s: [f32; PACK],
    pub qs: [[i8; QK]; PACK],
}

impl Default for BlockQ8_1x8 {
    fn default() -> Self {
        Self {
            d: [0.0; PACK],
            s: [0.0; PACK],
            qs: [[0; QK]; PACK],
        }
    }
}

/// Packs [`PACK`] tokens' Q8_1 rows (equal length) into [`BlockQ8_1x8`]s, block by block.
pub fn pack_q8_1x8(rows: [&[BlockQ8_1]; PACK], out: &mut [BlockQ8_1x8]) {
    for (b, o) in out.iter_mut().enumerate() {
        *o = BlockQ8_1x8 {
            d: std::array::from_fn(|t| rows[t][b].d.to_f32()),
            s: std::array::from_fn(|t| rows[t][b].s.to_f32()),
            qs: std::array::from_fn(|t| rows[t][b].qs),
        };
    }
}

impl Default for BlockQ8_0 {
    fn default() -> Self {
        Self {
            d: f16::ZERO,
            qs: [0; QK],
        }
    }
}

/// A block type stored in GGUF byte order.
pub trait Block: Copy + Send + Sync + 'static {
    /// Bytes per block in the file.
    const BYTES: usize;
    fn from_bytes(b: &[u8]) -> Self;
    fn dequantize(&self, out: &mut [f32]);
}

fn f16_at(b: &[u8], i: usize) -> f16 {
    f16::from_le_bytes([b[i], b[i + 1]])
}

impl Block for BlockQ4_1 {
    const BYTES: usize = 20;
    fn from_bytes(b: &[u8]) -> Self {
        let mut qs = [0u8; 16];
        qs.copy_from_slice(&b[4..20]);
        Self {
            d: f16_at(b, 0),
            m: f16_at(b, 2),
            qs,
        }
    }
    fn dequantize(&self, out: &mut [f32]) {
        let (d, m) = (self.d.to_f32(), self.m.to_f32());
        for j in 0..16 {
            out[j] = (self.qs[j] & 0x0F) as f32 * d + m;
            out[j + 16] = (self.qs[j] >> 4) as f32 * d + m;
        }
    }
}

impl Block for BlockQ8_0 {
    const BYTES: usize = 34;
    fn from_bytes(b: &[u8]) -> Self {
        let mut qs = [0i8; 32];
        for (q, &v) in qs.iter_mut().zip(&b[2..34]) {
            *q = v as i8;
        }
        Self {
            d: f16_at(b, 0),
            qs,
        }
    }
    fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Reads a whole tensor's bytes into blocks. `bytes.len()` must be a multiple of
/// the block size; the loader checks shapes before calling.
pub fn blocks_from_bytes<B: Block>(bytes: &[u8]) -> Vec<B> {
    bytes.chunks_exact(B::BYTES).map(B::from_bytes).collect()
}

/// Quantizes 32 floats the way llama.cpp's x86 code does: scale by `127 / amax`,
/// round half to even.
#[inline]
fn quantize_block_i8(x: &[f32], qs: &mut [i8; QK]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let r = round_ties_even(v * id) as i32;
        *q = r as i8;
        sum += r;
    }
    (d, sum)
}

/// Round half to even for |v| ≤ 2²²: adding and removing 1.5·2²³ leaves no fraction
/// bits, and the FPU's default rounding is to nearest even. `f32::round_ties_even`
/// gives the same values but is a libm call on baseline x86-64 (4 % of prefill).
#[inline(always)]
fn round_ties_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    (v + MAGIC) - MAGIC
}

/// Activation row to Q8_1 blocks. `x.len() == 32 * y.len()`.
pub fn quantize_row_q8_1(x: &[f32], y: &mut [BlockQ8_1]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, sum) = quantize_block_i8(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
        yb.s = f16::from_f32(d * sum as f32);
    }
}

/// Activation row to Q8_0 blocks. `x.len() == 32 * y.len()`.
pub fn quantize_row_q8_0(x: &[f32], y: &mut [BlockQ8_0]) {
    for (xb, yb) in x.chunks_exact(QK).zip(y.iter_mut()) {
        let (d, _) = quantize_block_i8(xb, &mut yb.qs);
        yb.d = f16::from_f32(d);
    }
}

/// Re-quantizes floats to Q8_0 weights (used by the labelled `--weights q8_0` switch).
pub fn quantize_weights_q8_0(x: &[f32]) -> Vec<BlockQ8_0> {
    let mut y = vec![BlockQ8_0::default(); x.len() / QK];
    quantize_row_q8_0(x, &mut y);
    y
}

/// The horizontal sum llama.cpp's `hsum_float_8` does, in its order.
#[inline(always)]
pub(crate) fn hsum8(a: [f32; 8]) -> f32 {
    let r = [a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]];
    (r[0] + r[2]) + (r[1] + r[3])
}

/// Portable kernels: the reference every SIMD kernel must equal bit for bit.
pub mod portable {
    use super::*;

    /// Integer partial sums of 4 consecutive products, as the SIMD madd pairs give.
    #[inline(always)]
    fn lane_sums(x: &[i32; QK], y: &[i8; QK]) -> [i32; 8] {
        let mut s = [0i32; 8];
        for (l, sl) in s.iter_mut().enumerate() {
            for j in 4 * l..4 * l + 4 {
                *sl += x[j] * y[j] as i32;
            }
        }
        s
    }

    pub fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
        let mut acc = [0f32; 8];
        let mut summs = 0f32;
        for (xb, yb) in x.iter().zip(y) {
            let d0 = xb.d.to_f32();
            let d1 = yb.d.to_f32();
            summs += xb.m.to_f32() * yb.s.to_f32();
            let d0d1 = d0 * d1;
            let mut qx = [0i32; QK];
            for j in 0..16 {
                qx[j] = (xb.qs[j] & 0x0F) as i32;
                qx[j + 16] = (xb.qs[j] >> 4) as i32;
            }
            let s = lane_sums(&qx, &yb.qs);
            for l in 0..8 {
                acc[l] = d0d1.mul_add(s[l] as f32, acc[l]);
            }
        }
        hsum8(acc) + summs
    }

    pub fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
        let mut acc = [0f32; 8];
        for (xb, yb) in x.iter().zip(y) {
            let d = xb.d.to_f32() * yb.d.to_f32();
            let mut qx = [0i32; QK];
            for (a, &b) in qx.iter_mut().zip(&xb.qs) {
                *a = b as i32;
            }
            let s = lane_sums(&qx, &yb.qs);
            for l in 0..8 {
                acc[l] = d.mul_add(s[l] as f32, acc[l]);
            }
        }
        hsum8(acc)
    }
}

#[cfg(target_arch = "x86_64")]
pub mod avx2 {
    use super::*;
    use std::arch::x86_64::*;

    #[inline(always)]
    pub(crate) unsafe fn hsum(acc: __m256) -> f32 {
        let mut a = [0f32; 8];
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), acc) };
        hsum8(a)
    }

    /// The two f16 scale fields that open a Q4_1 block (`d`, `m`) and a Q8_1 block
    /// (`d`, `s`), as f32 lanes `[d0, m0, d1, s1]`, in one F16C conversion.
    #[inline(always)]
    unsafe fn scales(xb: *const u8, yb: *const u8) -> __m128 {
        unsafe {
            let a = (xb as *const i32).read_unaligned();
            let b = (yb as *const i32).read_unaligned();
            _mm_cvtph_ps(_mm_set_epi32(0, 0, b, a))
        }
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
        let n = x.len().min(y.len());
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        let mut acc = _mm256_setzero_ps();
        // Lane 1 accumulates m0·s1 block by block, like the scalar `summs`.
        let mut summs = _mm_setzero_ps();
        for i in 0..n {
            let (xb, yb) = unsafe { (x.get_unchecked(i), y.get_unchecked(i)) };
            unsafe {
                let dm = scales(xb as *const _ as *const u8, yb as *const _ as *const u8);
                // [d0·d1, m0·s1, ..]: the same f32 products the scalar code forms.
                let prod = _mm_mul_ps(dm, _mm_movehl_ps(dm, dm));
                summs = _mm_add_ps(summs, prod);
                let d0d1 = _mm256_broadcastss_ps(prod);
                let packed = _mm_loadu_si128(xb.qs.as_ptr() as *const __m128i);
                // Low nibbles are elements 0..16, high nibbles 16..32.
                let both = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
                let qx = _mm256_and_si256(both, low);
                let qy = _mm256_loadu_si256(yb.qs.as_ptr() as *const __m256i);
                let dot16 = _mm256_maddubs_epi16(qx, qy);
                let dot32 = _mm256_madd_epi16(dot16, ones);
                acc = _mm256_fmadd_ps(d0d1, _mm256_cvtepi32_ps(dot32), acc);
            }
        }
        let mut s = [0f32; 4];
        unsafe {
            _mm_storeu_ps(s.as_mut_ptr(), summs);
            hsum(acc) + s[1]
        }
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
        let n = x.len().min(y.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for i in 0..n {
            let (xb, yb) = unsafe { (x.get_unchecked(i), y.get_unchecked(i)) };
            unsafe {
                let bits = xb.d.to_bits() as i32 | ((yb.d.to_bits() as i32) << 16);
                let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(bits));
                let d = _mm256_broadcastss_ps(_mm_mul_ss(dd, _mm_movehdup_ps(dd)));
                let qx = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
                let qy = _mm256_loadu_si256(yb.qs.as_ptr() as *const __m256i);
                // maddubs wants one unsigned operand: move x's sign onto y.
                let ax = _mm256_sign_epi8(qx, qx);
                let sy = _mm256_sign_epi8(qy, qx);
                let dot16 = _mm256_maddubs_epi16(ax, sy);
                let dot32 = _mm256_madd_epi16(dot16, ones);
                acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot32), acc);
            }
        }
        unsafe { hsum(acc) }
    }

    /// The leading f16 pair of four blocks (`d` and `m` or `s`), as
    /// `([d₀, d₁, d₂, d₃], [m₀, m₁, m₂, m₃])` in one F16C conversion per two blocks.
    #[inline(always)]
    unsafe fn pairs4(p: [*const u8; 4]) -> (__m128, __m128) {
        unsafe {
            let r = |i: usize| (p[i] as *const i32).read_unaligned();
            let v = _mm_set_epi32(r(3), r(2), r(1), r(0));
            let lo = _mm_cvtph_ps(v); // d0 m0 d1 m1
            let hi = _mm_cvtph_ps(_mm_unpackhi_epi64(v, v)); // d2 m2 d3 m3
            (
                _mm_shuffle_ps::<0b10_00_10_00>(lo, hi),
                _mm_shuffle_ps::<0b11_01_11_01>(lo, hi),
            )
        }
    }

    /// The leading f16 pair of one block, each broadcast to four lanes.
    #[inline(always)]
    unsafe fn pair1(p: *const u8) -> (__m128, __m128) {
        unsafe {
            let v = _mm_cvtph_ps(_mm_cvtsi32_si128((p as *const i32).read_unaligned()));
            (
                _mm_permute_ps::<0b00_00_00_00>(v),
                _mm_permute_ps::<0b01_01_01_01>(v),
            )
        }
    }

    /// Lane `i` of `v` in all eight lanes.
    #[inline(always)]
    unsafe fn lane(v: __m128, i: i32) -> __m256 {
        unsafe { _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(i)) }
    }

    #[inline(always)]
    unsafe fn nibbles(qs: *const u8, low: __m256i) -> __m256i {
        unsafe {
            let packed = _mm_loadu_si128(qs as *const __m128i);
            // Low nibbles are elements 0..16, high nibbles 16..32.
            _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low)
        }
    }

    #[inline(always)]
    unsafe fn finish4(acc: [__m256; 4], summs: __m128) -> [f32; 4] {
        let mut s = [0f32; 4];
        unsafe {
            _mm_storeu_ps(s.as_mut_ptr(), summs);
            std::array::from_fn(|i| hsum(acc[i]) + s[i])
        }
    }

    // The tiles below compute four (weight row, activation row) dots at once. Each
    // pair keeps its own accumulator and sees exactly the f32 operations of
    // `vec_dot_*` (lane-wise products and sums are the scalar ones), so results are
    // bit-identical; sharing loads and running four independent FMA chains is what
    // makes them fast.

    /// One Q4_1 weight row against [`PACK`] packed tokens (prefill): eight dots, each
    /// with its own accumulator, sharing one decode of the weight block.
    ///
    /// # Safety
    /// AVX2, FMA and F16C; `w` and `x` must have `nb` readable blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q4_1_1x8(w: *const BlockQ4_1, x: *const BlockQ8_1x8, nb: usize) -> [f32; PACK] {
        let ones = _mm256_set1_epi16(1);
        let low = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); PACK];
        let mut summs = _mm256_setzero_ps();
        for b in 0..nb {
            unsafe {
                let xb = &*x.add(b);
                let wb = w.add(b);
                let (d0, m0) = pair1(wb as *const u8);
                let (d0, m0) = (_mm256_set_m128(d0, d0), _mm256_set_m128(m0, m0));
                // m0·s1 and d0·d1 per token, the products the single dot forms.
                summs = _mm256_add_ps(summs, _mm256_mul_ps(m0, _mm256_load_ps(xb.s.as_ptr())));
                let dd = _mm256_mul_ps(d0, _mm256_load_ps(xb.d.as_ptr()));
                let qx = nibbles((*wb).qs.as_ptr(), low);
                for (t, acc) in acc.iter_mut().enumerate() {
                    let qy = _mm256_load_si256(xb.qs[t].as_ptr() as *const __m256i);
                    let dot32 = _mm256_madd_epi16(_mm256_maddubs_epi16(qx, qy), ones);
                    let ddt = _mm256_permutevar8x32_ps(dd, _mm256_set1_epi32(t as i32));
                    *acc = _mm256_fmadd_ps(ddt, _mm256_cvtepi32_ps(dot32), *acc);
                }
            }
        }
        let mut s = [0f32; PACK];
        unsafe {
            _mm256_storeu_ps(s.as_mut_ptr(), summs);
            std::array::from_fn(|t| hsum(acc[t]) + s[t])
        }
    }

    /// One Q8_0 weight row against four Q8_0 activation rows (prefill).
    ///
    /// # Safety
    /// AVX2, FMA and F16C; every pointer must have `nb` readable blocks.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn q8_0_row_x4(
        w: *const BlockQ8_0,
        x: [*const BlockQ8_0; 4],
        nb: usize,
    ) -> [f32; 4] {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        for b in 0..nb {
            unsafe {
                let wb = w.add(b);
                let (d0, _) = pair1(wb as *const u8);
                let xb: [*const BlockQ8_0; 4] = std::array::from_fn(|t| x[t].add(b));
                let (d1, _) = pairs4(std::array::from_fn(|t| xb[t] as *const u8));
                let dd = _mm_mul_ps(d0, d1);
                let qx = _mm256_loadu_si256((*wb).qs.as_ptr() as *const __m256i);
                let ax = _mm256_sign_epi8(qx, qx);
                for t in 0..4 {
                    let qy = _mm256_loadu_si256((*xb[t]).qs.as_ptr() as *const __m256i);
                    let sy = _mm256_sign_epi8(qy, qx);
                    let dot32 = _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones);
                    acc[t] = _mm256_fmadd_ps(lane(dd, t as i32), _mm256_cvtepi32_ps(dot32), acc[t]);
                }
            }
        }
        unsafe { finish4(acc, _mm_setzero_ps()) }
    }
}

#[cfg(target_arch = "aarch64")]
pub mod neon {
    use super::*;
    use std::arch::aarch64::*;

    /// 8 lanes of 4-product sums, the same grouping as the AVX2 madd pairs.
    #[inline(always)]
    unsafe fn lane_sums(qx: int8x16x2_t, qy: int8x16x2_t) -> (int32x4_t, int32x4_t) {
        unsafe {
            // Widening products, then pairwise adds: lane l sums elements 4l..4l+4.
            let p0 = vmull_s8(vget_low_s8(qx.0), vget_low_s8(qy.0));
            let p1 = vmull_s8(vget_high_s8(qx.0), vget_high_s8(qy.0));
            let p2 = vmull_s8(vget_low_s8(qx.1), vget_low_s8(qy.1));
            let p3 = vmull_s8(vget_high_s8(qx.1), vget_high_s8(qy.1));
            let s01 = vpaddq_s32(vpaddlq_s16(p0), vpaddlq_s16(p1));
            let s23 = vpaddq_s32(vpaddlq_s16(p2), vpaddlq_s16(p3));
            (s01, s23)
        }
    }

    #[inline(always)]
    unsafe fn finish(lo: float32x4_t, hi: float32x4_t) -> f32 {
        let mut a = [0f32; 8];
        unsafe {
            vst1q_f32(a.as_mut_ptr(), lo);
            vst1q_f32(a.as_mut_ptr().add(4), hi);
        }
        hsum8(a)
    }

    /// # Safety
    /// NEON is always present on aarch64.
    pub unsafe fn vec_dot_q4_1_q8_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
        unsafe {
            let mut lo = vdupq_n_f32(0.0);
            let mut hi = vdupq_n_f32(0.0);
            let mut summs = 0f32;
            let mask = vdupq_n_u8(0x0F);
            for (xb, yb) in x.iter().zip(y) {
                let d0d1 = xb.d.to_f32() * yb.d.to_f32();
                summs += xb.m.to_f32() * yb.s.to_f32();
                let packed = vld1q_u8(xb.qs.as_ptr());
                let qx = int8x16x2_t(
                    vreinterpretq_s8_u8(vandq_u8(packed, mask)),
                    vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)),
                );
                let qy = int8x16x2_t(vld1q_s8(yb.qs.as_ptr()), vld1q_s8(yb.qs.as_ptr().add(16)));
                let (s01, s23) = lane_sums(qx, qy);
                let d = vdupq_n_f32(d0d1);
                lo = vfmaq_f32(lo, d, vcvtq_f32_s32(s01));
                hi = vfmaq_f32(hi, d, vcvtq_f32_s32(s23));
            }
            finish(lo, hi) + summs
        }
    }

    /// # Safety
    /// NEON is always present on aarch64.
    pub unsafe fn vec_dot_q8_0_q8_0(x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
        unsafe {
            let mut lo = vdupq_n_f32(0.0);
            let mut hi = vdupq_n_f32(0.0);
            for (xb, yb) in x.iter().zip(y) {
                let d = vdupq_n_f32(xb.d.to_f32() * yb.d.to_f32());
                let qx = int8x16x2_t(vld1q_s8(xb.qs.as_ptr()), vld1q_s8(xb.qs.as_ptr().add(16)));
                let qy = int8x16x2_t(vld1q_s8(yb.qs.as_ptr()), vld1q_s8(yb.qs.as_ptr().add(16)));
                let (s01, s23) = lane_sums(qx, qy);
                lo = vfmaq_f32(lo, d, vcvtq_f32_s32(s01));
                hi = vfmaq_f32(hi, d, vcvtq_f32_s32(s23));
            }
            finish(lo, hi)
        }
    }
}

/// Which kernel family this CPU runs. Opaque: [`Kernel::detect`] (runtime feature
/// detection) and [`Kernel::portable`] are the only ways to get one, so safe code can
/// never hold an AVX2 kernel on a CPU without AVX2 and reach its `unsafe` dots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Portable,
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2,
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    Neon,
}

impl serde::Serialize for Kernel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A multi-token version of a dot kernel, bit-identical per pair: one weight row
/// against four activation rows (prefill). Decode uses the single dot: a four-row
/// tile measured 2× slower there (gathering four rows' scales costs more than the
/// shared activation load saves).
pub struct Tiles<W, X> {
    pub one_by_four: unsafe fn(*const W, [*const X; 4], usize) -> [f32; 4],
}

/// One Q4_1 weight row against [`PACK`] packed tokens; bit-identical to single dots.
pub type PackedQ4_1 = unsafe fn(*const BlockQ4_1, *const BlockQ8_1x8, usize) -> [f32; PACK];

impl<W, X> Clone for Tiles<W, X> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<W, X> Copy for Tiles<W, X> {}

/// The prefill tiles of [`crate::fused`]: one stored weight row against
/// [`crate::fused::TILE`] f32 activation rows, bit-identical to single dots.
#[derive(Clone, Copy)]
pub struct FusedTiles {
    pub q4_1: unsafe fn(*const BlockQ4_1, [*const f32; 8], *const f32, usize) -> [f32; 8],
    pub q8_0: unsafe fn(*const BlockQ8_0, [*const f32; 8], usize) -> [f32; 8],
    /// Four and two tokens (small decode batches), block sums unpacked.
    pub q4_1_x4: unsafe fn(*const BlockQ4_1, [*const f32; 4], [*const f32; 4], usize) -> [f32; 4],
    pub q4_1_x2: unsafe fn(*const BlockQ4_1, [*const f32; 2], [*const f32; 2], usize) -> [f32; 2],
    pub q8_0_x4: unsafe fn(*const BlockQ8_0, [*const f32; 4], usize) -> [f32; 4],
    pub q8_0_x2: unsafe fn(*const BlockQ8_0, [*const f32; 2], usize) -> [f32; 2],
}

impl Kernel {
    /// The Q4_1 prefill tile (one weight row × [`PACK`] packed tokens), where this
    /// CPU has it.
    pub fn packed_q4_1(self) -> Option<PackedQ4_1> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel(Kind::Avx2) => Some(avx2::q4_1_1x8),
            _ => None,
        }
    }

    /// Tiled Q8_0 × Q8_0 kernels, where this CPU has them.
    pub fn tiles_q8_0(self) -> Option<Tiles<BlockQ8_0, BlockQ8_0>> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel(Kind::Avx2) => Some(Tiles {
                one_by_four: avx2::q8_0_row_x4,
            }),
            _ => None,
        }
    }

    /// The portable kernels: correct on every CPU, the reference the SIMD ones are
    /// checked against.
    pub fn portable() -> Kernel {
        Kernel(Kind::Portable)
    }

    /// The fastest kernel this CPU supports. `LAV_KERNEL=portable` forces the fallback.
    pub fn detect() -> Kernel {
        static K: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *K.get_or_init(|| {
            if std::env::var("LAV_KERNEL").is_ok_and(|v| v == "portable") {
                return Kernel(Kind::Portable);
            }
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
            {
                return Kernel(Kind::Avx2);
            }
            #[cfg(target_arch = "aarch64")]
            return Kernel(Kind::Neon);
            #[allow(unreachable_code)]
            Kernel(Kind::Portable)
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel(Kind::Portable) => "portable",
            Kernel(Kind::Avx2) => "avx2",
            Kernel(Kind::Neon) => "neon",
        }
    }

    /// The stored-weights × f32-activation tiles, where this CPU has them.
    pub fn fused_tiles(self) -> Option<FusedTiles> {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel(Kind::Avx2) => Some(FusedTiles {
                q4_1: crate::fused::avx2::q4_1_1x8,
                q8_0: crate::fused::avx2::q8_0_1x8,
                q4_1_x4: crate::fused::avx2::q4_1_1xn::<4>,
                q4_1_x2: crate::fused::avx2::q4_1_1xn::<2>,
                q8_0_x4: crate::fused::avx2::q8_0_1xn::<4>,
                q8_0_x2: crate::fused::avx2::q8_0_1xn::<2>,
            }),
            _ => None,
        }
    }

    /// One stored Q4_1 row against an f32 activation row and its block sums (see
    /// [`crate::fused`]).
    #[inline]
    pub fn fused_q4_1(self, w: &[BlockQ4_1], x: &[f32], sx: &[f32]) -> f32 {
        assert!(
            x.len() >= w.len() * QK && sx.len() >= w.len(),
            "fused_q4_1 shapes"
        );
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kind::Avx2` exists only after runtime detection of AVX2, FMA and
            // F16C; the lengths are checked above.
            Kernel(Kind::Avx2) => unsafe {
                crate::fused::avx2::dot_q4_1(w.as_ptr(), x.as_ptr(), sx.as_ptr(), w.len())
            },
            _ => crate::fused::portable::dot_q4_1(w, x, sx),
        }
    }

    /// One stored Q8_0 row against an f32 activation row (see [`crate::fused`]).
    #[inline]
    pub fn fused_q8_0(self, w: &[BlockQ8_0], x: &[f32]) -> f32 {
        assert!(x.len() >= w.len() * QK, "fused_q8_0 shapes");
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as for `fused_q4_1`.
            Kernel(Kind::Avx2) => unsafe {
                crate::fused::avx2::dot_q8_0(w.as_ptr(), x.as_ptr(), w.len())
            },
            _ => crate::fused::portable::dot_q8_0(w, x),
        }
    }

    #[inline]
    pub fn dot_q4_1_q8_1(self, x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kind::Avx2` exists only through `detect`, after runtime detection of
            // AVX2, FMA and F16C, and `Kernel` cannot be built outside this module.
            Kernel(Kind::Avx2) => unsafe { avx2::vec_dot_q4_1_q8_1(x, y) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: NEON is baseline on aarch64.
            Kernel(Kind::Neon) => unsafe { neon::vec_dot_q4_1_q8_1(x, y) },
            _ => portable::vec_dot_q4_1_q8_1(x, y),
        }
    }

    #[inline]
    pub fn dot_q8_0_q8_0(self, x: &[BlockQ8_0], y: &[BlockQ8_0]) -> f32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Kind::Avx2` exists only through `detect`, after runtime detection of
            // AVX2, FMA and F16C, and `Kernel` cannot be built outside this module.
            Kernel(Kind::Avx2) => unsafe { avx2::vec_dot_q8_0_q8_0(x, y) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: NEON is baseline on aarch64.
            Kernel(Kind::Neon) => unsafe { neon::vec_dot_q8_0_q8_0(x, y) },
            _ => portable::vec_dot_q8_0_q8_0(x, y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random_q4_1(rng: &mut ChaCha8Rng, n: usize) -> Vec<BlockQ4_1> {
        (0..n)
            .map(|_| BlockQ4_1 {
                d: f16::from_f32(rng.random_range(0.0..0.05)),
                m: f16::from_f32(rng.random_range(-0.5..0.0)),
                qs: std::array::from_fn(|_| rng.random()),
            })
            .collect()
    }

    fn random_act(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n * QK).map(|_| rng.random_range(-3.0..3.0)).collect()
    }

    #[test]
    fn magic_rounding_equals_std_round_ties_even() {
        // Every f32 in [-130, 130] that the quantizer can meet, sampled densely,
        // plus every exact half (the ties).
        let top = 130f32.to_bits();
        for bits in (0..=top).step_by(7) {
            for v in [f32::from_bits(bits), -f32::from_bits(bits)] {
                assert_eq!(round_ties_even(v), v.round_ties_even(), "{v}");
            }
        }
        for h in -260..=260 {
            let v = h as f32 + 0.5;
            assert_eq!(round_ties_even(v), v.round_ties_even(), "{v}");
        }
    }

    #[test]
    fn simd_equals_portable_bit_for_bit() {
        let k = Kernel::detect();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in [1, 2, 18, 48] {
            for _ in 0..200 {
                let w = random_q4_1(&mut rng, n);
                let a = random_act(&mut rng, n);
                let mut y1 = vec![BlockQ8_1::default(); n];
                quantize_row_q8_1(&a, &mut y1);
                let p = portable::vec_dot_q4_1_q8_1(&w, &y1);
                let s = k.dot_q4_1_q8_1(&w, &y1);
                assert_eq!(p.to_bits(), s.to_bits(), "q4_1 kernel {k:?} n={n}");

                let w8 = quantize_weights_q8_0(&random_act(&mut rng, n));
                let mut y0 = vec![BlockQ8_0::default(); n];
                quantize_row_q8_0(&a, &mut y0);
                let p = portable::vec_dot_q8_0_q8_0(&w8, &y0);
                let s = k.dot_q8_0_q8_0(&w8, &y0);
                assert_eq!(p.to_bits(), s.to_bits(), "q8_0 kernel {k:?} n={n}");
            }
        }
    }

    #[test]
    fn prefill_tiles_equal_single_dots_bit_for_bit() {
        let k = Kernel::detect();
        let (Some(t41), Some(t80)) = (k.packed_q4_1(), k.tiles_q8_0()) else {
            return; // no tiled kernels on this CPU: the matmul uses single dots
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for n in [1, 18, 48] {
            let w = random_q4_1(&mut rng, n);
            let w8 = quantize_weights_q8_0(&random_act(&mut rng, n));
            let mut y1 = vec![vec![BlockQ8_1::default(); n]; PACK];
            let mut y0 = vec![vec![BlockQ8_0::default(); n]; 4];
            for i in 0..PACK {
                let a = random_act(&mut rng, n);
                quantize_row_q8_1(&a, &mut y1[i]);
                if i < 4 {
                    quantize_row_q8_0(&a, &mut y0[i]);
                }
            }
            let mut packed = vec![BlockQ8_1x8::default(); n];
            pack_q8_1x8(std::array::from_fn(|i| &y1[i][..]), &mut packed);
            // SAFETY: AVX2 was detected (tiles offered) and every row has n blocks.
            let (b, d) = unsafe {
                (
                    t41(w.as_ptr(), packed.as_ptr(), n),
                    (t80.one_by_four)(w8.as_ptr(), std::array::from_fn(|i| y0[i].as_ptr()), n),
                )
            };
            let bits = |x: f32| x.to_bits();
            for i in 0..PACK {
                assert_eq!(bits(b[i]), bits(portable::vec_dot_q4_1_q8_1(&w, &y1[i])));
            }
            for i in 0..4 {
                assert_eq!(bits(d[i]), bits(portable::vec_dot_q8_0_q8_0(&w8, &y0[i])));
            }
        }
    }

    #[test]
    fn dot_matches_dequantized_float_dot() {
        // The integer dot is an approximation of the float one: it must stay within the
        // activation quantization error, which is at most d/2 per value.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let n = 18;
        let w = random_q4_1(&mut rng, n);
        let a = random_act(&mut rng, n);
        let mut wf = vec![0f32; n * QK];
        for (b, out) in w.iter().zip(wf.chunks_exact_mut(QK)) {
            b.dequantize(out);
        }
        let exact: f32 = wf.iter().zip(&a).map(|(x, y)| x * y).sum();
        let mut y = vec![BlockQ8_1::default(); n];
        quantize_row_q8_1(&a, &mut y);
        let got = Kernel::detect().dot_q4_1_q8_1(&w, &y);
        let bound: f32 = wf.iter().map(|x| x.abs()).sum::<f32>() * (3.0 / 127.0);
        assert!(
            (got - exact).abs() <= bound,
            "{got} vs {exact} (bound {bound})"
        );
    }

    #[test]
    fn q8_1_sum_field_is_scaled_sum() {
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 10.0).collect();
        let mut y = [BlockQ8_1::default()];
        quantize_row_q8_1(&x, &mut y);
        assert_eq!(y[0].qs[31], 127);
        let sum: i32 = y[0].qs.iter().map(|&q| q as i32).sum();
        let d = 21.0f32 / 127.0;
        assert_eq!(y[0].s, f16::from_f32(d * sum as f32));
    }
}
