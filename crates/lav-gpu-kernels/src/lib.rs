//! `lav-gpu-kernels`: real compute kernels, written in WGSL, run on whatever GPU the
//! learner has (Intel, AMD, Apple, NVIDIA, or Mesa's software renderer) through the
//! wgpu that Bevy already builds. Each kernel's output is checked against a CPU
//! reference, and each run is timed with GPU timestamp queries where the adapter
//! supports them, else with the wall clock; the method travels with the figure.
//!
//! Kernels: coalesced vs strided reads, naive vs shared-memory-tiled matmul, fused vs
//! unfused elementwise chains, and softmax as a thread per row vs a workgroup per row.
//!
//! May depend on wgpu (Bevy's version and features), futures-lite, bytemuck and
//! thiserror; never on the model, a lab or a renderer.

use std::sync::OnceLock;
use std::time::Instant;
use wgpu::util::DeviceExt;

/// Why no kernel could run: one line saying what to do.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct KernelError(pub String);

pub type Result<T> = std::result::Result<T, KernelError>;

fn err(what: &str, e: impl std::fmt::Display) -> KernelError {
    KernelError(format!("{what}: {e}"))
}

/// The adapter the kernels ran on, as wgpu reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Adapter {
    pub name: String,
    pub backend: String,
    pub kind: String,
    pub driver: String,
    /// A CPU emulating a GPU (lavapipe, llvmpipe, WARP, SwiftShader): its timings
    /// say nothing about GPU hardware.
    pub software: bool,
    pub timestamps: bool,
}

impl Adapter {
    /// "NVIDIA GeForce RTX 4090 (Vulkan)", or "llvmpipe (Vulkan; a CPU emulating a GPU)".
    pub fn label(&self) -> String {
        if self.software {
            format!("{} ({}; a CPU emulating a GPU)", self.name, self.backend)
        } else {
            format!("{} ({})", self.name, self.backend)
        }
    }
}

/// How a kernel was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GPU timestamps written at the start and end of the compute pass.
    Timestamps,
    /// Submit to completion on the host clock (includes submission overhead).
    WallClock,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Timestamps => "GPU timestamp queries",
            Method::WallClock => "wall clock (no timestamp queries on this adapter)",
        }
    }
}

/// One kernel run: its best time over several runs, how it was timed, and its
/// largest difference from the CPU reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub kernel: String,
    pub seconds: f64,
    pub runs: usize,
    pub method: Method,
    pub max_abs_err: f32,
    /// Bytes the kernel must move at least (reads + writes of useful data).
    pub bytes: f64,
    pub flops: f64,
}

