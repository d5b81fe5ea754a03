//! The LLM-Internals labs and the forward-pass walkthrough on the real model: the
//! facts each lab must get right, checked against independent computations. One test
//! binary for the whole track, so it links once.

mod llm_labs;
mod quantization;

use lav_lab::Value;
use lav_scene::{Primitive, Provenance, Scene};
use lav_testkit::{scene_at, table};

/// Opens one of this track's labs on the test models.
pub fn session(id: &str) -> lav_lab::Session {
    lav_testkit::session_in(&[lav_labs_llm::register], id)
}

fn chips(scene: &Scene, id: &str) -> Vec<String> {
    match &scene
        .item(id)
        .unwrap_or_else(|| panic!("no item {id}"))
        .primitive
    {
        Primitive::TokenStrip(t) => t.tokens.iter().map(|c| c.text.clone()).collect(),
        p => panic!("{id} is not a token strip: {p:?}"),
    }
}

#[test]
fn tokenization_trains_bpe_on_the_learners_text() {
    let mut s = session("tokenization");
    let sc = scene_at(&mut s, "pairs", &["text=aaabdaaabac", "merge=0"]);
    let pairs = table(&sc, "pairs");
    assert_eq!(pairs.rows[0][1..4], ["a", "a", "4"]);
    let sc = scene_at(&mut s, "merges", &["merge=3"]);
    assert_eq!(chips(&sc, "tokens"), ["aaab", "d", "aaab", "a", "c"]);
    assert_eq!(
        table(&sc, "stats").lookup("vocabulary", "value"),
        Some("259")
    );
    assert_eq!(
        table(&sc, "stats").lookup("chars/token", "value"),
        Some("2.20")
    );
    // More merges than pairs: the scene says so instead of pretending.
    let sc = scene_at(&mut s, "pairs", &["merge=50"]);
    assert!(sc.item("exhausted").is_some());
}

#[test]
fn tokenization_compares_with_the_models_tokenizer_and_round_trips() {
    let mut s = session("tokenization");
    let sc = scene_at(&mut s, "model", &["text=I have 12 apples."]);
    let cmp = table(&sc, "compare");
    assert_eq!(
        cmp.rows[1][1], "49152",
        "the model's vocabulary, read from the GGUF"
    );
    assert!(matches!(
        sc.item("model-tokens").unwrap().provenance,
        Provenance::Model { .. }
    ));
    // Digits are split one by one before BPE runs.
    let toks = chips(&sc, "model-tokens");
    assert!(
        toks.contains(&"1".to_string()) && toks.contains(&"2".to_string()),
        "{toks:?}"
    );
    assert!(matches!(
        sc.item("published").unwrap().provenance,
        Provenance::Published { .. }
    ));
    let sc = scene_at(&mut s, "roundtrip", &["text=naïve 🙂 東京"]);
    let rt = table(&sc, "roundtrip");
    assert!(rt.rows.len() >= 6);
    assert!(rt.rows.iter().all(|r| r[3] == "yes"), "{rt:?}");
    // The emoji is not a vocabulary entry: it falls back to byte pieces.
    let fb = chips(&sc, "fallback");
    assert!(
        fb.len() > 1 && fb.iter().all(|t| t.starts_with("<0x")),
        "{fb:?}"
    );
}

#[test]
fn bad_controls_and_steps_are_one_line_errors_that_list_choices() {
    let mut s = session("tokenization");
    let e = s.go_to("nope").unwrap_err().to_string();
    assert!(e.contains("bytes, pairs, merges, model, roundtrip"), "{e}");
    let e = s.set_raw("merge=999").unwrap_err().to_string();
    assert!(e.contains("0 to 200"), "{e}");
    let e = s.set_raw("colour=red").unwrap_err().to_string();
    assert!(
        e.contains("controls: text") && e.contains("merge (0..200"),
        "{e}"
    );
    assert!(s.set_raw("merge").is_err());
    assert!(!e.contains('\n'));
    // A valid value still goes through after the refusals.
    s.set_raw("merge=2").unwrap();
    assert_eq!(s.values().get("merge"), Some(&Value::Num(2.0)));
}

