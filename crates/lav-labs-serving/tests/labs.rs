//! The serving labs on the real model: what each must show, checked against the
//! published formulas, against independent recomputation from the scene's own data,
//! and against the engine's guarantees (batch invariance, no lost tokens).

use lav_scene::{Primitive, Scene};
use lav_testkit::{bars, repo_dir, scene_at, table, text};

fn session(id: &str) -> lav_lab::Session {
    lav_testkit::session_in(&[lav_labs_serving::register], id)
}

fn pct(cell: &str) -> f64 {
    cell.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{cell}"))
}

fn num(cell: &str) -> f64 {
    cell.split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {cell}"))
}

fn grid(scene: &Scene, id: &str) -> Vec<Option<usize>> {
    match &scene.item(id).unwrap().primitive {
        Primitive::BlockGrid(g) => g.cells.iter().map(|c| c.owner).collect(),
        p => panic!("{id} is not a grid: {p:?}"),
    }
}

#[test]
fn batching_serves_one_trace_both_ways_and_continuous_leaves_no_slot_idle_behind_a_queue() {
    let mut s = session("batching");
    let sc = scene_at(&mut s, "arrivals", &["rate=20", "count=8"]);
    let t = table(&sc, "compare");
    let get = |row: &str, col: &str| t.lookup(row, col).unwrap().to_string();
    // The same requests, the same tokens: only the schedule differs.
    assert_eq!(
        get("output tokens", "static"),
        get("output tokens", "continuous")
    );
    let idle = |c| num(&get("slot-steps idle while requests queued", c));
    assert!(idle("static") > idle("continuous"), "{t:?}");
    assert!(num(&get("engine steps", "static")) > num(&get("engine steps", "continuous")));
    let pad = "padding, if each batch ran to its longest (what-if)";
    assert!(num(&get(pad, "static")) > 0.0, "{t:?}");
    assert!(get(pad, "continuous").starts_with("0 "));
    // The timeline shows every request's three phases, in order.
    let Primitive::Timeline(tl) = &sc.item("timeline").unwrap().primitive else {
        panic!("timeline")
    };
    assert_eq!(tl.lanes.len(), 8);
    assert_eq!(tl.spans.len(), 24);
    for w in tl.spans.chunks(3) {
        assert!(
            w[0].end <= w[1].start + 1e-9 && w[1].end <= w[2].start + 1e-9,
            "{w:?}"
        );
    }
}

#[test]
fn batching_hits_the_kv_wall_where_the_formula_says() {
    let mut s = session("batching");
    let cfgs = lav_gpusim::model_configs(&repo_dir().join("labs")).unwrap();
    let m = cfgs.iter().find(|m| m.id == "llama-3-8b").unwrap();
    let h100 = lav_gpusim::gpu(&repo_dir().join("labs"), "h100").unwrap();
    // 2 · layers · kv heads · head dim · 2 bytes per token, by hand.
    let per_token = (2 * m.layers * m.kv_heads * m.head_dim * 2) as f64;
    assert_eq!(per_token, 131_072.0, "Llama-3-8B: 128 KiB per token");
    let want = ((h100.hbm_gb * 1e9 - m.params as f64 * 2.0) / (per_token * 4096.0)).floor();
    let sc = scene_at(
        &mut s,
        "kv-wall",
        &[
            "memory=H100 SXM 80GB",
            "model=Llama-3-8B",
            "context=4096",
            "batch=8",
        ],
    );
    let w = table(&sc, "wall");
    assert_eq!(
        w.lookup("max batch at this context", "value"),
        Some(format!("{want:.0}").as_str())
    );
    assert!(w.lookup("batch 8", "value").unwrap().starts_with("fits"));
    let sc = scene_at(&mut s, "kv-wall", &["batch=512"]);
    assert!(
        table(&sc, "wall")
            .lookup("batch 512", "value")
            .unwrap()
            .contains("does not fit")
    );
    // Decode FLOP per weight byte at FP16 is the batch.
    assert!(
        table(&sc, "wall")
            .lookup("decode FLOP per weight byte", "value")
            .unwrap()
            .starts_with("512")
    );
    // Measured here: batching raises decode throughput.
    let b = bars(&sc, "measured");
    assert_eq!(b.bars.len(), 4);
    assert!(b.bars[3].value > b.bars[0].value, "{b:?}");
}

