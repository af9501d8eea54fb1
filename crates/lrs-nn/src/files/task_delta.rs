//! `<task_id>.safetensors`: one task's core scalings `w`, sparse parts `S` (sorted flat indices +
//! values), optional per-task LoRA parts and optional head, tied by hash to the base checkpoint
//! and the shared file.
//!
//! Tensors (`<module>` is the base checkpoint's module name, one of the adapted modules):
//!
//! | name               | shape         | dtype            | present                          |
//! |--------------------|---------------|------------------|----------------------------------|
//! | `<module>.lrs_w`   | `[r]`         | F32              | unless `core = "shared"`         |
//! | `<module>.lrs_idx` | `[nnz]`       | U32              | with a sparse part (sorted flat row-major indices into `[out, in]`) |
//! | `<module>.lrs_val` | `[nnz]`       | F16, BF16 or F32 | with `lrs_idx`                   |
//! | `<module>.lora_a`  | `[r_l, in]`   | F16, BF16 or F32 | with a per-task LoRA part (PEFT `lora_A`) |
//! | `<module>.lora_b`  | `[out, r_l]`  | F16, BF16 or F32 | with `lora_a` (PEFT `lora_B`)    |
//! | `head.weight`      | `[1, h]`      | F16, BF16 or F32 | optional per-task head, with `head.bias` |
//! | `head.bias`        | `[1]`         | F16, BF16 or F32 | with `head.weight`, or alone (an intercept) |
//! | `head.*` (other)   | any           | F16, BF16 or F32 | optional, ignored by the binary head |
//!
//! Metadata: `format = "lrs-task"`, `version = "1"`, `task_id`, `base_sha256`, `shared_sha256`,
//! `rank`, `nnz` (sparse non-zeros only), `created`, and — only when some module has a LoRA
//! part — `lora_alpha` (PEFT's α; each module's scale is `s_l = lora_alpha / r_l`).
//!
//! The layer then computes `y = x W0ᵀ + b0 + s·((x V) ⊙ w) Uᵀ + x Sᵀ + s_l·(x Aᵀ) Bᵀ`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::sealed::FileBody;
use super::{
    atomic::write_atomic, now_rfc3339, serialize, sha256_hex, FileResult, LoadCheck, Parsed,
};
use crate::error::FileError;
use crate::layer_delta::{LayerDelta, SparsePart};
use crate::lora_part::LoraPart;
use crate::sparse_delta::{validate_indices, IndexProblem, SparseDelta};

/// `format` metadata of a task file.
pub const TASK_FORMAT: &str = "lrs-task";

/// Metadata key of the LoRA α (present only when the task has LoRA parts).
pub const LORA_ALPHA_KEY: &str = "lora_alpha";

