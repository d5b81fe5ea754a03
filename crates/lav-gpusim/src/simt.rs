//! A SIMT executor for small kernels: a grid of blocks, each of `block_dim` threads cut
//! into warps of 32 that run in lockstep, one instruction for the whole warp at a time
//! with an active mask. On a divergent branch the warp runs both paths one after the
//! other, the lanes of the other path masked off; loops run until every lane has left.
//! A barrier waits for every warp of the block. Blocks are placed on SMs in waves.
//!
//! Kernels are written in a tiny instruction form ([`Instr`]) over per-thread f32
//! registers, global buffers and one shared array per block. The executor keeps a
//! trace of every instruction each warp issued with its mask, which the labs draw.

use std::fmt;

pub const WARP: usize = 32;

/// An operand: a register, a constant, or one of the thread's built-in indices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    R(u8),
    K(f32),
    ThreadIdx,
    BlockIdx,
    BlockDim,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bin {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    /// 1 if a < b else 0.
    Lt,
    /// a mod b (for integers held in f32).
    Mod,
    /// ⌊a / b⌋.
    IDiv,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Instr {
    Set(u8, Val),
    Op(Bin, u8, Val, Val),
    Exp(u8, Val),
    /// dst = global[buf][idx]
    Load(u8, u8, Val),
    /// global[buf][idx] = src
    Store(u8, Val, Val),
    /// dst = shared[idx]
    LoadShared(u8, Val),
    /// shared[idx] = src
    StoreShared(Val, Val),
    /// Lanes whose value is non-zero take the branch.
    If(Val),
    Else,
    EndIf,
    Loop,
    /// Lanes whose value is zero leave the loop (and wait at its end).
    BreakUnless(Val),
    EndLoop,
    /// __syncthreads(): every warp of the block waits here.
    Barrier,
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::R(r) => write!(f, "r{r}"),
            Val::K(k) => write!(f, "{k}"),
            Val::ThreadIdx => f.write_str("threadIdx.x"),
            Val::BlockIdx => f.write_str("blockIdx.x"),
            Val::BlockDim => f.write_str("blockDim.x"),
        }
    }
}

impl Instr {
    /// One line of pseudocode; `bufs` names the global buffers.
    pub fn text(&self, bufs: &[&str]) -> String {
        let b = |i: &u8| bufs.get(*i as usize).copied().unwrap_or("?");
        match self {
            Instr::Set(d, v) => format!("r{d} = {v}"),
            Instr::Op(op, d, a, c) => {
                let sym = match op {
                    Bin::Add => return format!("r{d} = {a} + {c}"),
                    Bin::Sub => return format!("r{d} = {a} - {c}"),
                    Bin::Mul => return format!("r{d} = {a} * {c}"),
                    Bin::Div => return format!("r{d} = {a} / {c}"),
                    Bin::Mod => return format!("r{d} = {a} % {c}"),
                    Bin::IDiv => return format!("r{d} = {a} / {c}  (integer)"),
                    Bin::Max => "max",
                    Bin::Lt => return format!("r{d} = {a} < {c}"),
                };
                format!("r{d} = {sym}({a}, {c})")
            }
            Instr::Exp(d, a) => format!("r{d} = exp({a})"),
            Instr::Load(d, buf, i) => format!("r{d} = {}[{i}]", b(buf)),
            Instr::Store(buf, i, s) => format!("{}[{i}] = {s}", b(buf)),
            Instr::LoadShared(d, i) => format!("r{d} = shared[{i}]"),
            Instr::StoreShared(i, s) => format!("shared[{i}] = {s}"),
            Instr::If(c) => format!("if ({c}) {{"),
            Instr::Else => "} else {".into(),
            Instr::EndIf => "}".into(),
            Instr::Loop => "loop {".into(),
            Instr::BreakUnless(c) => format!("  if (!{c}) break"),
            Instr::EndLoop => "}".into(),
            Instr::Barrier => "__syncthreads()".into(),
        }
    }
}