#[test]
fn tokenization_scene_snapshot() {
    let mut s = session("tokenization");
    let sc = scene_at(
        &mut s,
        "merges",
        &["text=the cat sat on the mat with the hat", "merge=6"],
    );
    insta::assert_json_snapshot!(sc);
}

fn cell(t: &lav_scene::Table, row: usize, col: &str) -> f64 {
    let c = t.columns.iter().position(|x| x == col).unwrap();
    t.rows[row][c]
        .parse()
        .unwrap_or_else(|_| panic!("{:?}", t.rows[row]))
}

#[test]
fn embeddings_neighbours_are_real_rows_by_cosine() {
    let mut s = session("embeddings");
    let sc = scene_at(&mut s, "neighbours", &["word=cat", "other=dog"]);
    let pair = table(&sc, "pair");
    assert_eq!(pair.lookup("cos(a, a)", "value"), Some("1.0000"));
    // Recompute cos(cat, dog) from the model's own embedding lookup.
    let tok = lav_testkit::tokenizer();
    let (a, b) = (tok.encode(" cat").unwrap(), tok.encode(" dog").unwrap());
    let rows = lav_testkit::model().embed_rows(&[a[0], b[0]]).unwrap();
    let (ra, rb) = rows.split_at(576);
    let want = lav_labs_llm::linalg::cosine(ra, rb);
    assert_eq!(
        pair.lookup("cos(a, b)", "value").unwrap(),
        format!("{want:.4}")
    );
    let Primitive::Bars(bars) = &sc.item("nearest").unwrap().primitive else {
        panic!()
    };
    assert_eq!(bars.bars.len(), 10);
    assert!(bars.bars.windows(2).all(|w| w[0].value >= w[1].value));
    assert!(
        bars.bars[0].value < 1.0 && bars.bars[0].value > want - 1e-9
            || bars.bars.iter().any(|b| b.label == "␣dog")
    );
}

#[test]
fn embeddings_map_is_a_pca_of_the_word_groups() {
    let mut s = session("embeddings");
    let sc = scene_at(&mut s, "map", &["dims=3", "extra=seventeen"]);
    let Primitive::PointCloud(pc) = &sc.item("map").unwrap().primitive else {
        panic!()
    };
    assert_eq!(pc.dims, 3);
    assert_eq!(pc.points.len(), 49);
    assert!(pc.points.iter().all(|p| p.coords.len() == 3));
    assert!(pc.points.last().unwrap().highlight);
    let Primitive::Bars(v) = &sc.item("variance").unwrap().primitive else {
        panic!()
    };
    let shares: Vec<f64> = v.bars.iter().map(|b| b.value).collect();
    assert!(
        shares.windows(2).all(|w| w[0] >= w[1]) && shares.iter().sum::<f64>() < 100.0,
        "{shares:?}"
    );
}

