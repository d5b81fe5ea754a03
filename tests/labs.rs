//! The lab framework and the labs, on the real model: registry, lessons, scenes, and
//! the facts each lab must get right.

use lav_labs::{Registry, Session, Status, Value, open_session};
use lav_scene::{Primitive, Provenance, Scene};
use lav_tests::{lab_context, labs_dir};

fn session(id: &str) -> Session {
    open_session(id, &lab_context()).unwrap_or_else(|e| panic!("open {id}: {e}"))
}

fn scene_at(s: &mut Session, step: &str, set: &[&str]) -> Scene {
    s.go_to(step).unwrap();
    for a in set {
        s.set_raw(a).unwrap();
    }
    s.scene().unwrap_or_else(|e| panic!("{step}: {e}"))
}

fn table<'a>(scene: &'a Scene, id: &str) -> &'a lav_scene::Table {
    match &scene
        .item(id)
        .unwrap_or_else(|| panic!("no item {id}"))
        .primitive
    {
        Primitive::Table(t) => t,
        p => panic!("{id} is not a table: {p:?}"),
    }
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
fn the_registry_lists_every_curriculum_lab_once() {
    let reg = Registry::load(&labs_dir()).unwrap();
    let sizes: Vec<(&str, usize)> = reg
        .tracks
        .iter()
        .map(|t| (t.id.as_str(), t.labs.len()))
        .collect();
    assert_eq!(
        sizes,
        [
            ("llm-internals", 9),
            ("gpu-cuda", 9),
            ("llm-serving", 7),
            ("ai-agents", 9),
            ("agent-engineering", 9),
            ("explained", 8)
        ]
    );
    let main: usize = sizes
        .iter()
        .filter(|(t, _)| *t != "explained")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(main, 43);
    let mut ids: Vec<&str> = reg.labs().map(|l| l.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 51, "lab ids are unique");
    assert_eq!(reg.get("tokenization").unwrap().status, Status::Available);
    assert_eq!(reg.get("paged-attention").unwrap().status, Status::Planned);
    let e = reg.find("nope").unwrap_err().to_string();
    assert!(
        e.contains("unknown lab `nope`") && e.contains("tokenization"),
        "{e}"
    );
}

#[test]
fn every_available_lab_builds_every_step_with_its_lesson() {
    let reg = Registry::load(&labs_dir()).unwrap();
    for id in reg.available() {
        let mut s = session(id);
        assert!(!s.lesson.title.is_empty());
        for st in s.steps().to_vec() {
            let scene = scene_at(&mut s, st.id, &[]);
            let lesson = s.lesson_step();
            assert!(
                !lesson.body.is_empty() && !lesson.try_it.is_empty(),
                "{id}/{}: prose",
                st.id
            );
            assert!(!scene.items.is_empty(), "{id}/{}: empty scene", st.id);
            for item in &scene.items {
                assert!(
                    !item.title.is_empty(),
                    "{id}/{}/{}: no title",
                    st.id,
                    item.id
                );
            }
            // Every scene serializes (that is what --json and the renderers read).
            serde_json::to_string(&scene).unwrap();
        }
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
    assert_eq!(s.values.get("merge"), Some(&Value::Num(2.0)));
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
