//! `<task_id>.safetensors`: one task's core scalings `w`, sparse parts `S` (sorted flat indices +
//! values) and optional head, tied by hash to the base checkpoint and the shared file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::{
    atomic::write_atomic, now_rfc3339, read_bytes, serialize, sha256_hex, LoadCheck, Parsed,
};
use crate::error::FileError;
use crate::layer_delta::{LayerDelta, SparsePart};
use crate::sparse_delta::{validate_indices, IndexProblem, SparseDelta};

/// `format` metadata of a task file.
pub const TASK_FORMAT: &str = "lrs-task";

/// One task's parameters across all adapted layers (the per-task half of an LRS model).
#[derive(Debug, Clone, Default)]
pub struct TaskDelta {
    /// Task id (`[A-Za-z0-9_.-]{1,128}` when served).
    pub task_id: String,
    /// Rank `r` of the shared factor this task was trained against.
    pub rank: usize,
    /// Module name → `w` and `S` for that layer (absent modules: `w = 1`, `S = 0`).
    pub layers: BTreeMap<String, LayerDelta>,
    /// Optional per-task head tensors (`head.*`).
    pub head: BTreeMap<String, Tensor>,
    /// `created` metadata of the file it was loaded from (RFC 3339), if any.
    pub created: Option<String>,
}

/// Provenance a task file records: the hashes of the base weights and shared file it fits.
#[derive(Debug, Clone)]
pub struct TaskProvenance {
    /// sha256 of the base weight file bytes.
    pub base_sha256: String,
    /// sha256 of the shared file bytes.
    pub shared_sha256: String,
}

impl TaskDelta {
    /// An empty delta (every layer at `w = 1`, `S = 0`).
    pub fn new(task_id: impl Into<String>, rank: usize) -> Self {
        Self {
            task_id: task_id.into(),
            rank,
            ..Self::default()
        }
    }

    /// Total stored non-zeros across layers.
    pub fn nnz(&self) -> usize {
        self.layers.values().map(LayerDelta::nnz).sum()
    }

    /// `H_k` on every dense scratch: keep `k(module)` largest magnitudes per layer.
    pub fn harden(&mut self, k: impl Fn(&str) -> usize) -> crate::Result<()> {
        for (module, layer) in self.layers.iter_mut() {
            layer.harden(k(module))?;
        }
        Ok(())
    }

    /// Writes the file atomically with sparse values stored as `value_dtype` (F16, BF16 or
    /// F32) and `w` as F32; returns the sha256 of the bytes written. Dense scratches must be
    /// hardened first.
    pub fn save(
        &self,
        path: &Path,
        provenance: &TaskProvenance,
        value_dtype: DType,
    ) -> Result<String, FileError> {
        let tensor_err = |name: String, source| FileError::Tensor {
            file: path.to_path_buf(),
            tensor: name,
            source: Box::new(source),
        };
        if !matches!(value_dtype, DType::F16 | DType::BF16 | DType::F32) {
            return Err(FileError::DType {
                file: path.to_path_buf(),
                tensor: "*.lrs_val".into(),
                expected: "F16, BF16 or F32",
                found: format!("{value_dtype:?}"),
            });
        }
        let mut tensors = Vec::new();
        for (module, layer) in &self.layers {
            if let Some(w) = &layer.w {
                let name = format!("{module}.lrs_w");
                let w = w
                    .detach()
                    .to_dtype(DType::F32)
                    .map_err(|e| tensor_err(name.clone(), e))?;
                tensors.push((name, w));
            }
            match &layer.sparse {
                SparsePart::None => {}
                SparsePart::Dense(_) => {
                    return Err(FileError::DenseScratch {
                        file: path.to_path_buf(),
                        module: module.clone(),
                    })
                }
                SparsePart::Sparse(s) => {
                    let idx_name = format!("{module}.lrs_idx");
                    let idx = Tensor::new(s.indices(), &Device::Cpu)
                        .map_err(|e| tensor_err(idx_name.clone(), e))?;
                    let val_name = format!("{module}.lrs_val");
                    let val = s
                        .values()
                        .to_dtype(value_dtype)
                        .map_err(|e| tensor_err(val_name.clone(), e))?;
                    tensors.push((idx_name, idx));
                    tensors.push((val_name, val));
                }
            }
        }
        for (name, t) in &self.head {
            tensors.push((name.clone(), t.detach()));
        }
        let meta = HashMap::from([
            ("format".to_string(), TASK_FORMAT.to_string()),
            ("version".to_string(), super::FORMAT_VERSION.to_string()),
            ("task_id".to_string(), self.task_id.clone()),
            ("base_sha256".to_string(), provenance.base_sha256.clone()),
            (
                "shared_sha256".to_string(),
                provenance.shared_sha256.clone(),
            ),
            ("rank".to_string(), self.rank.to_string()),
            ("nnz".to_string(), self.nnz().to_string()),
            ("created".to_string(), now_rfc3339()),
        ]);
        let bytes = serialize(path, tensors, meta)?;
        write_atomic(path, &bytes)?;
        Ok(sha256_hex(&bytes))
    }

