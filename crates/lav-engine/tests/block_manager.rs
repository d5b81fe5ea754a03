//! The paged KV cache's bookkeeping, driven the way the runner drives it: a simulated
//! K/V store writes each sequence's tokens into the slots its block table names and
//! makes every copy the manager asks for. Whatever the operations, every sequence must
//! read back exactly its own tokens (copy-on-write isolates writers, a prefix hit
//! holds the prompt's own tokens), the counts must match the tables, and freeing
//! everything returns the whole pool.

use lav_engine::block_manager::{BlockError, BlockId, BlockManager, CopyBlock, SeqId};
use proptest::prelude::*;
use std::collections::HashMap;

/// What the runner would hold: per block, the token each slot's K/V was computed for.
struct Store {
    slots: Vec<Vec<Option<u32>>>,
    bs: usize,
}

impl Store {
    fn new(bm: &BlockManager) -> Self {
        Self {
            slots: vec![vec![None; bm.block_size()]; bm.num_blocks()],
            bs: bm.block_size(),
        }
    }

    fn write(&mut self, table: &[BlockId], pos: usize, token: u32) {
        self.slots[table[pos / self.bs] as usize][pos % self.bs] = Some(token);
    }

    fn copy(&mut self, c: CopyBlock) {
        self.slots[c.to as usize] = self.slots[c.from as usize].clone();
    }

    fn read(&self, table: &[BlockId], len: usize) -> Vec<Option<u32>> {
        (0..len)
            .map(|p| self.slots[table[p / self.bs] as usize][p % self.bs])
            .collect()
    }
}

/// The engine's side: the manager, the store and what each sequence wrote.
struct Engine {
    bm: BlockManager,
    store: Store,
    want: HashMap<SeqId, Vec<u32>>,
}

impl Engine {
    fn new(blocks: usize, bs: usize) -> Self {
        let bm = BlockManager::new(blocks, bs);
        Self {
            store: Store::new(&bm),
            bm,
            want: HashMap::new(),
        }
    }

    fn allocate(&mut self, seq: SeqId, prompt: &[u32]) -> Result<usize, BlockError> {
        let a = self.bm.allocate(seq, prompt)?;
        let table = self.bm.table(seq).unwrap().to_vec();
        // The runner computes every position the cache did not supply.
        for (p, &t) in prompt.iter().enumerate().skip(a.cached_tokens) {
            self.store.write(&table, p, t);
        }
        self.want.insert(seq, prompt.to_vec());
        Ok(a.cached_tokens)
    }

    fn append(&mut self, seq: SeqId, token: u32) -> Result<Option<CopyBlock>, BlockError> {
        let copy = self.bm.append(seq, token)?;
        if let Some(c) = copy {
            self.store.copy(c);
        }
        let table = self.bm.table(seq).unwrap().to_vec();
        let w = self.want.get_mut(&seq).unwrap();
        self.store.write(&table, w.len(), token);
        w.push(token);
        Ok(copy)
    }

    fn fork(&mut self, parent: SeqId, child: SeqId) -> Result<(), BlockError> {
        self.bm.fork(parent, child)?;
        let w = self.want[&parent].clone();
        self.want.insert(child, w);
        Ok(())
    }

    fn free(&mut self, seq: SeqId) -> Result<(), BlockError> {
        self.bm.free(seq)?;
        self.want.remove(&seq);
        Ok(())
    }

