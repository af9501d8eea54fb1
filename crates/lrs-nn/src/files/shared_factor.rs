//! `shared.safetensors`: the shared low-rank factors `U`, `V` of every adapted layer, the shared
//! head, and the provenance (base model + hash, rank, scale, targets, DP guarantee).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::sealed::FileBody;
use super::{
    atomic::write_atomic, read_bytes, serialize, sha256_hex, FileResult, LoadCheck, Parsed,
};
use crate::bert::LrsOptions;
use crate::error::FileError;
use crate::lrs_linear::LowRank;

/// `format` metadata of a shared file.
pub const SHARED_FORMAT: &str = "lrs-shared";

const FLOATS: &[DType] = &[DType::F16, DType::BF16, DType::F32, DType::F64];
const FLOAT_WORDS: &str = "F16, BF16, F32 or F64";

/// The shared half of an LRS model, as stored in `shared.safetensors`.
#[derive(Debug, Clone)]
pub struct SharedFactor {
    /// Base model: `id@revision` or a path.
    pub base_model: String,
    /// sha256 of the base weight file bytes.
    pub base_sha256: String,
    /// Rank `r`.
    pub rank: usize,
    /// Scale `s`.
    pub scale: f64,
    /// Target module patterns the factor was trained with.
    pub target_modules: Vec<String>,
    /// Differential-privacy guarantee (JSON object: epsilon, delta, accountant, ...), if any.
    pub dp: Option<serde_json::Value>,
    /// Module name → its `U [out, r]`, `V [in, r]`.
    pub layers: BTreeMap<String, LowRank>,
    /// Shared head tensors, keyed by full name (`head.weight`, ...).
    pub head: BTreeMap<String, Tensor>,
    /// sha256 of the file bytes this factor was last loaded from or saved to.
    pub sha256: Option<String>,
}

impl SharedFactor {
    /// Writes the file atomically and returns the sha256 of the bytes written (also stored in
    /// `self.sha256`); task files record it as `shared_sha256`.
    pub fn save(&mut self, path: &Path) -> Result<String, FileError> {
        let mut tensors = Vec::new();
        for (module, lr) in &self.layers {
            tensors.push((format!("{module}.lrs_u"), lr.u.clone()));
            tensors.push((format!("{module}.lrs_v"), lr.v.clone()));
        }
        for (name, t) in &self.head {
            tensors.push((name.clone(), t.clone()));
        }
        let mut meta = HashMap::from([
            ("format".to_string(), SHARED_FORMAT.to_string()),
            ("version".to_string(), super::FORMAT_VERSION.to_string()),
            ("base_model".to_string(), self.base_model.clone()),
            ("base_sha256".to_string(), self.base_sha256.clone()),
            ("rank".to_string(), self.rank.to_string()),
            ("scale".to_string(), self.scale.to_string()),
            (
                "target_modules".to_string(),
                serde_json::to_string(&self.target_modules).unwrap_or_else(|_| "[]".into()),
            ),
        ]);
        if let Some(dp) = &self.dp {
            meta.insert("dp".to_string(), dp.to_string());
        }
        let bytes = serialize(path, tensors, meta)?;
        write_atomic(path, &bytes)?;
        let sha = sha256_hex(&bytes);
        self.sha256 = Some(sha.clone());
        Ok(sha)
    }

    /// The adapter options (rank, scale, target modules) a shared file was trained with, read
    /// from its metadata alone, so the base model can be built to match the file before it is
    /// loaded and validated for real ([`Self::load`]).
    pub fn options_of(path: &Path) -> Result<LrsOptions, FileError> {
        let bytes = read_bytes(path)?;
        let p = Parsed::new(path, &bytes)?;
        p.check_format(SHARED_FORMAT)?;
        Ok(LrsOptions {
            rank: p.meta_parse("rank")?,
            scale: p.meta_parse("scale")?,
            target_modules: target_modules(&p)?,
        })
    }
}

/// The `target_modules` metadata: a JSON list of module-name patterns.
fn target_modules(p: &Parsed) -> Result<Vec<String>, FileError> {
    serde_json::from_str(p.meta("target_modules")?)
        .map_err(|e| p.bad_meta("target_modules", &e.to_string()))
}

/// SharedFactor files load through the [`ModelFile`] skeleton.
///
/// Reads and validates a shared file: format/version, `base_sha256` against
/// `check.base_sha256`, rank (if `check.rank`), every `lrs_u`/`lrs_v` pair present for
/// exactly known modules with consistent shapes. Tensors land on `device` in `dtype`.
impl FileBody for SharedFactor {
    const FORMAT: &'static str = SHARED_FORMAT;