/// An open device: the adapter, its device and queue.
pub struct Gpu {
    pub adapter: Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    /// Validation errors wgpu reported (it would panic without a handler).
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Prefers a real GPU to a virtual or software one.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

impl Gpu {
    /// Opens the best adapter wgpu finds, with timestamp queries when it has them.
    pub fn open() -> Result<Gpu> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapters =
            futures_lite::future::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let adapter = adapters
            .into_iter()
            .min_by_key(|a| rank(a.get_info().device_type))
            .ok_or_else(|| {
                KernelError(
                    "no GPU adapter found (install a Vulkan, Metal or DirectX 12 driver; on Linux, mesa-vulkan-drivers gives a software one)"
                        .into(),
                )
            })?;
        let info = adapter.get_info();
        let name = info.name.to_lowercase();
        let software = info.device_type == wgpu::DeviceType::Cpu
            || ["llvmpipe", "lavapipe", "swiftshader", "warp", "software"]
                .iter()
                .any(|s| name.contains(s));
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let limits = adapter.limits();
        let (device, queue) =
            futures_lite::future::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("lav kernels"),
                required_features: if timestamps {
                    wgpu::Features::TIMESTAMP_QUERY
                } else {
                    wgpu::Features::empty()
                },
                required_limits: limits.clone(),
                ..Default::default()
            }))
            .map_err(|e| err("the GPU adapter refused a device", e))?;
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(std::sync::Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(
                    e.to_string()
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
        }));
        Ok(Gpu {
            adapter: Adapter {
                name: info.name.clone(),
                backend: format!("{:?}", info.backend),
                kind: format!("{:?}", info.device_type),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_string(),
                software,
                timestamps,
            },
            device,
            queue,
            limits,
            errors,
        })
    }

    /// The first error wgpu reported since the last check, as a one-line error.
    fn check(&self) -> Result<()> {
        let mut v = self
            .errors
            .lock()
            .map_err(|_| KernelError("the GPU error log is poisoned".into()))?;
        match v.drain(..).next() {
            Some(e) => Err(KernelError(format!("the GPU rejected a kernel: {e}"))),
            None => Ok(()),
        }
    }

    /// The device this process opened, once: the labs share it.
    pub fn shared() -> Result<&'static Gpu> {
        static GPU: OnceLock<std::result::Result<Gpu, KernelError>> = OnceLock::new();
        GPU.get_or_init(Gpu::open).as_ref().map_err(Clone::clone)
    }

    fn storage(&self, data: &[f32], writable: bool) -> wgpu::Buffer {
        let usage = if writable {
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST
        } else {
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(data),
                usage,
            })
    }

    fn uniform(&self, words: &[u32]) -> wgpu::Buffer {
        // Uniform buffers are read in 16-byte units: pad to four words.
        let mut w = words.to_vec();
        w.resize(words.len().div_ceil(4) * 4, 0);
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(&w),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    fn pipeline(&self, source: &str, entry: &str) -> wgpu::ComputePipeline {
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(entry),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
    }

    /// A bind group of `buffers` at bindings 0, 1, …, leaving out the bindings in
    /// `unused` (an entry point's automatic layout holds only the ones it reads).
    fn bind(
        &self,
        p: &wgpu::ComputePipeline,
        buffers: &[&wgpu::Buffer],
        unused: &[u32],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .filter(|(i, _)| !unused.contains(&(*i as u32)))
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &p.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Runs the dispatches (pipeline, bind group, workgroups) in one compute pass
    /// and returns its time: from timestamps when the adapter has them.
    fn time(
        &self,
        dispatches: &[(&wgpu::ComputePipeline, &wgpu::BindGroup, [u32; 3])],
    ) -> Result<(f64, Method)> {
        let qs = self.adapter.timestamps.then(|| {
            self.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: None,
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            })
        });
        let resolve = qs.as_ref().map(|_| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: qs.as_ref().map(|q| wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            for (p, bg, [x, y, z]) in dispatches {
                pass.set_pipeline(p);
                pass.set_bind_group(0, *bg, &[]);
                pass.dispatch_workgroups(*x, *y, *z);
            }
        }
        if let (Some(q), Some(r)) = (&qs, &resolve) {
            enc.resolve_query_set(q, 0..2, r, 0);
        }
        let t0 = Instant::now();
        self.queue.submit([enc.finish()]);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| err("the GPU did not finish", e))?;
        let wall = t0.elapsed().as_secs_f64();
        self.check()?;
        match resolve {
            Some(r) => {
                let ticks = self.read_u64(&r, 2)?;
                let ns = ticks[1].saturating_sub(ticks[0]) as f64
                    * self.queue.get_timestamp_period() as f64;
                // Some drivers report zero for a pass; fall back to the host clock.
                if ns > 0.0 {
                    Ok((ns * 1e-9, Method::Timestamps))
                } else {
                    Ok((wall, Method::WallClock))
                }
            }
            None => Ok((wall, Method::WallClock)),
        }
    }

    fn read_bytes(&self, src: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        self.check()?;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| err("the GPU did not finish", e))?;
        rx.recv()
            .map_err(|e| err("reading back from the GPU", e))?
            .map_err(|e| err("reading back from the GPU", e))?;
        let out = staging.get_mapped_range(..).to_vec();
        staging.unmap();
        Ok(out)
    }

    fn read_u64(&self, src: &wgpu::Buffer, n: usize) -> Result<Vec<u64>> {
        Ok(bytemuck::pod_collect_to_vec(
            &self.read_bytes(src, 8 * n as u64)?,
        ))
    }

    fn read_f32(&self, src: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
        Ok(bytemuck::pod_collect_to_vec(
            &self.read_bytes(src, 4 * n as u64)?,
        ))
    }

    /// Runs `dispatches` `runs` times after one warm-up: the best time.
    fn best(
        &self,
        runs: usize,
        dispatches: &[(&wgpu::ComputePipeline, &wgpu::BindGroup, [u32; 3])],
    ) -> Result<(f64, Method)> {
        self.time(dispatches)?;
        let mut best = (f64::INFINITY, Method::WallClock);
        for _ in 0..runs.max(1) {
            let t = self.time(dispatches)?;
            if t.0 < best.0 {
                best = t;
            }
        }
        Ok(best)
    }

    fn max_storage(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }
}

