//! The Bevy side: shapes to entities, the orbit camera on rails, hover, the egui
//! panel, screenshots and the frame-time benchmark. Everything it shows comes from
//! `layout`; controls go back through the lab's `Session`, never computed here.

use crate::layout::{self, Layout, Plane, Shape};
use crate::panels::{self, Link, drawable};
use crate::pick;
use crate::presentation::{CameraPlan, LayoutParams, Pose};
use crate::views::{self, Plan};
use bevy::asset::RenderAssetUsages;
use bevy::camera::CameraOutputMode;
use bevy::camera::Viewport;
use bevy::camera::visibility::RenderLayers;
use bevy::core_pipeline::tonemapping::Tonemapping;
use bevy::image::ImageSampler;
use bevy::input::mouse::{AccumulatedMouseMotion, AccumulatedMouseScroll};
use bevy::mesh::{Indices, PrimitiveTopology};
use bevy::prelude::*;
use bevy::render::render_resource::BlendState;
use bevy::render::render_resource::{AsBindGroup, Extent3d, TextureDimension, TextureFormat};
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured};
use bevy::shader::ShaderRef;
use bevy_egui::{
    EguiContexts, EguiGlobalSettings, EguiPlugin, EguiPrimaryContextPass, PrimaryEguiContext, egui,
};
use lav_lab::{ControlKind, Session, Value, Values};
use lav_scene::{Rgb, Scene};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Frames a step of `--screenshot-all` waits, once its camera has arrived and no
/// pipeline is compiling, before it is shot (the first waits longer).
const STEP_SETTLE: u32 = 3;

/// Render pipelines still compiling (a step's first heatmap, say), counted in the
/// render world every frame: a screenshot waits until there are none, so what it
/// shows is the step fully drawn, not the frame count that happened to suffice.
#[derive(Resource, Clone, Default)]
struct PendingPipelines(Arc<AtomicUsize>);

fn count_pending(
    cache: Res<bevy::render::render_resource::PipelineCache>,
    pending: Res<PendingPipelines>,
) {
    pending
        .0
        .store(cache.waiting_pipelines().count(), Ordering::Relaxed);
}

/// How long the camera takes to reach a step's pose.
const TRANSITION: f32 = 0.3;
const FOV: f32 = std::f32::consts::FRAC_PI_4;
const BACKGROUND: Color = Color::srgb(0.07, 0.07, 0.09);

/// What the app is asked to do.
#[derive(Clone, Debug)]
pub enum Mode {
    /// A window the learner drives.
    Interactive,
    /// Render the step, save a PNG, exit. With `regions`, also write where each item
    /// of the scene landed on the image (pixel rectangles, JSON), for tests.
    Screenshot {
        path: std::path::PathBuf,
        regions: Option<std::path::PathBuf>,
    },
    /// Render every step in turn from the first, saving `NN-<step>.png` in `dir`; with
    /// `scenes`, also the scene each shows as `NN-<step>.json` (for tests).
    ScreenshotAll {
        dir: std::path::PathBuf,
        scenes: bool,
    },
    /// Render `frames` frames of the step, then the same count with nothing drawn, and
    /// report both (the second is the reference the first is divided by).
    Bench { frames: u32 },
}

/// The outcome the caller reads after the window closes.
#[derive(Default, Debug, Clone)]
pub struct Outcome {
    pub error: Option<String>,
    pub bench: Option<FrameBench>,
    /// The PNGs written.
    pub saved: Vec<std::path::PathBuf>,
}

#[derive(Default, Debug, Clone, serde::Serialize)]
pub struct FrameBench {
    pub frames: u32,
    pub scene_ms_mean: f64,
    pub scene_ms_p95: f64,
    pub empty_ms_mean: f64,
    pub ratio: f64,
    pub entities: usize,
    /// The GPU adapter, as wgpu names it (lavapipe under Xvfb).
    pub adapter: String,
    pub msaa: bool,
}

#[derive(Resource)]
struct Lab {
    session: Mutex<Session>,
    plan: CameraPlan,
    params: LayoutParams,
    layout: Layout,
    /// The step's whole scene (the 2-D panels read it) and where its views go.
    scene: Scene,
    /// The step's arrangement from its scene file, read when the step is built.
    arrangement: Option<views::Arrangement>,
    views: Plan,
    link: Link,
    /// What the camera pose was fitted for: the step, its values, the 3-D view's size.
    step_id: &'static str,
    values: Values,
    fitted: Option<Vec2>,
    error: Option<String>,
    /// Recompute the scene (a control changed), and whether the step changed too.
    dirty: bool,
    step_changed: bool,
    /// Entities and materials of the current layout, by visual index.
    heat_materials: Vec<(usize, Handle<HeatmapMaterial>)>,
    built: bool,
}

#[derive(Resource)]
struct Job {
    mode: Mode,
    /// Frames left to settle before the screenshot or the timing starts.
    settle: u32,
    state: JobState,
    outcome: Arc<Mutex<Outcome>>,
    frame_ms: Vec<f64>,
    empty_ms: Vec<f64>,
}

#[derive(PartialEq, Eq, Clone, Copy, Debug)]
enum JobState {
    Settling,
    Waiting,
    TimingScene,
    TimingEmpty,
    Done,
}

#[derive(Resource, Default)]
struct Orbit {
    pose: Option<Pose>,
    anim: Option<(Pose, Pose, f32)>,
    /// The pose the current step and focus call for.
    rail: Option<Pose>,
}

#[derive(Resource, Default)]
struct Hover {
    lines: Vec<String>,
    pinned: Vec<String>,
    ui_pointer: bool,
    ui_keyboard: bool,
    drag: f32,
    /// The 3-D view's rectangle in the window: only there does the pointer pick.
    view: Rect,
}

#[derive(Resource, Default)]
struct Labels(Vec<(Vec3, String, Rgb, f32, bool)>);