/// A kernel: its instructions, the names of its global buffers, how many registers a
/// thread uses, and the shared array each block gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel {
    pub name: &'static str,
    pub code: Vec<Instr>,
    pub buffers: Vec<&'static str>,
    pub registers: usize,
    pub shared: usize,
}

impl Kernel {
    /// The kernel as indented pseudocode, one line per instruction.
    pub fn listing(&self) -> Vec<String> {
        let mut depth = 0usize;
        self.code
            .iter()
            .map(|i| {
                if matches!(i, Instr::Else | Instr::EndIf | Instr::EndLoop) {
                    depth = depth.saturating_sub(1);
                }
                let line = format!("{}{}", "  ".repeat(depth), i.text(&self.buffers));
                if matches!(i, Instr::If(_) | Instr::Else | Instr::Loop) {
                    depth += 1;
                }
                line
            })
            .collect()
    }
}

/// A launch: `grid` blocks of `block_dim` threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub grid: usize,
    pub block_dim: usize,
}

/// What one warp issued: the instruction index and the active mask (bit i = lane i)
/// of the first instructions (up to the run's trace limit), and totals over all.
#[derive(Clone, Debug, PartialEq)]
pub struct WarpTrace {
    pub block: usize,
    pub warp: usize,
    pub issued: Vec<(usize, u32)>,
    /// Instructions issued in all.
    pub count: usize,
    /// Σ active lanes over every instruction issued.
    pub lanes: u64,
}

impl WarpTrace {
    /// Share of lane slots that did work: Σ active lanes / (32 × issued).
    pub fn efficiency(&self) -> f64 {
        self.lanes as f64 / (WARP * self.count.max(1)) as f64
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub buffers: Vec<Vec<f32>>,
    pub warps: Vec<WarpTrace>,
}

impl Run {
    pub fn issued(&self) -> usize {
        self.warps.iter().map(|w| w.count).sum()
    }
}

/// Why a kernel could not run: an out-of-bounds access or a malformed program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("block {block} thread {thread}: {what} index {index} is outside 0..{len}")]
    OutOfBounds {
        block: usize,
        thread: usize,
        what: String,
        index: i64,
        len: usize,
    },
    #[error("the kernel's control flow is unbalanced at instruction {0}")]
    Unbalanced(usize),
    #[error("the kernel ran more than {0} instructions in one warp")]
    Runaway(usize),
}

enum Frame {
    If { saved: u32, taken: u32 },
    Loop { saved: u32, start: usize },
}

struct Warp {
    pc: usize,
    mask: u32,
    stack: Vec<Frame>,
    regs: Vec<[f32; WARP]>,
    done: bool,
}

/// The most instructions a warp may issue: a guard against a kernel that never ends.
const MAX_ISSUE: usize = 5_000_000;