#[test]
fn embeddings_positions_follow_the_published_formulas() {
    let mut s = session("embeddings");
    let sc = scene_at(&mut s, "sinusoidal", &["positions=16"]);
    let item = sc.item("pe").unwrap();
    assert!(item.provenance.is_what_if(), "the model does not use it");
    let Primitive::Heatmap(h) = &item.primitive else {
        panic!()
    };
    assert_eq!(h.rows.len(), 16);
    assert!((h.get(1, 0) - 1f32.sin()).abs() < 1e-6);
    assert!((h.get(3, 1) - 3f32.cos()).abs() < 1e-6);
    let i = 5f64;
    let want = (7.0 / 10000f64.powf(2.0 * i / 576.0)).sin() as f32;
    assert!((h.get(7, 10) - want).abs() < 1e-6);

    let sc = scene_at(&mut s, "rope", &["layer=3", "head=4", "pair=2"]);
    let f = table(&sc, "frequencies");
    assert_eq!(f.lookup("0", "θ_i (rad/position)"), Some("1.000e0"));
    assert_eq!(f.lookup("16", "θ_i (rad/position)"), Some("3.162e-3"));
    // With the model's real q and k, q·k depends only on the distance.
    let rel = table(&sc, "relative");
    let same: Vec<f64> = (0..4).map(|r| cell(rel, r, "q·k")).collect();
    assert!(
        same.iter()
            .all(|v| (v - same[0]).abs() < 1e-4 * same[0].abs().max(1.0)),
        "{same:?}"
    );
    assert_ne!(cell(rel, 4, "q·k"), same[0]);
}

#[test]
fn embeddings_sentences_use_minilm() {
    let mut s = session("embeddings");
    let sc = scene_at(&mut s, "sentences", &[]);
    let Primitive::Heatmap(h) = &sc.item("cosines").unwrap().primitive else {
        panic!()
    };
    assert!((h.get(0, 0) - 1.0).abs() < 1e-5);
    assert!(
        h.get(0, 1) > h.get(0, 2),
        "guitar sentences are closer than guitar and bank"
    );
    assert!(s.set_raw("sentences=only one").is_ok());
    assert!(s.scene().unwrap_err().to_string().contains("at least two"));
}

fn heat<'a>(scene: &'a Scene, id: &str) -> &'a lav_scene::Heatmap {
    match &scene
        .item(id)
        .unwrap_or_else(|| panic!("no item {id}"))
        .primitive
    {
        Primitive::Heatmap(h) => h,
        p => panic!("{id} is not a heatmap: {p:?}"),
    }
}

#[test]
fn attention_rows_are_causal_distributions_from_the_real_pass() {
    let mut s = session("attention");
    for (layer, head) in [(0, 0), (13, 4), (29, 8)] {
        let sc = scene_at(
            &mut s,
            "softmax",
            &[&format!("layer={layer}"), &format!("head={head}")],
        );
        let h = heat(&sc, "probs");
        let n = h.rows.len();
        assert_eq!(
            n, 11,
            "\"The cat sat on the mat because it was tired.\" is 11 tokens"
        );
        for i in 0..n {
            let sum: f64 = (0..n).map(|j| h.get(i, j) as f64).sum();
            assert!((sum - 1.0).abs() <= 1e-5, "row {i} sums to {sum}");
            for j in i + 1..n {
                assert_eq!(h.get(i, j), 0.0, "({i},{j}) above the diagonal");
            }
        }
        // The scores are the real q·k/√64 (the cell text recomputes them from q and k).
        let sc = scene_at(&mut s, "scores", &["query=7", "key=3"]);
        let Primitive::Text(t) = &sc.item("cell").unwrap().primitive else {
            panic!()
        };
        let nums: Vec<f64> = t
            .body
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter_map(|x| x.parse().ok())
            .collect();
        // "q·k = A ÷ √64 = A × 0.125 = B (the model's own score: C)"
        let (b, c) = (nums[4], nums[5]);
        assert!((b - c).abs() < 1e-3, "{}", t.body);
        assert!(heat(&sc, "scores").get(0, 1) == f32::NEG_INFINITY);
    }
}

