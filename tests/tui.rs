//! The terminal UI draws every step of every available lab into ratatui's test
//! backend, and the frame holds what the learner should see.

use lav_lab::Registry;
use lav_tests::{TRACKS, catalogue, labs_dir, session};
use lav_tui::{App, draw};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyModifiers};

fn frame_text(app: &App) -> String {
    let mut t = Terminal::new(TestBackend::new(160, 48)).unwrap();
    t.draw(|f| draw(f, app)).unwrap();
    let buf = t.backend().buffer();
    let mut s = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

#[test]
fn every_step_of_every_lab_draws_its_prose_and_scene() {
    let reg = Registry::load(&labs_dir(), &catalogue(TRACKS)).unwrap();
    for id in reg.available() {
        let mut app = App::new(session(id));
        for i in 0..app.session.steps().len() {
            let text = frame_text(&app);
            let st = app.session.lesson_step().clone();
            assert!(
                text.contains(&app.session.lesson().title),
                "{id}: title\n{text}"
            );
            assert!(
                text.contains(&format!("step {}/", i + 1)),
                "{id}: step counter\n{text}"
            );
            assert!(
                text.contains(&st.title),
                "{id}/{}: step title\n{text}",
                st.id
            );
            assert!(text.contains("Try it:"), "{id}/{}: try it\n{text}", st.id);
            let scene = app
                .scene()
                .unwrap_or_else(|e| panic!("{id}/{}: {e}", st.id))
                .clone();
            let first = &scene.items[0];
            assert!(
                text.contains(&first.title),
                "{id}/{}: item title\n{text}",
                st.id
            );
            let prov: String = first.provenance.label().chars().take(20).collect();
            assert!(
                text.contains(&prov),
                "{id}/{}: provenance {prov}\n{text}",
                st.id
            );
            app.key(KeyCode::Right, KeyModifiers::NONE);
        }
    }
}

#[test]
fn keys_change_steps_and_controls() {
    let mut app = App::new(session("tokenization"));
    app.key(KeyCode::Right, KeyModifiers::NONE);
    assert_eq!(app.session.step().id, "pairs");
    // Focus the merge slider and raise it twice.
    app.key(KeyCode::Down, KeyModifiers::NONE);
    app.key(KeyCode::Char('+'), KeyModifiers::NONE);
    app.key(KeyCode::Char('+'), KeyModifiers::NONE);
    let text = frame_text(&app);
    assert!(text.contains("Merges: 12"), "{text}");
    assert!(text.contains("after 12 merges"), "{text}");
    // Type a new text into the text control.
    app.key(KeyCode::Up, KeyModifiers::NONE);
    app.key(KeyCode::Enter, KeyModifiers::NONE);
    for c in "aaabdaaabac".chars() {
        app.key(KeyCode::Char(c), KeyModifiers::NONE);
    }
    app.key(KeyCode::Enter, KeyModifiers::NONE);
    let text = frame_text(&app);
    assert!(text.contains("Out of pairs"), "{text}");
    app.key(KeyCode::Char('?'), KeyModifiers::NONE);
    assert!(frame_text(&app).contains("previous / next step"));
    app.key(KeyCode::Char('x'), KeyModifiers::NONE);
    app.key(KeyCode::Char('q'), KeyModifiers::NONE);
    assert!(app.quit);
}

#[test]
fn background_work_shows_a_gauge_then_its_result() {
    let mut s = session("generation");
    s.go_to("sample").unwrap();
    s.set_raw("seed=11").unwrap();
    let mut app = App::new(s);
    // The step answers at once with progress while the model generates.
    assert!(app.session.busy());
    let first = frame_text(&app);
    assert!(first.contains("Running the model"), "{first}");
    let t = std::time::Instant::now();
    while app.tick() {
        assert!(t.elapsed().as_secs() < 60, "generation never finished");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let done = frame_text(&app);
    assert!(
        done.contains("The continuation") && !done.contains("Running the model"),
        "{done}"
    );
}

#[test]
#[ignore = "prints a frame for a human to look at"]
fn print_frames() {
    let id = std::env::var("LAB").unwrap_or_else(|_| "tokenization".into());
    let mut app = App::new(session(&id));
    for _ in 0..app.session.steps().len() {
        println!("{}", frame_text(&app));
        app.key(KeyCode::Right, KeyModifiers::NONE);
    }
}