/// Runs `k` over `launch`, on a copy of `buffers`, recording at most `trace_limit`
/// instructions per warp (execution goes on past it).
pub fn run(
    k: &Kernel,
    launch: Launch,
    buffers: &[Vec<f32>],
    trace_limit: usize,
) -> Result<Run, Fault> {
    let jumps = match_blocks(&k.code)?;
    let mut mem = buffers.to_vec();
    let mut traces = Vec::new();
    let warps_per_block = launch.block_dim.div_ceil(WARP);
    for block in 0..launch.grid {
        let mut shared = vec![0.0f32; k.shared];
        let mut warps: Vec<Warp> = (0..warps_per_block)
            .map(|w| {
                let lanes = (launch.block_dim - w * WARP).min(WARP);
                Warp {
                    pc: 0,
                    mask: if lanes == WARP {
                        u32::MAX
                    } else {
                        (1u32 << lanes) - 1
                    },
                    stack: Vec::new(),
                    regs: vec![[0.0; WARP]; k.registers],
                    done: false,
                }
            })
            .collect();
        let mut issued: Vec<Vec<(usize, u32)>> = vec![Vec::new(); warps_per_block];
        let mut counts = vec![0usize; warps_per_block];
        let mut lanes = vec![0u64; warps_per_block];
        // Run each warp to the next barrier (or the end); then release them together.
        loop {
            for (w, warp) in warps.iter_mut().enumerate() {
                while !warp.done {
                    if warp.pc >= k.code.len() {
                        warp.done = true;
                        break;
                    }
                    let pc = warp.pc;
                    counts[w] += 1;
                    lanes[w] += warp.mask.count_ones() as u64;
                    if counts[w] > MAX_ISSUE {
                        return Err(Fault::Runaway(MAX_ISSUE));
                    }
                    if issued[w].len() < trace_limit {
                        issued[w].push((pc, warp.mask));
                    }
                    let ctx = Ctx {
                        block,
                        warp: w,
                        launch,
                    };
                    step(k, &jumps, warp, &ctx, &mut mem, &mut shared)?;
                    if k.code[pc] == Instr::Barrier {
                        break;
                    }
                }
            }
            if warps.iter().all(|w| w.done) {
                break;
            }
        }
        for (w, issued) in issued.into_iter().enumerate() {
            traces.push(WarpTrace {
                block,
                warp: w,
                issued,
                count: counts[w],
                lanes: lanes[w],
            });
        }
    }
    Ok(Run {
        buffers: mem,
        warps: traces,
    })
}

struct Ctx {
    block: usize,
    warp: usize,
    launch: Launch,
}

/// For each If / Else / Loop, the index of its partner (Else or EndIf; EndLoop).
fn match_blocks(code: &[Instr]) -> Result<Vec<usize>, Fault> {
    let mut partner = vec![usize::MAX; code.len()];
    let mut open: Vec<usize> = Vec::new();
    for (i, ins) in code.iter().enumerate() {
        match ins {
            Instr::If(_) | Instr::Loop => open.push(i),
            Instr::Else => {
                let o = open.pop().ok_or(Fault::Unbalanced(i))?;
                if !matches!(code[o], Instr::If(_)) {
                    return Err(Fault::Unbalanced(i));
                }
                partner[o] = i;
                open.push(i);
            }
            Instr::EndIf => {
                let o = open.pop().ok_or(Fault::Unbalanced(i))?;
                if !matches!(code[o], Instr::If(_) | Instr::Else) {
                    return Err(Fault::Unbalanced(i));
                }
                partner[o] = i;
            }
            Instr::EndLoop => {
                let o = open.pop().ok_or(Fault::Unbalanced(i))?;
                if code[o] != Instr::Loop {
                    return Err(Fault::Unbalanced(i));
                }
                partner[o] = i;
            }
            // A break belongs directly to a loop, never inside an if of it.
            Instr::BreakUnless(_) if open.last().is_none_or(|&o| code[o] != Instr::Loop) => {
                return Err(Fault::Unbalanced(i));
            }
            _ => {}
        }
    }
    if open.is_empty() {
        Ok(partner)
    } else {
        Err(Fault::Unbalanced(code.len()))
    }
}