#[test]
fn attention_what_ifs_are_labelled_and_behave() {
    let mut s = session("attention");
    let prompt = "The quick brown fox jumps over the lazy dog.";
    let set = format!("prompt={prompt}");
    let sc = scene_at(&mut s, "mask", &["causal=off", "layer=2", "head=4", &set]);
    assert!(sc.item("probs").unwrap().provenance.is_what_if());
    let h = heat(&sc, "probs");
    // Without the mask the first token reads later ones: its row is the softmax of
    // its query against every key, recomputed here from the model's own q and k.
    let ids = lav_testkit::tokenizer().encode(prompt).unwrap();
    let n = ids.len();
    let m = lav_testkit::model();
    let mut cap = lav_model::Capture::new();
    m.forward(
        &ids,
        &mut m.new_cache(),
        lav_model::Logits::Last,
        Some(&mut cap),
    )
    .unwrap();
    let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (q, k) = (flat(&cap.layers[2].q), flat(&cap.layers[2].k));
    let hd = m.config.head_dim;
    let kvh = 4 / (m.config.num_heads / m.config.num_kv_heads);
    let scores: Vec<f64> = (0..n)
        .map(|j| {
            (0..hd)
                .map(|d| q[(4 * n) * hd + d] as f64 * k[(kvh * n + j) * hd + d] as f64)
                .sum::<f64>()
                / (hd as f64).sqrt()
        })
        .collect();
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
    for (j, s) in scores.iter().enumerate() {
        let want = (s - max).exp() / z;
        assert!(
            (h.get(0, j) as f64 - want).abs() < 1e-5,
            "(0, {j}): {} vs {want}",
            h.get(0, j)
        );
    }
    assert!(h.get(0, n - 1) > 0.0);
    let sc = scene_at(&mut s, "mask", &["causal=on"]);
    assert!(!sc.item("probs").unwrap().provenance.is_what_if());
    // Dropping 1/√d makes rows peakier: lower entropy on average.
    let sc = scene_at(&mut s, "scale", &["scaled=off", "layer=5"]);
    assert!(sc.item("probs").unwrap().provenance.is_what_if());
    let Primitive::Plot(p) = &sc.item("entropy").unwrap().primitive else {
        panic!()
    };
    let mean = |i: usize| p.series[i].points.iter().map(|q| q.1).sum::<f64>();
    assert!(
        mean(1) < mean(0),
        "unscaled {} vs scaled {}",
        mean(1),
        mean(0)
    );
}

#[test]
fn attention_heads_show_grouped_query_sharing_and_the_n2_cost() {
    let mut s = session("attention");
    let sc = scene_at(&mut s, "heads", &[]);
    let Primitive::Graph(g) = &sc.item("gqa").unwrap().primitive else {
        panic!()
    };
    let to = |q: &str| g.edges.iter().find(|e| e.from == q).unwrap().to.clone();
    assert_eq!(
        [to("q0"), to("q2"), to("q3"), to("q8")],
        ["kv0", "kv0", "kv1", "kv2"]
    );
    assert_eq!(heat(&sc, "distance").rows.len(), 30);
    assert_eq!(heat(&sc, "distance").cols.len(), 9);
    assert_eq!(
        table(&sc, "dims").lookup("d_k = d / h", "value"),
        Some("64")
    );
    let sc = scene_at(&mut s, "cost", &[]);
    let t = table(&sc, "table");
    // 4·n²·d with d = 576, n = 1024.
    assert_eq!(
        t.lookup("1024", "FLOPs per layer"),
        Some(format!("{:.3e}", 4.0 * 1024f64 * 1024.0 * 576.0).as_str())
    );
}

#[test]
fn transformer_block_counts_parameters_from_tensor_shapes() {
    let mut s = session("transformer-block");
    let sc = scene_at(&mut s, "params", &[]);
    let t = table(&sc, "counts");
    assert_eq!(t.lookup("one layer", "parameters"), Some("3,540,096"));
    assert_eq!(t.lookup("one layer", "in units of d²"), Some("10.67 d²"));
    assert_eq!(t.lookup("attention", "parameters"), Some("884,736"));
    assert_eq!(t.lookup("SwiGLU MLP", "parameters"), Some("2,654,208"));
    assert_eq!(
        t.lookup("embedding (also the LM head)", "parameters"),
        Some("28,311,552")
    );
    assert_eq!(t.lookup("model total", "parameters"), Some("134,515,008"));
}

