//! A shared factor from an existing PEFT LoRA adapter directory (`adapter_config.json` +
//! `adapter_model.safetensors`): module `m`'s `lora_A [r_m, in]`, `lora_B [out, r_m]` and PEFT
//! scale `γ_m = lora_alpha_m / r_m` (`/ √r_m` with `use_rslora`) become `V = lora_Aᵀ`,
//! `U = lora_B` with `s = γ` when every module has the same rank and scale; otherwise the
//! rank is the largest `r_m`, `s = 1`, and each `U = γ_m·lora_B`, `V = lora_Aᵀ` is padded with
//! zero columns — the same `W0 + γ_m·lora_B lora_A` either way.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::peft::{ADAPTER_CONFIG, ADAPTER_WEIGHTS};
use crate::error::FileError;
use crate::files::{read_bytes, Parsed};
use crate::{LowRank, NnError, Result, SharedFactor};

/// What an adapter's `adapter_config.json` says that the import uses.
#[derive(Debug, Clone)]
pub struct PeftLoraConfig {
    /// `base_model_name_or_path` (with `@revision` when the config has one).
    pub base_model: Option<String>,
    /// `r`.
    pub r: usize,
    /// `lora_alpha`.
    pub lora_alpha: f64,
    /// `use_rslora`.
    pub use_rslora: bool,
    /// `rank_pattern` (module name or suffix → rank).
    pub rank_pattern: BTreeMap<String, usize>,
    /// `alpha_pattern` (module name or suffix → alpha).
    pub alpha_pattern: BTreeMap<String, f64>,
    /// `target_modules` as written (a list, or a regex string).
    pub target_modules: serde_json::Value,
}

fn invalid(dir: &Path, reason: impl std::fmt::Display) -> NnError {
    NnError::Invalid(format!("{}: {reason}", dir.join(ADAPTER_CONFIG).display()))
}

/// Whether the PEFT pattern key `key` selects module `name` (equal, or a `.`-suffix).
fn pattern_matches(key: &str, name: &str) -> bool {
    name == key || name.strip_suffix(key).is_some_and(|h| h.ends_with('.'))
}

impl PeftLoraConfig {
    /// Reads `dir/adapter_config.json`, refusing what the shared factor cannot hold: another
    /// `peft_type`, trained biases, `fan_in_fan_out`, DoRA, regex pattern keys.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(ADAPTER_CONFIG);
        let text = String::from_utf8(read_bytes(&path)?).map_err(|e| invalid(dir, e))?;
        let c: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(dir, e))?;
        let field = |k: &str| c.get(k).filter(|v| !v.is_null());
        if field("peft_type").and_then(|v| v.as_str()) != Some("LORA") {
            return Err(invalid(
                dir,
                format!("peft_type {:?}, only LORA imports", field("peft_type")),
            ));
        }
        let r = field("r")
            .and_then(|v| v.as_u64())
            .filter(|&r| r >= 1)
            .ok_or_else(|| invalid(dir, "`r` must be a positive integer"))?
            as usize;
        let lora_alpha = field("lora_alpha")
            .and_then(|v| v.as_f64())
            .filter(|a| a.is_finite())
            .ok_or_else(|| invalid(dir, "`lora_alpha` must be a number"))?;
        if let Some(b) = field("bias")
            .and_then(|v| v.as_str())
            .filter(|b| *b != "none")
        {
            return Err(invalid(
                dir,
                format!("bias {b:?}: trained biases have no place in a shared factor"),
            ));
        }
        for flag in ["fan_in_fan_out", "use_dora"] {
            if field(flag).and_then(|v| v.as_bool()) == Some(true) {
                return Err(invalid(dir, format!("{flag} = true is not supported")));
            }
        }
        let pattern = |k: &str| -> Result<BTreeMap<String, f64>> {
            let mut out = BTreeMap::new();
            let Some(map) = field(k) else {
                return Ok(out);
            };
            let map = map
                .as_object()
                .ok_or_else(|| invalid(dir, format!("`{k}` must be an object")))?;
            for (key, v) in map {
                if key.contains(|ch: char| "^$*+?()[]{}|\\".contains(ch)) {
                    return Err(invalid(
                        dir,
                        format!("`{k}` key {key:?} is a regex; only module names are supported"),
                    ));
                }
                let v = v
                    .as_f64()
                    .ok_or_else(|| invalid(dir, format!("`{k}`.{key} must be a number")))?;
                out.insert(key.clone(), v);
            }
            Ok(out)
        };
        let rank_pattern = pattern("rank_pattern")?
            .into_iter()
            .map(|(k, v)| (k, v as usize))
            .collect();
        let base_model = field("base_model_name_or_path")
            .and_then(|v| v.as_str())
            .map(|b| match field("revision").and_then(|v| v.as_str()) {
                Some(rev) => format!("{b}@{rev}"),
                None => b.to_string(),
            });
        Ok(Self {
            base_model,
            r,
            lora_alpha,
            use_rslora: field("use_rslora").and_then(|v| v.as_bool()) == Some(true),
            rank_pattern,
            alpha_pattern: pattern("alpha_pattern")?,
            target_modules: c.get("target_modules").cloned().unwrap_or_default(),
        })
    }

    /// PEFT's scale of module `name` with `rank` rows of `lora_A`.
    pub fn scale(&self, name: &str) -> f64 {
        let pick = |m: &BTreeMap<String, f64>| {
            m.iter()
                .find(|(k, _)| pattern_matches(k, name))
                .map(|(_, v)| *v)
        };
        let rank = self
            .rank_pattern
            .iter()
            .find(|(k, _)| pattern_matches(k, name))
            .map_or(self.r, |(_, r)| *r) as f64;
        let alpha = pick(&self.alpha_pattern).unwrap_or(self.lora_alpha);
        if self.use_rslora {
            alpha / rank.sqrt()
        } else {
            alpha / rank
        }
    }
}

