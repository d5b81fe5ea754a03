//! `lav labs` and `lav lab`: list the curriculum, open a lab, print or draw its scene.

use crate::{Global, resolve};
use anyhow::Result;
use clap::Args;
use lav_lab::{Catalogue, Registry, Status};
use lav_labs_agents::Endpoint;
use lav_model::{Activations, Embedder, Llama, Tokenizer, WeightFormat};
use lav_model::{Loader, ModelError};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

#[derive(Args)]
pub struct LabArgs {
    /// The lab to open (see `lav labs`).
    pub id: String,
    /// Open at this step (its id; see the lab's lesson).
    #[arg(long)]
    pub step: Option<String>,
    /// Set a control: `--set key=value`, repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the step's scene as JSON.
    #[arg(long, conflicts_with_all = ["text", "tui"])]
    pub json: bool,
    /// Print a plain-text rendering (for pipes and screen readers).
    #[arg(long, conflicts_with = "tui")]
    pub text: bool,
    /// Open the terminal UI even where a display is available.
    #[arg(long)]
    pub tui: bool,
    /// Render the step in the 3-D app, save it as a PNG and exit (needs a display, or
    /// `xvfb-run` with Mesa).
    #[arg(long, value_name = "PNG", conflicts_with_all = ["json", "text", "tui"])]
    pub screenshot: Option<std::path::PathBuf>,
    /// With --screenshot: also write where each scene item landed, as pixel
    /// rectangles in JSON (for tests).
    #[arg(long, value_name = "JSON", requires = "screenshot", hide = true)]
    pub regions: Option<std::path::PathBuf>,
    /// Render every step in the 3-D app, one PNG per step (`NN-<step>.png`) in this
    /// folder, and exit.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["json", "text", "tui", "screenshot", "step"])]
    pub screenshot_all: Option<std::path::PathBuf>,
    /// With --screenshot-all: also write the scene each step shows, as JSON (for tests).
    #[arg(long, requires = "screenshot_all", hide = true)]
    pub scenes: bool,
    /// Window size for the 3-D app and screenshots.
    #[arg(long, default_value = "1280x720", value_name = "WxH")]
    pub size: String,
    /// An OpenAI-compatible endpoint (e.g. `lav serve`'s, or vLLM's) the agent labs
    /// offer as a driver beside the local model and their recordings.
    #[arg(long, value_name = "URL")]
    pub llm_url: Option<String>,
    /// The model name to send to --llm-url.
    #[arg(long, value_name = "NAME", requires = "llm_url")]
    pub llm_model: Option<String>,
}

/// Loads models on first use, once, through the same resolution as every command.
pub struct CliLoader {
    global: Global,
    format: WeightFormat,
    model: Mutex<Option<Arc<Llama>>>,
    tokenizer: Mutex<Option<Arc<Tokenizer>>>,
    embedder: Mutex<Option<Arc<Embedder>>>,
}

impl CliLoader {
    pub fn new(global: &Global, format: WeightFormat) -> Self {
        CliLoader {
            global: global.clone(),
            format,
            model: Mutex::new(None),
            tokenizer: Mutex::new(None),
            embedder: Mutex::new(None),
        }
    }
}

fn once<T>(
    slot: &Mutex<Option<Arc<T>>>,
    load: impl FnOnce() -> Result<T>,
) -> lav_model::Result<Arc<T>> {
    let mut s = slot.lock().expect("loader lock");
    if let Some(v) = &*s {
        return Ok(v.clone());
    }
    let v = Arc::new(load().map_err(|e| ModelError::Load(format!("{e:#}")))?);
    *s = Some(v.clone());
    Ok(v)
}

impl Loader for CliLoader {
    fn model(&self) -> lav_model::Result<Arc<Llama>> {
        once(&self.model, || {
            let path = resolve::gguf_path(&self.global)?;
            Ok(Llama::load(&path, self.format)?
                .with_activations(resolve::activations(&self.global)?))
        })
    }

    fn tokenizer(&self) -> lav_model::Result<Arc<Tokenizer>> {
        once(&self.tokenizer, || resolve::tokenizer(&self.global))
    }

    fn embedder(&self) -> lav_model::Result<Arc<Embedder>> {
        once(&self.embedder, || {
            let dir = lav_store::Store::default()
                .ensure(lav_store::DEFAULT_EMBEDDER, std::io::stderr().is_terminal())?;
            Ok(Embedder::load(&dir)?)
        })
    }