    fn from_parsed(p: &Parsed, check: &LoadCheck, dev: &Device, dt: DType) -> FileResult<Self> {
        let path = p.path;
        let rank = p.rank_matching(check.rank)?;
        let scale: f64 = p.meta_parse("scale")?;
        let target_modules = target_modules(p)?;
        let dp = match p.meta.get("dp") {
            None => None,
            Some(s) => Some(serde_json::from_str(s).map_err(|e| p.bad_meta("dp", &e.to_string()))?),
        };
        let mut layers = BTreeMap::new();
        let mut head = BTreeMap::new();
        let mut u_seen = BTreeMap::new();
        for name in p.names() {
            let load = |name: &str| {
                p.tensor(name, FLOATS, FLOAT_WORDS, dev)?
                    .to_dtype(dt)
                    .map_err(|e| p.tensor_err(name, e))
            };
            if name.starts_with("head.") {
                head.insert(name.clone(), load(&name)?);
                continue;
            }
            let (module, kind) = match (name.strip_suffix(".lrs_u"), name.strip_suffix(".lrs_v")) {
                (Some(m), _) => (m.to_string(), 'u'),
                (_, Some(m)) => (m.to_string(), 'v'),
                _ => {
                    return Err(FileError::UnknownModule {
                        file: path.to_path_buf(),
                        tensor: name,
                    })
                }
            };
            let Some(&(out_dim, in_dim)) = check.modules.get(&module) else {
                return Err(FileError::UnknownModule {
                    file: path.to_path_buf(),
                    tensor: name,
                });
            };
            let t = load(&name)?;
            let want = if kind == 'u' {
                [out_dim, rank]
            } else {
                [in_dim, rank]
            };
            if t.dims() != want {
                return Err(p.shape_err(&name, format!("{want:?}"), t.dims()));
            }
            if kind == 'u' {
                u_seen.insert(module, t);
            } else {
                let Some(u) = u_seen.remove(&module) else {
                    // Names are sorted, so `.lrs_u` comes before `.lrs_v`.
                    return Err(FileError::MissingTensor {
                        file: path.to_path_buf(),
                        tensor: format!("{module}.lrs_u"),
                    });
                };
                layers.insert(module, LowRank::new(u, t, scale));
            }
        }
        p.check_head(&head, check.hidden, false)?;
        if let Some(module) = u_seen.into_keys().next() {
            return Err(FileError::MissingTensor {
                file: path.to_path_buf(),
                tensor: format!("{module}.lrs_v"),
            });
        }
        Ok(Self {
            base_model: p.meta("base_model")?.to_string(),
            base_sha256: check.base_sha256.clone(),
            rank,
            scale,
            target_modules,
            dp,
            layers,
            head,
            sha256: Some(sha256_hex(p.bytes)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::ModelFile;

    /// Found by the `shared_file` fuzz target: a shared head of another shape loaded and made
    /// every served forward pass fail (or, with a `[2]` bias and two rows, add per-row biases).
    #[test]
    fn shared_head_must_be_one_row_and_one_bias() {
        let path = Path::new("shared.safetensors");
        let check = LoadCheck {
            base_sha256: "b".into(),
            ..LoadCheck::default()
        };
        let load = |w: &[usize], b: &[usize]| {
            let meta = [
                ("format", SHARED_FORMAT),
                ("version", super::super::FORMAT_VERSION),
                ("base_model", "m"),
                ("base_sha256", "b"),
                ("rank", "4"),
                ("scale", "1"),
                ("target_modules", "[]"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()));
            let zeros = |s: &[usize]| Tensor::zeros(s, DType::F32, &Device::Cpu).expect("zeros");
            let tensors = vec![
                ("head.weight".to_string(), zeros(w)),
                ("head.bias".to_string(), zeros(b)),
            ];
            let bytes = serialize(path, tensors, HashMap::from(meta)).expect("serialize");
            SharedFactor::from_bytes(path, &bytes, &check, &Device::Cpu, DType::F32)
        };
        let ok = load(&[1, 32], &[1]).expect("a [1, h] weight and [1] bias load");
        assert_eq!(ok.head["head.bias"].dims(), [1]);
        for (w, b, tensor) in [
            (&[2usize, 32][..], &[1usize][..], "head.weight"),
            (&[1, 32], &[2], "head.bias"),
        ] {
            match load(w, b) {
                Err(FileError::Shape { tensor: t, .. }) => assert_eq!(t, tensor),
                other => panic!("{w:?}/{b:?}: expected a shape error on {tensor}, got {other:?}"),
            }
        }
    }
}