/// Module name of a PEFT tensor key and whether it is `lora_A` (`true`) or `lora_B`, with
/// PEFT's `base_model.model.` and a task model's `bert.` prefix removed.
fn split_key(key: &str) -> Option<(String, bool)> {
    let rest = key.strip_prefix("base_model.model.").unwrap_or(key);
    let rest = rest.strip_prefix("bert.").unwrap_or(rest);
    let (module, is_a) = match (
        rest.strip_suffix(".lora_A.weight"),
        rest.strip_suffix(".lora_B.weight"),
    ) {
        (Some(m), _) => (m, true),
        (_, Some(m)) => (m, false),
        _ => return None,
    };
    Some((module.to_string(), is_a))
}

/// The shared factor of the adapter in `dir`, for a base whose linear layers have the `(out,
/// in)` shapes `linears` (every adapted module must be one of them, with matching shapes).
/// `base_model` / `base_sha256` are the provenance of that base; the factor has no head.
pub fn shared_from_peft(
    dir: &Path,
    linears: &BTreeMap<String, (usize, usize)>,
    base_model: &str,
    base_sha256: &str,
) -> Result<SharedFactor> {
    let config = PeftLoraConfig::read(dir)?;
    let path = dir.join(ADAPTER_WEIGHTS);
    let bytes = read_bytes(&path)?;
    let parsed = Parsed::new(&path, &bytes)?;
    let floats = [DType::F16, DType::BF16, DType::F32, DType::F64];
    let mut parts: BTreeMap<String, (Option<Tensor>, Option<Tensor>)> = BTreeMap::new();
    for name in parsed.names() {
        let Some((module, is_a)) = split_key(&name) else {
            return Err(FileError::UnknownModule {
                file: path.clone(),
                tensor: name,
            }
            .into());
        };
        let t = parsed
            .tensor(&name, &floats, "F16, BF16, F32 or F64", &Device::Cpu)?
            .to_dtype(DType::F32)?;
        let slot = parts.entry(module).or_default();
        if is_a {
            slot.0 = Some(t);
        } else {
            slot.1 = Some(t);
        }
    }
    if parts.is_empty() {
        return Err(NnError::Invalid(format!(
            "{}: no lora_A / lora_B tensors",
            path.display()
        )));
    }
    let mut modules = Vec::new();
    for (module, (a, b)) in parts {
        let (Some(a), Some(b)) = (a, b) else {
            return Err(FileError::MissingTensor {
                file: path.clone(),
                tensor: format!("{module}: lora_A and lora_B"),
            }
            .into());
        };
        let Some(&(out_dim, in_dim)) = linears.get(&module) else {
            return Err(NnError::Invalid(format!(
                "{}: module {module} is not a linear layer of the base model",
                path.display()
            )));
        };
        let rank = a.dim(0)?;
        if a.dims() != [rank, in_dim] || b.dims() != [out_dim, rank] {
            return Err(NnError::Invalid(format!(
                "{}: {module}: lora_A {:?} and lora_B {:?} do not fit its [{out_dim}, {in_dim}] \
                 weight",
                path.display(),
                a.dims(),
                b.dims()
            )));
        }
        let scale = config.scale(&module);
        modules.push((module, a, b, rank, scale));
    }
    let rank = modules.iter().map(|m| m.3).max().unwrap_or(config.r);
    let uniform = modules
        .iter()
        .all(|m| m.3 == rank && (m.4 - modules[0].4).abs() <= 1e-12 * m.4.abs());
    let scale = if uniform { modules[0].4 } else { 1.0 };
    let mut layers = BTreeMap::new();
    for (module, a, b, r_m, scale_m) in modules {
        let pad = |t: Tensor| -> Result<Tensor> {
            if r_m == rank {
                return Ok(t);
            }
            let zeros = Tensor::zeros((t.dim(0)?, rank - r_m), DType::F32, &Device::Cpu)?;
            Ok(Tensor::cat(&[&t, &zeros], 1)?)
        };
        let u = if uniform { b } else { (b * scale_m)? };
        let v = a.t()?.contiguous()?;
        layers.insert(module, LowRank::new(pad(u)?, pad(v)?, scale));
    }
    Ok(SharedFactor {
        base_model: base_model.to_string(),
        base_sha256: base_sha256.to_string(),
        rank,
        scale,
        target_modules: layers.keys().cloned().collect(),
        dp: None,
        layers,
        head: BTreeMap::new(),
        sha256: None,
    })
}