fn step(
    k: &Kernel,
    jumps: &[usize],
    w: &mut Warp,
    c: &Ctx,
    mem: &mut [Vec<f32>],
    shared: &mut [f32],
) -> Result<(), Fault> {
    let pc = w.pc;
    w.pc += 1;
    let lanes = |m: u32| (0..WARP).filter(move |l| m >> l & 1 == 1);
    let tid = |l: usize| c.warp * WARP + l;
    let get = |w: &Warp, v: Val, l: usize| -> f32 {
        match v {
            Val::R(r) => w.regs[r as usize][l],
            Val::K(x) => x,
            Val::ThreadIdx => tid(l) as f32,
            Val::BlockIdx => c.block as f32,
            Val::BlockDim => c.launch.block_dim as f32,
        }
    };
    let cond_mask = |w: &Warp, v: Val| -> u32 {
        lanes(w.mask)
            .filter(|&l| get(w, v, l) != 0.0)
            .fold(0u32, |m, l| m | 1 << l)
    };
    let index = |w: &Warp, v: Val, l: usize, len: usize, what: &str| -> Result<usize, Fault> {
        let x = get(w, v, l);
        if x >= 0.0 && (x as usize) < len && x.fract() == 0.0 {
            Ok(x as usize)
        } else {
            Err(Fault::OutOfBounds {
                block: c.block,
                thread: tid(l),
                what: what.to_string(),
                index: x as i64,
                len,
            })
        }
    };
    match k.code[pc] {
        Instr::Set(d, v) => {
            for l in lanes(w.mask) {
                w.regs[d as usize][l] = get(w, v, l);
            }
        }
        Instr::Op(op, d, a, b) => {
            for l in lanes(w.mask) {
                let (x, y) = (get(w, a, l), get(w, b, l));
                w.regs[d as usize][l] = match op {
                    Bin::Add => x + y,
                    Bin::Sub => x - y,
                    Bin::Mul => x * y,
                    Bin::Div => x / y,
                    Bin::Max => x.max(y),
                    Bin::Lt => (x < y) as u8 as f32,
                    Bin::Mod => x.rem_euclid(y),
                    Bin::IDiv => (x / y).floor(),
                };
            }
        }
        Instr::Exp(d, a) => {
            for l in lanes(w.mask) {
                w.regs[d as usize][l] = get(w, a, l).exp();
            }
        }
        Instr::Load(d, buf, i) => {
            let b = &mem[buf as usize];
            for l in lanes(w.mask) {
                let at = index(w, i, l, b.len(), k.buffers[buf as usize])?;
                w.regs[d as usize][l] = b[at];
            }
        }
        Instr::Store(buf, i, s) => {
            for l in lanes(w.mask) {
                let at = index(w, i, l, mem[buf as usize].len(), k.buffers[buf as usize])?;
                mem[buf as usize][at] = get(w, s, l);
            }
        }
        Instr::LoadShared(d, i) => {
            for l in lanes(w.mask) {
                let at = index(w, i, l, shared.len(), "shared")?;
                w.regs[d as usize][l] = shared[at];
            }
        }
        Instr::StoreShared(i, s) => {
            for l in lanes(w.mask) {
                let at = index(w, i, l, shared.len(), "shared")?;
                shared[at] = get(w, s, l);
            }
        }
        Instr::If(v) => {
            let taken = cond_mask(w, v);
            w.stack.push(Frame::If {
                saved: w.mask,
                taken,
            });
            w.mask = taken;
            if taken == 0 {
                // No lane takes the branch: skip it, into the other path if any.
                let other = jumps[pc];
                if k.code[other] == Instr::Else {
                    w.mask = saved_mask(w);
                    w.pc = other + 1;
                } else {
                    end_if(w, other);
                }
            }
        }
        Instr::Else => {
            let Some(Frame::If { saved, taken }) = w.stack.last() else {
                return Err(Fault::Unbalanced(pc));
            };
            w.mask = saved & !taken;
            if w.mask == 0 {
                // Every lane took the first path: the second issues nothing.
                end_if(w, jumps[pc]);
            }
        }
        Instr::EndIf => {
            let Some(Frame::If { saved, .. }) = w.stack.pop() else {
                return Err(Fault::Unbalanced(pc));
            };
            w.mask = saved;
        }
        Instr::Loop => w.stack.push(Frame::Loop {
            saved: w.mask,
            start: pc + 1,
        }),
        Instr::BreakUnless(v) => {
            w.mask = cond_mask(w, v);
            if w.mask == 0 {
                // Every lane has left: resume after the loop with the entry mask.
                let Some(Frame::Loop { saved, start }) = w.stack.pop() else {
                    return Err(Fault::Unbalanced(pc));
                };
                w.mask = saved;
                w.pc = jumps[start - 1] + 1;
            }
        }
        Instr::EndLoop => {
            let Some(Frame::Loop { start, .. }) = w.stack.last() else {
                return Err(Fault::Unbalanced(pc));
            };
            w.pc = *start;
        }
        Instr::Barrier => {}
    }
    Ok(())
}

