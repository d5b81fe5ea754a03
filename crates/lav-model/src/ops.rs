//! The forward pass's non-matmul operations on plain row-major `f32` slices.
//!
//! Every function works one row (one token, or one head of one token) at a time, with a
//! summation order that depends only on that row. That is what makes a cached decode
//! step produce exactly the numbers a full recomputation produces: the result for
//! position `p` never depends on how many tokens were in the call.
//!
//! The arithmetic follows llama.cpp's CPU backend where it matters for agreement:
//! RMSNorm sums squares in f64, softmax sums exponentials in f64.

use rayon::prelude::*;

/// RMSNorm of each `dim`-wide row of `x`, times `weight`: `x / sqrt(mean(x²) + eps) · w`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let dim = weight.len();
    let mut out = vec![0f32; x.len()];
    par_rows(x, &mut out, dim, dim, |xr, or| {
        let sum: f64 = xr.iter().map(|&v| (v * v) as f64).sum();
        let scale = 1.0 / ((sum / dim as f64) as f32 + eps).sqrt();
        for ((o, &v), &w) in or.iter_mut().zip(xr).zip(weight) {
            *o = (v * scale) * w;
        }
    });
    out
}

/// Applies a per-row function (row `t` of `x`, `cols` wide, to row `t` of `y`, `ycols`
/// wide), in parallel for batches. Rows are independent, so the result is the same.
pub fn par_rows<X: Sync, Y: Send>(
    x: &[X],
    y: &mut [Y],
    cols: usize,
    ycols: usize,
    f: impl Fn(&[X], &mut [Y]) + Sync,
) {
    let n = x.len() / cols;
    if n < 8 || rayon::current_num_threads() <= 1 {
        x.chunks_exact(cols)
            .zip(y.chunks_exact_mut(ycols))
            .for_each(|(a, b)| f(a, b));
    } else {
        x.par_chunks_exact(cols)
            .zip(y.par_chunks_exact_mut(ycols))
            .with_min_len(4)
            .for_each(|(a, b)| f(a, b));
    }
}

/// Rotates consecutive pairs `(x[2i], x[2i+1])` of each head by the angle of pair `i`
/// at the row's position (llama's "normal" RoPE, not NeoX's half split).
/// `x` is `rows × (heads · head_dim)`; row `t` sits at position `pos0 + t`;
/// `cos`/`sin` are `(context, head_dim/2)` tables.
pub fn rope(x: &mut [f32], head_dim: usize, pos0: usize, cos: &[f32], sin: &[f32], width: usize) {
    let half = head_dim / 2;
    for (t, row) in x.chunks_exact_mut(width).enumerate() {
        let c = &cos[(pos0 + t) * half..][..half];
        let s = &sin[(pos0 + t) * half..][..half];
        for head in row.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (x0, x1) = (head[2 * i], head[2 * i + 1]);
                head[2 * i] = x0 * c[i] - x1 * s[i];
                head[2 * i + 1] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

/// `silu(gate) · up` for a `rows × (2·inter)` buffer holding `[gate | up]` per row.
pub fn swiglu(gate_up: &[f32], inter: usize) -> Vec<f32> {
    let mut out = vec![0f32; gate_up.len() / 2];
    par_rows(gate_up, &mut out, 2 * inter, inter, |row, o| {
        let (g, u) = row.split_at(inter);
        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
            *o = silu(g) * u;
        }
    });
    out
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// Dot product with eight fixed lanes (vectorizes; the order never depends on context).
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Tokens in this call.
    pub tokens: usize,
    /// Position of the first of them (tokens already in the cache).
    pub pos: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl AttnShape {
    /// Positions attended by the last token: `pos + tokens`.
    pub fn total(&self) -> usize {
        self.pos + self.tokens
    }
}

/// Where attention writes its scores and probabilities when the capture is on:
/// two `tokens × heads × total` buffers (raw scaled scores, -inf where masked).
pub struct AttnRecord<'a> {
    pub scores: &'a mut [f32],
    pub probs: &'a mut [f32],
}

/// Where a call's cached K or V rows live: one position-major buffer (the contiguous
/// cache), or a paged pool read through a block table. Attention reads position `j`'s
/// row through [`KvRows::row`] either way, so both compute the same numbers.
#[derive(Clone, Copy)]
pub enum KvRows<'a> {
    Contiguous {
        data: &'a [f32],
        width: usize,
    },
    Paged {
        data: &'a [f32],
        table: &'a [u32],
        block_size: usize,
        width: usize,
    },
}

