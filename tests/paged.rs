//! The serving engine's batched forward over a paged K/V pool, against the plain
//! single-sequence forward pass: the same logits bit for bit, whatever the block
//! layout, whatever else shares the batch, and however the prompt was chunked.

use lav_model::{BatchSeq, KvPool, Llama, Logits};
use lav_tests::{model, model_q8, tokenizer};

const BS: usize = 16;

fn prompts() -> Vec<Vec<u32>> {
    [
        "The quick brown fox jumps over the lazy dog.",
        "What is the capital of France?",
        "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)",
        "Once upon a time, there was a little robot who wanted to learn how to paint the sea at night.",
        "KV caches trade memory for compute.",
        "Hello!",
        "Batching shares one read of the weights between many sequences.",
        "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12",
    ]
    .iter()
    .map(|p| tokenizer().encode(p).unwrap())
    .collect()
}

/// The plain path: the sequence alone in a contiguous cache, logits of its last
/// position.
fn alone(m: &Llama, tokens: &[u32]) -> Vec<f32> {
    let mut cache = m.new_cache();
    let t = m.forward(tokens, &mut cache, Logits::Last, None).unwrap();
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Block tables that interleave the sequences through the pool (so no sequence's
/// blocks are contiguous), each long enough for `cap` positions.
fn tables(n: usize, cap: usize) -> Vec<Vec<u32>> {
    let per = cap.div_ceil(BS);
    (0..n)
        .map(|s| (0..per).map(|b| (b * n + (n - 1 - s)) as u32).collect())
        .collect()
}

fn batch<'a>(items: &[(&'a [u32], usize, &'a [u32])]) -> Vec<BatchSeq<'a>> {
    items
        .iter()
        .map(|&(tokens, start, block_table)| BatchSeq {
            tokens,
            start,
            block_table,
            logits: true,
        })
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn paged_equals_contiguous(m: &Llama) {
    let ps = prompts();
    let ps = &ps[..4];
    let cap = 128;
    let t = tables(4, cap);
    let mut pool = KvPool::new(&m.config, t.iter().map(Vec::len).sum(), BS);
    // Prefill of four different prompts in one step.
    let items: Vec<_> = (0..4).map(|i| (&ps[i][..], 0, &t[i][..])).collect();
    let out = m.forward_batch(&batch(&items), &mut pool).unwrap();
    let mut seqs: Vec<Vec<u32>> = ps.to_vec();
    for (i, logits) in out.iter().enumerate() {
        assert!(
            same_bits(logits, &alone(m, &seqs[i])),
            "prompt {i}: prefill"
        );
    }
    // Three decode steps of all four: each one's logits equal a fresh solo pass over
    // its whole text.
    let mut next: Vec<u32> = out
        .iter()
        .map(|l| lav_model::sampler::argmax(l).0)
        .collect();
    for step in 0..3 {
        let starts: Vec<usize> = seqs.iter().map(Vec::len).collect();
        for (s, &t) in seqs.iter_mut().zip(&next) {
            s.push(t);
        }
        let toks: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
        let items: Vec<_> = (0..4)
            .map(|i| (&toks[i][..], starts[i], &t[i][..]))
            .collect();
        let out = m.forward_batch(&batch(&items), &mut pool).unwrap();
        for (i, logits) in out.iter().enumerate() {
            assert!(
                same_bits(logits, &alone(m, &seqs[i])),
                "prompt {i}: decode step {step}"
            );
        }
        next = out
            .iter()
            .map(|l| lav_model::sampler::argmax(l).0)
            .collect();
    }
}

#[test]
fn paged_attention_gives_the_contiguous_logits_bit_for_bit() {
    paged_equals_contiguous(model());
}

#[test]
fn the_8_bit_path_is_paged_bit_for_bit_too() {
    paged_equals_contiguous(model_q8());
}

#[test]
fn a_requests_logits_do_not_depend_on_its_batch_or_its_chunking() {
    let m = model();
    let ps = prompts();
    let req = &ps[3];
    let want = alone(m, req);
    let t = tables(8, 64);
    let blocks: usize = t.iter().map(Vec::len).sum();
    // Alone, then in batches of 2, 5 and 8, at different places among different
    // companions.
    for (size, at) in [(1, 0), (2, 1), (5, 0), (5, 4), (8, 2), (8, 7)] {
        let mut pool = KvPool::new(&m.config, blocks, BS);
        let companions: Vec<&Vec<u32>> = ps.iter().filter(|p| *p != req).collect();
        let mut items = Vec::new();
        let mut c = companions.iter().cycle().skip(size + at);
        for (i, table) in t.iter().enumerate().take(size) {
            let tokens: &[u32] = if i == at { req } else { &c.next().unwrap()[..] };
            items.push((tokens, 0, &table[..]));
        }
        let out = m.forward_batch(&batch(&items), &mut pool).unwrap();
        assert!(same_bits(&out[at], &want), "batch of {size}, at {at}");
    }
    // Chunked prefill: the first 9 positions in one step (no logits), the rest in the
    // next, beside a companion's decode-sized chunk.
    let mut pool = KvPool::new(&m.config, blocks, BS);
    let first = BatchSeq {
        tokens: &req[..9],
        start: 0,
        block_table: &t[0],
        logits: false,
    };
    assert!(m.forward_batch(&[first], &mut pool).unwrap().is_empty());
    let items = [(&req[9..], 9, &t[0][..]), (&ps[5][..], 0, &t[1][..])];
    let out = m.forward_batch(&batch(&items), &mut pool).unwrap();
    assert!(same_bits(&out[0], &want), "chunked prefill");
    assert!(same_bits(&out[1], &alone(m, &ps[5])), "its companion");
}

#[test]
fn a_copied_block_lets_two_forks_diverge() {
    let m = model();
    let p = &prompts()[2];
    let mut pool = KvPool::new(&m.config, 16, BS);
    // The parent's table; the child shares its blocks but the last, which is copied
    // before the child writes into it (copy-on-write, as the block manager orders).
    let parent: Vec<u32> = (0..(p.len() + 1).div_ceil(BS) as u32).collect();
    let seq = BatchSeq {
        tokens: p,
        start: 0,
        block_table: &parent,
        logits: true,
    };
    m.forward_batch(&[seq], &mut pool).unwrap();
    let mut child = parent.clone();
    let last = *parent.last().unwrap();
    *child.last_mut().unwrap() = 15;
    pool.copy_block(last, 15);
    let (a, b) = ([11u32], [22u32]);
    let items = [
        (&a[..], p.len(), &parent[..]),
        (&b[..], p.len(), &child[..]),
    ];
    let out = m.forward_batch(&batch(&items), &mut pool).unwrap();
    let with = |t: u32| [p.clone(), vec![t]].concat();
    assert!(same_bits(&out[0], &alone(m, &with(11))));
    assert!(same_bits(&out[1], &alone(m, &with(22))));
    // A table too short for its positions is one error, not a panic.
    let short = BatchSeq {
        tokens: p,
        start: 0,
        block_table: &parent[..1],
        logits: true,
    };
    let e = m
        .forward_batch(&[short], &mut pool)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid batch") && e.contains("cannot hold"),
        "{e}"
    );
}
