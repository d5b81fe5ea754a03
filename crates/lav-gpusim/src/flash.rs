//! Attention two ways over the same Q, K, V (N × d, row-major): standard attention,
//! which writes the N × N score and probability matrices to HBM and reads them back,
//! and FlashAttention, which streams K/V tiles through on-chip memory and keeps a
//! running max m and sum ℓ per query row (online softmax):
//!
//! m' = max(m, rowmax S), ℓ' = e^(m−m')·ℓ + Σ e^(S−m'), O' = e^(m−m')·O + e^(S−m')·V,
//! and finally O / ℓ.
//!
//! Both count every element they read from or write to HBM. The outputs agree to
//! float rounding; the traffic falls from Θ(Nd + N²) to Θ(N²d²/M).

/// Elements read from and written to HBM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub reads: u64,
    pub writes: u64,
}

impl Traffic {
    pub fn total(&self) -> u64 {
        self.reads + self.writes
    }
}

/// The problem: `n` query and key positions of width `d`, scaled by 1/√d, causal when
/// asked (query i sees keys 0..=i).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub n: usize,
    pub d: usize,
    pub causal: bool,
}

fn visible(s: Shape, i: usize, j: usize) -> bool {
    !s.causal || j <= i
}

/// Standard attention: S = QKᵀ/√d to HBM, P = softmax(S) to HBM, O = PV.
pub fn standard(q: &[f32], k: &[f32], v: &[f32], s: Shape) -> (Vec<f32>, Traffic) {
    let Shape { n, d, .. } = s;
    let scale = 1.0 / (d as f32).sqrt();
    let mut t = Traffic::default();
    // Kernel 1: read Q and K, write S.
    t.reads += 2 * (n * d) as u64;
    let mut sm = vec![f32::NEG_INFINITY; n * n];
    for i in 0..n {
        for j in 0..n {
            if visible(s, i, j) {
                sm[i * n + j] = dotf(&q[i * d..][..d], &k[j * d..][..d]) * scale;
            }
        }
    }
    t.writes += (n * n) as u64;
    // Kernel 2: read S, write P.
    t.reads += (n * n) as u64;
    let mut p = vec![0.0f32; n * n];
    for i in 0..n {
        let row = &sm[i * n..][..n];
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|x| (x - m).exp()).sum();
        for j in 0..n {
            p[i * n + j] = (row[j] - m).exp() / sum;
        }
    }
    t.writes += (n * n) as u64;
    // Kernel 3: read P and V, write O.
    t.reads += (n * n + n * d) as u64;
    let mut o = vec![0.0f32; n * d];
    for i in 0..n {
        for j in 0..n {
            let w = p[i * n + j];
            if w != 0.0 {
                for c in 0..d {
                    o[i * d + c] += w * v[j * d + c];
                }
            }
        }
    }
    t.writes += (n * d) as u64;
    (o, t)
}

