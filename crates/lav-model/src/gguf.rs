//! Opening a GGUF file and reading its metadata, with errors that name the file.

use crate::error::{ModelError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// A parsed GGUF header plus an open reader for its tensors.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    pub reader: BufReader<File>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ModelError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| ModelError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("not a readable GGUF file ({e})"),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
            reader,
        })
    }

    fn corrupt(&self, reason: String) -> ModelError {
        ModelError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }

    pub fn get(&self, key: &str) -> Result<&Value> {
        self.content
            .metadata
            .get(key)
            .ok_or_else(|| self.corrupt(format!("metadata key `{key}` is missing")))
    }

    pub fn has(&self, key: &str) -> bool {
        self.content.metadata.contains_key(key)
    }

    pub fn u32(&self, key: &str) -> Result<u32> {
        let v = self.get(key)?;
        v.to_u32()
            .or_else(|_| v.to_u64().map(|x| x as u32))
            .or_else(|_| v.to_i32().map(|x| x as u32))
            .map_err(|e| self.corrupt(format!("metadata key `{key}`: {e}")))
    }

    pub fn f32(&self, key: &str) -> Result<f32> {
        self.get(key)?
            .to_f32()
            .map_err(|e| self.corrupt(format!("metadata key `{key}`: {e}")))
    }

    pub fn string(&self, key: &str) -> Result<String> {
        self.get(key)?
            .to_string()
            .cloned()
            .map_err(|e| self.corrupt(format!("metadata key `{key}`: {e}")))
    }

    pub fn strings(&self, key: &str) -> Result<Vec<String>> {
        let arr = self
            .get(key)?
            .to_vec()
            .map_err(|e| self.corrupt(format!("metadata key `{key}`: {e}")))?;
        arr.iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| self.corrupt(format!("metadata key `{key}`: {e}")))
            })
            .collect()
    }

    pub fn i32s(&self, key: &str) -> Result<Vec<i32>> {
        let arr = self
            .get(key)?
            .to_vec()
            .map_err(|e| self.corrupt(format!("metadata key `{key}`: {e}")))?;
        arr.iter()
            .map(|v| {
                v.to_i32()
                    .or_else(|_| v.to_u32().map(|x| x as i32))
                    .map_err(|e| self.corrupt(format!("metadata key `{key}`: {e}")))
            })
            .collect()
    }

    /// Reads one tensor in its stored format.
    pub fn tensor(&mut self, name: &str) -> Result<candle_core::quantized::QTensor> {
        let device = candle_core::Device::Cpu;
        self.content
            .tensor(&mut self.reader, name, &device)
            .map_err(|e| ModelError::Corrupt {
                path: self.path.clone(),
                reason: format!("tensor `{name}`: {e}"),
            })
    }
}
