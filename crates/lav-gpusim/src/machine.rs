//! This machine, measured: cores, CPU name, SIMD features, and short bounded
//! micro-benchmarks of memory bandwidth (a streaming triad far larger than the last
//! cache) and f32 compute (candle's matmul, the kernels the f32 path uses). Nothing
//! here is hard-coded; labs show these figures labelled "measured on this machine".

use candle_core::{Device, Tensor};
use serde::Serialize;
use std::time::Instant;

/// Several timed runs of one measurement: the best is the figure, the spread is shown.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    pub best: f64,
    pub median: f64,
    pub worst: f64,
    pub runs: usize,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Spread {
        v.sort_by(f64::total_cmp);
        Spread {
            best: v[v.len() - 1],
            median: v[v.len() / 2],
            worst: v[0],
            runs: v.len(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub simd: Vec<&'static str>,
    /// Streaming triad `a = b + s·c`, bytes moved per second (read b, c; write a).
    pub bandwidth_bytes_s: Spread,
    /// Streaming read (a sum over one large array), bytes per second: what a decode
    /// does to its weights.
    pub read_bytes_s: Spread,
    /// f32 matmul FLOP/s on all threads of the compute pool.
    pub peak_flops: Spread,
    /// The same on one thread.
    pub peak_flops_one_thread: Spread,
}

impl Machine {
    /// Ridge point: FLOPs per byte (read) above which this CPU is compute-bound.
    pub fn ridge(&self) -> f64 {
        self.peak_flops.best / self.read_bytes_s.best
    }

    /// Measures this machine (about a second). Call once per process and keep it.
    pub fn measure() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu: cpu_name(),
            simd: simd(),
            bandwidth_bytes_s: Spread::of((0..5).map(|_| triad()).collect()),
            read_bytes_s: Spread::of((0..5).map(|_| read()).collect()),
            peak_flops: Spread::of((0..5).map(|_| matmul_flops(true)).collect()),
            peak_flops_one_thread: Spread::of((0..3).map(|_| matmul_flops(false)).collect()),
        }
    }
}

/// This machine, measured on first use and kept for the process.
pub fn get() -> &'static Machine {
    static M: std::sync::OnceLock<Machine> = std::sync::OnceLock::new();
    M.get_or_init(Machine::measure)
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| format!("unknown {} CPU", std::env::consts::ARCH))
}

fn simd() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        for (name, on) in [
            ("AVX2", std::is_x86_feature_detected!("avx2")),
            ("FMA", std::is_x86_feature_detected!("fma")),
            ("AVX-512F", std::is_x86_feature_detected!("avx512f")),
        ] {
            if on {
                v.push(name);
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    v.push("NEON");
    v
}

/// 3 arrays of 16 Mi f32 (192 MiB in all), well past any last-level cache; the work
/// is split over the compute pool so every core streams.
fn triad() -> f64 {
    use rayon::prelude::*;
    const N: usize = 16 << 20;
    let b = vec![1.0f32; N];
    let c = vec![2.0f32; N];
    // Written, not zeroed: a calloc'd array would time page faults, not bandwidth.
    let mut a = vec![0.5f32; N];
    let t = Instant::now();
    a.par_chunks_mut(1 << 16)
        .zip(b.par_chunks(1 << 16).zip(c.par_chunks(1 << 16)))
        .for_each(|(a, (b, c))| {
            for ((x, y), z) in a.iter_mut().zip(b).zip(c) {
                *x = y + 3.0 * z;
            }
        });
    let s = t.elapsed().as_secs_f64();
    std::hint::black_box(&a);
    (3 * N * 4) as f64 / s
}

/// Sums 64 Mi f32 (256 MiB) split over the compute pool.
fn read() -> f64 {
    use rayon::prelude::*;
    const N: usize = 64 << 20;
    let b = vec![1.0f32; N];
    let t = Instant::now();
    let s: f32 = b
        .par_chunks(1 << 16)
        .map(|c| {
            // Sixteen independent sums, so the adds vectorise and the loop is limited
            // by memory, not by one long chain of dependent additions.
            let mut acc = [0.0f32; 16];
            for x in c.chunks_exact(16) {
                for (a, v) in acc.iter_mut().zip(x) {
                    *a += v;
                }
            }
            acc.iter().sum::<f32>()
        })
        .sum();
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(s);
    (N * 4) as f64 / secs
}

/// A 512 × 1024 × 1024 f32 matmul through candle (1.07 GFLOP).
fn matmul_flops(all_threads: bool) -> f64 {
    let run = || {
        let d = Device::Cpu;
        let a = Tensor::ones((512, 1024), candle_core::DType::F32, &d).expect("alloc");
        let b = Tensor::ones((1024, 1024), candle_core::DType::F32, &d).expect("alloc");
        let _ = a.matmul(&b); // warm the pool and the allocator
        let t = Instant::now();
        let c = a.matmul(&b).expect("matmul");
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(c);
        2.0 * 512.0 * 1024.0 * 1024.0 / s
    };
    if all_threads {
        run()
    } else {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map_or_else(|_| run(), |p| p.install(run))
    }
}

/// This machine's memory as the kernel reports it (`/proc/meminfo`): (total,
/// available) in bytes. `None` where there is no such file (not Linux).
pub fn ram_bytes() -> Option<(f64, f64)> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = info.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024.0)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_are_positive_and_the_ridge_is_their_ratio() {
        let m = Machine::measure();
        assert!(m.cores >= 1 && !m.cpu.is_empty());
        for s in [
            &m.bandwidth_bytes_s,
            &m.read_bytes_s,
            &m.peak_flops,
            &m.peak_flops_one_thread,
        ] {
            assert!(
                s.best > 0.0 && s.worst <= s.median && s.median <= s.best,
                "{s:?}"
            );
        }
        assert!((m.ridge() - m.peak_flops.best / m.read_bytes_s.best).abs() < 1e-9);
    }
}