fn dotf(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One (query tile, key tile) step of FlashAttention, as the lab shows it: the running
/// max and sum of each query row of the tile after folding in this key tile.
#[derive(Clone, Debug, PartialEq)]
pub struct TileStep {
    pub q_tile: usize,
    pub k_tile: usize,
    pub m: Vec<f32>,
    pub l: Vec<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FlashRun {
    pub out: Vec<f32>,
    pub traffic: Traffic,
    pub steps: Vec<TileStep>,
    /// Query rows and key columns per tile.
    pub br: usize,
    pub bc: usize,
}

/// Tile sizes for on-chip memory of `m` elements in this loop order (a query tile
/// and its output accumulator stay on chip while K/V tiles stream past): the Q, O, K
/// and V tiles of B rows × d each fill M, so Br = Bc = ⌊M / 4d⌋.
pub fn tiles_for_sram(m: usize, d: usize) -> (usize, usize) {
    let b = (m / (4 * d)).max(1);
    (b, b)
}

/// FlashAttention with `br` query rows and `bc` key columns per tile: for each query
/// tile, load it once, stream every (visible) K/V tile past it, write O once.
pub fn flash(q: &[f32], k: &[f32], v: &[f32], s: Shape, br: usize, bc: usize) -> FlashRun {
    let Shape { n, d, .. } = s;
    let scale = 1.0 / (d as f32).sqrt();
    let mut t = Traffic::default();
    let mut out = vec![0.0f32; n * d];
    let mut steps = Vec::new();
    for (qi, r0) in (0..n).step_by(br).enumerate() {
        let rows = br.min(n - r0);
        t.reads += (rows * d) as u64;
        let mut m = vec![f32::NEG_INFINITY; rows];
        let mut l = vec![0.0f32; rows];
        let mut o = vec![0.0f32; rows * d];
        for (kj, c0) in (0..n).step_by(bc).enumerate() {
            let cols = bc.min(n - c0);
            // A causal tile wholly above the diagonal is never loaded.
            if s.causal && c0 > r0 + rows - 1 {
                break;
            }
            t.reads += 2 * (cols * d) as u64;
            for r in 0..rows {
                let i = r0 + r;
                let sc: Vec<f32> = (0..cols)
                    .map(|c| {
                        let j = c0 + c;
                        if visible(s, i, j) {
                            dotf(&q[i * d..][..d], &k[j * d..][..d]) * scale
                        } else {
                            f32::NEG_INFINITY
                        }
                    })
                    .collect();
                let m_new = sc.iter().copied().fold(m[r], f32::max);
                if m_new == f32::NEG_INFINITY {
                    continue; // nothing visible yet in this row
                }
                let alpha = (m[r] - m_new).exp();
                let p: Vec<f32> = sc.iter().map(|x| (x - m_new).exp()).collect();
                l[r] = alpha * l[r] + p.iter().sum::<f32>();
                let orow = &mut o[r * d..][..d];
                for (ch, x) in orow.iter_mut().enumerate() {
                    let pv: f32 = p
                        .iter()
                        .enumerate()
                        .map(|(c, w)| w * v[(c0 + c) * d + ch])
                        .sum();
                    *x = alpha * *x + pv;
                }
                m[r] = m_new;
            }
            steps.push(TileStep {
                q_tile: qi,
                k_tile: kj,
                m: m.clone(),
                l: l.clone(),
            });
        }
        for r in 0..rows {
            for c in 0..d {
                out[(r0 + r) * d + c] = o[r * d + c] / l[r];
            }
        }
        t.writes += (rows * d) as u64;
    }
    FlashRun {
        out,
        traffic: t,
        steps,
        br,
        bc,
    }
}

/// Standard attention's traffic by formula: 4Nd + 4N² elements.
pub fn standard_traffic(n: u64, d: u64) -> u64 {
    4 * n * d + 4 * n * n
}

/// FlashAttention's by formula (no causal skipping): Q read and O written once
/// (2Nd), K and V read once per query tile (2Nd · ⌈N / Br⌉).
pub fn flash_traffic(n: u64, d: u64, br: u64) -> u64 {
    2 * n * d + 2 * n * d * n.div_ceil(br)
}

/// Largest absolute difference between two outputs.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qkv(n: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let f = |k: f32| {
            (0..n * d)
                .map(move |i| ((i as f32) * k).sin() * 2.0)
                .collect()
        };
        (f(0.37), f(0.73), f(1.13))
    }

    #[test]
    fn online_softmax_equals_softmax() {
        for (n, d, br, bc) in [(37, 16, 8, 8), (64, 64, 16, 32), (5, 8, 2, 3)] {
            for causal in [false, true] {
                let (q, k, v) = qkv(n, d);
                let s = Shape { n, d, causal };
                let (o, _) = standard(&q, &k, &v, s);
                let f = flash(&q, &k, &v, s, br, bc);
                assert!(max_abs_diff(&o, &f.out) <= 1e-5, "{n} {d} {causal}");
            }
        }
    }

    #[test]
    fn counted_traffic_equals_the_formulas() {
        let (n, d) = (64, 16);
        let (q, k, v) = qkv(n, d);
        let s = Shape {
            n,
            d,
            causal: false,
        };
        let (_, ts) = standard(&q, &k, &v, s);
        assert_eq!(ts.total(), standard_traffic(n as u64, d as u64));
        for br in [4, 16, 64] {
            let f = flash(&q, &k, &v, s, br, 8);
            assert_eq!(
                f.traffic.total(),
                flash_traffic(n as u64, d as u64, br as u64)
            );
        }
        // Causal: tiles above the diagonal are skipped, so less is read.
        let c = flash(&q, &k, &v, Shape { causal: true, ..s }, 16, 16);
        assert!(c.traffic.total() < flash_traffic(n as u64, d as u64, 16));
        // The running max never falls and the running sum of the last tile of a
        // query block is the softmax denominator.
        for w in c.steps.windows(2) {
            if w[0].q_tile == w[1].q_tile {
                assert!(w[0].m.iter().zip(&w[1].m).all(|(a, b)| b >= a));
            }
        }
    }

    #[test]
    fn sram_sized_tiles_cut_traffic_at_long_context() {
        // H100's 228 KiB of shared memory as FP16 elements, d = 64, N = 4096.
        let (br, bc) = tiles_for_sram(228 * 1024 / 2, 64);
        assert_eq!((br, bc), (456, 456));
        let (n, d) = (4096u64, 64u64);
        // K and V are re-read ⌈N / Br⌉ = 9 times: 20·Nd against 4Nd + 4N².
        assert_eq!(flash_traffic(n, d, br as u64), 20 * n * d);
        assert!(flash_traffic(n, d, br as u64) * 10 < standard_traffic(n, d));
        // Θ(N²d²/M): doubling M halves the re-reads.
        let (b2, _) = tiles_for_sram(2 * 228 * 1024 / 2, 64);
        assert!(flash_traffic(n, d, b2 as u64) <= flash_traffic(n, d, br as u64) * 6 / 10);
    }
}
