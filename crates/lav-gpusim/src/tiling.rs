//! Naive and shared-memory-tiled matrix multiply, written the way a GPU kernel is
//! (one output per thread; a tiled kernel's block loads a T × T tile of A and of B
//! into shared memory per phase, then every thread reads from the tile), and run on
//! this CPU. Every global-memory read goes through a [`Loads`] sink: [`Count`]
//! records each read (the simulation: exact counts, per element), [`NoCount`] compiles
//! to nothing (the timed run). The counts are the simulation's own; the formulas
//! 2N³ and 2N³/T are what tests check them against.

/// Where a kernel reports its global-memory reads.
pub trait Loads {
    /// A read of A[i] (`b = false`) or B[i] (`b = true`), row-major index.
    fn load(&mut self, b: bool, i: usize);
}

/// Counts every read, total and per element.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Count {
    pub reads: u64,
    /// How many times each element of A was read.
    pub per_a: Vec<u32>,
    pub per_b: Vec<u32>,
}

impl Count {
    pub fn new(n: usize) -> Count {
        Count {
            reads: 0,
            per_a: vec![0; n * n],
            per_b: vec![0; n * n],
        }
    }
}

impl Loads for Count {
    #[inline]
    fn load(&mut self, b: bool, i: usize) {
        self.reads += 1;
        if b {
            self.per_b[i] += 1;
        } else {
            self.per_a[i] += 1;
        }
    }
}

/// Counts nothing: the timed build of the same kernel.
pub struct NoCount;

impl Loads for NoCount {
    #[inline(always)]
    fn load(&mut self, _: bool, _: usize) {}
}

/// C = A · B for n × n row-major matrices, one thread per C cell: thread (i, j) reads
/// row i of A and column j of B from global memory, 2n reads each.
pub fn naive<L: Loads>(a: &[f32], b: &[f32], n: usize, loads: &mut L) -> Vec<f32> {
    let mut c = vec![0.0f32; n * n];
    for i in 0..n {
        for j in 0..n {
            let mut acc = 0.0f32;
            for k in 0..n {
                loads.load(false, i * n + k);
                loads.load(true, k * n + j);
                acc += a[i * n + k] * b[k * n + j];
            }
            c[i * n + j] = acc;
        }
    }
    c
}

/// C = A · B with T × T tiles: each block (a T × T patch of C) walks n / T phases; in
/// each, its T² threads load one element of A's tile and one of B's into shared
/// memory (2T² global reads), synchronise, then each thread does T multiply-adds
/// from shared memory. `n` must be a multiple of `t`.
pub fn tiled<L: Loads>(a: &[f32], b: &[f32], n: usize, t: usize, loads: &mut L) -> Vec<f32> {
    assert!(
        t > 0 && n.is_multiple_of(t),
        "n = {n} is not a multiple of the tile {t}"
    );
    let mut c = vec![0.0f32; n * n];
    let mut sa = vec![0.0f32; t * t];
    let mut sb = vec![0.0f32; t * t];
    let mut acc = vec![0.0f32; t * t];
    for bi in (0..n).step_by(t) {
        for bj in (0..n).step_by(t) {
            acc.iter_mut().for_each(|x| *x = 0.0);
            for p in (0..n).step_by(t) {
                // Load phase: thread (ty, tx) fetches A[bi+ty][p+tx] and B[p+ty][bj+tx].
                for ty in 0..t {
                    for tx in 0..t {
                        let ia = (bi + ty) * n + p + tx;
                        let ib = (p + ty) * n + bj + tx;
                        loads.load(false, ia);
                        loads.load(true, ib);
                        sa[ty * t + tx] = a[ia];
                        sb[ty * t + tx] = b[ib];
                    }
                }
                // __syncthreads(), then the compute phase reads only shared memory.
                for ty in 0..t {
                    for k in 0..t {
                        let x = sa[ty * t + k];
                        for tx in 0..t {
                            acc[ty * t + tx] += x * sb[k * t + tx];
                        }
                    }
                }
            }
            for ty in 0..t {
                c[(bi + ty) * n + bj..(bi + ty) * n + bj + t]
                    .copy_from_slice(&acc[ty * t..ty * t + t]);
            }
        }
    }
    c
}

/// What a tiled kernel's block needs per phase: threads, floats loaded into shared
/// memory, and its FP32 arithmetic intensity (each thread does 2T FLOPs per phase for
/// the 8 bytes it loaded: T / 4).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TileFacts {
    pub threads: usize,
    pub floats_per_phase: usize,
    pub shared_bytes: usize,
    pub intensity: f64,
}

pub fn tile_facts(t: usize) -> TileFacts {
    TileFacts {
        threads: t * t,
        floats_per_phase: 2 * t * t,
        shared_bytes: 2 * t * t * 4,
        intensity: (2 * t) as f64 / 8.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mats(n: usize) -> (Vec<f32>, Vec<f32>) {
        let a = (0..n * n)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
            .collect();
        let b = (0..n * n)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
            .collect();
        (a, b)
    }

    #[test]
    fn counted_reads_equal_the_formulas() {
        // Curriculum: naive reads 2N³; tiled reads 2N³/T.
        for n in [16usize, 32, 64] {
            let (a, b) = mats(n);
            let mut cn = Count::new(n);
            let c0 = naive(&a, &b, n, &mut cn);
            assert_eq!(cn.reads, 2 * (n as u64).pow(3));
            // Every element of A and of B is read n times.
            assert!(cn.per_a.iter().chain(&cn.per_b).all(|&x| x as usize == n));
            for t in [1usize, 2, 4, 8, 16] {
                let mut ct = Count::new(n);
                let c1 = tiled(&a, &b, n, t, &mut ct);
                assert_eq!(ct.reads, 2 * (n as u64).pow(3) / t as u64, "n {n} t {t}");
                assert!(ct.per_a.iter().all(|&x| x as usize == n / t));
                // Same products, summed in another order: equal to rounding.
                for (x, y) in c0.iter().zip(&c1) {
                    assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{x} {y}");
                }
            }
        }
    }

    #[test]
    fn uncounted_kernels_compute_the_same_product() {
        let n = 32;
        let (a, b) = mats(n);
        let c = tiled(&a, &b, n, 8, &mut NoCount);
        let mut r = vec![0.0f64; n * n];
        for i in 0..n {
            for j in 0..n {
                r[i * n + j] = (0..n)
                    .map(|k| a[i * n + k] as f64 * b[k * n + j] as f64)
                    .sum();
            }
        }
        for (x, y) in c.iter().zip(&r) {
            assert!((*x as f64 - y).abs() < 1e-3);
        }
        assert_eq!(naive(&a, &b, n, &mut NoCount).len(), n * n);
    }

    #[test]
    fn a_16_tile_is_256_threads_loading_512_floats() {
        let f = tile_facts(16);
        assert_eq!((f.threads, f.floats_per_phase), (256, 512));
        assert_eq!(f.intensity, 4.0); // T / 4
    }
}
