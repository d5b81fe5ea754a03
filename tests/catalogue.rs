//! The catalogue the command line assembles from every track: the registry lists
//! each curriculum lab once, and every available lab builds every step with its lesson
//! and arranges it in the window without overlap.

use lav_lab::{Registry, Status};
use lav_tests::{TRACKS, catalogue, labs_dir, repo_dir, scene_at, session};
use lav_viz::presentation::{CameraPlan, LayoutParams};
use lav_viz::views::{self, WINDOWS};

#[test]
fn the_registry_lists_every_curriculum_lab_once() {
    let reg = Registry::load(&labs_dir(), &catalogue(TRACKS)).unwrap();
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
            ("explained", 8),
            ("walkthroughs", 1)
        ]
    );
    let main: usize = sizes
        .iter()
        .filter(|(t, _)| !["explained", "walkthroughs"].contains(t))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(main, 43);
    let mut ids: Vec<&str> = reg.labs().map(|l| l.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 52, "lab ids are unique");
    assert_eq!(reg.get("tokenization").unwrap().status, Status::Available);
    assert_eq!(
        reg.get("paged-attention").unwrap().status,
        Status::Available
    );
    assert_eq!(
        reg.get("speculative-decoding").unwrap().status,
        Status::Planned
    );
    let e = reg.find("nope").unwrap_err().to_string();
    assert!(
        e.contains("unknown lab `nope`") && e.contains("tokenization"),
        "{e}"
    );
}

#[test]
fn every_available_lab_builds_every_step_with_its_lesson() {
    let reg = Registry::load(&labs_dir(), &catalogue(TRACKS)).unwrap();
    let scenes = repo_dir().join("scenes");
    let params = LayoutParams::load(&scenes).unwrap();
    let facts = lav_lab::published::all(&labs_dir()).unwrap();
    for id in reg.available() {
        let cameras = CameraPlan::load(&scenes, id).unwrap();
        let mut s = session(id);
        assert!(!s.lesson().title.is_empty());
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
            // A figure labelled published is a row of labs/data/published.toml, where
            // it can be checked against its source: never an inline claim.
            for item in &scene.items {
                if let lav_scene::Provenance::Published { citation } = &item.provenance {
                    let lav_scene::Primitive::Table(t) = &item.primitive else {
                        panic!(
                            "{id}/{}/{}: published, but not a table of facts",
                            st.id, item.id
                        )
                    };
                    for row in &t.rows {
                        assert!(
                            facts.iter().any(|f| f.lab == id
                                && [&f.label, &f.value, &f.source] == [&row[0], &row[1], &row[2]]
                                && citation.contains(&f.source)),
                            "{id}/{}/{}: {row:?} is not in labs/data/published.toml",
                            st.id,
                            item.id
                        );
                    }
                }
            }
            // Every scene serializes (that is what --json and the renderers read).
            serde_json::to_string(&scene).unwrap();
            // The window arranges it: every item shown once, no view or text over
            // another, at the sizes a learner uses; the scene file names real items.
            let arrangement = cameras.arrangement(st.id);
            for area in WINDOWS {
                let plan = views::plan(&scene, area, arrangement.as_ref(), &params.panels);
                plan.check(&scene, area, &params.panels)
                    .unwrap_or_else(|e| panic!("{id}/{}: {e}", st.id));
            }
            for name in arrangement.iter().flat_map(|a| a.rows.iter().flatten()) {
                assert!(
                    name == views::SPATIAL || scene.item(name).is_some(),
                    "scenes/{id}.toml: step {} names `{name}`, which it does not show",
                    st.id
                );
            }
        }
    }
}