fn max_err(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Workgroup counts for `n` invocations of 256, spread over x and y so no
/// dimension passes the 65,535 limit (the chain kernel indexes by both).
fn groups_256(n: usize) -> [u32; 3] {
    let g = n.div_ceil(256) as u32;
    if g <= 65_535 {
        [g, 1, 1]
    } else {
        [65_535, g.div_ceil(65_535), 1]
    }
}

/// Copies `n` floats read at `stride`-float steps: stride 1 is coalesced.
pub fn strided_read(gpu: &Gpu, n: usize, stride: usize, runs: usize) -> Result<Measured> {
    let stride = stride.max(1);
    let len = n * stride;
    if (len * 4) as u64 > gpu.max_storage() {
        return Err(KernelError(format!(
            "{} MiB is more than this adapter binds in one buffer: use fewer floats",
            (len * 4) >> 20
        )));
    }
    let src: Vec<f32> = (0..len).map(|i| (i % 1021) as f32 * 0.5).collect();
    let a = gpu.storage(&src, false);
    let out = gpu.storage(&vec![0.0; n], true);
    let u = gpu.uniform(&[n as u32, stride as u32]);
    let p = gpu.pipeline(include_str!("wgsl/read.wgsl"), "main");
    let bg = gpu.bind(&p, &[&a, &out, &u], &[]);
    let (seconds, method) = gpu.best(runs, &[(&p, &bg, [(n.div_ceil(256)) as u32, 1, 1])])?;
    let got = gpu.read_f32(&out, n)?;
    let want: Vec<f32> = (0..n).map(|i| src[i * stride] * 2.0).collect();
    Ok(Measured {
        kernel: if stride == 1 {
            "coalesced read".into()
        } else {
            format!("stride-{stride} read")
        },
        seconds,
        runs,
        method,
        max_abs_err: max_err(&got, &want),
        bytes: (n * 8) as f64,
        flops: n as f64,
    })
}

/// C = A · B for n × n (n a multiple of 16), naive or with 16 × 16 shared tiles,
/// against a CPU product in f64.
pub fn matmul(gpu: &Gpu, n: usize, tiled: bool, runs: usize) -> Result<Measured> {
    if n == 0 || !n.is_multiple_of(16) {
        return Err(KernelError(format!(
            "matmul size {n} is not a multiple of 16"
        )));
    }
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
        .collect();
    let b: Vec<f32> = (0..n * n)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
        .collect();
    let (ba, bb) = (gpu.storage(&a, false), gpu.storage(&b, false));
    let bc = gpu.storage(&vec![0.0; n * n], true);
    let u = gpu.uniform(&[n as u32]);
    let entry = if tiled { "tiled" } else { "naive" };
    let p = gpu.pipeline(include_str!("wgsl/matmul.wgsl"), entry);
    let bg = gpu.bind(&p, &[&ba, &bb, &bc, &u], &[]);
    let g = (n / 16) as u32;
    let (seconds, method) = gpu.best(runs, &[(&p, &bg, [g, g, 1])])?;
    let got = gpu.read_f32(&bc, n * n)?;
    let mut worst = 0.0f32;
    for i in 0..n {
        for j in 0..n {
            let want: f64 = (0..n)
                .map(|k| a[i * n + k] as f64 * b[k * n + j] as f64)
                .sum();
            worst = worst.max((got[i * n + j] as f64 - want).abs() as f32);
        }
    }
    Ok(Measured {
        kernel: format!("{entry} matmul {n}×{n}"),
        seconds,
        runs,
        method,
        max_abs_err: worst,
        bytes: (3 * n * n * 4) as f64,
        flops: 2.0 * (n as f64).powi(3),
    })
}

fn gelu(v: f32) -> f32 {
    let c = 0.797_884_6_f32;
    0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
}

/// bias → ReLU → ×2 → GELU over `n` floats in place: four kernels or one.
pub fn chain(gpu: &Gpu, n: usize, fused: bool, runs: usize) -> Result<Measured> {
    let cols = 576usize;
    let x: Vec<f32> = (0..n).map(|i| ((i % 977) as f32 * 0.37).cos()).collect();
    let bias: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.01).sin()).collect();
    let bx = gpu.storage(&x, true);
    let bb = gpu.storage(&bias, false);
    let u = gpu.uniform(&[n as u32, cols as u32]);
    let src = include_str!("wgsl/chain.wgsl");
    let entries: &[&str] = if fused {
        &["fused"]
    } else {
        &["add_bias", "relu", "scale", "act"]
    };
    let pipes: Vec<wgpu::ComputePipeline> = entries.iter().map(|e| gpu.pipeline(src, e)).collect();
    let groups: Vec<wgpu::BindGroup> = pipes
        .iter()
        .zip(entries)
        .map(|(p, e)| {
            let unused: &[u32] = if matches!(*e, "add_bias" | "fused") {
                &[]
            } else {
                &[1]
            };
            gpu.bind(p, &[&bx, &bb, &u], unused)
        })
        .collect();
    let g = groups_256(n);
    let dispatches: Vec<_> = pipes.iter().zip(&groups).map(|(p, b)| (p, b, g)).collect();
    // Each timed run transforms the buffer again; only a single run from the
    // original values is checked, so the check comes first on fresh buffers.
    gpu.time(&dispatches)?;
    let got = gpu.read_f32(&bx, n)?;
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, v)| gelu((v + bias[i % cols]).max(0.0) * 2.0))
        .collect();
    let e = max_err(&got, &want);
    let mut best = (f64::INFINITY, Method::WallClock);
    for _ in 0..runs.max(1) {
        let t = gpu.time(&dispatches)?;
        if t.0 < best.0 {
            best = t;
        }
    }
    Ok(Measured {
        kernel: if fused {
            "fused chain (1 kernel)".into()
        } else {
            "unfused chain (4 kernels)".into()
        },
        seconds: best.0,
        runs,
        method: best.1,
        max_abs_err: e,
        bytes: (n * 4 * 2 * entries.len()) as f64,
        flops: (n * 12) as f64,
    })
}