/// The mask of lanes that skip the innermost if: those active before it that did
/// not take it.
fn saved_mask(w: &Warp) -> u32 {
    match w.stack.last() {
        Some(Frame::If { saved, taken }) => saved & !taken,
        _ => 0,
    }
}

/// Leaves the innermost if at its EndIf (index `end`) without issuing it.
fn end_if(w: &mut Warp, end: usize) {
    if let Some(Frame::If { saved, .. }) = w.stack.pop() {
        w.mask = saved;
    }
    w.pc = end + 1;
}

/// Where each block runs: blocks fill `per_sm` slots on each of `sms` SMs, in waves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub block: usize,
    pub sm: usize,
    pub wave: usize,
}

pub fn schedule(blocks: usize, sms: usize, per_sm: usize) -> Vec<Placement> {
    let slots = (sms * per_sm).max(1);
    (0..blocks)
        .map(|b| Placement {
            block: b,
            sm: (b % slots) % sms.max(1),
            wave: b / slots,
        })
        .collect()
}

/// The kernels the labs run.
pub mod kernels {
    use super::{Bin::*, Instr::*, Kernel, Val::*};

    /// c[i] = a[i] + b[i] for i < n: idx = blockIdx.x · blockDim.x + threadIdx.x,
    /// guarded.
    pub fn vector_add(n: usize) -> Kernel {
        Kernel {
            name: "vector add",
            code: vec![
                Op(Mul, 0, BlockIdx, BlockDim),
                Op(Add, 0, R(0), ThreadIdx),
                Op(Lt, 1, R(0), K(n as f32)),
                If(R(1)),
                Load(2, 0, R(0)),
                Load(3, 1, R(0)),
                Op(Add, 2, R(2), R(3)),
                Store(2, R(0), R(2)),
                EndIf,
            ],
            buffers: vec!["a", "b", "c"],
            registers: 4,
            shared: 0,
        }
    }

    /// A data-dependent branch: y = x > 0 ? x · 2 : −x · 0.5 (guarded by i < n).
    pub fn branchy(n: usize) -> Kernel {
        Kernel {
            name: "branchy",
            code: vec![
                Op(Mul, 0, BlockIdx, BlockDim),
                Op(Add, 0, R(0), ThreadIdx),
                Op(Lt, 1, R(0), K(n as f32)),
                If(R(1)),
                Load(2, 0, R(0)),
                Op(Lt, 3, K(0.0), R(2)),
                If(R(3)),
                Op(Mul, 2, R(2), K(2.0)),
                Else,
                Op(Mul, 2, R(2), K(-0.5)),
                EndIf,
                Store(1, R(0), R(2)),
                EndIf,
            ],
            buffers: vec!["x", "y"],
            registers: 4,
            shared: 0,
        }
    }

    /// Sums each block's slice of x into out[blockIdx.x] with a shared-memory tree:
    /// strides block_dim/2, /4, … 1, a barrier after each (block_dim a power of two).
    pub fn reduce_sum(n: usize, block_dim: usize) -> Kernel {
        Kernel {
            name: "block sum",
            code: vec![
                Op(Mul, 0, BlockIdx, BlockDim),
                Op(Add, 0, R(0), ThreadIdx),
                Set(1, K(0.0)),
                Op(Lt, 2, R(0), K(n as f32)),
                If(R(2)),
                Load(1, 0, R(0)),
                EndIf,
                StoreShared(ThreadIdx, R(1)),
                Barrier,
                Set(3, K((block_dim / 2) as f32)),
                Loop,
                Op(Lt, 2, K(0.0), R(3)),
                BreakUnless(R(2)),
                Op(Lt, 2, ThreadIdx, R(3)),
                If(R(2)),
                Op(Add, 1, ThreadIdx, R(3)),
                LoadShared(1, R(1)),
                LoadShared(2, ThreadIdx),
                Op(Add, 1, R(1), R(2)),
                StoreShared(ThreadIdx, R(1)),
                EndIf,
                Barrier,
                Op(IDiv, 3, R(3), K(2.0)),
                EndLoop,
                Op(Lt, 2, ThreadIdx, K(1.0)),
                If(R(2)),
                LoadShared(1, K(0.0)),
                Store(1, BlockIdx, R(1)),
                EndIf,
            ],
            buffers: vec!["x", "out"],
            registers: 4,
            shared: block_dim,
        }
    }

