//! The 3-D app end to end: `lav lab attention --step S --screenshot out.png` under
//! Xvfb with Mesa's software Vulkan (lavapipe), as CI runs it. The images must show
//! something (not one colour), differ between steps, and the heatmap's region must
//! hold more than one colour.
//!
//! Needs `xvfb-run` and Mesa (`.ci/run` installs xvfb and mesa-vulkan-drivers). Set
//! LAV_SKIP_SCREENSHOTS=1 to skip on a machine without them; otherwise their absence
//! fails the test rather than passing it silently.

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
fn attention_steps_render_under_xvfb() {
    if std::env::var_os("LAV_SKIP_SCREENSHOTS").is_some() {
        eprintln!("LAV_SKIP_SCREENSHOTS is set: not rendering");
        return;
    }
    let xvfb = Command::new("xvfb-run").arg("--help").output();
    assert!(
        xvfb.is_ok(),
        "xvfb-run not found: apt install xvfb mesa-vulkan-drivers (or set LAV_SKIP_SCREENSHOTS=1)"
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