    fn model_name(&self) -> String {
        let file = match (&self.global.model, &self.global.hf) {
            (Some(p), _) => std::path::Path::new(p)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "local GGUF".into()),
            (None, Some(h)) => h.clone(),
            (None, None) => "SmolLM2-135M-Instruct Q4_1".into(),
        };
        let act = match resolve::activations(&self.global) {
            Ok(Activations::Q8) => ", 8-bit activations",
            _ => "",
        };
        file + &self.format.suffix() + act
    }

    fn weights(&self) -> WeightFormat {
        self.format
    }
}

/// The composition root of the labs: every track crate's labs, opened over `loader`'s
/// models. A new track adds one line here.
pub fn catalogue(loader: Arc<dyn Loader>) -> Catalogue {
    catalogue_with(loader, None)
}

/// The catalogue with an OpenAI-compatible endpoint for the agent labs to drive.
pub fn catalogue_with(loader: Arc<dyn Loader>, endpoint: Option<Endpoint>) -> Catalogue {
    let mut c = Catalogue::default();
    lav_labs_llm::register(&mut c, loader.clone());
    lav_labs_serving::register(&mut c, loader.clone());
    lav_labs_gpu::register(&mut c, loader.clone());
    match endpoint {
        Some(e) => lav_labs_agents::register_with_endpoint(&mut c, loader, e),
        None => lav_labs_agents::register(&mut c, loader),
    }
    c
}

pub fn labs(g: &Global, json: bool) -> Result<()> {
    // Listing loads no model: the loader only loads when a lab opens.
    let cat = catalogue(Arc::new(CliLoader::new(g, WeightFormat::Stored)));
    let reg = Registry::load(&lav_lab::labs_dir()?, &cat)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&reg)?);
        return Ok(());
    }
    for t in &reg.tracks {
        println!("{}", t.title);
        for l in &t.labs {
            let mark = match l.status {
                Status::Available => "available",
                Status::Planned => "planned",
            };
            println!("  {:<34} {:<10} {}", l.id, mark, l.title);
        }
    }
    let n = reg.labs().count();
    let a = reg.available().len();
    println!("\n{a} of {n} labs available; open one with `lav lab ID`");
    Ok(())
}

/// Opens lab `id` with models from the command line's resolution, at `step` if given.
fn open_at(
    g: &Global,
    format: WeightFormat,
    id: &str,
    step: Option<&str>,
    endpoint: Option<Endpoint>,
) -> Result<lav_lab::Session> {
    let cat = catalogue_with(Arc::new(CliLoader::new(g, format)), endpoint);
    let mut session = lav_lab::open_session(id, &lav_lab::labs_dir()?, &cat)?;
    if let Some(s) = step {
        session.go_to(s)?;
    }
    Ok(session)
}

