//! The 3-D app: draws a lab step's [`lav_scene::Scene`] with Bevy, beside an egui
//! panel with the lesson, the step list and the lab's controls; saves PNG screenshots.
//!
//! - [`views`] types each item by its data (3-D, plot, bars, timeline, table, text,
//!   tokens…) and arranges the step's panels in the window: pure, tested without a GPU.
//! - `panels` draws the 2-D panels with egui, egui_plot and egui_extras.
//! - [`layout`] maps the spatial items to shapes (boxes, data-texture grids, lines, labels):
//!   pure, tested without a GPU.
//! - [`pick`] finds what is under the pointer: pure ray geometry.
//! - [`presentation`] reads `scenes/`: layout sizes and each lab's camera per step.
//! - `app` is the only Bevy code: shapes → entities, camera, hover, panel, screenshots.
//!
//! **Architecture invariant:** this crate draws scenes and forwards control changes to
//! the lab's `Session`; it never computes a number a learner reads. It depends on
//! `lav-lab` (the framework: sessions, controls) and `lav-scene`, Bevy and bevy_egui,
//! never on a lab or the model, so a lab change never rebuilds it; nothing depends on it
//! but the command line.

mod app;
pub mod layout;
mod panels;
pub mod pick;
pub mod presentation;
pub mod views;

pub use app::{FrameBench, HeatmapMaterial, Mode, Outcome};
use lav_lab::Session;
use std::path::PathBuf;

/// What `lav lab` prints when no window can be opened and nothing else was asked.
pub const NO_DISPLAY: &str = "no display found (DISPLAY and WAYLAND_DISPLAY are unset): showing the terminal UI; run under a desktop session for the 3-D window, or `xvfb-run` for --screenshot";

/// Whether a window can be opened here: a desktop session on Linux; always elsewhere.
pub fn display_available() -> bool {
    if cfg!(any(target_os = "linux", target_os = "freebsd")) {
        ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()))
    } else {
        true
    }
}

/// Parses `1280x720`.
pub fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| anyhow::anyhow!("--size {s}: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
    let p = |v: &str| -> anyhow::Result<u32> {
        let n: u32 = v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--size {s}: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
        anyhow::ensure!(
            (64..=8192).contains(&n),
            "--size {s}: each side must be 64 to 8192 pixels"
        );
        Ok(n)
    };
    Ok((p(w)?, p(h)?))
}

/// Opens the window for `session` and runs it in `mode` (a window, a screenshot or a
/// frame-time benchmark). Errors are one line that says what to do.
pub fn open(session: Session, mode: Mode, size: (u32, u32)) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        display_available(),
        "no display found (DISPLAY and WAYLAND_DISPLAY are unset): use --tui, or run under `xvfb-run` with Mesa installed (apt install xvfb mesa-vulkan-drivers)"
    );
    let scenes: PathBuf = presentation::scenes_dir()?;
    let params = presentation::LayoutParams::load(&scenes)?;
    let plan = presentation::CameraPlan::load(&scenes, &session.entry().id)?;
    // A camera entry for a step the lab no longer has is a stale file, not a silent no-op.
    session.check_step_ids(
        &format!("scenes/{}.toml", session.entry().id),
        plan.step.keys().map(String::as_str),
    )?;
    let opts = app::Options {
        mode,
        size,
        scenes,
        plan,
        params,
    };
    // Bevy and wgpu report a missing GPU adapter or a dead display by panicking; turn
    // that into the one-line error every other failure gets.
    let prev = std::panic::take_hook();
    let caught = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let sink = caught.clone();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        if let Ok(mut s) = sink.lock() {
            s.get_or_insert(msg);
        }
    }));
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| app::run(session, opts)));
    std::panic::set_hook(prev);
    let first_panic = caught.lock().ok().and_then(|s| s.clone());
    match run {
        Ok(out) => match (out.error.clone(), first_panic) {
            (Some(e), _) => anyhow::bail!("{e}"),
            (None, Some(p)) => anyhow::bail!("{}", explain(&p)),
            (None, None) => Ok(out),
        },
        Err(_) => anyhow::bail!("{}", explain(first_panic.as_deref().unwrap_or("unknown"))),
    }
}

/// The advice for a failure inside Bevy, keyed on what it said.
fn explain(panic: &str) -> String {
    let first = panic.lines().next().unwrap_or(panic);
    let lower = panic.to_lowercase();
    if lower.contains("gpu") || lower.contains("adapter") || lower.contains("vulkan") {
        format!(
            "no usable GPU adapter ({first}): use --tui, or install Mesa's software drivers (apt install mesa-vulkan-drivers)"
        )
    } else if lower.contains("event loop")
        || lower.contains("display")
        || lower.contains("x11")
        || lower.contains("wayland")
    {
        format!("cannot open a window ({first}): use --tui, or run under `xvfb-run`")
    } else {
        format!("the 3-D window failed ({first}): use --tui")
    }
}
