//! One task merged into dense weights under the base checkpoint's own key names: the weight
//! file alone ([`export_merged`]), or a complete Hugging Face model directory
//! ([`export_merged_dir`]: config, weights, tokenizer files and, for sentence-transformers
//! bases, their module configs) that transformers and sentence-transformers load as they are.

use std::path::Path;

use candle_core::{DType, Device};

use super::staged_dir::StagedDir;
use super::{write_extras, ExportExtras};
use crate::error::FileError;
use crate::files::{atomic::write_atomic, read_bytes, serialize, sha256_hex, Parsed};
use crate::layer_delta::SparsePart;
use crate::lora_part::LoraPart;
use crate::{BertCheckpoint, NnError, Result, SharedFactor, TaskDelta};

/// Files of a base checkpoint directory copied as they are next to the merged weights: the
/// config, every tokenizer file, and the sentence-transformers configs (the module
/// directories `modules.json` lists are copied too). Other weight files are never copied.
pub const BASE_FILES: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
];

/// Writes `out`: the base weight file with every adapted module's weight replaced by
/// `W0 + s·U diag(w) Vᵀ + S + s_l·B A` for `task` (its sparse part and per-task LoRA part
/// where it has them; `W0 + s·U Vᵀ` without a task), every other tensor
/// and every key name unchanged — loadable by any BERT loader. The base file must be the one
/// the shared factor was trained on (`base_sha256`).
pub fn export_merged(
    base_weights: &Path,
    shared: &SharedFactor,
    task: Option<&TaskDelta>,
    out: &Path,
) -> Result<()> {
    let bytes = read_bytes(base_weights)?;
    let actual = sha256_hex(&bytes);
    if actual != shared.base_sha256 {
        return Err(FileError::HashMismatch {
            file: base_weights.to_path_buf(),
            what: "base_sha256",
            recorded: shared.base_sha256.clone(),
            actual,
        }
        .into());
    }
    if let Some(task) = task {
        super::check_task_modules(shared, task)?;
    }
    let parsed = Parsed::new(base_weights, &bytes)?;
    let meta = parsed.meta.clone();
    let mut tensors = Vec::new();
    for name in parsed.names() {
        let view = parsed.st.tensor(&name).map_err(|e| FileError::Malformed {
            file: base_weights.to_path_buf(),
            reason: e.to_string(),
        })?;
        let t = candle_core::safetensors::Load::load(&view, &Device::Cpu)
            .map_err(|e| parsed.tensor_err(&name, e))?;
        let module = name
            .strip_suffix(".weight")
            .map(|m| m.strip_prefix("bert.").unwrap_or(m));
        let t = match module.and_then(|m| shared.layers.get(m).map(|lr| (m, lr))) {
            None => t,
            Some((m, lr)) => {
                let dtype = t.dtype();
                let (u, v) = (
                    lr.u.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
                    lr.v.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
                );
                let delta = task.and_then(|t| t.layers.get(m));
                let u = match delta.and_then(|d| d.w.as_ref()) {
                    Some(w) => u.broadcast_mul(
                        &w.to_device(&Device::Cpu)?
                            .to_dtype(DType::F32)?
                            .unsqueeze(0)?,
                    )?,
                    None => u,
                };
                let mut merged = (t.to_dtype(DType::F32)? + (u.matmul(&v.t()?)? * lr.scale)?)?;
                match delta.map(|d| &d.sparse) {
                    Some(SparsePart::Sparse(s)) => {
                        merged = (merged + s.to(DType::F32, &Device::Cpu)?.to_dense()?)?;
                    }
                    Some(SparsePart::Dense(d)) => {
                        merged = (merged + d.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)?;
                    }
                    Some(SparsePart::RowScratch(_)) => {
                        return Err(NnError::Invalid(format!(
                            "module {m}: a per-row scoring scratch has no merged form"
                        )));
                    }
                    None | Some(SparsePart::None) => {}
                }
                if let Some(lora) = task.and_then(|t| t.lora.get(m)) {
                    let lora = LoraPart::new(
                        lora.a.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
                        lora.b.to_device(&Device::Cpu)?.to_dtype(DType::F32)?,
                        lora.scale,
                    );
                    lora.check_shape(merged.dims2()?)?;
                    merged = (merged + lora.delta_weight()?)?;
                }
                merged.to_dtype(dtype)?
            }
        };
        tensors.push((name, t));
    }
    let out_bytes = serialize(out, tensors, meta)?;
    write_atomic(out, &out_bytes)?;
    Ok(())
}

/// Writes the directory `out` (refused if it exists; staged beside it and renamed when
/// complete): `model.safetensors` as [`export_merged`] writes it, the [`BASE_FILES`] of the
/// checkpoint's directory (`ckpt.tokenizer` as `tokenizer.json` when the directory lacks
/// one), the module directories `modules.json` names, and `extras`. Returns `out`.
pub fn export_merged_dir(
    ckpt: &BertCheckpoint,
    shared: &SharedFactor,
    task: Option<&TaskDelta>,
    extras: &ExportExtras,
    out: &Path,
) -> Result<std::path::PathBuf> {
    let staged = StagedDir::new(out)?;
    export_merged(
        &ckpt.weights,
        shared,
        task,
        &staged.path().join("model.safetensors"),
    )?;
    staged.copy(&ckpt.config, "config.json")?;
    let base_dir = ckpt.config.parent().unwrap_or(Path::new("."));
    for name in BASE_FILES.iter().filter(|n| **n != "config.json") {
        let from = base_dir.join(name);
        if from.is_file() {
            staged.copy(&from, name)?;
        }
    }
    if let Some(tok) = &ckpt.tokenizer {
        if !staged.path().join("tokenizer.json").is_file() {
            staged.copy(tok, "tokenizer.json")?;
        }
    }
    for module_dir in sentence_transformer_dirs(&base_dir.join("modules.json"))? {
        copy_tree(&base_dir.join(&module_dir), &module_dir, &staged)?;
    }
    write_extras(&staged, extras)?;
    staged.commit()
}

/// The non-empty `path`s of a sentence-transformers `modules.json` (none without the file).
fn sentence_transformer_dirs(modules_json: &Path) -> Result<Vec<String>> {
    if !modules_json.is_file() {
        return Ok(Vec::new());
    }
    let bad = |reason: String| NnError::Config {
        file: modules_json.to_path_buf(),
        reason,
    };
    let text = String::from_utf8(read_bytes(modules_json)?).map_err(|e| bad(e.to_string()))?;
    let modules: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let mut dirs = Vec::new();
    for m in modules {
        let path = m["path"].as_str().unwrap_or("");
        if path.is_empty() {
            continue;
        }
        if Path::new(path)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(bad(format!("module path {path:?} leaves the directory")));
        }
        dirs.push(path.to_string());
    }
    Ok(dirs)
}

/// Copies every file under `from` (links followed) to `name/...` in `staged`.
fn copy_tree(from: &Path, name: &str, staged: &StagedDir) -> Result<()> {
    if !from.is_dir() {
        return Ok(());
    }
    let entries = std::fs::read_dir(from).map_err(|source| FileError::Io {
        file: from.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| FileError::Io {
            file: from.to_path_buf(),
            source,
        })?;
        let child = format!("{name}/{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &child, staged)?;
        } else {
            staged.copy(&path, &child)?;
        }
    }
    Ok(())
}