#[test]
fn transformer_block_stages_are_the_real_layer() {
    let mut s = session("transformer-block");
    let sc = scene_at(&mut s, "stages", &["layer=4", "token=2", "stage=1"]);
    let Primitive::Bars(b) = &sc.item("norms").unwrap().primitive else {
        panic!()
    };
    assert_eq!(b.bars.len(), 13);
    assert_eq!(b.bars[1].role, lav_scene::Role::Highlight);
    // The residual stream entering layer 4 is the one the residual step plots.
    let x_norm = b.bars[0].value;
    let sc = scene_at(&mut s, "residual", &["token=2"]);
    let Primitive::Plot(p) = &sc.item("stream").unwrap().primitive else {
        panic!()
    };
    assert_eq!(p.series[0].points.len(), 31);
    assert!((p.series[0].points[4].1 - x_norm).abs() < 1e-9);
}

#[test]
fn pre_norm_rerun_equals_the_capture_and_post_norm_is_a_labelled_what_if() {
    use lav_model::{Capture, Logits, NormPlacement};
    let m = lav_testkit::model();
    let tokens = lav_testkit::tokenizer()
        .encode("Residual streams add up.")
        .unwrap();
    let mut cap = Capture::new();
    m.forward(&tokens, &mut m.new_cache(), Logits::Last, Some(&mut cap))
        .unwrap();
    let pre = m.residual_stream(&tokens, NormPlacement::Pre).unwrap();
    for (l, lc) in cap.layers.iter().enumerate() {
        let want = lc.resid_in.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(pre[l], want, "layer {l}");
    }
    let post = m.residual_stream(&tokens, NormPlacement::Post).unwrap();
    assert_eq!(post[0], pre[0], "both start from the embeddings");
    assert_ne!(post[1], pre[1]);
    let mut s = session("transformer-block");
    let sc = scene_at(&mut s, "postnorm", &[]);
    assert!(sc.item("post").unwrap().provenance.is_what_if());
    assert!(!sc.item("pre").unwrap().provenance.is_what_if());
}

#[test]
fn attention_scene_snapshot() {
    let mut s = session("attention");
    let sc = scene_at(
        &mut s,
        "softmax",
        &["prompt=Hello world!", "layer=3", "head=2", "query=2"],
    );
    // Round to 4 decimals so the snapshot reads well; the kernels are bit-identical
    // across CPUs, so the digits are stable.
    let mut v = serde_json::to_value(&sc).unwrap();
    fn round(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                let x = (n.as_f64().unwrap() * 1e4).round() / 1e4;
                *v = serde_json::json!(x);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(round),
            serde_json::Value::Object(o) => o.values_mut().for_each(round),
            _ => {}
        }
    }
    round(&mut v);
    insta::assert_json_snapshot!(v);
}

fn blocks<'a>(scene: &'a Scene, id: &str) -> &'a lav_scene::Blocks {
    match &scene
        .item(id)
        .unwrap_or_else(|| panic!("no item {id}"))
        .primitive
    {
        Primitive::Blocks(b) => b,
        p => panic!("{id} is not blocks: {p:?}"),
    }
}