pub fn lab(g: &Global, format: WeightFormat, a: LabArgs) -> Result<()> {
    let endpoint = a.llm_url.clone().map(|url| Endpoint {
        url,
        model: a.llm_model.clone().unwrap_or_else(|| "default".into()),
    });
    let mut session = open_at(g, format, &a.id, a.step.as_deref(), endpoint)?;
    for s in &a.set {
        session.set_raw(s)?;
    }
    if a.json {
        let scene = settled(&mut session)?;
        let out = serde_json::json!({
            "lab": session.entry().id,
            "step": session.step().id,
            "title": session.lesson_step().title,
            "controls": session.step().controls,
            "values": session.values(),
            "scene": scene,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let size = lav_viz::parse_size(&a.size)?;
    if let Some(dir) = a.screenshot_all {
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        let out = lav_viz::open(
            session,
            lav_viz::Mode::ScreenshotAll {
                dir: dir.clone(),
                scenes: a.scenes,
            },
            size,
        )?;
        eprintln!("saved {} screenshots in {}", out.saved.len(), dir.display());
        return Ok(());
    }
    if let Some(path) = a.screenshot {
        lav_viz::open(
            session,
            lav_viz::Mode::Screenshot {
                path: path.clone(),
                regions: a.regions,
            },
            size,
        )?;
        eprintln!("saved {}", path.display());
        return Ok(());
    }
    let interactive = a.tui || (!a.text && std::io::stdout().is_terminal());
    if interactive && !a.tui && !a.text {
        if lav_viz::display_available() {
            lav_viz::open(session, lav_viz::Mode::Interactive, size)?;
            return Ok(());
        }
        eprintln!("{}", lav_viz::NO_DISPLAY);
    }
    // The terminal UI where there is a terminal; pipes get text.
    if interactive {
        return Ok(lav_tui::run(session)?);
    }
    let scene = settled(&mut session)?;
    let st = session.lesson_step();
    println!(
        "# {} — {} [{}]",
        session.lesson().title,
        st.title,
        session.step().id
    );
    println!("\n{}\n", st.body);
    if !st.try_it.is_empty() {
        println!("Try it: {}\n", st.try_it);
    }
    print!("{}", lav_scene::render_text(&scene));
    Ok(())
}

/// The step's scene once any background work (a generation, a re-quantization) has
/// finished, with its progress on stderr when that is a terminal.
fn settled(session: &mut lav_lab::Session) -> lav_lab::Result<lav_scene::Scene> {
    let tty = std::io::stderr().is_terminal();
    let mut shown = false;
    let scene = session.scene_settled(|s| {
        if !tty {
            return;
        }
        for item in &s.items {
            if let lav_scene::Primitive::Progress(p) = &item.primitive {
                eprint!("\r\x1b[2K{:>3.0}% {}", p.fraction() * 100.0, p.label);
                shown = true;
            }
        }
    });
    if shown {
        eprint!("\r\x1b[2K");
    }
    scene
}

#[derive(serde::Serialize)]
struct LabTiming {
    lab: String,
    /// Opening the lab with a fresh loader (model files already in the page cache)
    /// until its first scene is ready.
    first_frame_ms: f64,
    /// The slowest scene recompute after a slider, toggle or choice change, once the
    /// step's model pass is cached.
    worst_change_ms: f64,
    worst_change: String,
    changes_timed: usize,
    /// The slowest scene after typing new text (a new prompt reruns the model).
    worst_input_ms: f64,
    worst_input: String,
    /// The slowest change whose work ran in the background (the UI showed progress
    /// meanwhile): time until its result was on screen.
    worst_background_ms: f64,
    worst_background: String,
}

/// `lav bench --frames LAB`: frame time of a lab step in the 3-D app, against the same
/// window with nothing drawn.
pub fn bench_frames(
    g: &Global,
    format: WeightFormat,
    lab: &str,
    step: Option<&str>,
    frames: u32,
    json: bool,
) -> Result<()> {
    let session = open_at(g, format, lab, step, None)?;
    let step_id = session.step().id.to_string();
    let b = lav_viz::open(session, lav_viz::Mode::Bench { frames }, (1280, 720))?
        .bench
        .ok_or_else(|| anyhow::anyhow!("the frame benchmark ended before it finished"))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "lab": lab, "step": step_id, "frames": b })
            )?
        );
    } else {
        println!(
            "{lab} / {step_id}: {} frames at 1280x720 on {} (MSAA {}), {} entities\n  scene  {:.2} ms mean, {:.2} ms p95\n  empty  {:.2} ms mean (same window, nothing drawn)\n  ratio  {:.2}",
            b.frames,
            b.adapter,
            if b.msaa { "4×" } else { "off" },
            b.entities,
            b.scene_ms_mean,
            b.scene_ms_p95,
            b.empty_ms_mean,
            b.ratio
        );
    }
    Ok(())
}

/// Text the lab benchmark types into text controls: a prompt, words, and two
/// sentences separated by `|`, so every text control accepts it.
const NEW_INPUT: &str = "A dog ran home. | A cat sat down.";

