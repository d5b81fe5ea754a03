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

/// The CPU's model name from `/proc/cpuinfo` (or "unknown <arch> CPU").
pub fn cpu_name() -> String {
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

/// The SIMD features this CPU reports.
pub fn simd() -> Vec<&'static str> {
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

/// One cache level as the OS describes it (Linux sysfs).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cache {
    pub level: u32,
    /// "Data", "Instruction" or "Unified".
    pub kind: String,
    pub bytes: u64,
    pub line_bytes: Option<u64>,
}

/// This CPU's caches from `/sys/devices/system/cpu/cpu0/cache` (empty where the OS
/// does not say: the labs then show "unknown").
pub fn caches() -> Vec<Cache> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    let mut out = Vec::new();
    for i in 0..8 {
        let d = dir.join(format!("index{i}"));
        let read = |f: &str| {
            std::fs::read_to_string(d.join(f))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            continue;
        };
        let bytes = parse_size(&size);
        if let (Ok(level), Some(bytes)) = (level.parse(), bytes) {
            out.push(Cache {
                level,
                kind,
                bytes,
                line_bytes: read("coherency_line_size").and_then(|s| s.parse().ok()),
            });
        }
    }
    out
}

/// "48K", "2048K", "32M" → bytes.
fn parse_size(s: &str) -> Option<u64> {
    let (num, mul) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], 1024 * 1024),
        'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mul)
}

/// The cache-line size the OS reports, if it does.
pub fn line_bytes() -> Option<u64> {
    caches().iter().find_map(|c| c.line_bytes)
}

/// Nanoseconds per dependent load when chasing pointers through a random cycle over
/// a working set of `bytes`: each load's address comes from the previous load, so
/// the time is the latency of whichever level holds the set. Best of `runs`.
pub fn chase_ns(bytes: usize, runs: usize) -> f64 {
    const STEP: usize = 64; // one pointer per line, so every hop is a new line
    let n = (bytes / STEP).max(2);
    let slots = STEP / std::mem::size_of::<usize>();
    // A single random cycle (Sattolo's shuffle) defeats the prefetcher.
    let mut order: Vec<usize> = (0..n).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % i as u64) as usize;
        order.swap(i, j);
    }
    let mut next = vec![0usize; n * slots];
    for w in 0..n {
        next[order[w] * slots] = order[(w + 1) % n] * slots;
    }
    let hops = (4 * n).clamp(200_000, 4_000_000);
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let mut p = 0usize;
        let t = Instant::now();
        for _ in 0..hops {
            p = next[p];
        }
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(p);
        best = best.min(s * 1e9 / hops as f64);
    }
    best
}

/// The latency ladder: [`chase_ns`] over working sets from 16 KiB to 256 MiB
/// (doubling by 4×), each (bytes, ns per load).
pub fn latency_ladder(progress: &dyn Fn(usize, usize)) -> Vec<(usize, f64)> {
    let sizes: Vec<usize> = (0..8).map(|i| (16 << 10) << (2 * i)).collect();
    sizes
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            progress(i, sizes.len());
            (b, chase_ns(b, 3))
        })
        .collect()
}

/// Reads one f32 every `stride` elements of a 64 Mi-float (256 MiB) array on one
/// thread: useful bytes per second (only the floats read count). Best of `runs`.
pub fn strided_read(stride: usize, runs: usize) -> f64 {
    const N: usize = 64 << 20;
    static DATA: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    let data = DATA.get_or_init(|| vec![1.0f32; N]);
    let stride = stride.max(1);
    // The same number of useful loads at every stride, so the sweep is bounded.
    let count = (N / stride).min(N / 16);
    let mut best = 0.0f64;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let mut acc = [0.0f32; 4];
        let mut i = 0;
        for k in 0..count {
            acc[k & 3] += data[i];
            i += stride;
        }
        let s = t.elapsed().as_secs_f64();
        std::hint::black_box(acc);
        best = best.max(count as f64 * 4.0 / s);
    }
    best
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

    #[test]
    fn the_latency_ladder_rises_from_cache_to_dram() {
        // hardware.md section 5: properties only, L1 latency < DRAM latency.
        let l1 = chase_ns(16 << 10, 3);
        let dram = chase_ns(256 << 20, 2);
        assert!(l1 > 0.0 && dram > 2.0 * l1, "{l1} ns vs {dram} ns");
        // Unit strides read more useful bytes per second than line-sized ones.
        assert!(strided_read(1, 2) > strided_read(16, 2));
        assert_eq!(parse_size("48K"), Some(48 * 1024));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        for c in caches() {
            assert!(c.bytes > 0 && c.level >= 1);
        }
    }
}