#[test]
fn forward_pass_paints_the_real_activations_and_the_real_next_token() {
    use lav_model::{Capture, Logits};
    let prompt = "The capital of France is";
    let m = lav_testkit::model();
    let tokens = lav_testkit::tokenizer().encode(prompt).unwrap();
    let n = tokens.len();
    // An independent pass with capture: the reference for every painted block.
    let mut cap = Capture::new();
    let logits = m
        .forward(&tokens, &mut m.new_cache(), Logits::Last, Some(&mut cap))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let flat = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let mut s = session("forward-pass");
    let set = [format!("prompt={prompt}"), "layer=7".to_string()];
    let set: Vec<&str> = set.iter().map(String::as_str).collect();

    // Every step lays out the same architecture: 2 + 30 × 33 + 3 blocks.
    let overview = scene_at(&mut s, "overview", &set);
    assert_eq!(blocks(&overview, "arch").blocks.len(), 995);
    assert!(blocks(&overview, "arch").blocks.iter().all(|b| !b.active));

    let embed = scene_at(&mut s, "embed", &set);
    let e = blocks(&embed, "arch").block("embed").unwrap();
    assert_eq!(
        e.values.as_ref().unwrap().values,
        flat(cap.embeddings.as_ref().unwrap())
    );
    assert_eq!(e.shape, vec![n, 576]);

    let qkv = scene_at(&mut s, "qkv", &set);
    let b = blocks(&qkv, "arch");
    // Key head 2 of layer 7 is the last third of the captured (kv_heads, n, 64) keys.
    let k = flat(&cap.layers[7].k);
    assert_eq!(
        b.block("L7.k.2").unwrap().values.as_ref().unwrap().values,
        k[2 * n * 64..].to_vec()
    );
    assert_eq!(b.blocks.iter().filter(|x| x.active).count(), 9 + 3 + 3);

    let att = scene_at(&mut s, "attention", &set);
    for h in 0..9 {
        let hm = blocks(&att, "arch")
            .block(&format!("L7.attn.{h}"))
            .unwrap()
            .values
            .clone()
            .unwrap();
        for r in 0..n {
            let row: f64 = (0..n).map(|c| hm.get(r, c) as f64).sum();
            assert!((row - 1.0).abs() < 1e-5, "head {h} row {r} sums to {row}");
            assert!(
                (r + 1..n).all(|c| hm.get(r, c) == 0.0),
                "head {h} sees the future"
            );
        }
    }

    let mlp = scene_at(&mut s, "mlp", &set);
    let act = blocks(&mlp, "arch").block("L7.act").unwrap();
    assert_eq!(
        act.values.as_ref().unwrap().values,
        flat(&cap.layers[7].act)
    );

    let layers = scene_at(&mut s, "layers", &set);
    let painted = blocks(&layers, "arch")
        .blocks
        .iter()
        .filter(|b| b.values.is_some())
        .count();
    assert_eq!(painted, 30);

    // The bars are the softmax of the real last-position logits, best first.
    let next = scene_at(&mut s, "next-token", &set);
    let bars = match &next.item("next").unwrap().primitive {
        Primitive::Bars(b) => b.bars.clone(),
        p => panic!("{p:?}"),
    };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&x| (x as f64 - max).exp()).sum();
    let best = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    assert!(
        bars[0].label.ends_with(&format!("({best})")),
        "{}",
        bars[0].label
    );
    assert!(
        (bars[0].value - 100.0 / z).abs() < 1e-6,
        "{} vs {}",
        bars[0].value,
        100.0 / z
    );
    assert!(bars.windows(2).all(|w| w[0].value >= w[1].value));
    assert_eq!(
        lav_testkit::tokenizer().decode(&[best as u32]).unwrap(),
        " Paris",
        "SmolLM2 knows this one"
    );
}

#[test]
fn attention_and_transformer_block_reuse_the_forward_pass_blocks() {
    let mut s = session("attention");
    let sc = scene_at(&mut s, "mask", &["prompt=Hello world!", "layer=2"]);
    let b = blocks(&sc, "layer");
    assert!(b.block("L2.attn.8").unwrap().values.is_some());
    assert!(b.block("L2.q.0").is_some_and(|q| !q.active));
    let mut t = session("transformer-block");
    let sc = scene_at(&mut t, "stages", &["layer=4", "stage=9"]);
    let active: Vec<&str> = blocks(&sc, "layer")
        .blocks
        .iter()
        .filter(|x| x.active)
        .map(|x| x.id.as_str())
        .collect();
    assert_eq!(active, ["L4.gate"]);
}