#[derive(Component)]
struct Drawn;

#[derive(Component)]
struct MainCamera;

#[derive(Resource, Clone)]
struct Shared {
    unit_cube: Handle<Mesh>,
    quad: Handle<Mesh>,
}

/// The heatmap material: one data texture and the shader from `scenes/shaders/`.
#[derive(Asset, TypePath, AsBindGroup, Debug, Clone)]
pub struct HeatmapMaterial {
    #[texture(0)]
    #[sampler(1)]
    cells: Handle<Image>,
    #[uniform(2)]
    grid: Vec4,
    #[uniform(3)]
    hover: Vec4,
}

impl Material for HeatmapMaterial {
    fn fragment_shader() -> ShaderRef {
        "shaders/heatmap.wgsl".into()
    }
}

pub struct Options {
    pub mode: Mode,
    pub size: (u32, u32),
    pub scenes: std::path::PathBuf,
    pub plan: CameraPlan,
    pub params: LayoutParams,
}

/// Runs the app until the window closes or the job is done.
pub fn run(session: Session, opts: Options) -> Outcome {
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let title = format!("lav — {}", session.lesson().title);
    let settle = match opts.mode {
        Mode::Interactive => 0,
        // Pipelines compile in the background; lavapipe needs a few frames.
        _ => 20,
    };
    let present = match opts.mode {
        Mode::Bench { .. } => bevy::window::PresentMode::AutoNoVsync,
        _ => bevy::window::PresentMode::AutoVsync,
    };
    let mut app = App::new();
    app.insert_resource(ClearColor(BACKGROUND))
        .insert_resource(GlobalAmbientLight {
            color: Color::WHITE,
            brightness: 600.0,
            affects_lightmapped_meshes: false,
        })
        .add_plugins(
            DefaultPlugins
                .set(WindowPlugin {
                    primary_window: Some(Window {
                        title,
                        resolution: bevy::window::WindowResolution::new(opts.size.0, opts.size.1)
                            .with_scale_factor_override(1.0),
                        present_mode: present,
                        ..default()
                    }),
                    ..default()
                })
                .set(AssetPlugin {
                    file_path: opts.scenes.to_string_lossy().into_owned(),
                    ..default()
                })
                .set(bevy::log::LogPlugin {
                    level: bevy::log::Level::ERROR,
                    filter: "wgpu=off,naga=off,bevy_render=error".into(),
                    ..default()
                }),
        )
        .add_plugins(EguiPlugin::default())
        .add_plugins(MaterialPlugin::<HeatmapMaterial>::default());
    // The render world reports how many pipelines are still compiling.
    let pending = PendingPipelines::default();
    app.insert_resource(pending.clone());
    if let Some(render) = app.get_sub_app_mut(bevy::render::RenderApp) {
        render.insert_resource(pending).add_systems(
            bevy::render::Render,
            count_pending.in_set(bevy::render::RenderSystems::Cleanup),
        );
    }
    app.insert_resource(Lab {
        session: Mutex::new(session),
        plan: opts.plan,
        params: opts.params,
        layout: Layout::default(),
        scene: Scene::new(),
        arrangement: None,
        views: Plan::default(),
        link: Link::default(),
        step_id: "",
        values: Values::default(),
        fitted: None,
        error: None,
        dirty: true,
        step_changed: true,
        heat_materials: vec![],
        built: false,
    })
    .insert_resource(Job {
        mode: opts.mode,
        settle,
        state: JobState::Settling,
        outcome: outcome.clone(),
        frame_ms: vec![],
        empty_ms: vec![],
    })
    .init_resource::<Orbit>()
    .init_resource::<Hover>()
    .init_resource::<Labels>()
    .add_systems(Startup, setup)
    .add_systems(
        Update,
        (
            software_msaa,
            poll_background,
            rebuild,
            refit,
            keys,
            orbit_input,
            animate_camera,
            hover,
            job,
        )
            .chain(),
    )
    .add_systems(EguiPrimaryContextPass, panel);
    app.run();
    outcome.lock().expect("outcome").clone()
}

fn setup(
    mut commands: Commands,
    mut meshes: ResMut<Assets<Mesh>>,
    mut egui_settings: ResMut<EguiGlobalSettings>,
    job: Res<Job>,
) {
    // egui gets its own camera over the whole window; the 3-D camera's viewport is
    // then only the part right of the panel, and egui's coordinates stay the window's.
    egui_settings.auto_create_primary_context = false;
    // Screenshots and benchmarks show the step as authored: Xvfb's pointer rests at
    // the screen's centre, and egui would open (and fade in) a tooltip under it.
    if !matches!(job.mode, Mode::Interactive) {
        let input = &mut egui_settings.input_system_settings;
        input.run_write_window_pointer_moved_messages = false;
        input.run_write_pointer_button_messages = false;
    }
    commands.spawn((
        PrimaryEguiContext,
        Camera2d,
        RenderLayers::none(),
        Camera {
            order: 1,
            output_mode: CameraOutputMode::Write {
                blend_state: Some(BlendState::ALPHA_BLENDING),
                clear_color: ClearColorConfig::None,
            },
            clear_color: ClearColorConfig::Custom(Color::NONE),
            ..default()
        },
    ));
    commands.spawn((
        Camera3d::default(),
        Tonemapping::None,
        Projection::from(PerspectiveProjection {
            fov: FOV,
            far: 5000.0,
            ..default()
        }),
        Transform::from_xyz(0.0, 5.0, 20.0).looking_at(Vec3::ZERO, Vec3::Y),
        MainCamera,
    ));
    commands.spawn((
        DirectionalLight {
            illuminance: 3000.0,
            shadow_maps_enabled: false,
            ..default()
        },
        Transform::from_xyz(-4.0, 10.0, 6.0).looking_at(Vec3::ZERO, Vec3::Y),
    ));
    commands.insert_resource(Shared {
        unit_cube: meshes.add(Cuboid::new(1.0, 1.0, 1.0)),
        quad: meshes.add(quad_mesh()),
    });
}

