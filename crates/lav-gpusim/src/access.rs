//! What one warp's addresses cost: global loads counted in 128 B lines and 32 B
//! sectors (coalescing), and shared-memory loads counted in bank conflicts. Both are
//! computed from the exact address each of the 32 lanes asks for, with the geometry
//! read from the hardware table's `[common]` row.

use crate::hardware::Common;
use std::collections::{BTreeMap, BTreeSet};

/// Line, sector and bank sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub line: u64,
    pub sector: u64,
    pub banks: u64,
    pub bank_bytes: u64,
    pub warp: usize,
}

impl Geometry {
    pub fn of(c: &Common) -> Geometry {
        Geometry {
            line: c.line_bytes as u64,
            sector: c.sector_bytes as u64,
            banks: c.shared_banks as u64,
            bank_bytes: c.bank_bytes as u64,
            warp: c.warp_size as usize,
        }
    }
}

/// A warp's load: one byte address per lane, `None` for a lane that is masked off.
pub type Addresses = Vec<Option<u64>>;

/// The global-memory cost of one warp-wide load of `width`-byte values.
#[derive(Clone, Debug, PartialEq)]
pub struct Coalescing {
    /// The distinct 128 B lines touched (their index: address / line).
    pub lines: BTreeSet<u64>,
    /// The distinct 32 B sectors touched.
    pub sectors: BTreeSet<u64>,
    /// Bytes the lanes asked for, each byte counted once.
    pub useful_bytes: u64,
    pub line_bytes: u64,
    pub sector_bytes: u64,
}