impl<'a> KvRows<'a> {
    /// Position `j`'s row (`kv_heads · head_dim` values).
    #[inline(always)]
    pub fn row(&self, j: usize) -> &'a [f32] {
        match *self {
            KvRows::Contiguous { data, width } => &data[j * width..(j + 1) * width],
            KvRows::Paged {
                data,
                table,
                block_size,
                width,
            } => {
                let o = (table[j / block_size] as usize * block_size + j % block_size) * width;
                &data[o..o + width]
            }
        }
    }
}

struct RowArgs<'a> {
    q: &'a [f32],
    k: KvRows<'a>,
    v: KvRows<'a>,
    s: AttnShape,
}

/// One row = one (token, head) pair: scores, softmax, weighted sum of values. Rows are
/// independent, and each one's arithmetic never depends on the call's size.
#[inline(always)]
fn attend_row(a: &RowArgs, idx: usize, o: &mut [f32], sc: &mut [f32], raw: Option<&mut [f32]>) {
    let hd = a.s.head_dim;
    attend_row_with(a, idx, o, sc, raw, dot, |o, p, v, off| {
        o.fill(0.0);
        for (j, &pj) in p.iter().enumerate() {
            for (a, &b) in o.iter_mut().zip(&v.row(j)[off..][..hd]) {
                *a += pj * b;
            }
        }
    })
}