#[test]
fn batching_shows_a_request_bit_identical_alone_and_in_batches_of_2_5_and_8() {
    let mut s = session("batching");
    for (b, chunked) in [(2, false), (5, true), (8, true), (8, false)] {
        let sc = scene_at(
            &mut s,
            "invariance",
            &[&format!("companions={b}"), &format!("chunked={chunked}")],
        );
        let t = table(&sc, "check");
        assert_eq!(
            t.lookup("largest |difference|", "value"),
            Some("0e0"),
            "{b}"
        );
        assert_eq!(t.lookup("bit-identical", "value"), Some("yes"), "{b}");
    }
}

#[test]
fn paged_attention_places_what_contiguous_allocation_refuses_and_wastes_less() {
    let mut s = session("paged-attention");
    let sc = scene_at(&mut s, "allocator", &["pool=20", "moment=40"]);
    let st = table(&sc, "state");
    // Paging refuses nobody; the contiguous replay of the same admissions does.
    assert_eq!(st.lookup("requests refused so far", "paged"), Some("0"));
    let paged = grid(&sc, "paged");
    assert_eq!(paged.len(), 20);
    let sc = scene_at(&mut s, "waste", &["pool=20"]);
    let m = table(&sc, "measured");
    let p = pct(m.lookup("paged", "value").unwrap());
    let r = pct(m.lookup("contiguous, reserved up front", "value").unwrap());
    assert!(p < r, "paged {p}% vs reserved {r}%");
    assert!(
        num(m
            .lookup("requests the contiguous replay could not place", "value")
            .unwrap())
            >= 1.0
    );
    // Each step's paged waste is under one block per running sequence.
    let Primitive::Plot(pl) = &sc.item("per-step").unwrap().primitive else {
        panic!("plot")
    };
    assert!(pl.series[0].points.iter().all(|(_, w)| *w < 100.0));
}