/// Row softmax of `x` (`rows × cols`): a thread per row or a workgroup per row. Also
/// returns the kernel's output.
pub fn softmax(
    gpu: &Gpu,
    x: &[f32],
    rows: usize,
    cols: usize,
    per_workgroup: bool,
    runs: usize,
) -> Result<(Measured, Vec<f32>)> {
    if x.len() != rows * cols || rows == 0 {
        return Err(KernelError(format!(
            "softmax input of {} values is not {rows} × {cols}",
            x.len()
        )));
    }
    let bx = gpu.storage(x, false);
    let by = gpu.storage(&vec![0.0; rows * cols], true);
    let u = gpu.uniform(&[rows as u32, cols as u32]);
    let entry = if per_workgroup {
        "per_workgroup"
    } else {
        "per_thread"
    };
    let p = gpu.pipeline(include_str!("wgsl/softmax.wgsl"), entry);
    let bg = gpu.bind(&p, &[&bx, &by, &u], &[]);
    let g = if per_workgroup {
        rows as u32
    } else {
        rows.div_ceil(64) as u32
    };
    let (seconds, method) = gpu.best(runs, &[(&p, &bg, [g, 1, 1])])?;
    let got = gpu.read_f32(&by, rows * cols)?;
    let mut worst = 0.0f32;
    for (r, row) in x.chunks(cols).enumerate() {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        for (c, &v) in row.iter().enumerate() {
            let want = ((v as f64 - m).exp() / s) as f32;
            worst = worst.max((got[r * cols + c] - want).abs());
        }
    }
    Ok((
        Measured {
            kernel: if per_workgroup {
                "softmax, a workgroup per row".into()
            } else {
                "softmax, a thread per row".into()
            },
            seconds,
            runs,
            method,
            max_abs_err: worst,
            bytes: (rows * cols * 4 * 4) as f64,
            flops: (rows * cols * 5) as f64,
        },
        got,
    ))
}