/// On a software rasterizer (lavapipe, llvmpipe) 4× MSAA costs more than the whole
/// rest of a frame; edges stay sharp enough without it.
fn software_msaa(
    info: Option<Res<bevy::render::renderer::RenderAdapterInfo>>,
    mut cams: Query<&mut Msaa, With<MainCamera>>,
) {
    let Some(info) = info else { return };
    // Bevy does not re-export wgpu's DeviceType; its Debug name is stable.
    if format!("{:?}", info.device_type) == "Cpu" {
        for mut m in &mut cams {
            if *m != Msaa::Off {
                *m = Msaa::Off;
            }
        }
    }
}

/// A unit quad facing +z with texture row 0 at the top (+y).
fn quad_mesh() -> Mesh {
    let pos = vec![
        [-0.5, 0.5, 0.0],
        [0.5, 0.5, 0.0],
        [0.5, -0.5, 0.0],
        [-0.5, -0.5, 0.0],
    ];
    let uv = vec![[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
    Mesh::new(
        PrimitiveTopology::TriangleList,
        RenderAssetUsages::default(),
    )
    .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, pos)
    .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, vec![[0.0, 0.0, 1.0]; 4])
    .with_inserted_attribute(Mesh::ATTRIBUTE_UV_0, uv)
    .with_inserted_indices(Indices::U32(vec![0, 2, 1, 0, 3, 2]))
}

fn srgb(c: Rgb) -> Color {
    Color::srgb_u8(c.0, c.1, c.2)
}

#[allow(clippy::too_many_arguments)]
fn rebuild(
    mut commands: Commands,
    mut lab: ResMut<Lab>,
    mut orbit: ResMut<Orbit>,
    mut labels: ResMut<Labels>,
    shared: Res<Shared>,
    drawn: Query<Entity, With<Drawn>>,
    mut std_mats: ResMut<Assets<StandardMaterial>>,
    mut heat_mats: ResMut<Assets<HeatmapMaterial>>,
    mut images: ResMut<Assets<Image>>,
    time: Res<Time>,
    job: Res<Job>,
    camera: Query<&Camera, With<MainCamera>>,
) {
    if !lab.dirty {
        return;
    }
    let lab = &mut *lab;
    lab.dirty = false;
    let (scene, values, step) = {
        let mut s = lab.session.lock().expect("session");
        (s.scene(), s.effective_values(), s.step().id)
    };
    let scene = match scene {
        Ok(s) => s,
        Err(e) => {
            // Keep the last good picture; the panel shows what to do.
            lab.error = Some(e.to_string());
            return;
        }
    };
    lab.error = None;
    for e in &drawn {
        commands.entity(e).despawn();
    }
    // The 3-D view draws the spatial items; the 2-D panels draw the rest from `scene`.
    lab.layout = layout::build(&scene, &lab.params);
    lab.scene = scene;
    lab.arrangement = lab.plan.arrangement(step);
    lab.step_id = step;
    lab.values = values.clone();
    lab.heat_materials.clear();
    labels.0.clear();
    let mut mats: std::collections::HashMap<(Rgb, bool, bool), Handle<StandardMaterial>> =
        Default::default();
    let mut mat = |c: Rgb, dim: bool, unlit: bool| {
        mats.entry((c, dim, unlit))
            .or_insert_with(|| {
                let mut base = srgb(c);
                if dim {
                    base.set_alpha(0.18);
                }
                std_mats.add(StandardMaterial {
                    base_color: base,
                    unlit,
                    perceptual_roughness: 0.85,
                    alpha_mode: if dim {
                        AlphaMode::Blend
                    } else {
                        AlphaMode::Opaque
                    },
                    ..default()
                })
            })
            .clone()
    };
    for (vi, v) in lab.layout.visuals.iter().enumerate() {
        match &v.shape {
            Shape::Cuboid {
                center,
                size,
                color,
                dim,
            } => {
                commands.spawn((
                    Mesh3d(shared.unit_cube.clone()),
                    MeshMaterial3d(mat(*color, *dim, false)),
                    Transform::from_translation(Vec3::from(*center)).with_scale(Vec3::from(*size)),
                    Drawn,
                ));
            }
            Shape::Line {
                from,
                to,
                color,
                width,
            } => {
                let (a, b) = (Vec3::from(*from), Vec3::from(*to));
                let d = b - a;
                let len = d.length();
                if len < 1e-4 {
                    continue;
                }
                commands.spawn((
                    Mesh3d(shared.unit_cube.clone()),
                    MeshMaterial3d(mat(*color, false, true)),
                    Transform::from_translation((a + b) / 2.0)
                        .with_rotation(Quat::from_rotation_arc(Vec3::X, d / len))
                        .with_scale(Vec3::new(len, *width, *width)),
                    Drawn,
                ));
            }
            Shape::Grid {
                center,
                size,
                plane,
                tex_rows,
                tex_cols,
                pixels,
                rows,
                cols,
                selected,
            } => {
                let mut img = Image::new(
                    Extent3d {
                        width: *tex_cols as u32,
                        height: *tex_rows as u32,
                        depth_or_array_layers: 1,
                    },
                    TextureDimension::D2,
                    pixels.iter().flatten().copied().collect(),
                    TextureFormat::Rgba8UnormSrgb,
                    RenderAssetUsages::RENDER_WORLD,
                );
                img.sampler = ImageSampler::nearest();
                let sel =
                    selected.map_or(Vec2::splat(-1.0), |(r, c)| Vec2::new(r as f32, c as f32));
                let handle = heat_mats.add(HeatmapMaterial {
                    cells: images.add(img),
                    grid: Vec4::new(*rows as f32, *cols as f32, sel.x, sel.y),
                    hover: Vec4::new(-1.0, -1.0, 0.0, 0.0),
                });
                lab.heat_materials.push((vi, handle.clone()));
                let rot = match plane {
                    Plane::Wall => Quat::IDENTITY,
                    Plane::Floor => Quat::from_rotation_x(-std::f32::consts::FRAC_PI_2),
                };
                commands.spawn((
                    Mesh3d(shared.quad.clone()),
                    MeshMaterial3d(handle),
                    Transform::from_translation(Vec3::from(*center))
                        .with_rotation(rot)
                        .with_scale(Vec3::new(size[0], size[1], 1.0)),
                    Drawn,
                ));
            }
            Shape::Label {
                at,
                text,
                color,
                height,
                right,
            } => {
                labels
                    .0
                    .push((Vec3::from(*at), text.clone(), *color, *height, *right));
            }
        }
    }
    lab.built = true;
    // A new step puts the camera back on its rails. A control change keeps the
    // learner's view unless it moves the step's focus (the layer slider moves the
    // forward-pass camera to that layer's floor).
    let size = camera.single().ok().and_then(|c| c.logical_viewport_size());
    lab.fitted = size;
    let aspect = size.map_or(16.0 / 9.0, |s| s.x / s.y.max(1.0));
    let to = lab.plan.pose(step, &values, &lab.layout, aspect, FOV);
    let moved = orbit.rail != Some(to);
    if lab.step_changed || orbit.pose.is_none() || moved {
        lab.step_changed = false;
        orbit.rail = Some(to);
        match (orbit.pose, &job.mode) {
            (Some(from), Mode::Interactive) => orbit.anim = Some((from, to, time.elapsed_secs())),
            _ => {
                orbit.pose = Some(to);
                orbit.anim = None;
            }
        }
    }
}