    /// Every sequence reads back its own tokens, and the invariants hold.
    fn verify(&self) {
        self.bm.check().unwrap();
        for (&seq, w) in &self.want {
            assert_eq!(self.bm.seq_len(seq), Some(w.len()), "seq {seq}");
            let table = self.bm.table(seq).unwrap();
            let got = self.store.read(table, w.len());
            let want: Vec<Option<u32>> = w.iter().map(|&t| Some(t)).collect();
            assert_eq!(got, want, "seq {seq} reads another's K/V through {table:?}");
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// A prompt: one of three shared stems, cut at some length, plus a tail.
    Allocate(SeqId, usize, usize, Vec<u32>),
    Append(SeqId, u32),
    Fork(SeqId, SeqId),
    Free(SeqId),
}

fn op() -> impl Strategy<Value = Op> {
    let seq = 0..8u64;
    prop_oneof![
        1 => (seq.clone(), 0..3usize, 0..49usize, prop::collection::vec(0..4u32, 0..6))
            .prop_map(|(s, stem, cut, tail)| Op::Allocate(s, stem, cut, tail)),
        4 => (seq.clone(), 0..4u32).prop_map(|(s, t)| Op::Append(s, t)),
        1 => (seq.clone(), seq.clone()).prop_map(|(a, b)| Op::Fork(a, b)),
        1 => seq.prop_map(Op::Free),
    ]
}

fn stem(k: usize) -> Vec<u32> {
    (0..48)
        .map(|i| (i * (k as u32 + 3) + k as u32) % 7)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn any_operations_keep_every_sequence_on_its_own_tokens(
        ops in prop::collection::vec(op(), 1..80),
        blocks in 4..24usize,
        bs in prop::sample::select(vec![1usize, 4, 16]),
    ) {
        let mut e = Engine::new(blocks, bs);
        for op in ops {
            let before = (e.bm.num_free(), e.bm.sequences());
            let r = match &op {
                Op::Allocate(s, k, cut, tail) => {
                    let mut p = stem(*k)[..*cut].to_vec();
                    p.extend(tail);
                    if p.is_empty() { p.push(1) }
                    e.allocate(*s, &p).map(|_| ())
                }
                Op::Append(s, t) => e.append(*s, *t).map(|_| ()),
                Op::Fork(a, b) => e.fork(*a, *b),
                Op::Free(s) => e.free(*s),
            };
            if r.is_err() {
                // A refusal changes nothing.
                prop_assert_eq!(before, (e.bm.num_free(), e.bm.sequences()), "{:?}", op);
            }
            e.verify();
        }
        for s in e.bm.sequences() {
            e.free(s).unwrap();
        }
        e.verify();
        prop_assert_eq!(e.bm.num_free(), blocks, "every block comes back");
    }
}

#[test]
fn prompts_share_their_common_full_blocks() {
    let mut e = Engine::new(16, 16);
    let stem: Vec<u32> = (0..40).collect();
    let mut a = stem.clone();
    a.extend([100, 101]);
    let mut b = stem.clone();
    b.extend([200]);
    assert_eq!(e.allocate(1, &a).unwrap(), 0);
    // 40 shared tokens: two full blocks (32 positions) come from the cache.
    assert_eq!(e.allocate(2, &b).unwrap(), 32);
    let (ta, tb) = (e.bm.table(1).unwrap(), e.bm.table(2).unwrap());
    assert_eq!(ta[..2], tb[..2]);
    assert_ne!(ta[2], tb[2]);
    assert_eq!(e.bm.ref_count(ta[0]), 2);
    assert_eq!(e.bm.num_used(), 4);
    e.verify();
    // A prompt of exactly two cached blocks still computes its last position.
    assert_eq!(e.allocate(3, &stem[..32]).unwrap(), 16);
    e.verify();
}

#[test]
fn a_fork_shares_until_the_first_divergent_token() {
    let mut e = Engine::new(8, 4);
    e.allocate(1, &[1, 2, 3, 4, 5, 6]).unwrap();
    e.fork(1, 2).unwrap();
    assert_eq!(e.bm.table(1), e.bm.table(2));
    assert_eq!(e.bm.num_used(), 2);
    // The first writer into the shared, partly filled block gets a copy; the second
    // writes in place.
    let c = e.append(2, 70).unwrap().expect("copy-on-write");
    let shared = e.bm.table(1).unwrap()[1];
    assert_eq!(c.from, shared);
    assert_eq!(e.bm.table(2).unwrap()[1], c.to);
    assert_eq!(e.append(1, 80).unwrap(), None);
    assert_eq!(e.bm.table(1).unwrap()[0], e.bm.table(2).unwrap()[0]);
    assert_eq!(e.bm.num_used(), 3);
    e.verify();
}

#[test]
fn a_full_pool_refuses_then_reuses_the_least_recently_freed_block() {
    let mut e = Engine::new(3, 2);
    e.allocate(1, &[1, 2, 9]).unwrap(); // blocks for [1,2] and [9]
    e.allocate(2, &[3, 4]).unwrap();
    assert_eq!(
        e.allocate(3, &[5, 6]),
        Err(BlockError::OutOfBlocks { needed: 1, free: 0 })
    );
    let (a, b) = (e.bm.table(1).unwrap()[0], e.bm.table(1).unwrap()[1]);
    let c = e.bm.table(2).unwrap()[0];
    e.free(2).unwrap();
    e.free(1).unwrap();
    e.verify();
    // [9] was unfinished, so it holds nothing reusable and goes first; then [3,4],
    // freed before [1,2]; [1,2] keeps its cached prefix.
    e.allocate(4, &[7]).unwrap();
    e.allocate(5, &[8]).unwrap();
    assert_eq!(
        (e.bm.table(4).unwrap(), e.bm.table(5).unwrap()),
        (&[b][..], &[c][..])
    );
    e.free(4).unwrap();
    assert_eq!(e.allocate(6, &[1, 2, 5]).unwrap(), 2, "the prefix survived");
    assert_eq!(e.bm.table(6).unwrap(), [a, b]);
    e.verify();
}
