//! PEFT LoRA adapters: the shared factor, or one task's low-rank model, as PEFT's own
//! `adapter_config.json` + `adapter_model.safetensors`.
//!
//! For module `m` with shared `U [out, r]`, `V [in, r]`, scale `s` and a task's core `w`
//! (`1` without a task) the adapter holds `lora_A = Vᵀ [r, in]` and `lora_B = s·U·diag(w)
//! [out, r]`; a task's own LoRA part `s_l·B_l A_l` is stacked under it (`lora_A = [Vᵀ; A_l]`,
//! `lora_B = [s·U·diag(w), s_l·B_l]`, rank `r + r_l`, recorded in `rank_pattern`). Every
//! module's `lora_alpha` equals its rank, so PEFT's scale `lora_alpha / r` is 1 and PEFT
//! computes exactly `W0 + lora_B lora_A`. A task's sparse part has no LoRA form and is not in
//! the adapter ([`PeftAdapter::dropped_nnz`] says how much was left out).

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};

use crate::files::serialize;
use crate::{NnError, Result, SharedFactor, TaskDelta};

/// File name of a PEFT adapter's config.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// File name of a PEFT adapter's weights.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// A PEFT LoRA adapter in memory.
#[derive(Debug, Clone)]
pub struct PeftAdapter {
    /// `base_model.model.<module>.lora_{A,B}.weight` tensors (F32).
    pub tensors: Vec<(String, Tensor)>,
    /// The `adapter_config.json` object.
    pub config: serde_json::Value,
    /// Sparse non-zeros of the task that the adapter does not hold.
    pub dropped_nnz: usize,
}

/// PEFT's key of a module's LoRA tensor (`part` is `lora_A` or `lora_B`).
pub fn peft_key(module: &str, part: &str) -> String {
    format!("base_model.model.{module}.{part}.weight")
}

fn cpu_f32(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)
}

/// The adapter of `shared` (with `task`'s core and LoRA parts folded in, when given).
pub fn peft_adapter(shared: &SharedFactor, task: Option<&TaskDelta>) -> Result<PeftAdapter> {
    if let Some(task) = task {
        super::check_task_modules(shared, task)?;
    }
    let mut tensors = Vec::new();
    let mut rank_pattern = BTreeMap::new();
    for (module, lr) in &shared.layers {
        let u = cpu_f32(&lr.u)?;
        let u = match task.and_then(|t| t.layers.get(module)?.w.as_ref()) {
            Some(w) => u.broadcast_mul(&cpu_f32(w)?.unsqueeze(0)?)?,
            None => u,
        };
        let mut a = cpu_f32(&lr.v)?.t()?.contiguous()?;
        let mut b = (u * lr.scale)?;
        if let Some(lora) = task.and_then(|t| t.lora.get(module)) {
            lora.check_shape((b.dim(0)?, a.dim(1)?))?;
            a = Tensor::cat(&[&a, &cpu_f32(&lora.a)?], 0)?;
            b = Tensor::cat(&[&b, &(cpu_f32(&lora.b)? * lora.scale)?], 1)?;
        }
        let rank = a.dim(0)?;
        if rank != shared.rank {
            rank_pattern.insert(module.clone(), rank);
        }
        tensors.push((peft_key(module, "lora_A"), a));
        tensors.push((peft_key(module, "lora_B"), b));
    }
    let (base, revision) = match shared.base_model.split_once('@') {
        Some((id, rev)) => (id.to_string(), Some(rev.to_string())),
        None => (shared.base_model.clone(), None),
    };
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "FEATURE_EXTRACTION",
        "base_model_name_or_path": base,
        "revision": revision,
        "r": shared.rank,
        "lora_alpha": shared.rank,
        "rank_pattern": rank_pattern,
        "alpha_pattern": rank_pattern,
        "target_modules": shared.layers.keys().collect::<Vec<_>>(),
        "lora_dropout": 0.0,
        "fan_in_fan_out": false,
        "bias": "none",
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
        "init_lora_weights": true,
        "layers_to_transform": null,
        "layers_pattern": null,
        "inference_mode": true,
    });
    Ok(PeftAdapter {
        tensors,
        config,
        dropped_nnz: task.map_or(0, TaskDelta::nnz),
    })
}

impl PeftAdapter {
    /// `adapter_model.safetensors` bytes (metadata `format = pt`, as PEFT writes).
    pub fn weights_bytes(&self) -> Result<Vec<u8>> {
        let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
        Ok(serialize(
            std::path::Path::new(ADAPTER_WEIGHTS),
            self.tensors.clone(),
            meta,
        )?)
    }

    /// `adapter_config.json` text.
    pub fn config_text(&self) -> Result<String> {
        serde_json::to_string_pretty(&self.config)
            .map_err(|e| NnError::Invalid(format!("{ADAPTER_CONFIG}: {e}")))
    }
}
