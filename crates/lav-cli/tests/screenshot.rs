//! The 3-D app end to end: `lav lab attention --step S --screenshot out.png` under
//! Xvfb with Mesa's software Vulkan (lavapipe), as CI runs it. The images must show
//! something (not one colour), differ between steps, and the heatmap's region must
//! hold more than one colour.
//!
//! Needs `xvfb-run`, Mesa and tesseract (`.ci/run` installs xvfb, mesa-vulkan-drivers
//! and tesseract-ocr); without them these tests fail, never pass unrun. On a machine
//! without them, leave them out with `cargo test -- --skip under_xvfb`, which cargo
//! reports as filtered out.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;

struct Png {
    w: usize,
    h: usize,
    rgb: Vec<[u8; 3]>,
}

fn read_png(p: &Path) -> Png {
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(p).expect("png"),
    ));
    let mut r = dec.read_info().expect("png header");
    let mut buf = vec![0; r.output_buffer_size().expect("size")];
    let info = r.next_frame(&mut buf).expect("png frame");
    let ch = info.color_type.samples();
    assert!(ch >= 3, "colour image expected");
    let rgb = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    Png {
        w: info.width as usize,
        h: info.height as usize,
        rgb,
    }
}

fn colours_in(img: &Png, rect: [f32; 4]) -> usize {
    let x0 = (rect[0].max(0.0) as usize).min(img.w);
    let x1 = (rect[2].max(0.0) as usize).min(img.w);
    let y0 = (rect[1].max(0.0) as usize).min(img.h);
    let y1 = (rect[3].max(0.0) as usize).min(img.h);
    let mut set = HashSet::new();
    for y in y0..y1 {
        for x in x0..x1 {
            set.insert(img.rgb[y * img.w + x]);
        }
    }
    set.len()
}

#[test]
fn under_xvfb_attention_steps_render() {
    let xvfb = Command::new("xvfb-run").arg("--help").output();
    assert!(
        xvfb.is_ok(),
        "xvfb-run not found: apt install xvfb mesa-vulkan-drivers (or leave these tests out with -- --skip under_xvfb)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    for (step, heatmap) in [("scores", "scores"), ("softmax", "probs")] {
        let png = dir.path().join(format!("{step}.png"));
        let regions = dir.path().join(format!("{step}.json"));
        let out = Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x720x24"])
            .arg(env!("CARGO_BIN_EXE_lav"))
            .args(["lab", "attention", "--step", step, "--size", "960x540"])
            .arg("--screenshot")
            .arg(&png)
            .arg("--regions")
            .arg(&regions)
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .expect("run xvfb-run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{step}: {err}");
        assert!(!err.contains("panicked"), "{step}: {err}");
        let img = read_png(&png);
        assert_eq!((img.w, img.h), (960, 540));
        let all = colours_in(&img, [0.0, 0.0, 960.0, 540.0]);
        assert!(all > 1, "{step}: the image is a single colour");
        let rects: BTreeMap<String, [f32; 4]> =
            serde_json::from_str(&std::fs::read_to_string(&regions).unwrap()).unwrap();
        let cells = format!("{heatmap}/cells");
        let r = rects
            .get(&cells)
            .unwrap_or_else(|| panic!("{step}: no region `{cells}` in {rects:?}"));
        assert!(
            r[2] - r[0] > 20.0 && r[3] - r[1] > 20.0,
            "{step}: heatmap too small on screen: {r:?}"
        );
        let inside = colours_in(&img, *r);
        assert!(
            inside > 4,
            "{step}: the heatmap region shows {inside} colours"
        );
        images.push(img);
    }
    // A display but no GPU adapter of any backend: one line, no panic.
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 640x480x24"])
        .arg(env!("CARGO_BIN_EXE_lav"))
        .args(["lab", "attention", "--screenshot"])
        .arg(dir.path().join("none.png"))
        .env("WGPU_BACKEND", "dx12")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run xvfb-run");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("XDG_RUNTIME_DIR"))
        .collect();
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("--tui") && lines[0].contains("mesa"),
        "{err}"
    );
    let differ = images[0]
        .rgb
        .iter()
        .zip(&images[1].rgb)
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        differ > images[0].rgb.len() / 100,
        "the two steps look the same ({differ} pixels differ)"
    );
}

/// The steps whose key numbers OCR must read, one per lab: every number-bearing cell
/// of the step's tables (and these words) as the scene written beside the PNG has
/// them. A table drawn as a blank slab finds none.
const OCR: &[(&str, &str, &[&str])] = &[
    ("tokenization", "model", &[]),
    ("embeddings", "lookup", &[]),
    ("attention", "cost", &[]),
    ("transformer-block", "params", &[]),
    ("generation", "filters", &[]),
    ("kv-cache", "recompute", &[]),
    ("quantization", "weights", &[]),
    ("batching", "invariance", &["identical"]),
    ("paged-attention", "allocator", &[]),
    ("inference-engine", "memory", &["blocks"]),
    ("serving-metrics", "lifecycle", &["TPOT"]),
    ("forward-pass", "overview", &[]),
    ("agent-loop-state", "loop", &[]),
    ("tool-use", "parallel", &[]),
    ("retrieval-rag", "metrics", &[]),
    ("security-trifecta", "defenses", &["LEAKS"]),
    ("evals-diagnostics", "judge", &["TNR"]),
    ("memory-access-patterns", "coalescing", &[]),
    ("execution-model", "occupancy", &[]),
    ("operator-fusion", "chain", &[]),
    ("tensor-cores", "formats", &["E4M3"]),
];