/// When the 3-D view changes size (the panels settle on the first frame, the window
/// or the lesson panel is resized), fit the step's camera to the new aspect ratio.
fn refit(
    mut lab: ResMut<Lab>,
    mut orbit: ResMut<Orbit>,
    camera: Query<&Camera, With<MainCamera>>,
    job: Res<Job>,
) {
    if !lab.built || lab.dirty {
        return;
    }
    let size = camera.single().ok().and_then(|c| c.logical_viewport_size());
    if size.is_none() || size == lab.fitted {
        return;
    }
    lab.fitted = size;
    let aspect = size.map_or(16.0 / 9.0, |s| s.x / s.y.max(1.0));
    let to = lab
        .plan
        .pose(lab.step_id, &lab.values, &lab.layout, aspect, FOV);
    // A learner who has orbited away keeps their view; only the rail moves.
    let on_rail = orbit.pose == orbit.rail || !matches!(job.mode, Mode::Interactive);
    orbit.rail = Some(to);
    if on_rail {
        orbit.pose = Some(to);
        orbit.anim = None;
    }
}

fn keys(
    input: Res<ButtonInput<KeyCode>>,
    mut lab: ResMut<Lab>,
    hover: Res<Hover>,
    mut exit: MessageWriter<AppExit>,
) {
    if hover.ui_keyboard {
        return;
    }
    let mut s = lab.session.lock().expect("session");
    let before = s.step_index();
    if input.just_pressed(KeyCode::ArrowRight) || input.just_pressed(KeyCode::PageDown) {
        s.next();
    }
    if input.just_pressed(KeyCode::ArrowLeft) || input.just_pressed(KeyCode::PageUp) {
        s.prev();
    }
    let changed = s.step_index() != before;
    drop(s);
    if changed {
        lab.dirty = true;
        lab.step_changed = true;
    }
    if input.just_pressed(KeyCode::Escape) {
        exit.write(AppExit::Success);
    }
}

fn orbit_input(
    mut orbit: ResMut<Orbit>,
    mut hover: ResMut<Hover>,
    buttons: Res<ButtonInput<MouseButton>>,
    keys: Res<ButtonInput<KeyCode>>,
    motion: Res<AccumulatedMouseMotion>,
    scroll: Res<AccumulatedMouseScroll>,
    time: Res<Time>,
) {
    // On rails while a step transition plays.
    if orbit.anim.is_some() {
        return;
    }
    let Some(mut p) = orbit.pose else { return };
    let d = motion.delta;
    if buttons.pressed(MouseButton::Left) {
        hover.drag += d.length();
    }
    if buttons.just_pressed(MouseButton::Left) {
        hover.drag = 0.0;
    }
    let free = !hover.ui_pointer;
    if free && buttons.pressed(MouseButton::Left) {
        p.yaw -= d.x * 0.3;
        p.pitch = (p.pitch + d.y * 0.3).clamp(-89.0, 89.0);
    }
    let (fwd, right) = basis(&p);
    if free && (buttons.pressed(MouseButton::Right) || buttons.pressed(MouseButton::Middle)) {
        let up = right.cross(fwd);
        let k = p.distance * 0.0015;
        let t = Vec3::from(p.target) - right * d.x * k + up * d.y * k;
        p.target = t.into();
    }
    if free && scroll.delta.y != 0.0 {
        p.distance =
            (p.distance * (1.0 - 0.1 * scroll.delta.y.clamp(-3.0, 3.0))).clamp(0.5, 4000.0);
    }
    if !hover.ui_keyboard {
        let mut mv = Vec3::ZERO;
        let flat = Vec3::new(fwd.x, 0.0, fwd.z).normalize_or_zero();
        for (k, v) in [
            (KeyCode::KeyW, flat),
            (KeyCode::KeyS, -flat),
            (KeyCode::KeyD, right),
            (KeyCode::KeyA, -right),
            (KeyCode::KeyE, Vec3::Y),
            (KeyCode::KeyQ, -Vec3::Y),
        ] {
            if keys.pressed(k) {
                mv += v;
            }
        }
        if mv != Vec3::ZERO {
            let t = Vec3::from(p.target) + mv.normalize() * p.distance * 0.6 * time.delta_secs();
            p.target = t.into();
        }
    }
    orbit.pose = Some(p);
}