/// The row's steps with the two inner loops supplied: `dot(q, k)` and
/// `wsum(o, probs, v, off)`, which sets `o = Σ_j probs[j] · v.row(j)[off ..]`.
#[inline(always)]
fn attend_row_with(
    a: &RowArgs,
    idx: usize,
    o: &mut [f32],
    sc: &mut [f32],
    raw: Option<&mut [f32]>,
    dot: impl Fn(&[f32], &[f32]) -> f32,
    wsum: impl Fn(&mut [f32], &[f32], KvRows<'_>, usize),
) {
    let s = a.s;
    let hd = s.head_dim;
    let group = s.heads / s.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let (t, h) = (idx / s.heads, idx % s.heads);
    let n = s.pos + t + 1;
    let qr = &a.q[t * s.heads * hd + h * hd..][..hd];
    let off = (h / group) * hd;
    let sc = &mut sc[..n];
    for (j, x) in sc.iter_mut().enumerate() {
        *x = dot(qr, &a.k.row(j)[off..][..hd]) * scale;
    }
    if let Some(raw) = raw {
        raw[..n].copy_from_slice(sc);
        raw[n..].fill(f32::NEG_INFINITY);
    }
    let max = sc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for x in sc.iter_mut() {
        *x = (*x - max).exp();
        sum += *x as f64;
    }
    let inv = (1.0 / sum) as f32;
    for p in sc.iter_mut() {
        *p *= inv;
    }
    wsum(o, sc, a.v, off);
}

/// The same row with AVX vectors for its two inner loops. It adds and multiplies lane
/// by lane exactly as [`dot`] and the scalar weighted sum do (no FMA), so the results
/// are identical bit for bit; it only keeps more in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn attend_row_avx2(
    a: &RowArgs,
    idx: usize,
    o: &mut [f32],
    sc: &mut [f32],
    raw: Option<&mut [f32]>,
) {
    let hd = a.s.head_dim;
    if !hd.is_multiple_of(64) {
        return attend_row(a, idx, o, sc, raw);
    }
    // Closures inherit this function's AVX2, so they may call the AVX kernels.
    let dot = |x: &[f32], y: &[f32]| avx::dot(x, y);
    attend_row_with(a, idx, o, sc, raw, dot, |o, p, v, off| {
        for c in (0..hd).step_by(64) {
            avx::weighted_sum_64(&mut o[c..c + 64], p, v, off + c);
        }
    })
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// [`super::dot`] for lengths that are multiples of 8, in its exact order.
    #[target_feature(enable = "avx2")]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        assert!(a.len().is_multiple_of(8) && b.len() == a.len());
        let mut acc = _mm256_setzero_ps();
        for c in (0..a.len()).step_by(8) {
            // SAFETY: c + 8 <= len for both slices.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(a.as_ptr().add(c)),
                    _mm256_loadu_ps(b.as_ptr().add(c)),
                )
            };
            acc = _mm256_add_ps(acc, _mm256_mul_ps(x, y));
        }
        // [a0+a4, a1+a5, a2+a6, a3+a7], then ((r0 + r1) + (r2 + r3)).
        let r = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
        let mut v = [0f32; 4];
        // SAFETY: v has four lanes.
        unsafe { _mm_storeu_ps(v.as_mut_ptr(), r) };
        (v[0] + v[1]) + (v[2] + v[3])
    }

    /// `o = Σ_j p[j] · v.row(j)[off ..][..64]`, summed over `j` in order from zero,
    /// the accumulator in eight registers instead of memory.
    #[target_feature(enable = "avx2")]
    pub fn weighted_sum_64(o: &mut [f32], p: &[f32], v: super::KvRows<'_>, off: usize) {
        assert!(o.len() == 64);
        let mut acc = [_mm256_setzero_ps(); 8];
        for (j, &pj) in p.iter().enumerate() {
            let pv = _mm256_set1_ps(pj);
            let row = &v.row(j)[off..off + 64];
            for (i, a) in acc.iter_mut().enumerate() {
                // SAFETY: `row` holds 64 values (the slice above is bounds-checked).
                let x = unsafe { _mm256_loadu_ps(row.as_ptr().add(8 * i)) };
                *a = _mm256_add_ps(*a, _mm256_mul_ps(pv, x));
            }
        }
        for (i, a) in acc.iter().enumerate() {
            // SAFETY: o has 64 lanes.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(8 * i), *a) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_detected() -> bool {
    static D: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *D.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && !std::env::var("LAV_KERNEL").is_ok_and(|v| v == "portable")
    })
}

/// Causal grouped-query attention.
///
/// `q` is `tokens × (heads·head_dim)`; `k`/`v` hold every cached position
/// position-major: `total × (kv_heads·head_dim)`. Query head `h` reads KV head
/// `h / (heads / kv_heads)`. Token `t` attends positions `0..=pos+t`; everything above
/// that is masked (score -inf, probability exactly 0). Returns `tokens × (heads·head_dim)`.
pub fn attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttnShape,
    record: Option<AttnRecord<'_>>,
) -> Vec<f32> {
    let width = s.kv_heads * s.head_dim;
    assert!(
        k.len() >= s.total() * width && v.len() >= s.total() * width,
        "attention K/V shape"
    );
    let k = KvRows::Contiguous { data: k, width };
    let v = KvRows::Contiguous { data: v, width };
    attention_rows(q, k, v, s, record)
}

