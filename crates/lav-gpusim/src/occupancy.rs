//! Occupancy: how many blocks of a kernel an SM holds at once, and what share of its
//! warp slots they fill, computed the way CUDA's occupancy calculator does from the
//! per-SM limits in the hardware table:
//!
//! - warps per block = ⌈threads / 32⌉;
//! - registers are given per warp, rounded up to the allocation unit (256), so the
//!   register file holds ⌊registers per SM / registers per warp⌋ warps, i.e. that many
//!   ÷ warps per block blocks;
//! - shared memory per block is the kernel's request plus the system's reserved 1 KiB,
//!   rounded up to the allocation unit (128 B);
//! - threads: at most max threads per SM ÷ 32 warps and max blocks per SM.
//!
//! Active blocks are the least of the three limits; occupancy = active warps ÷ the
//! SM's warp slots.

use crate::hardware::{Common, Gpu};

/// A kernel's launch shape and per-thread / per-block resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub threads_per_block: u32,
    pub registers_per_thread: u32,
    /// Dynamic plus static shared memory the kernel asks for per block, bytes.
    pub shared_bytes_per_block: u32,
}

/// Which resource stops the SM from holding another block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limiter {
    /// The warp slots (max threads per SM) or the block slots.
    Threads,
    Blocks,
    Registers,
    SharedMemory,
}

impl Limiter {
    pub fn name(self) -> &'static str {
        match self {
            Limiter::Threads => "threads per SM",
            Limiter::Blocks => "blocks per SM",
            Limiter::Registers => "registers",
            Limiter::SharedMemory => "shared memory",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Occupancy {
    pub warps_per_block: u32,
    pub registers_per_warp: u32,
    pub registers_per_block: u32,
    pub shared_per_block: u32,
    /// Blocks each limit alone would allow.
    pub by_threads: u32,
    pub by_blocks: u32,
    pub by_registers: u32,
    pub by_shared: u32,
    pub active_blocks: u32,
    pub active_warps: u32,
    pub max_warps: u32,
    pub limiter: Limiter,
}

impl Occupancy {
    pub fn fraction(&self) -> f64 {
        self.active_warps as f64 / self.max_warps as f64
    }
    pub fn active_threads(&self, common: &Common) -> u32 {
        self.active_warps * common.warp_size
    }
}

/// Why a launch cannot run at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LaunchError {
    #[error("a block holds 1 to {max} threads, not {got}")]
    Threads { got: u32, max: u32 },
    #[error("a thread may use at most {max} registers, not {got}")]
    Registers { got: u32, max: u32 },
    #[error("a block may use at most {max} KiB of shared memory on this GPU, not {got} B")]
    Shared { got: u32, max: u32 },
    #[error(
        "one block needs more {0} than an SM has: the launch fails (use fewer threads or registers)"
    )]
    DoesNotFit(&'static str),
}

fn round_up(x: u32, unit: u32) -> u32 {
    x.div_ceil(unit) * unit
}