/// The camera's forward and right directions for a pose.
fn basis(p: &Pose) -> (Vec3, Vec3) {
    let (y, x) = (p.yaw.to_radians(), p.pitch.to_radians());
    let back = Vec3::new(x.cos() * y.sin(), x.sin(), x.cos() * y.cos());
    let fwd = -back;
    let right = fwd.cross(Vec3::Y).normalize_or(Vec3::X);
    (fwd, right)
}

fn ease(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

fn lerp_pose(a: &Pose, b: &Pose, t: f32) -> Pose {
    let l = |x: f32, y: f32| x + (y - x) * t;
    Pose {
        target: std::array::from_fn(|i| l(a.target[i], b.target[i])),
        yaw: l(a.yaw, b.yaw),
        pitch: l(a.pitch, b.pitch),
        // Distances can differ by 100×: interpolate on a log scale.
        distance: (a.distance.ln() + (b.distance.ln() - a.distance.ln()) * t).exp(),
    }
}

fn animate_camera(
    mut orbit: ResMut<Orbit>,
    time: Res<Time>,
    mut cam: Query<&mut Transform, With<MainCamera>>,
) {
    if let Some((from, to, start)) = orbit.anim {
        let t = (time.elapsed_secs() - start) / TRANSITION;
        if t >= 1.0 {
            orbit.pose = Some(to);
            orbit.anim = None;
        } else {
            orbit.pose = Some(lerp_pose(&from, &to, ease(t)));
        }
    }
    let (Some(p), Ok(mut tf)) = (orbit.pose, cam.single_mut()) else {
        return;
    };
    let (fwd, _) = basis(&p);
    let target = Vec3::from(p.target);
    *tf = Transform::from_translation(target - fwd * p.distance).looking_at(target, Vec3::Y);
}

fn hover(
    mut hover: ResMut<Hover>,
    mut lab: ResMut<Lab>,
    windows: Query<&Window>,
    cam: Query<(&Camera, &GlobalTransform), With<MainCamera>>,
    buttons: Res<ButtonInput<MouseButton>>,
    mut heat_mats: ResMut<Assets<HeatmapMaterial>>,
    job: Res<Job>,
) {
    let (Ok(w), Ok((camera, gt))) = (windows.single(), cam.single()) else {
        return;
    };
    let mut found = None;
    // Screenshots and benchmarks show the step as authored: no pointer, no hover.
    if matches!(job.mode, Mode::Interactive)
        && let Some(c) = w.cursor_position()
        && !hover.ui_pointer
        && hover.view.contains(c)
        && let Ok(ray) = camera.viewport_to_world(gt, c)
    {
        found = pick::pick(
            &lab.layout,
            ray.origin.into(),
            Vec3::from(ray.direction).into(),
        );
    }
    let grid = found
        .as_ref()
        .and_then(|h| h.cell.map(|cell| (h.visual, cell)));
    // A heatmap row (a token, a layer) is named for the 2-D views to highlight.
    if let Some((vi, (r, _))) = grid
        && let Some(layout::Pick::Cells { heatmap }) =
            lab.layout.visuals.get(vi).and_then(|v| v.pick.clone())
        && let Some(name) = lab
            .layout
            .heatmaps
            .get(heatmap)
            .and_then(|h| h.heatmap.rows.get(r).cloned())
    {
        lab.link.hovered = Some(name);
    }
    // The outline: the cell under the pointer, or else the rows named by a 2-D view
    // (a token, a layer) last frame. Only changed materials are touched, so the
    // textures are not re-uploaded every frame.
    let linked = lab.link.shown.as_deref();
    for (vi, handle) in &lab.heat_materials {
        let want = match grid {
            Some((g, (r, c))) if g == *vi => Vec2::new(r as f32, c as f32),
            _ => linked
                .and_then(|name| row_named(&lab.layout, *vi, name))
                .map_or(Vec2::splat(-1.0), |r| Vec2::new(r as f32, WHOLE_ROW)),
        };
        if heat_mats
            .get(handle)
            .is_some_and(|m| m.hover.truncate().truncate() != want)
            && let Some(mut m) = heat_mats.get_mut(handle)
        {
            m.hover = Vec4::new(want.x, want.y, m.hover.z, m.hover.w);
        }
    }
    hover.lines = found
        .as_ref()
        .map(|h| pick::describe(&lab.layout, h))
        .unwrap_or_default();
    if buttons.just_released(MouseButton::Left) && hover.drag < 4.0 && !hover.ui_pointer {
        hover.pinned = hover.lines.clone();
    }
}

/// The hover column that outlines a heatmap's whole row (see `heatmap.wgsl`).
const WHOLE_ROW: f32 = -2.0;

/// The row of visual `vi`'s heatmap with this name, if it is a heatmap and has one.
fn row_named(layout: &Layout, vi: usize, name: &str) -> Option<usize> {
    let Some(layout::Pick::Cells { heatmap }) = layout.visuals.get(vi)?.pick.clone() else {
        return None;
    };
    layout
        .heatmaps
        .get(heatmap)?
        .heatmap
        .rows
        .iter()
        .position(|r| r == name)
}

#[allow(clippy::too_many_arguments)]
fn panel(
    mut contexts: EguiContexts,
    mut lab: ResMut<Lab>,
    mut hover: ResMut<Hover>,
    labels: Res<Labels>,
    mut cam: Query<(&mut Camera, &GlobalTransform), With<MainCamera>>,
    windows: Query<&Window>,
    job: Res<Job>,
    mut fonts_installed: Local<bool>,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    if !*fonts_installed {
        panels::install_fonts(&ctx);
        *fonts_installed = true;
    }
    let lab = &mut *lab;
    let mut changed = false;
    let mut step_changed = false;
    let mut root = egui::Ui::new(
        ctx.clone(),
        "root".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let panel_width = egui::Panel::left("lesson")
        .resizable(true)
        .default_size(360.0)
        .show(&mut root, |ui| {
            let mut s = lab.session.lock().expect("session");
            ui.heading(&s.lesson().title);
            ui.separator();
            let cur = s.step_index();
            let titles: Vec<String> = s.lesson().steps.iter().map(|st| st.title.clone()).collect();
            for (i, t) in titles.iter().enumerate() {
                if ui.selectable_label(i == cur, format!("{}. {t}", i + 1)).clicked() && i != cur {
                    let id = s.steps()[i].id;
                    let _ = s.go_to(id);
                    step_changed = true;
                }
            }
            ui.separator();
            egui::ScrollArea::vertical().show(ui, |ui| {
                let st = s.lesson_step().clone();
                ui.strong(&st.title);
                ui.label(reflow(&st.body));
                if !st.try_it.is_empty() {
                    ui.add_space(4.0);
                    ui.label(egui::RichText::new(format!("Try it: {}", st.try_it)).italics());
                }
                ui.separator();
                let controls = s.step().controls.clone();
                for c in &controls {
                    let cur = s.values().value(c).clone();
                    let mut next = None;
                    match (&c.kind, &cur) {
                        (ControlKind::Slider { min, max, step }, Value::Num(v)) => {
                            let mut x = *v;
                            if ui
                                .add(egui::Slider::new(&mut x, *min..=*max).step_by(*step).text(c.label))
                                .changed()
                            {
                                next = Some(Value::Num(x));
                            }
                        }
                        (ControlKind::Toggle, Value::Bool(b)) => {
                            let mut x = *b;
                            if ui.checkbox(&mut x, c.label).changed() {
                                next = Some(Value::Bool(x));
                            }
                        }
                        (ControlKind::Choice { options }, Value::Text(t)) => {
                            let mut x = t.clone();
                            egui::ComboBox::from_label(c.label).selected_text(&x).show_ui(ui, |ui| {
                                for o in options {
                                    ui.selectable_value(&mut x, o.clone(), o);
                                }
                            });
                            if &x != t {
                                next = Some(Value::Text(x));
                            }
                        }
                        (ControlKind::Text { max_chars }, Value::Text(t)) => {
                            ui.label(c.label);
                            // The draft lives in egui's memory while the learner types;
                            // new text reruns the model, so it applies on Enter or when
                            // the field loses focus.
                            let id = egui::Id::new(("lav-text", c.key));
                            let mut x = ui
                                .memory(|m| m.data.get_temp::<String>(id))
                                .unwrap_or_else(|| t.clone());
                            let r = ui.add(
                                egui::TextEdit::singleline(&mut x)
                                    .id(id)
                                    .char_limit(*max_chars),
                            );
                            if r.lost_focus() {
                                ui.memory_mut(|m| m.data.remove::<String>(id));
                                if x != *t {
                                    next = Some(Value::Text(x));
                                }
                            } else if r.changed() {
                                ui.memory_mut(|m| m.data.insert_temp(id, x));
                            }
                        }
                        (ControlKind::Button { .. }, _) if ui.button(c.label).clicked() => {
                            // The session counts the press (and wraps it at the cycle).
                            if let Err(e) = s.nudge(c.key, 1.0) {
                                lab.error = Some(e.to_string());
                            }
                            changed = true;
                        }
                        _ => {}
                    }
                    if let Some(v) = next {
                        match s.set(c.key, v) {
                            Ok(()) => changed = true,
                            Err(e) => lab.error = Some(e.to_string()),
                        }
                    }
                }
                if let Some(e) = &lab.error {
                    ui.colored_label(egui::Color32::from_rgb(0xD5, 0x5E, 0x00), e);
                }
                if !hover.pinned.is_empty() {
                    ui.separator();
                    ui.label(egui::RichText::new("Selected").strong());
                    for l in &hover.pinned {
                        ui.label(drawable(ui.ctx(), l).as_ref());
                    }
                }
                ui.separator();
                ui.small("Left/Right arrows: steps · drag to orbit · right-drag to pan · wheel to zoom · W A S D Q E to fly · click to select");
            });
        })
        .response
        .rect
        .right();
    hover.ui_pointer = ctx.egui_wants_pointer_input() || ctx.is_pointer_over_egui();
    hover.ui_keyboard = ctx.egui_wants_keyboard_input();
    if step_changed {
        lab.dirty = true;
        lab.step_changed = true;
    } else if changed {
        lab.dirty = true;
    }
    // The views take the window right of the lesson panel: the 3-D viewport where the
    // plan puts it, 2-D panels around it.
    let (Ok(window), Ok((mut camera, gt))) = (windows.single(), cam.single_mut()) else {
        return Ok(());
    };
    let area = views::Rect::new(panel_width, 0.0, window.width(), window.height());
    lab.views = views::plan(
        &lab.scene,
        area,
        lab.arrangement.as_ref(),
        &lab.params.panels,
    );
    let view = lab.views.spatial.unwrap_or(area);
    let scale = window.scale_factor();
    let at = UVec2::new((view.x0 * scale) as u32, (view.y0 * scale) as u32);
    let size = UVec2::new((view.w() * scale) as u32, (view.h() * scale) as u32);
    let window_px = UVec2::new(window.physical_width(), window.physical_height());
    if size.x > 16 && size.y > 16 && at.x + size.x <= window_px.x && at.y + size.y <= window_px.y {
        camera.viewport = Some(Viewport {
            physical_position: at,
            physical_size: size,
            ..default()
        });
    }
    hover.view = Rect::new(view.x0, view.y0, view.x1, view.y1);
    // The wheel and drags over a 2-D panel belong to the panel (a plot zooms), not to
    // the 3-D camera.
    if let Some(p) = ctx.pointer_latest_pos()
        && !hover.view.contains(Vec2::new(p.x, p.y))
    {
        hover.ui_pointer = true;
    }
    // The gaps between panels show the background, not the 3-D view's last frame.
    let background = ctx.layer_painter(egui::LayerId::background());
    let bg = egui::Color32::from_rgb(18, 18, 23);
    for band in [
        [area.x0, area.y0, area.x1, view.y0],
        [area.x0, view.y1, area.x1, area.y1],
        [area.x0, view.y0, view.x0, view.y1],
        [view.x1, view.y0, area.x1, view.y1],
    ] {
        if band[2] > band[0] && band[3] > band[1] {
            background.rect_filled(
                egui::Rect::from_min_max(
                    egui::pos2(band[0], band[1]),
                    egui::pos2(band[2], band[3]),
                ),
                0.0,
                bg,
            );
        }
    }
    let Lab {
        views: plan,
        scene,
        link,
        ..
    } = lab;
    panels::draw(&mut root, plan, scene, link);
    link.end_frame();
    // Labels: projected, sized by distance, skipped when too small to read.
    let painter = ctx.layer_painter(egui::LayerId::background());
    let clip = egui::Rect::from_min_max(egui::pos2(view.x0, view.y0), egui::pos2(view.x1, view.y1));
    let painter = painter.with_clip_rect(clip);
    // Labels face the camera, so their height is measured along its up direction.
    let up = gt.up();
    for (at, text, color, height, right) in &labels.0 {
        let (Ok(a), Ok(b)) = (
            camera.world_to_viewport(gt, *at),
            camera.world_to_viewport(gt, *at + up * *height),
        ) else {
            continue;
        };
        let px = (a - b).length();
        if !(7.0..=400.0).contains(&px) {
            continue;
        }
        let font = egui::FontId::proportional(px.min(28.0));
        painter.text(
            egui::pos2(a.x, a.y),
            if *right {
                egui::Align2::RIGHT_BOTTOM
            } else {
                egui::Align2::LEFT_BOTTOM
            },
            drawable(&ctx, text),
            font,
            egui::Color32::from_rgb(color.0, color.1, color.2),
        );
    }
    // The hover card follows the pointer (not in screenshots: no pointer there).
    if !hover.lines.is_empty() && matches!(job.mode, Mode::Interactive) {
        egui::Tooltip::always_open(
            ctx.clone(),
            egui::LayerId::background(),
            egui::Id::new("hover"),
            egui::PopupAnchor::Pointer,
        )
        .show(|ui| {
            for (i, l) in hover.lines.iter().enumerate() {
                let l = drawable(&ctx, l);
                if i == 0 {
                    ui.strong(l.as_ref());
                } else {
                    ui.label(l.as_ref());
                }
            }
        });
    }
    Ok(())
}

/// Joins the lesson's source lines into paragraphs (egui wraps them itself).
fn reflow(s: &str) -> String {
    s.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// While the lab computes in the background (re-quantizing, timing), redraw its
/// progress a few times a second; the scene is rebuilt when the work ends.
fn poll_background(mut lab: ResMut<Lab>, time: Res<Time<Real>>, mut last: Local<f64>) {
    let now = time.elapsed_secs_f64();
    if now - *last < 0.2 {
        return;
    }
    *last = now;
    if !lab.dirty && lab.session.lock().expect("session").busy() {
        lab.dirty = true;
    }
}

/// Screenshot and benchmark runs: let pipelines settle, then act, then exit.
#[allow(clippy::too_many_arguments)] // a Bevy system: its parameters are its data access
fn job(
    mut commands: Commands,
    mut job: ResMut<Job>,
    mut lab: ResMut<Lab>,
    // Wall-clock frame times: the virtual clock clamps a frame at 250 ms.
    time: Res<Time<Real>>,
    drawn: Query<Entity, With<Drawn>>,
    mut labels: ResMut<Labels>,
    mut exit: MessageWriter<AppExit>,
    cam: Query<(&Camera, &GlobalTransform), With<MainCamera>>,
    adapter: Option<Res<bevy::render::renderer::RenderAdapterInfo>>,
    msaa: Query<&Msaa, With<MainCamera>>,
    orbit: Res<Orbit>,
    pending: Res<PendingPipelines>,
) {
    if matches!(job.mode, Mode::Interactive) || job.state == JobState::Done {
        return;
    }
    if let Some(e) = lab.error.clone() {
        job.outcome.lock().expect("outcome").error = Some(e);
        job.state = JobState::Done;
        exit.write(AppExit::error());
        return;
    }
    if !lab.built {
        return;
    }
    match job.state {
        JobState::Settling => {
            // A step still computing in the background is not the picture asked for.
            if lab.session.lock().expect("session").busy() {
                return;
            }
            // Nor is a camera still moving to the step's pose, or a mesh whose
            // pipeline is still compiling: the quiet frames start over after either.
            if orbit.anim.is_some() || pending.0.load(Ordering::Relaxed) > 0 {
                job.settle = job.settle.max(STEP_SETTLE);
                return;
            }
            if job.settle > 0 {
                job.settle -= 1;
                return;
            }
            match job.mode.clone() {
                Mode::Screenshot { path, regions } => {
                    let outcome = job.outcome.clone();
                    if let Some(rp) = regions
                        && let Ok((camera, gt)) = cam.single()
                    {
                        let mut rects = screen_regions(&lab.layout, camera, gt);
                        // The 2-D panels, by item id, and the 3-D view as "3d".
                        for p in &lab.views.panels {
                            let r = p.rect;
                            rects.insert(
                                lab.scene.items[p.item].id.clone(),
                                [r.x0, r.y0, r.x1, r.y1],
                            );
                        }
                        if let Some(r) = lab.views.spatial {
                            rects.insert(views::SPATIAL.into(), [r.x0, r.y0, r.x1, r.y1]);
                        }
                        if let Err(e) = std::fs::write(
                            &rp,
                            serde_json::to_string_pretty(&rects).unwrap_or_default(),
                        ) {
                            outcome.lock().expect("outcome").error =
                                Some(format!("cannot write {}: {e}", rp.display()));
                        }
                    }
                    commands.spawn(Screenshot::primary_window()).observe(
                        move |shot: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                            let mut out = outcome.lock().expect("outcome");
                            match save_png(&shot, &path) {
                                Err(e) => {
                                    out.error = Some(e);
                                    exit.write(AppExit::error());
                                }
                                Ok(()) => {
                                    out.saved.push(path.clone());
                                    exit.write(AppExit::Success);
                                }
                            }
                        },
                    );
                    job.state = JobState::Waiting;
                }
                Mode::ScreenshotAll { dir, scenes } => {
                    let (index, count) = {
                        let s = lab.session.lock().expect("session");
                        (s.step_index(), s.steps().len())
                    };
                    let path = dir.join(format!("{:02}-{}.png", index + 1, lab.step_id));
                    let outcome = job.outcome.clone();
                    commands.spawn(Screenshot::primary_window()).observe(
                        move |shot: On<ScreenshotCaptured>,
                              mut exit: MessageWriter<AppExit>,
                              mut lab: ResMut<Lab>,
                              mut job: ResMut<Job>| {
                            let mut out = outcome.lock().expect("outcome");
                            if let Err(e) = save_png(&shot, &path) {
                                out.error = Some(e);
                                exit.write(AppExit::error());
                                return;
                            }
                            out.saved.push(path.clone());
                            if scenes {
                                let json = path.with_extension("json");
                                let text =
                                    serde_json::to_string_pretty(&lab.scene).unwrap_or_default();
                                if let Err(e) = std::fs::write(&json, text) {
                                    out.error =
                                        Some(format!("cannot write {}: {e}", json.display()));
                                    exit.write(AppExit::error());
                                    return;
                                }
                            }
                            if index + 1 < count {
                                // The next step: rebuilt, settled, then shot like the first.
                                lab.session.lock().expect("session").next();
                                lab.dirty = true;
                                lab.step_changed = true;
                                lab.built = false;
                                job.settle = STEP_SETTLE;
                                job.state = JobState::Settling;
                            } else {
                                exit.write(AppExit::Success);
                            }
                        },
                    );
                    job.state = JobState::Waiting;
                }
                Mode::Bench { .. } => job.state = JobState::TimingScene,
                Mode::Interactive => {}
            }
        }
        JobState::Waiting | JobState::Done => {}
        JobState::TimingScene | JobState::TimingEmpty => {
            let Mode::Bench { frames } = job.mode else {
                return;
            };
            if job.settle > 0 {
                job.settle -= 1;
                return;
            }
            let ms = time.delta_secs_f64() * 1e3;
            let scene_phase = job.state == JobState::TimingScene;
            if scene_phase {
                job.frame_ms.push(ms);
            } else {
                job.empty_ms.push(ms);
            }
            let n = if scene_phase {
                job.frame_ms.len()
            } else {
                job.empty_ms.len()
            };
            if n as u32 >= frames {
                if scene_phase {
                    // The reference: the same window and panel with nothing in 3-D.
                    let entities = drawn.iter().count();
                    job.outcome.lock().expect("outcome").bench = Some(FrameBench {
                        entities,
                        adapter: adapter.as_ref().map(|a| a.name.clone()).unwrap_or_default(),
                        msaa: msaa.iter().any(|m| *m != Msaa::Off),
                        ..Default::default()
                    });
                    for e in &drawn {
                        commands.entity(e).despawn();
                    }
                    labels.0.clear();
                    lab.layout = Layout::default();
                    job.settle = 5;
                    job.state = JobState::TimingEmpty;
                } else {
                    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
                    let mut sorted = job.frame_ms.clone();
                    sorted.sort_by(f64::total_cmp);
                    let p95 = sorted[((sorted.len() as f64 * 0.95) as usize).min(sorted.len() - 1)];
                    let (s, e) = (mean(&job.frame_ms), mean(&job.empty_ms));
                    let mut out = job.outcome.lock().expect("outcome");
                    if let Some(b) = out.bench.as_mut() {
                        b.frames = frames;
                        b.scene_ms_mean = s;
                        b.scene_ms_p95 = p95;
                        b.empty_ms_mean = e;
                        b.ratio = s / e.max(1e-9);
                    }
                    drop(out);
                    job.state = JobState::Done;
                    exit.write(AppExit::Success);
                }
            }
        }
    }
}

/// Writes a captured frame as an RGB PNG.
fn save_png(shot: &ScreenshotCaptured, path: &std::path::Path) -> Result<(), String> {
    shot.image
        .clone()
        .try_into_dynamic()
        .map_err(|e| e.to_string())
        .and_then(|img| img.to_rgb8().save(path).map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Where each region of the layout lands on screen: `id → [x0, y0, x1, y1]` in
/// window pixels (the corners of its box, projected; Bevy's viewport coordinates are
/// the window's).
fn screen_regions(
    layout: &Layout,
    camera: &Camera,
    gt: &GlobalTransform,
) -> std::collections::BTreeMap<String, [f32; 4]> {
    let mut out = std::collections::BTreeMap::new();
    for r in &layout.regions {
        let mut rect = [
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        for k in 0..8 {
            let c = Vec3::new(
                if k & 1 == 0 { r.min[0] } else { r.max[0] },
                if k & 2 == 0 { r.min[1] } else { r.max[1] },
                if k & 4 == 0 { r.min[2] } else { r.max[2] },
            );
            if let Ok(p) = camera.world_to_viewport(gt, c) {
                rect = [
                    rect[0].min(p.x),
                    rect[1].min(p.y),
                    rect[2].max(p.x),
                    rect[3].max(p.y),
                ];
            }
        }
        if rect[0].is_finite() {
            out.insert(r.id.clone(), rect);
        }
    }
    out
}