impl Coalescing {
    /// One transaction per line in the teaching model.
    pub fn transactions(&self) -> usize {
        self.lines.len()
    }
    pub fn fetched_bytes(&self) -> u64 {
        self.lines.len() as u64 * self.line_bytes
    }
    /// Useful share of what the lines fetched.
    pub fn utilisation(&self) -> f64 {
        ratio(self.useful_bytes, self.fetched_bytes())
    }
    /// Useful share at the L2's 32 B sector grain.
    pub fn sector_utilisation(&self) -> f64 {
        ratio(
            self.useful_bytes,
            self.sectors.len() as u64 * self.sector_bytes,
        )
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Counts the lines and sectors a warp's load of `width`-byte values touches.
pub fn coalesce(addrs: &[Option<u64>], width: u64, g: Geometry) -> Coalescing {
    let mut lines = BTreeSet::new();
    let mut sectors = BTreeSet::new();
    let mut bytes = BTreeSet::new();
    for a in addrs.iter().flatten() {
        for b in *a..*a + width {
            lines.insert(b / g.line);
            sectors.insert(b / g.sector);
            bytes.insert(b);
        }
    }
    Coalescing {
        lines,
        sectors,
        useful_bytes: bytes.len() as u64,
        line_bytes: g.line,
        sector_bytes: g.sector,
    }
}

/// A warp's shared-memory load seen by the banks.
#[derive(Clone, Debug, PartialEq)]
pub struct Banks {
    /// Per bank, the lanes that asked it and the 4-byte word each asked for.
    pub lanes: Vec<Vec<(usize, u64)>>,
    /// The most distinct words any one bank must serve: the number of passes the
    /// load takes (1 = conflict-free).
    pub ways: usize,
    /// Whether some bank served one word to several lanes at once.
    pub broadcast: bool,
}

impl Banks {
    pub fn conflict_free(&self) -> bool {
        self.ways <= 1
    }
}

/// Bank of each lane's word: (byte address / 4) mod 32. Lanes reading the same word
/// share one read (a broadcast); different words in one bank are served in turn.
pub fn banks(addrs: &[Option<u64>], g: Geometry) -> Banks {
    let mut lanes = vec![Vec::new(); g.banks as usize];
    for (lane, a) in addrs.iter().enumerate() {
        if let Some(a) = a {
            let word = a / g.bank_bytes;
            lanes[(word % g.banks) as usize].push((lane, word));
        }
    }
    let mut ways = 0;
    let mut broadcast = false;
    for b in &lanes {
        let mut words: BTreeMap<u64, usize> = BTreeMap::new();
        for (_, w) in b {
            *words.entry(*w).or_default() += 1;
        }
        ways = ways.max(words.len());
        broadcast |= words.values().any(|&n| n > 1);
    }
    Banks {
        lanes,
        ways,
        broadcast,
    }
}

/// The access patterns the labs offer, each generating exact lane addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// Lane i reads element `offset + i · stride` of an array of `width`-byte values
    /// starting at address 0.
    Strided { stride: u64, offset: u64 },
    /// Every lane reads one element somewhere else: lane i's element lies in a line
    /// of its own, at a seeded pseudo-random place.
    Scattered { seed: u64 },
    /// All lanes read the same element.
    Broadcast,
    /// Lane i reads row i, column `col` of a row-major `[32][pitch]` array.
    Column { pitch: u64, col: u64 },
}

impl Pattern {
    pub fn addresses(&self, width: u64, g: Geometry) -> Addresses {
        let lanes = 0..g.warp as u64;
        match *self {
            Pattern::Strided { stride, offset } => {
                lanes.map(|i| Some((offset + i * stride) * width)).collect()
            }
            Pattern::Scattered { seed } => {
                // Distinct lines far apart: line index = a permutation of the lanes
                // spread by an odd multiplier, so no two lanes share a line.
                let mut x = seed | 1;
                lanes
                    .map(|i| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let line = (i * 2_654_435_761) % 1_048_573 + i;
                        let within = (x >> 33) % (g.line / width);
                        Some(line * 64 * g.line + within * width)
                    })
                    .collect()
            }
            Pattern::Broadcast => lanes.map(|_| Some(0)).collect(),
            Pattern::Column { pitch, col } => {
                lanes.map(|i| Some((i * pitch + col) * width)).collect()
            }
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            Pattern::Strided {
                stride: 1,
                offset: 0,
            } => "consecutive (stride 1)".into(),
            Pattern::Strided { stride, offset: 0 } => format!("stride {stride}"),
            Pattern::Strided { stride, offset } => {
                format!("stride {stride}, starting {offset} element(s) in")
            }
            Pattern::Scattered { .. } => "scattered (a line per lane)".into(),
            Pattern::Broadcast => "one word for every lane".into(),
            Pattern::Column { pitch, col } => {
                format!("column {col} of float[32][{pitch}]")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Geometry {
        let t = crate::hardware::Table::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs"),
        )
        .unwrap();
        Geometry::of(&t.common)
    }

    fn load(p: Pattern) -> (Coalescing, Banks) {
        let a = p.addresses(4, g());
        (coalesce(&a, 4, g()), banks(&a, g()))
    }

    #[test]
    fn consecutive_floats_are_one_transaction_at_full_use() {
        // Curriculum: 32 × 4 B = 128 B, best case 1 transaction at 100%.
        let (c, b) = load(Pattern::Strided {
            stride: 1,
            offset: 0,
        });
        assert_eq!((c.transactions(), c.sectors.len()), (1, 4));
        assert_eq!(c.utilisation(), 1.0);
        assert!(b.conflict_free() && !b.broadcast);
    }

    #[test]
    fn scattered_is_32_transactions_at_3_1_percent() {
        // Curriculum: 32 transactions fetching 4,096 B for 128 B used (3.1%).
        let (c, _) = load(Pattern::Scattered { seed: 7 });
        assert_eq!(c.transactions(), 32);
        assert_eq!(c.fetched_bytes(), 4096);
        assert_eq!(c.useful_bytes, 128);
        assert_eq!(format!("{:.1}", 100.0 * c.utilisation()), "3.1");
        // At sector grain the waste is four times smaller.
        assert_eq!(c.sector_utilisation(), 0.125);
    }

    #[test]
    fn strides_spread_over_lines() {
        for (stride, lines) in [(2, 2), (4, 4), (8, 8), (32, 32), (64, 32)] {
            let (c, _) = load(Pattern::Strided { stride, offset: 0 });
            assert_eq!(c.transactions(), lines, "stride {stride}");
            assert!((c.utilisation() - 128.0 / (lines as f64 * 128.0)).abs() < 1e-12);
        }
        // A misaligned start straddles two lines.
        let (c, _) = load(Pattern::Strided {
            stride: 1,
            offset: 1,
        });
        assert_eq!(c.transactions(), 2);
        assert_eq!(c.sectors.len(), 5);
    }

    #[test]
    fn bank_conflicts_and_the_padding_trick() {
        // Curriculum: stride 2 is a 2-way conflict; a column of float[32][32] is
        // 32-way; float[32][33] removes it; one word for all lanes is a broadcast.
        let (_, b) = load(Pattern::Strided {
            stride: 2,
            offset: 0,
        });
        assert_eq!(b.ways, 2);
        let (_, b) = load(Pattern::Column { pitch: 32, col: 5 });
        assert_eq!(b.ways, 32);
        assert_eq!(b.lanes[5].len(), 32);
        let (_, b) = load(Pattern::Column { pitch: 33, col: 5 });
        assert!(b.conflict_free());
        assert!(b.lanes.iter().all(|l| l.len() == 1));
        let (c, b) = load(Pattern::Broadcast);
        assert!(b.conflict_free() && b.broadcast);
        assert_eq!(c.transactions(), 1);
        // Odd strides never conflict: 32 banks and an odd step visit every bank.
        for s in [1, 3, 5, 7, 33] {
            let (_, b) = load(Pattern::Strided {
                stride: s,
                offset: 0,
            });
            assert!(b.conflict_free(), "stride {s}");
        }
    }

    #[test]
    fn masked_lanes_cost_nothing() {
        let mut a = Pattern::Strided {
            stride: 1,
            offset: 0,
        }
        .addresses(4, g());
        a.iter_mut().skip(16).for_each(|x| *x = None);
        let c = coalesce(&a, 4, g());
        assert_eq!(
            (c.transactions(), c.sectors.len(), c.useful_bytes),
            (1, 2, 64)
        );
        assert_eq!(c.utilisation(), 0.5);
    }
}