/// The first number in a cell (`917 ms` → `917`, `1,234` → `1234`), when it has at
/// least two digits: a lone digit would be found anywhere.
fn number_in(cell: &str) -> Option<String> {
    let t: String = cell
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    let t = t.trim_end_matches('.').to_string();
    (t.chars().filter(char::is_ascii_digit).count() >= 2).then_some(t)
}

/// Text tesseract reads in `png`: grey, inverted to dark on light and doubled in size
/// first, which is what it reads best.
fn ocr(png: &Path) -> String {
    let img = read_png(png);
    let (w, h) = (img.w * 2, img.h * 2);
    let mut pgm = format!("P5\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            let [r, g, b] = img.rgb[(y / 2) * img.w + x / 2];
            let grey = (r as u32 * 3 + g as u32 * 6 + b as u32) / 10;
            pgm.push(255 - grey as u8);
        }
    }
    let path = png.with_extension("pgm");
    std::fs::write(&path, pgm).unwrap();
    let out = Command::new("tesseract")
        .arg(&path)
        .arg("stdout")
        .args(["--psm", "11"])
        .output()
        .expect("run tesseract");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace(',', "")
}

#[test]
fn under_xvfb_every_step_of_every_lab_renders_and_ocr_reads_its_numbers() {
    assert!(
        Command::new("tesseract").arg("--version").output().is_ok(),
        "tesseract not found: apt install tesseract-ocr (or leave these tests out with -- --skip under_xvfb)"
    );
    let reg = lav_lab::Registry::load(
        &lav_tests::labs_dir(),
        &lav_tests::catalogue(lav_tests::TRACKS),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut read = 0;
    for id in reg.available() {
        let out_dir = dir.path().join(id);
        let out = Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 1280x720x24"])
            .arg(env!("CARGO_BIN_EXE_lav"))
            .args([
                "lab",
                id,
                "--size",
                "1280x720",
                "--scenes",
                "--screenshot-all",
            ])
            .arg(&out_dir)
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .expect("run xvfb-run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{id}: {err}");
        assert!(!err.contains("panicked"), "{id}: {err}");
        let steps = lav_tests::session(id).steps().to_vec();
        for (k, st) in steps.iter().enumerate() {
            let png = out_dir.join(format!("{:02}-{}.png", k + 1, st.id));
            assert!(png.is_file(), "{id}: no screenshot of step {}", st.id);
            let img = read_png(&png);
            assert_eq!((img.w, img.h), (1280, 720), "{}", png.display());
            assert!(
                colours_in(&img, [0.0, 0.0, 1280.0, 720.0]) > 8,
                "{}: nearly one colour",
                png.display()
            );
        }
        let Some((_, step, words)) = OCR.iter().find(|(l, _, _)| *l == id) else {
            continue;
        };
        let k = steps.iter().position(|s| s.id == *step).expect("OCR step");
        let base = out_dir.join(format!("{:02}-{step}", k + 1));
        let scene: lav_scene::Scene =
            serde_json::from_str(&std::fs::read_to_string(base.with_extension("json")).unwrap())
                .unwrap();
        let mut keys: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        for item in &scene.items {
            if let lav_scene::Primitive::Table(t) = &item.primitive {
                keys.extend(t.rows.iter().flatten().filter_map(|c| number_in(c)));
            }
        }
        keys.sort();
        keys.dedup();
        assert!(!keys.is_empty(), "{id}/{step}: no key numbers to look for");
        let text = ocr(&base.with_extension("png"));
        let found: Vec<&String> = keys.iter().filter(|k| text.contains(k.as_str())).collect();
        let missing: Vec<&String> = keys.iter().filter(|k| !text.contains(k.as_str())).collect();
        assert!(
            found.len() * 2 >= keys.len() && words.iter().all(|w| text.contains(w)),
            "{id}/{step}: OCR found {found:?} but not {missing:?} in:\n{text}"
        );
        read += 1;
    }
    assert_eq!(read, OCR.len(), "a lab in the OCR list is not available");
}

#[test]
fn numbers_are_taken_from_cells_as_ocr_would_read_them() {
    assert_eq!(number_in("917 ms").as_deref(), Some("917"));
    assert_eq!(number_in("1,234 tokens").as_deref(), Some("1234"));
    assert_eq!(number_in("22.5 KiB").as_deref(), Some("22.5"));
    assert_eq!(number_in("4"), None);
    assert_eq!(number_in("LEAKS"), None);
}