    /// Row softmax, one thread per row (the thread-level program): three passes over
    /// the row's `cols` values (max, Σ exp, write).
    pub fn softmax_rows(rows: usize, cols: usize) -> Kernel {
        let c = K(cols as f32);
        Kernel {
            name: "softmax, a thread per row",
            code: vec![
                Op(Mul, 0, BlockIdx, BlockDim),
                Op(Add, 0, R(0), ThreadIdx),
                Op(Lt, 1, R(0), K(rows as f32)),
                If(R(1)),
                Op(Mul, 1, R(0), c), // row start
                Set(2, K(f32::NEG_INFINITY)),
                Set(3, K(0.0)),
                Loop,
                Op(Lt, 4, R(3), c),
                BreakUnless(R(4)),
                Op(Add, 4, R(1), R(3)),
                Load(4, 0, R(4)),
                Op(Max, 2, R(2), R(4)),
                Op(Add, 3, R(3), K(1.0)),
                EndLoop,
                Set(5, K(0.0)),
                Set(3, K(0.0)),
                Loop,
                Op(Lt, 4, R(3), c),
                BreakUnless(R(4)),
                Op(Add, 4, R(1), R(3)),
                Load(4, 0, R(4)),
                Op(Sub, 4, R(4), R(2)),
                Exp(4, R(4)),
                Op(Add, 5, R(5), R(4)),
                Op(Add, 3, R(3), K(1.0)),
                EndLoop,
                Set(3, K(0.0)),
                Loop,
                Op(Lt, 4, R(3), c),
                BreakUnless(R(4)),
                Op(Add, 6, R(1), R(3)),
                Load(4, 0, R(6)),
                Op(Sub, 4, R(4), R(2)),
                Exp(4, R(4)),
                Op(Div, 4, R(4), R(5)),
                Store(1, R(6), R(4)),
                Op(Add, 3, R(3), K(1.0)),
                EndLoop,
                EndIf,
            ],
            buffers: vec!["x", "y"],
            registers: 7,
            shared: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::kernels::*;
    use super::*;

    fn data(n: usize, k: f32) -> Vec<f32> {
        (0..n).map(|i| ((i as f32) * k).sin() * 3.0).collect()
    }

    #[test]
    fn vector_add_equals_a_plain_loop_and_guards_the_tail() {
        let n = 1000;
        let (a, b) = (data(n, 0.3), data(n, 0.7));
        let bd = 256;
        let grid = n.div_ceil(bd); // ⌈N / blockDim⌉
        let r = run(
            &vector_add(n),
            Launch {
                grid,
                block_dim: bd,
            },
            &[a.clone(), b.clone(), vec![0.0; n]],
            64,
        )
        .unwrap();
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert_eq!(r.buffers[2], want);
        assert_eq!(r.warps.len(), grid * bd / WARP);
        // The last warp holds threads 992..1023 of which 8 pass the guard.
        let last = r.warps.last().unwrap();
        let body = last.issued.iter().find(|(pc, _)| *pc == 4).unwrap();
        assert_eq!(body.1.count_ones(), 8);
    }

    #[test]
    fn a_divergent_warp_runs_both_paths_masked() {
        let n = 64;
        let x: Vec<f32> = (0..n)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let r = run(
            &branchy(n),
            Launch {
                grid: 1,
                block_dim: 64,
            },
            &[x.clone(), vec![0.0; n]],
            64,
        )
        .unwrap();
        let want: Vec<f32> = x
            .iter()
            .map(|&v| if v > 0.0 { v * 2.0 } else { -v * 0.5 })
            .collect();
        assert_eq!(r.buffers[1], want);
        let w = &r.warps[0];
        // Both sides issued, each with half the lanes: the even lanes, then the odd.
        let then = w.issued.iter().find(|(pc, _)| *pc == 7).unwrap().1;
        let other = w.issued.iter().find(|(pc, _)| *pc == 9).unwrap().1;
        assert_eq!(then, 0x5555_5555);
        assert_eq!(other, 0xAAAA_AAAA);
        assert!(w.efficiency() < 1.0);
        // A warp whose lanes all agree skips the other path entirely.
        let pos = vec![1.0f32; n];
        let r = run(
            &branchy(n),
            Launch {
                grid: 1,
                block_dim: 64,
            },
            &[pos, vec![0.0; n]],
            64,
        )
        .unwrap();
        assert!(r.warps[0].issued.iter().all(|(pc, _)| *pc != 9));
        assert_eq!(r.warps[0].efficiency(), 1.0);
    }

    #[test]
    fn the_reduction_sums_each_block() {
        let (n, bd) = (1000, 128);
        let x = data(n, 0.11);
        let grid = n.div_ceil(bd);
        let r = run(
            &reduce_sum(n, bd),
            Launch {
                grid,
                block_dim: bd,
            },
            &[x.clone(), vec![0.0; grid]],
            1000,
        )
        .unwrap();
        for (b, got) in r.buffers[1].iter().enumerate() {
            let want: f32 = x[b * bd..((b + 1) * bd).min(n)].iter().sum();
            assert!((got - want).abs() < 1e-3, "block {b}: {got} vs {want}");
        }
    }

    #[test]
    fn thread_per_row_softmax_matches_a_direct_one() {
        let (rows, cols) = (40, 33);
        let x = data(rows * cols, 0.29);
        let r = run(
            &softmax_rows(rows, cols),
            Launch {
                grid: 2,
                block_dim: 32,
            },
            &[x.clone(), vec![0.0; rows * cols]],
            10,
        )
        .unwrap();
        for row in 0..rows {
            let xs = &x[row * cols..][..cols];
            let m = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let s: f32 = xs.iter().map(|v| (v - m).exp()).sum();
            for (c, &v) in xs.iter().enumerate() {
                let want = (v - m).exp() / s;
                assert!((r.buffers[1][row * cols + c] - want).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn faults_are_errors_not_panics() {
        // No guard: threads past n read outside the buffers.
        let mut k = vector_add(10);
        k.code.retain(|i| !matches!(i, Instr::If(_) | Instr::EndIf));
        let e = run(
            &k,
            Launch {
                grid: 1,
                block_dim: 32,
            },
            &[vec![0.0; 10], vec![0.0; 10], vec![0.0; 10]],
            8,
        )
        .unwrap_err();
        assert!(e.to_string().contains("outside 0..10"), "{e}");
        let bad = Kernel {
            code: vec![Instr::If(Val::K(1.0))],
            ..vector_add(1)
        };
        assert!(
            run(
                &bad,
                Launch {
                    grid: 1,
                    block_dim: 1
                },
                &[],
                1
            )
            .is_err()
        );
        assert!(vector_add(4).listing()[4].starts_with("  r2 = a[r0]"));
    }

    #[test]
    fn blocks_fill_sms_in_waves() {
        let p = schedule(10, 4, 2);
        assert_eq!(
            p[0],
            Placement {
                block: 0,
                sm: 0,
                wave: 0
            }
        );
        assert_eq!(p[5].sm, 1);
        assert_eq!(
            p[8],
            Placement {
                block: 8,
                sm: 0,
                wave: 1
            }
        );
        // Each SM holds at most `per_sm` blocks per wave.
        for sm in 0..4 {
            assert!(p.iter().filter(|x| x.sm == sm && x.wave == 0).count() <= 2);
        }
    }
}
