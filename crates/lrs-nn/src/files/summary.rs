//! A read-only summary of a shared or task file (for `lrs inspect`): metadata, modules, nnz,
//! LoRA parameters, bytes, hashes. Parses strictly but does not need the base model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{read_bytes, sha256_hex, Parsed};
use crate::error::FileError;

/// One tensor's header entry.
#[derive(Debug, Clone, Serialize)]
pub struct TensorSummary {
    /// Suffix after the module name (`lrs_u`, `lrs_idx`, `lora_a`, ...) or the full name for
    /// heads.
    pub name: String,
    /// Safetensors dtype.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Bytes of tensor data.
    pub bytes: usize,
}

/// One module's tensors.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleSummary {
    /// Module name (`encoder.layer.0.attention.self.query`, or `head`).
    pub module: String,
    /// Non-zeros of its sparse part (task files).
    pub nnz: usize,
    /// Elements of its per-task LoRA part, `lora_a` plus `lora_b` (task files; 0 without).
    pub lora_params: usize,
    /// Its tensors.
    pub tensors: Vec<TensorSummary>,
}

/// Summary of a shared or task file.
#[derive(Debug, Clone, Serialize)]
pub struct FileSummary {
    /// The file.
    pub path: PathBuf,
    /// File size in bytes.
    pub bytes: usize,
    /// sha256 of the file bytes.
    pub sha256: String,
    /// `format` metadata (`lrs-shared`, `lrs-task`, or whatever the file says).
    pub format: Option<String>,
    /// All metadata.
    pub metadata: BTreeMap<String, String>,
    /// Modules, sorted by name.
    pub modules: Vec<ModuleSummary>,
    /// Total sparse non-zeros.
    pub nnz: usize,
    /// Total per-task LoRA parameters (elements of every `lora_a` and `lora_b`).
    pub lora_params: usize,
}

/// Summarises any safetensors file, grouping `<module>.lrs_*` and `<module>.lora_*` tensors by
/// module.
pub fn summarize(path: &Path) -> Result<FileSummary, FileError> {
    let bytes = read_bytes(path)?;
    let p = Parsed::new(path, &bytes)?;
    let mut modules: BTreeMap<String, ModuleSummary> = BTreeMap::new();
    for name in p.names() {
        let view = p.st.tensor(&name).map_err(|e| FileError::Malformed {
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let (module, suffix) = match name.rsplit_once('.') {
            Some((m, s)) if s.starts_with("lrs_") || s.starts_with("lora_") => {
                (m.to_string(), s.to_string())
            }
            _ if name.starts_with("head.") => ("head".to_string(), name.clone()),
            _ => (String::new(), name.clone()),
        };
        let entry = modules
            .entry(module.clone())
            .or_insert_with(|| ModuleSummary {
                module,
                nnz: 0,
                lora_params: 0,
                tensors: Vec::new(),
            });
        let elements = view.shape().iter().product::<usize>();
        match suffix.as_str() {
            "lrs_idx" => entry.nnz += elements,
            "lora_a" | "lora_b" => entry.lora_params += elements,
            _ => {}
        }
        entry.tensors.push(TensorSummary {
            name: suffix,
            dtype: format!("{:?}", view.dtype()),
            shape: view.shape().to_vec(),
            bytes: view.data().len(),
        });
    }
    let modules: Vec<ModuleSummary> = modules.into_values().collect();
    Ok(FileSummary {
        path: path.to_path_buf(),
        bytes: bytes.len(),
        sha256: sha256_hex(&bytes),
        format: p.meta.get("format").cloned(),
        nnz: modules.iter().map(|m| m.nnz).sum(),
        lora_params: modules.iter().map(|m| m.lora_params).sum(),
        metadata: p.meta.into_iter().collect(),
        modules,
    })
}