/// `lav bench --labs`: the two lab speed targets, measured on every available lab.
pub fn bench_labs(g: &Global, format: WeightFormat, json: bool) -> Result<()> {
    use lav_lab::{ControlKind, Value};
    use std::time::Instant;
    let dir = lav_lab::labs_dir()?;
    let ids: Vec<String> = Registry::load(&dir, &catalogue(Arc::new(CliLoader::new(g, format))))?
        .available()
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Warm-up: page the model files in, as a second run of `lav lab` would find them.
    {
        let warm = CliLoader::new(g, format);
        warm.model()?;
        warm.embedder()?;
    }
    let mut rows = Vec::new();
    for id in ids {
        let cat = catalogue(Arc::new(CliLoader::new(g, format)));
        let t0 = Instant::now();
        let mut s = lav_lab::open_session(&id, &dir, &cat)?;
        // The first frame is what the learner sees first: a step whose work runs in
        // the background shows its progress at once.
        s.scene()?;
        let first = t0.elapsed().as_secs_f64() * 1e3;
        let (mut worst, mut what, mut n) = (0f64, String::new(), 0);
        let (mut worst_in, mut what_in) = (0f64, String::new());
        let (mut worst_bg, mut what_bg) = (0f64, String::new());
        for step in s.steps().iter().map(|st| st.id).collect::<Vec<_>>() {
            s.go_to(step)?;
            settled(&mut s)?; // the step's pass, cached from here on
            let controls = s.step().controls.clone();
            for c in controls {
                let before = s.value(c.key)?;
                let new = match &c.kind {
                    ControlKind::Slider { min, max, step } => {
                        let v = s.values().num(&c);
                        Value::Num(if v + step <= *max {
                            v + step
                        } else {
                            (v - step).max(*min)
                        })
                    }
                    ControlKind::Toggle => Value::Bool(!s.values().flag(&c)),
                    ControlKind::Choice { options } => Value::Text(
                        options
                            .iter()
                            .find(|o| o.as_str() != s.values().text(&c))
                            .cloned()
                            .unwrap_or_default(),
                    ),
                    // New text reruns the model on new input: timed on its own.
                    ControlKind::Text { .. } => Value::Text(NEW_INPUT.into()),
                    ControlKind::Button { .. } => continue,
                };
                let is_text = matches!(c.kind, ControlKind::Text { .. });
                if let Err(e) = s.set(c.key, new) {
                    // A text control that refuses this text (too long for a type
                    // name): its one-line error is the whole answer.
                    if is_text {
                        continue;
                    }
                    return Err(e.into());
                }
                let t = Instant::now();
                let first = s.scene();
                let ms = t.elapsed().as_secs_f64() * 1e3;
                if is_text && first.is_err() {
                    // A control that refuses this text (a type name, not a prompt):
                    // its one-line error is the whole answer; nothing to time.
                    s.set(c.key, before)?;
                    continue;
                }
                first?;
                if s.busy() {
                    // The UI got a progress scene in `ms`; the work itself runs on.
                    settled(&mut s)?;
                    let bg = t.elapsed().as_secs_f64() * 1e3;
                    if bg > worst_bg {
                        worst_bg = bg;
                        what_bg = format!("{step}: {}", c.key);
                    }
                }
                if is_text {
                    if ms > worst_in {
                        worst_in = ms;
                        what_in = format!("{step}: {}", c.key);
                    }
                } else {
                    n += 1;
                    if ms > worst {
                        worst = ms;
                        what = format!("{step}: {}", c.key);
                    }
                }
                s.set(c.key, before)?;
                settled(&mut s)?; // back to the cached state before the next change
            }
        }
        rows.push(LabTiming {
            lab: id,
            first_frame_ms: first,
            worst_change_ms: worst,
            worst_change: what,
            changes_timed: n,
            worst_input_ms: worst_in,
            worst_input: what_in,
            worst_background_ms: worst_bg,
            worst_background: what_bg,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<20} {:>12} {:>10} {:>16} {:>10}  slowest change",
        "lab", "first frame", "of 2 s", "control change", "of 50 ms"
    );
    for r in &rows {
        println!(
            "{:<20} {:>9.0} ms {:>9.2}x {:>13.1} ms {:>9.2}x  {} ({} changes)",
            r.lab,
            r.first_frame_ms,
            r.first_frame_ms / 2000.0,
            r.worst_change_ms,
            r.worst_change_ms / 50.0,
            r.worst_change,
            r.changes_timed
        );
    }
    println!("\nnew text typed into a control (reruns the model on the new input):");
    for r in &rows {
        println!(
            "{:<20} {:>9.1} ms  {}",
            r.lab, r.worst_input_ms, r.worst_input
        );
    }
    println!("\nwork run in the background (re-generate, re-quantize; progress shown meanwhile):");
    for r in rows.iter().filter(|r| r.worst_background_ms > 0.0) {
        println!(
            "{:<20} {:>9.1} ms  {}",
            r.lab, r.worst_background_ms, r.worst_background
        );
    }
    Ok(())
}