/// [`attention`] with the cached rows wherever `k` and `v` say (a paged pool read in
/// place through its block table): the same operations in the same order.
pub fn attention_rows(
    q: &[f32],
    k: KvRows<'_>,
    v: KvRows<'_>,
    s: AttnShape,
    record: Option<AttnRecord<'_>>,
) -> Vec<f32> {
    let hd = s.head_dim;
    let total = s.total();
    let mut out = vec![0f32; s.tokens * s.heads * hd];
    let args = RowArgs { q, k, v, s };
    let row = |idx: usize, o: &mut [f32], sc: &mut [f32], raw: Option<&mut [f32]>| {
        // SAFETY: the AVX2 build of the row is only chosen after runtime detection.
        #[cfg(target_arch = "x86_64")]
        if avx2_detected() {
            return unsafe { attend_row_avx2(&args, idx, o, sc, raw) };
        }
        attend_row(&args, idx, o, sc, raw)
    };
    let rows = s.tokens * s.heads;
    match record {
        None => {
            let work = |(idx, o): (usize, &mut [f32]), sc: &mut Vec<f32>| row(idx, o, sc, None);
            if rayon::current_num_threads() > 1 && rows > 1 {
                out.par_chunks_mut(hd)
                    .enumerate()
                    .for_each_init(|| vec![0f32; total], |sc, x| work(x, sc));
            } else {
                let mut sc = vec![0f32; total];
                out.chunks_mut(hd)
                    .enumerate()
                    .for_each(|x| work(x, &mut sc));
            }
        }
        Some(AttnRecord { scores, probs }) => {
            assert_eq!(scores.len(), rows * total, "attention record shape");
            assert_eq!(probs.len(), rows * total, "attention record shape");
            out.par_chunks_mut(hd)
                .zip(probs.par_chunks_mut(total))
                .zip(scores.par_chunks_mut(total))
                .enumerate()
                .for_each(|(idx, ((o, p), raw))| {
                    row(idx, o, p, Some(raw));
                    let n = s.pos + idx / s.heads + 1;
                    p[n..].fill(0.0);
                });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = (i as u32)
                    .wrapping_mul(2654435761)
                    .wrapping_add(seed.wrapping_mul(40503));
                ((x >> 8) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn attention_through_a_block_table_equals_the_contiguous_rows() {
        let s = AttnShape {
            tokens: 3,
            pos: 44,
            heads: 6,
            kv_heads: 2,
            head_dim: 64,
        };
        let (w, bs, total) = (128, 4, s.total());
        let blocks = total.div_ceil(bs);
        let q = pseudo(s.tokens * 6 * 64, 11);
        let (k, v) = (pseudo(total * w, 12), pseudo(total * w, 13));
        // Logical block b lives in physical block table[b]: scattered, out of order.
        let table: Vec<u32> = (0..blocks as u32)
            .map(|b| (b * 7 + 3) % blocks as u32)
            .collect();
        let scatter = |src: &[f32]| {
            let mut out = vec![f32::NAN; blocks * bs * w];
            for j in 0..total {
                let o = (table[j / bs] as usize * bs + j % bs) * w;
                out[o..o + w].copy_from_slice(&src[j * w..(j + 1) * w]);
            }
            out
        };
        let (kp, vp) = (scatter(&k), scatter(&v));
        let paged = |data| KvRows::Paged {
            data,
            table: &table,
            block_size: bs,
            width: w,
        };
        let got = attention_rows(&q, paged(&kp), paged(&vp), s, None);
        let want = attention(&q, &k, &v, s, None);
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn attention_rows_do_not_depend_on_the_call_size() {
        let shape = |tokens, pos| AttnShape {
            tokens,
            pos,
            heads: 6,
            kv_heads: 2,
            head_dim: 16,
        };
        let total = 11;
        let q = pseudo(total * 6 * 16, 1);
        let k = pseudo(total * 2 * 16, 2);
        let v = pseudo(total * 2 * 16, 3);
        let full = attention(&q, &k, &v, shape(total, 0), None);
        for t in 0..total {
            let qt = &q[t * 96..(t + 1) * 96];
            let one = attention(
                qt,
                &k[..(t + 1) * 32],
                &v[..(t + 1) * 32],
                shape(1, t),
                None,
            );
            assert_eq!(&full[t * 96..(t + 1) * 96], &one[..], "token {t}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_rows_equal_baseline_rows_bit_for_bit() {
        if !avx2_detected() {
            return; // the baseline row is the only one this CPU runs
        }
        let s = AttnShape {
            tokens: 40,
            pos: 7,
            heads: 9,
            kv_heads: 3,
            head_dim: 64,
        };
        let total = s.total();
        let (q, k, v) = (
            pseudo(s.tokens * 9 * 64, 7),
            pseudo(total * 3 * 64, 8),
            pseudo(total * 3 * 64, 9),
        );
        let args = RowArgs {
            q: &q,
            k: KvRows::Contiguous {
                data: &k,
                width: 192,
            },
            v: KvRows::Contiguous {
                data: &v,
                width: 192,
            },
            s,
        };
        for idx in 0..s.tokens * s.heads {
            let (mut o1, mut o2) = (vec![0f32; 64], vec![1f32; 64]);
            let (mut p1, mut p2) = (vec![0f32; total], vec![0f32; total]);
            attend_row(&args, idx, &mut o1, &mut p1, None);
            // SAFETY: AVX2 was detected above.
            unsafe { attend_row_avx2(&args, idx, &mut o2, &mut p2, None) };
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&o1), bits(&o2), "row {idx}");
            assert_eq!(bits(&p1), bits(&p2), "row {idx}");
        }
    }

    #[test]
    fn recorded_probabilities_are_causal_rows_summing_to_one() {
        let s = AttnShape {
            tokens: 4,
            pos: 3,
            heads: 4,
            kv_heads: 1,
            head_dim: 8,
        };
        let q = pseudo(4 * 32, 4);
        let k = pseudo(7 * 8, 5);
        let v = pseudo(7 * 8, 6);
        let (mut scores, mut probs) = (vec![0f32; 16 * 7], vec![0f32; 16 * 7]);
        let rec = AttnRecord {
            scores: &mut scores,
            probs: &mut probs,
        };
        let with = attention(&q, &k, &v, s, Some(rec));
        assert_eq!(with, attention(&q, &k, &v, s, None));
        for (idx, p) in probs.chunks(7).enumerate() {
            let t = idx / 4;
            let sum: f32 = p.iter().sum();
            assert!((sum - 1.0).abs() < 1e-6);
            for j in 0..7 {
                let masked = j > s.pos + t;
                assert_eq!(p[j] == 0.0, masked, "({t},{j})");
                assert_eq!(scores[idx * 7 + j] == f32::NEG_INFINITY, masked);
            }
        }
        // Head 0, token 0, by hand: softmax of q·k/√d over positions 0..=3.
        let sc: Vec<f32> = (0..4)
            .map(|j| dot(&q[..8], &k[j * 8..j * 8 + 8]) / 8f32.sqrt())
            .collect();
        let m = sc.iter().copied().fold(f32::MIN, f32::max);
        let z: f32 = sc.iter().map(|x| (x - m).exp()).sum();
        for j in 0..4 {
            assert!((probs[j] - (sc[j] - m).exp() / z).abs() < 1e-6);
        }
    }

    #[test]
    fn rms_norm_and_rope_match_their_formulas() {
        let x = [3.0f32, 4.0];
        let y = rms_norm(&x, &[1.0, 2.0], 0.0);
        let r = (12.5f32).sqrt();
        assert!((y[0] - 3.0 / r).abs() < 1e-6 && (y[1] - 8.0 / r).abs() < 1e-6);
        // A quarter turn maps (1, 0) to (0, 1).
        let mut v = [1.0f32, 0.0];
        let (c, s) = ([1.0, 0.0], [0.0, 1.0]);
        rope(&mut v, 2, 1, &c, &s, 2);
        assert_eq!(v, [0.0, 1.0]);
    }
}
