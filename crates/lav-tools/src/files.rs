//! A file reader confined to one folder. Paths are relative to the root; absolute
//! paths, `..` components, and anything that resolves outside the root (a symlink
//! pointing out) are refused with a result the model can read, never a crash.

use lav_agent_types::{ToolCall, ToolResult, ToolSpec, Tools};
use serde_json::json;
use std::path::{Component, Path, PathBuf};

/// Files larger than this are refused rather than flooding the model's context.
pub const MAX_BYTES: u64 = 64 * 1024;

pub struct FileReader {
    /// The root, canonicalized once, so every check compares resolved paths.
    root: PathBuf,
}

impl FileReader {
    pub fn new(root: &Path) -> std::io::Result<FileReader> {
        Ok(FileReader {
            root: root.canonicalize()?,
        })
    }

    pub fn spec() -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: "Reads a UTF-8 text file from the project folder. `path` is relative to that folder, e.g. \"notes/plan.md\".".into(),
            input_schema: json!({
                "type": "object",
                "properties": {"path": {"type": "string", "description": "relative path inside the folder"}},
                "required": ["path"],
                "additionalProperties": false
            }),
        }
    }

    /// The file's text, or why it may not be read.
    pub fn read(&self, path: &str) -> Result<String, String> {
        let p = Path::new(path);
        if path.is_empty() {
            return Err("give a path relative to the folder".into());
        }
        if p.is_absolute() || p.has_root() {
            return Err(format!(
                "{path}: absolute paths are refused; give a path inside the folder"
            ));
        }
        if p.components()
            .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err(format!(
                "{path}: `..` is refused; the reader stays inside its folder"
            ));
        }
        let full = self.root.join(p);
        // Resolving symlinks is what catches a link that points outside.
        let real = full
            .canonicalize()
            .map_err(|_| format!("{path}: no such file in the folder"))?;
        if !real.starts_with(&self.root) {
            return Err(format!(
                "{path}: it leads outside the folder (a link), refused"
            ));
        }
        let meta = std::fs::metadata(&real).map_err(|e| format!("{path}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{path}: not a file"));
        }
        if meta.len() > MAX_BYTES {
            return Err(format!(
                "{path}: {} bytes is over the {MAX_BYTES}-byte limit",
                meta.len()
            ));
        }
        let bytes = std::fs::read(&real).map_err(|e| format!("{path}: {e}"))?;
        String::from_utf8(bytes).map_err(|_| format!("{path}: not UTF-8 text"))
    }
}

impl Tools for FileReader {
    fn list(&self) -> Vec<ToolSpec> {
        vec![Self::spec()]
    }

    fn call(&mut self, call: &ToolCall) -> ToolResult {
        let result = match (
            call.name.as_str(),
            call.arguments.get("path").and_then(|v| v.as_str()),
        ) {
            ("read_file", Some(p)) => self.read(p),
            ("read_file", None) => Err("read_file needs a string argument `path`".into()),
            (other, _) => Err(format!("no tool named {other}; this server has read_file")),
        };
        ToolResult::from_result(result)
    }
}