#[test]
fn paged_attention_block_tables_agree_with_the_grid() {
    let mut s = session("paged-attention");
    let sc = scene_at(&mut s, "block-table", &["pool=24", "moment=30", "seq=0"]);
    let bt = table(&sc, "table");
    let running = table(&sc, "running");
    let positions = num(&running.rows[0][1]) as usize;
    // ceil(positions / 16) blocks, each filled 16 but the last.
    assert_eq!(bt.rows.len(), positions.div_ceil(16));
    let filled: usize = bt
        .rows
        .iter()
        .map(|r| r[3].split('/').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(filled, positions);
    let sc = scene_at(&mut s, "allocator", &[]);
    let cells = grid(&sc, "paged");
    let owner = running.rows[0][0]
        .trim_start_matches('r')
        .parse::<usize>()
        .unwrap();
    for r in &bt.rows {
        let b: usize = r[1].parse().unwrap();
        assert_eq!(cells[b], Some(owner), "block {b}");
    }
}

#[test]
fn paged_attention_fork_shares_blocks_until_the_first_write_copies_one() {
    let mut s = session("paged-attention");
    let sc = scene_at(&mut s, "fork", &["written=0"]);
    let t = table(&sc, "tables");
    assert!(
        t.rows
            .iter()
            .all(|r| r[3].starts_with("shared (holders 2)")),
        "{t:?}"
    );
    let sc = scene_at(&mut s, "fork", &["written=1"]);
    let saving = table(&sc, "saving");
    let copies = saving.lookup("copies made", "value").unwrap();
    assert!(copies.starts_with("copy-on-write at token 1"), "{copies}");
    let t = table(&sc, "tables");
    // Full prompt blocks stay shared; the written block is private to each.
    assert!(t.rows[0][3].starts_with("shared"));
    assert_eq!(t.rows.last().unwrap()[3], "private");
    assert!(pct(saving.lookup("saved by sharing", "value").unwrap()) > 0.0);
}

#[test]
fn inference_engine_counts_blocks_as_vllm_does_and_loses_no_tokens_to_preemption() {
    let mut s = session("inference-engine");
    let sc = scene_at(
        &mut s,
        "memory",
        &[
            "memory=H100 SXM 80GB",
            "model=Llama-3-8B",
            "gpu_memory_utilization=0.9",
            "max_num_batched_tokens=64",
        ],
    );
    let cfgs = lav_gpusim::model_configs(&repo_dir().join("labs")).unwrap();
    let m = cfgs.iter().find(|m| m.id == "llama-3-8b").unwrap();
    let d = (m.heads * m.head_dim) as f64;
    let act = 64.0 * (4.0 * d + 3.0 * (d * 3.5).floor()) * 2.0;
    let want = ((0.9 * 80e9 - m.params as f64 * 2.0 - act) / (16.0 * 131_072.0)).floor();
    assert_eq!(
        table(&sc, "blocks").lookup("KV blocks", "value"),
        Some(format!("{want:.0}").as_str())
    );
    // Too little memory: preemptions, yet every request gets all its tokens.
    let roomy = scene_at(&mut s, "states", &["kv_mib=48"]);
    let tight = scene_at(&mut s, "states", &["kv_mib=6"]);
    let out = |sc: &Scene| -> Vec<String> {
        table(sc, "per-request")
            .rows
            .iter()
            .map(|r| r[4].clone())
            .collect()
    };
    assert_eq!(out(&roomy), out(&tight));
    let preempted = |sc: &Scene| -> usize {
        let t = text(sc, "summary");
        let n = t
            .split(" preemptions")
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap();
        n.parse().unwrap_or_else(|_| panic!("{t}"))
    };
    assert_eq!(preempted(&roomy), 0);
    assert!(preempted(&tight) > 0, "{}", text(&tight, "summary"));
    let sc = scene_at(&mut s, "loop", &["kv_mib=16", "step=50"]);
    let q = table(&sc, "queues");
    assert!(q.lookup("running", "requests").is_some());
    let b = bars(&sc, "batch");
    let total: f64 = b.bars.iter().map(|b| b.value).sum();
    assert!((1.0..=64.0).contains(&total), "{b:?}");
}

#[test]
fn serving_metrics_reproduces_the_worked_example_and_littles_law() {
    let mut s = session("serving-metrics");
    let sc = scene_at(&mut s, "lifecycle", &[]);
    let w = table(&sc, "worked");
    assert_eq!(w.lookup("TTFT", "value"), Some("147 ms"));
    assert_eq!(w.lookup("TPOT", "value"), Some("48.6 ms"));
    assert_eq!(w.lookup("E2E", "value"), Some("487 ms"));
    // The chosen request's TTFT is its queue plus its prefill (each shown rounded to
    // at most half a millisecond).
    let r = table(&sc, "request");
    let v = |k: &str| num(r.lookup(k, "value").unwrap());
    let gap = v("TTFT") - v("queue") - v("prefill (scheduled → first token)");
    assert!(gap.abs() <= 1.5, "{r:?}");
    let sc = scene_at(&mut s, "little", &["sim_rate=16"]);
    let law = table(&sc, "law");
    assert!(pct(&law.rows[0][5]) < 5.0, "{law:?}");
    assert_eq!(table(&sc, "example").rows[0][2], "120 requests in flight");
}

#[test]
fn serving_metrics_shows_a_lav_load_report_and_refuses_a_bad_one_in_one_line() {
    let dir = std::env::temp_dir().join(format!("lav-serving-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("load.json");
    let summary = lav_engine::metrics::summarize(
        &[lav_engine::metrics::RequestTimes {
            arrival: 0.0,
            scheduled: Some(0.01),
            tokens: vec![0.1, 0.15, 0.2],
            finish: Some(0.2),
            prompt_tokens: 4,
        }],
        lav_engine::metrics::Slo {
            ttft: 1.0,
            tpot: 1.0,
        },
    );
    let report = serde_json::json!({
        "url": "http://127.0.0.1:8000",
        "model": "smollm2",
        "points": [{"load": {"rate": 2.0}, "summary": summary, "errors": 0, "requests": []}],
    });
    std::fs::write(&good, report.to_string()).unwrap();
    let mut s = session("serving-metrics");
    let sc = scene_at(&mut s, "load", &[&format!("file={}", good.display())]);
    let f = table(&sc, "file");
    assert_eq!(f.rows.len(), 1);
    assert_eq!(f.rows[0][1], "100 ms");
    let bad = dir.join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    s.set_raw(&format!("file={}", bad.display())).unwrap();
    let e = s.scene_settled(|_| {}).unwrap_err().to_string();
    assert!(e.contains("lav load --url") && !e.contains('\n'), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