    /// Reads and validates a task file: format/version, `base_sha256` and `shared_sha256`
    /// against `check`, rank, known modules, shapes `w [r]`, `idx`/`val [nnz]` (U32 indices
    /// strictly increasing and `< out·in`), total `nnz`. Values land on `device` in `dtype`.
    pub fn load(
        path: &Path,
        check: &LoadCheck,
        device: &Device,
        dtype: DType,
    ) -> Result<Self, FileError> {
        let bytes = read_bytes(path)?;
        let p = Parsed::new(path, &bytes)?;
        p.check_format(TASK_FORMAT)?;
        p.check_hash("base_sha256", &check.base_sha256)?;
        if let Some(shared) = &check.shared_sha256 {
            p.check_hash("shared_sha256", shared)?;
        }
        let rank = p.rank_matching(check.rank)?;
        let mut layers: BTreeMap<String, LayerDelta> = BTreeMap::new();
        let mut head = BTreeMap::new();
        let mut total_nnz = 0usize;
        let unknown = |tensor: &str| FileError::UnknownModule {
            file: path.to_path_buf(),
            tensor: tensor.to_string(),
        };
        for name in p.names() {
            if name.starts_with("head.") {
                let t = p.tensor(
                    &name,
                    &[DType::F16, DType::BF16, DType::F32],
                    "F16, BF16 or F32",
                    device,
                )?;
                head.insert(
                    name.clone(),
                    t.to_dtype(dtype).map_err(|e| p.tensor_err(&name, e))?,
                );
                continue;
            }
            let Some((module, kind)) = name.rsplit_once('.') else {
                return Err(unknown(&name));
            };
            let Some(&(out_dim, in_dim)) = check.modules.get(module) else {
                return Err(unknown(&name));
            };
            match kind {
                "lrs_w" => {
                    let w = p.tensor(&name, &[DType::F32], "F32", device)?;
                    if w.dims() != [rank] {
                        return Err(p.shape_err(&name, format!("[{rank}]"), w.dims()));
                    }
                    let w = w.to_dtype(dtype).map_err(|e| p.tensor_err(&name, e))?;
                    layers.entry(module.to_string()).or_default().w = Some(w);
                }
                "lrs_idx" => {
                    let val_name = format!("{module}.lrs_val");
                    let idx_t = p.tensor(&name, &[DType::U32], "U32", &Device::Cpu)?;
                    let val = p.tensor(
                        &val_name,
                        &[DType::F16, DType::BF16, DType::F32],
                        "F16, BF16 or F32",
                        device,
                    )?;
                    let [nnz] = idx_t.dims() else {
                        return Err(p.shape_err(&name, "[nnz]".into(), idx_t.dims()));
                    };
                    if val.dims() != [*nnz] {
                        return Err(p.shape_err(
                            &val_name,
                            format!("[{nnz}] (as {name})"),
                            val.dims(),
                        ));
                    }
                    let indices: Vec<u32> = idx_t.to_vec1().map_err(|e| p.tensor_err(&name, e))?;
                    let bound = (out_dim as u64) * (in_dim as u64);
                    validate_indices(&indices, bound).map_err(|problem| match problem {
                        IndexProblem::OutOfRange {
                            position,
                            index,
                            bound,
                        } => FileError::IndexOutOfRange {
                            file: path.to_path_buf(),
                            tensor: name.clone(),
                            position,
                            index,
                            bound,
                        },
                        IndexProblem::NotSorted { position } => FileError::IndicesNotSorted {
                            file: path.to_path_buf(),
                            tensor: name.clone(),
                            position,
                        },
                    })?;
                    total_nnz += indices.len();
                    let val = val
                        .to_dtype(dtype)
                        .map_err(|e| p.tensor_err(&val_name, e))?;
                    let sparse = SparseDelta::new(out_dim, in_dim, indices, val)
                        .map_err(|e| p.bad_meta(&name, &e.to_string()))?;
                    layers.entry(module.to_string()).or_default().sparse =
                        SparsePart::Sparse(sparse);
                }
                "lrs_val" => {
                    let idx_name = format!("{module}.lrs_idx");
                    if p.st.tensor(&idx_name).is_err() {
                        return Err(FileError::MissingTensor {
                            file: path.to_path_buf(),
                            tensor: idx_name,
                        });
                    }
                }
                _ => return Err(unknown(&name)),
            }
        }
        let recorded: usize = p.meta_parse("nnz")?;
        if recorded != total_nnz {
            return Err(p.bad_meta(
                "nnz",
                &format!("records {recorded}, tensors hold {total_nnz}"),
            ));
        }
        Ok(Self {
            task_id: p.meta("task_id")?.to_string(),
            rank,
            layers,
            head,
            created: p.meta.get("created").cloned(),
        })
    }
}