/// Relative tolerance within which every LoRA part of one task must agree on `α = s_l · r_l`
/// (one `lora_alpha` is stored per file).
const ALPHA_REL_TOL: f64 = 1e-9;

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
    /// Module name → per-task LoRA term `s_l · (x Aᵀ) Bᵀ` for that layer (the per-task LoRA
    /// baseline; absent modules: none). Added to whatever `layers` holds for the module.
    ///
    /// Kept beside `layers` rather than inside [`LayerDelta`] so that every existing
    /// `LayerDelta { w, sparse }` literal keeps compiling.
    pub lora: BTreeMap<String, LoraPart>,
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

    /// Total stored non-zeros of the sparse parts across layers (LoRA parts not included).
    pub fn nnz(&self) -> usize {
        self.layers.values().map(LayerDelta::nnz).sum()
    }

    /// Total trainable / stored LoRA parameters across layers (`Σ r_l · (in + out)`).
    pub fn lora_params(&self) -> usize {
        self.lora.values().map(LoraPart::num_params).sum()
    }

    /// Trainable parameters of the personal part: every layer's `w` and sparse non-zeros,
    /// the per-task LoRA parameters and the per-task head.
    pub fn params(&self) -> usize {
        let layers: usize = self
            .layers
            .values()
            .map(|l| l.w.as_ref().map_or(0, Tensor::elem_count) + l.nnz())
            .sum();
        layers + self.lora_params() + self.head.values().map(Tensor::elem_count).sum::<usize>()
    }

    /// Bytes the loaded delta's tensors hold in memory (what a serving cache's budget
    /// counts): per layer `w` and the sparse part as [`SparseDelta`] holds it (value and
    /// 4-byte flat index per non-zero, plus `out + 1` row offsets), the LoRA pairs and the
    /// head. Allocator and map overheads (a few hundred bytes per layer) are not counted.
    pub fn resident_bytes(&self) -> u64 {
        let tensor = |t: &Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
        let mut bytes = 0u64;
        for layer in self.layers.values() {
            if let Some(w) = &layer.w {
                bytes += tensor(w);
            }
            match &layer.sparse {
                SparsePart::None => {}
                SparsePart::Sparse(s) => bytes += s.resident_bytes(),
                SparsePart::Dense(d) | SparsePart::RowScratch(d) => bytes += tensor(d),
            }
        }
        for lora in self.lora.values() {
            bytes += tensor(&lora.a) + tensor(&lora.b);
        }
        bytes + self.head.values().map(tensor).sum::<u64>()
    }

    /// `H_k` on every dense scratch: keep `k(module)` largest magnitudes per layer.
    pub fn harden(&mut self, k: impl Fn(&str) -> usize) -> crate::Result<()> {
        for (module, layer) in self.layers.iter_mut() {
            layer.harden(k(module))?;
        }
        Ok(())
    }

    /// Writes the file atomically with sparse values and LoRA `A`/`B` stored as `value_dtype`
    /// (F16, BF16 or F32) and `w` as F32; returns the sha256 of the bytes written. Dense
    /// scratches must be hardened first; LoRA parts must have `A [r_l, in]`, `B [out, r_l]`,
    /// finite values, and one common `α = s_l · r_l` (recorded as `lora_alpha`).
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
                tensor: "*.lrs_val, *.lora_a, *.lora_b".into(),
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
                SparsePart::Dense(_) | SparsePart::RowScratch(_) => {
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
        let mut alpha: Option<(f64, &str)> = None;
        for (module, lora) in &self.lora {
            let (a_name, b_name) = (format!("{module}.lora_a"), format!("{module}.lora_b"));
            let rank = lora.rank();
            if rank == 0 || lora.a.rank() != 2 {
                return Err(FileError::Shape {
                    file: path.to_path_buf(),
                    tensor: a_name,
                    expected: "[r_l, in] with r_l ≥ 1".into(),
                    found: lora.a.dims().to_vec(),
                });
            }
            if lora.b.rank() != 2 || lora.b.dim(1).ok() != Some(rank) {
                return Err(FileError::Shape {
                    file: path.to_path_buf(),
                    tensor: b_name,
                    expected: format!("[out, {rank}] (r_l from {a_name})"),
                    found: lora.b.dims().to_vec(),
                });
            }
            let this = lora.alpha();
            if !this.is_finite() {
                return Err(FileError::BadMetadata {
                    file: path.to_path_buf(),
                    key: LORA_ALPHA_KEY.into(),
                    reason: format!("{module}: scale {} gives α = {this}", lora.scale),
                });
            }
            match alpha {
                None => alpha = Some((this, module)),
                Some((first, first_module))
                    if (this - first).abs() > ALPHA_REL_TOL * first.abs().max(this.abs()) =>
                {
                    return Err(FileError::BadMetadata {
                        file: path.to_path_buf(),
                        key: LORA_ALPHA_KEY.into(),
                        reason: format!(
                            "one α per file, but {first_module} has α = {first} and {module} \
                             has α = {this} (α = scale · r_l)"
                        ),
                    });
                }
                Some(_) => {}
            }
            for (name, t) in [(a_name, &lora.a), (b_name, &lora.b)] {
                let stored = t
                    .detach()
                    .to_dtype(value_dtype)
                    .map_err(|e| tensor_err(name.clone(), e))?;
                // Check what is written (a finite f32 may overflow f16), so every saved file
                // passes `load`.
                if let Some(position) =
                    first_non_finite(&stored).map_err(|e| tensor_err(name.clone(), e))?
                {
                    return Err(non_finite(path, &name, position));
                }
                tensors.push((name, stored));
            }
        }
        for (name, t) in &self.head {
            tensors.push((name.clone(), t.detach()));
        }
        let mut meta = HashMap::from([
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
        if let Some((alpha, _)) = alpha {
            // `{}` prints the shortest string that parses back to the same f64.
            meta.insert(LORA_ALPHA_KEY.to_string(), alpha.to_string());
        }
        let bytes = serialize(path, tensors, meta)?;
        write_atomic(path, &bytes)?;
        Ok(sha256_hex(&bytes))
    }
}

/// Reads `<module>.lora_a` / `<module>.lora_b` for a `(out, in)` module: both present, floating
/// dtype, `A [r_l, in]`, `B [out, r_l]`, `r_l ≥ 1`, finite values, `lora_alpha` recorded.
fn load_lora(
    p: &Parsed,
    module: &str,
    (out_dim, in_dim): (usize, usize),
    alpha: Option<f64>,
    device: &Device,
    dtype: DType,
) -> Result<LoraPart, FileError> {
    let (a_name, b_name) = (format!("{module}.lora_a"), format!("{module}.lora_b"));
    let floats = [DType::F16, DType::BF16, DType::F32];
    // Validated on the host, moved to `device` only once known good.
    let a = p.tensor(&a_name, &floats, "F16, BF16 or F32", &Device::Cpu)?;
    let b = p.tensor(&b_name, &floats, "F16, BF16 or F32", &Device::Cpu)?;
    let rank = match a.dims() {
        &[r, i] if r >= 1 && i == in_dim => r,
        found => return Err(p.shape_err(&a_name, format!("[r_l ≥ 1, {in_dim}]"), found)),
    };
    if b.dims() != [out_dim, rank] {
        return Err(p.shape_err(
            &b_name,
            format!("[{out_dim}, {rank}] (r_l from {a_name})"),
            b.dims(),
        ));
    }
    let alpha = alpha.ok_or_else(|| {
        p.bad_meta(
            LORA_ALPHA_KEY,
            &format!("missing, but the file holds {a_name} and {b_name}"),
        )
    })?;
    let finish = |name: &str, t: Tensor| -> Result<Tensor, FileError> {
        if let Some(position) = first_non_finite(&t).map_err(|e| p.tensor_err(name, e))? {
            return Err(non_finite(p.path, name, position));
        }
        t.to_device(device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(|e| p.tensor_err(name, e))
    };
    let (a, b) = (finish(&a_name, a)?, finish(&b_name, b)?);
    Ok(LoraPart::from_alpha(a, b, alpha))
}

/// Flat position of the first NaN or ±∞ in `t`, if any.
fn first_non_finite(t: &Tensor) -> candle_core::Result<Option<usize>> {
    let values: Vec<f32> = t.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
    Ok(values.iter().position(|v| !v.is_finite()))
}

/// The typed error for a NaN or ±∞ in a stored tensor.
fn non_finite(file: &Path, tensor: &str, position: usize) -> FileError {
    FileError::Tensor {
        file: file.to_path_buf(),
        tensor: tensor.to_string(),
        source: Box::new(candle_core::Error::Msg(format!(
            "non-finite value at flat position {position}"
        ))),
    }
}

/// TaskDelta files load through the [`ModelFile`] skeleton.
///
/// Reads and validates a task file: format/version, `base_sha256` and `shared_sha256`
/// against `check`, rank, known modules, shapes `w [r]`, `idx`/`val [nnz]` (U32 indices
/// strictly increasing and `< out·in`), total `nnz`; LoRA parts: `lora_a [r_l, in]` and
/// `lora_b [out, r_l]` both present or both absent, finite values, `lora_alpha` metadata
/// present (finite) exactly when some module has them. Values land on `device` in `dtype`.
impl FileBody for TaskDelta {
    const FORMAT: &'static str = TASK_FORMAT;

    fn from_parsed(p: &Parsed, check: &LoadCheck, dev: &Device, dt: DType) -> FileResult<Self> {
        let path = p.path;
        if let Some(shared) = &check.shared_sha256 {
            p.check_hash("shared_sha256", shared)?;
        }
        let rank = p.rank_matching(check.rank)?;
        let lora_alpha: Option<f64> = match p.meta.get(LORA_ALPHA_KEY) {
            None => None,
            Some(_) => {
                let alpha: f64 = p.meta_parse(LORA_ALPHA_KEY)?;
                if !alpha.is_finite() {
                    return Err(p.bad_meta(LORA_ALPHA_KEY, &format!("{alpha} is not finite")));
                }
                Some(alpha)
            }
        };
        let mut layers: BTreeMap<String, LayerDelta> = BTreeMap::new();
        let mut lora: BTreeMap<String, LoraPart> = BTreeMap::new();
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
                    dev,
                )?;
                head.insert(
                    name.clone(),
                    t.to_dtype(dt).map_err(|e| p.tensor_err(&name, e))?,
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
                    let w = p.tensor(&name, &[DType::F32], "F32", dev)?;
                    if w.dims() != [rank] {
                        return Err(p.shape_err(&name, format!("[{rank}]"), w.dims()));
                    }
                    let w = w.to_dtype(dt).map_err(|e| p.tensor_err(&name, e))?;
                    layers.entry(module.to_string()).or_default().w = Some(w);
                }
                "lrs_idx" => {
                    let val_name = format!("{module}.lrs_val");
                    let idx_t = p.tensor(&name, &[DType::U32], "U32", &Device::Cpu)?;
                    let val = p.tensor(
                        &val_name,
                        &[DType::F16, DType::BF16, DType::F32],
                        "F16, BF16 or F32",
                        dev,
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
                    let val = val.to_dtype(dt).map_err(|e| p.tensor_err(&val_name, e))?;
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
                "lora_a" => {
                    let part = load_lora(p, module, (out_dim, in_dim), lora_alpha, dev, dt)?;
                    lora.insert(module.to_string(), part);
                }
                "lora_b" => {
                    let a_name = format!("{module}.lora_a");
                    if p.st.tensor(&a_name).is_err() {
                        return Err(FileError::MissingTensor {
                            file: path.to_path_buf(),
                            tensor: a_name,
                        });
                    }
                }
                _ => return Err(unknown(&name)),
            }
        }
        if lora_alpha.is_some() && lora.is_empty() {
            return Err(p.bad_meta(
                LORA_ALPHA_KEY,
                "present, but the file holds no LoRA tensors (*.lora_a / *.lora_b)",
            ));
        }
        p.check_head(&head, check.hidden, true)?;
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
            lora,
            created: p.meta.get("created").cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::ModelFile;

    /// A task file holding only `head` tensors, checked against hashes `b`/`s` and rank 4.
    fn load_head(head: Vec<(&str, Tensor)>) -> Result<TaskDelta, FileError> {
        load_head_for(head, None)
    }

    /// [`load_head`] for a model of hidden size `hidden` (`None`: any).
    fn load_head_for(
        head: Vec<(&str, Tensor)>,
        hidden: Option<usize>,
    ) -> Result<TaskDelta, FileError> {
        let path = Path::new("head.safetensors");
        let meta = [
            ("format", TASK_FORMAT),
            ("version", super::super::FORMAT_VERSION),
            ("task_id", "t"),
            ("base_sha256", "b"),
            ("shared_sha256", "s"),
            ("rank", "4"),
            ("nnz", "0"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let tensors = head.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
        let bytes = serialize(path, tensors, HashMap::from(meta)).expect("serialize");
        let check = LoadCheck {
            base_sha256: "b".into(),
            shared_sha256: Some("s".into()),
            rank: Some(4),
            modules: BTreeMap::new(),
            hidden,
        };
        TaskDelta::from_bytes(path, &bytes, &check, &Device::Cpu, DType::F32)
    }

    fn zeros(shape: &[usize]) -> Tensor {
        Tensor::zeros(shape, DType::F32, &Device::Cpu).expect("zeros")
    }

    /// Found by the `task_file` fuzz target: a task head of another shape loaded, then shifted
    /// other tasks' rows in a mixed serving batch (bias `[2]`) or failed the forward pass.
    #[test]
    fn task_head_must_be_one_row_and_one_bias() {
        let task = load_head(vec![
            ("head.weight", zeros(&[1, 32])),
            ("head.bias", zeros(&[1])),
            ("head.note", zeros(&[3])),
        ])
        .expect("a [1, h] weight and [1] bias load");
        assert_eq!(task.head["head.weight"].dims(), [1, 32]);
        // (weight shape, bias shape, tensor at fault, its shape)
        type Case = (
            &'static [usize],
            &'static [usize],
            &'static str,
            &'static [usize],
        );
        let bad: [Case; 5] = [
            (&[2, 32], &[1], "head.weight", &[2, 32]),
            (&[32], &[1], "head.weight", &[32]),
            (&[1, 0], &[1], "head.weight", &[1, 0]),
            (&[1, 32], &[2], "head.bias", &[2]),
            (&[1, 32], &[], "head.bias", &[]),
        ];
        for (w, b, tensor, found) in bad {
            match load_head(vec![("head.weight", zeros(w)), ("head.bias", zeros(b))]) {
                Err(FileError::Shape {
                    tensor: t,
                    found: f,
                    ..
                }) => {
                    assert_eq!((t.as_str(), f.as_slice()), (tensor, found));
                }
                other => panic!("{w:?}/{b:?}: expected a shape error on {tensor}, got {other:?}"),
            }
        }
        match load_head(vec![("head.weight", zeros(&[1, 32]))]) {
            Err(FileError::MissingTensor { tensor, .. }) => assert_eq!(tensor, "head.bias"),
            other => panic!("head.weight alone: expected head.bias missing, got {other:?}"),
        }
    }

    /// A task head may be a bias alone (a per-task intercept), still of shape `[1]`.
    #[test]
    fn task_head_may_be_a_bias_alone() {
        let task = load_head(vec![("head.bias", zeros(&[1]))]).expect("a lone [1] bias loads");
        assert_eq!(task.head.len(), 1);
        assert_eq!(task.head["head.bias"].dims(), [1]);
        for bad in [&[2][..], &[][..], &[1, 1][..]] {
            match load_head(vec![("head.bias", zeros(bad))]) {
                Err(FileError::Shape { tensor, found, .. }) => {
                    assert_eq!((tensor.as_str(), found.as_slice()), ("head.bias", bad));
                }
                other => panic!("lone bias {bad:?}: expected a shape error, got {other:?}"),
            }
        }
    }

    /// Found by the `task_file` fuzz target: a `[1, 64]` head loaded into a hidden-32 model,
    /// then failed every forward pass of its task (a 500 in serving).
    #[test]
    fn task_head_must_match_the_models_hidden_size() {
        let head = |h: usize| vec![("head.weight", zeros(&[1, h])), ("head.bias", zeros(&[1]))];
        assert!(load_head_for(head(32), Some(32)).is_ok());
        match load_head_for(head(64), Some(32)) {
            Err(FileError::Shape { tensor, found, .. }) => {
                assert_eq!(
                    (tensor.as_str(), found.as_slice()),
                    ("head.weight", &[1, 64][..])
                );
            }
            other => panic!("expected a shape error on head.weight, got {other:?}"),
        }
    }

    #[test]
    fn resident_bytes_and_params_count_w_sparse_and_head() -> crate::Result<()> {
        let dev = Device::Cpu;
        let mut t = TaskDelta::new("a", 4);
        let s = SparseDelta::new(8, 8, vec![1, 5, 9], Tensor::new(&[1f32, 2.0, 3.0], &dev)?)?;
        let layer = LayerDelta {
            w: Some(Tensor::ones(4, DType::F32, &dev)?),
            sparse: SparsePart::Sparse(s),
        };
        t.layers.insert("m".into(), layer);
        t.head.insert(
            "head.weight".into(),
            Tensor::zeros((1, 8), DType::F32, &dev)?,
        );
        // w: 4 f32; sparse: 3 values + 3 indices + 9 row offsets (u32); head: 8 f32.
        assert_eq!(t.resident_bytes(), 16 + 3 * (4 + 4) + 9 * 4 + 32);
        // w: 4, sparse: 3 non-zeros, head: 8.
        assert_eq!(t.params(), 4 + 3 + 8);
        Ok(())
    }
}