/// Occupancy of `launch` on one SM of `gpu`.
pub fn occupancy(gpu: &Gpu, common: &Common, launch: Launch) -> Result<Occupancy, LaunchError> {
    let Launch {
        threads_per_block: t,
        registers_per_thread: r,
        shared_bytes_per_block: s,
    } = launch;
    if t == 0 || t > common.max_threads_per_block {
        return Err(LaunchError::Threads {
            got: t,
            max: common.max_threads_per_block,
        });
    }
    if r > common.max_registers_per_thread {
        return Err(LaunchError::Registers {
            got: r,
            max: common.max_registers_per_thread,
        });
    }
    if s > gpu.shared_kb_per_block * 1024 {
        return Err(LaunchError::Shared {
            got: s,
            max: gpu.shared_kb_per_block,
        });
    }
    let warp = common.warp_size;
    let warps_per_block = t.div_ceil(warp);
    let max_warps = gpu.max_threads_per_sm / warp;
    let by_threads = max_warps / warps_per_block;
    let by_blocks = gpu.max_blocks_per_sm;
    let registers_per_warp = round_up(r.max(1) * warp, common.register_alloc_unit);
    let by_registers = (gpu.registers_per_sm / registers_per_warp) / warps_per_block;
    let shared_per_block = round_up(
        s + common.reserved_shared_kb_per_block * 1024,
        common.shared_alloc_unit_bytes,
    );
    let by_shared = gpu.shared_kb_per_sm * 1024 / shared_per_block;
    // The first limit reached, in the calculator's order of report.
    let (active_blocks, limiter) = [
        (by_threads, Limiter::Threads),
        (by_blocks, Limiter::Blocks),
        (by_registers, Limiter::Registers),
        (by_shared, Limiter::SharedMemory),
    ]
    .into_iter()
    .min_by_key(|(n, _)| *n)
    .expect("four limits");
    if active_blocks == 0 {
        return Err(LaunchError::DoesNotFit(limiter.name()));
    }
    Ok(Occupancy {
        warps_per_block,
        registers_per_warp,
        registers_per_block: registers_per_warp * warps_per_block,
        shared_per_block,
        by_threads,
        by_blocks,
        by_registers,
        by_shared,
        active_blocks,
        active_warps: active_blocks * warps_per_block,
        max_warps,
        limiter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::Table;

    fn table() -> Table {
        Table::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs")).unwrap()
    }

    fn occ(t: &Table, gpu: &str, threads: u32, regs: u32, shared: u32) -> Occupancy {
        occupancy(
            t.gpu(gpu).unwrap(),
            &t.common,
            Launch {
                threads_per_block: threads,
                registers_per_thread: regs,
                shared_bytes_per_block: shared,
            },
        )
        .unwrap()
    }

    #[test]
    fn the_worked_example_is_half_occupancy_on_h100() {
        // Curriculum: 256-thread blocks at 64 registers need 16,384 registers per
        // block; 4 blocks fit, 1,024 threads = 50%.
        let t = table();
        let o = occ(&t, "h100", 256, 64, 0);
        assert_eq!(o.registers_per_block, 16_384);
        assert_eq!(o.active_blocks, 4);
        assert_eq!(o.active_threads(&t.common), 1024);
        assert_eq!(o.fraction(), 0.5);
        assert_eq!(o.limiter, Limiter::Registers);
        assert_eq!(o.max_warps, 64);
    }

    #[test]
    fn other_limits_bind_where_the_calculator_says() {
        let t = table();
        // 32 registers: the register file holds 64 warps, so threads bind: 100%.
        let o = occ(&t, "h100", 256, 32, 0);
        assert_eq!((o.active_blocks, o.fraction()), (8, 1.0));
        // Tiny blocks run out of block slots: 32 blocks × 1 warp = 50%.
        let o = occ(&t, "h100", 32, 16, 0);
        assert_eq!((o.active_blocks, o.limiter), (32, Limiter::Blocks));
        assert_eq!(o.fraction(), 0.5);
        // 48 KiB of shared memory per block (+1 KiB reserved): 228 / 49 = 4 blocks.
        let o = occ(&t, "h100", 128, 32, 48 * 1024);
        assert_eq!((o.by_shared, o.limiter), (4, Limiter::SharedMemory));
        assert_eq!(o.fraction(), 4.0 * 4.0 / 64.0);
        // A100 has 164 KiB: 3 such blocks.
        assert_eq!(occ(&t, "a100", 128, 32, 48 * 1024).by_shared, 3);
        // Registers round up per warp: 33 registers × 32 = 1,056 → 1,280.
        let o = occ(&t, "h100", 256, 33, 0);
        assert_eq!(o.registers_per_warp, 1280);
        assert_eq!(o.by_registers, 65_536 / 1280 / 8);
        // A block of 1,000 threads is 32 warps (the last one partly empty).
        assert_eq!(occ(&t, "h100", 1000, 32, 0).warps_per_block, 32);
    }

    #[test]
    fn impossible_launches_are_refused_with_a_reason() {
        let t = table();
        let h = t.gpu("h100").unwrap();
        let bad = |threads, regs, shared| {
            occupancy(
                h,
                &t.common,
                Launch {
                    threads_per_block: threads,
                    registers_per_thread: regs,
                    shared_bytes_per_block: shared,
                },
            )
            .unwrap_err()
            .to_string()
        };
        assert!(bad(2048, 32, 0).contains("1024"));
        assert!(bad(0, 32, 0).contains("threads"));
        assert!(bad(256, 256, 0).contains("255"));
        assert!(bad(256, 32, 300 * 1024).contains("227 KiB"));
        // 1,024 threads at 255 registers: 32 warps × 8,192 registers > 65,536.
        assert!(bad(1024, 255, 0).contains("more registers than an SM has"));
    }
}
