//! [`BertModel`]: embeddings + encoder layers, checkpoint loading, pooling, and the glue to the
//! shared/task files (hash checks against the loaded base weights).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, ModuleT, Tensor, Var, D};
use candle_nn::{VarBuilder, VarMap};

use super::config::BertConfig;
use super::embeddings::BertEmbeddings;
use super::encoder::{BertLayer, LayerStage};
use super::packing::TokenPacking;
use super::prefix::{PrefixState, ResumePoint};
use super::{Builder, LrsOptions};
use crate::files::{
    shared_factor::SharedFactor, task_delta::TaskDelta, LoadCheck, ModelFile, Parsed,
};
use crate::hub::BertCheckpoint;
use crate::lrs_linear::{LowRank, LrsLinear};
use crate::task_batch::TaskBatch;
use crate::{NnError, Result};

/// A tokenized batch: `[batch, seq]` u32 tensors.
#[derive(Debug, Clone)]
pub struct BertInput {
    /// Token ids.
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// Segment ids (0 for single sentences).
    pub token_type_ids: Tensor,
}

impl BertInput {
    /// Unpadded input: all-ones mask, all-zero token types.
    pub fn from_ids(input_ids: Tensor) -> candle_core::Result<Self> {
        Ok(Self {
            attention_mask: input_ids.ones_like()?,
            token_type_ids: input_ids.zeros_like()?,
            input_ids,
        })
    }

    /// Rows of token ids as one batch: each row padded with `pad_id` to the longest row (at
    /// least one column), the mask of [`padding_mask`], all-zero token types. Padding never
    /// changes a row's result; every batch of the trainer and the server is built here.
    pub fn padded(rows: &[&[u32]], pad_id: u32, device: &Device) -> candle_core::Result<Self> {
        let seq = padded_len(rows.iter().map(|r| r.len()));
        let mut ids = Vec::with_capacity(rows.len() * seq);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(pad_id, seq - r.len()));
        }
        let input_ids = Tensor::from_vec(ids, (rows.len(), seq), device)?;
        Ok(Self {
            attention_mask: padding_mask(rows.iter().map(|r| r.len()), device)?,
            token_type_ids: input_ids.zeros_like()?,
            input_ids,
        })
    }
}

/// The `[rows, seq]` u32 attention mask of rows of these lengths padded to the longest (at
/// least one column): 1 for each row's tokens, 0 for its padding.
pub fn padding_mask(
    lens: impl Iterator<Item = usize> + Clone,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let seq = padded_len(lens.clone());
    let mut mask = Vec::new();
    let mut rows = 0;
    for len in lens {
        mask.extend(std::iter::repeat_n(1u32, len));
        mask.extend(std::iter::repeat_n(0u32, seq - len));
        rows += 1;
    }
    Tensor::from_vec(mask, (rows, seq), device)
}

/// The padded length of rows of these lengths: the longest, and at least 1.
fn padded_len(lens: impl Iterator<Item = usize>) -> usize {
    lens.max().unwrap_or(0).max(1)
}

/// How to reduce `[batch, seq, h]` hidden states to one vector per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over non-padding tokens (sentence-transformers' default).
    Mean,
    /// The first (`[CLS]`) token.
    Cls,
}

/// Where the frozen base weights came from.
#[derive(Debug, Clone, Default)]
pub struct BaseInfo {
    /// `id@revision` or a path.
    pub model: String,
    /// sha256 of the weight file bytes.
    pub sha256: String,
    /// Key prefix in the weight file (`""` or `"bert."`).
    pub key_prefix: String,
}

/// A BERT encoder whose linear layers are [`LrsLinear`]s.
#[derive(Clone)]
pub struct BertModel {
    config: BertConfig,
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    lrs: Option<LrsOptions>,
    shared_vars: Option<VarMap>,
    base: BaseInfo,
    device: Device,
    dtype: DType,
}

impl BertModel {
    /// Builds the model from a frozen `base` builder (HF names without any `bert.` prefix) and,
    /// for an LRS model, the options plus the [`VarMap`] that will own `U`, `V` (created there
    /// with `U = 0`, so a fresh model computes exactly the base model).
    pub fn new(
        config: &BertConfig,
        base: VarBuilder,
        lrs: Option<(&LrsOptions, &VarMap)>,
    ) -> candle_core::Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let (device, dtype) = (base.device().clone(), base.dtype());
        let shared_vb = lrs.map(|(_, vm)| VarBuilder::from_varmap(vm, dtype, &device));
        let b = Builder {
            base,
            shared: lrs.map(|(o, _)| o).zip(shared_vb),
        };
        let embeddings = BertEmbeddings::load(config, &b.pp("embeddings"))?;
        let enc = b.pp("encoder").pp("layer");
        let layers = (0..config.num_hidden_layers)
            .map(|i| BertLayer::load(config, &enc.pp(&i.to_string())))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            embeddings,
            layers,
            lrs: lrs.map(|(o, _)| o.clone()),
            shared_vars: lrs.map(|(_, vm)| vm.clone()),
            base: BaseInfo::default(),
            device,
            dtype,
        })
    }

    /// Loads a checkpoint (`config.json` + `model.safetensors`, keys with or without `bert.`)
    /// onto `device` in `dtype`; with `lrs`, the matching layers get fresh shared factors in
    /// [`Self::shared_vars`].
    pub fn load(
        ckpt: &BertCheckpoint,
        lrs: Option<&LrsOptions>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let config = BertConfig::from_file(&ckpt.config)?;
        let bytes = crate::files::read_bytes(&ckpt.weights)?;
        let sha256 = crate::files::sha256_hex(&bytes);
        let key_prefix = {
            let parsed = Parsed::new(&ckpt.weights, &bytes)?;
            let prefixed = parsed
                .st
                .names()
                .iter()
                .any(|n| n.starts_with("bert.embeddings."));
            if prefixed { "bert." } else { "" }.to_string()
        };
        let vb = VarBuilder::from_buffered_safetensors(bytes, dtype, device)?;
        let vb = if key_prefix.is_empty() {
            vb
        } else {
            let p = key_prefix.clone();
            vb.rename_f(move |name| format!("{p}{name}"))
        };
        let varmap = VarMap::new();
        let mut model = Self::new(&config, vb, lrs.map(|o| (o, &varmap))).map_err(|e| {
            NnError::File(crate::FileError::Malformed {
                file: ckpt.weights.clone(),
                reason: format!(
                    "not a BERT checkpoint matching {}: {e}",
                    ckpt.config.display()
                ),
            })
        })?;
        model.base = BaseInfo {
            model: ckpt.source.clone(),
            sha256,
            key_prefix,
        };
        Ok(model)
    }

    /// The config.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// Provenance of the frozen base weights.
    pub fn base_info(&self) -> &BaseInfo {
        &self.base
    }

    /// The LRS options, if this is an LRS model.
    pub fn lrs_options(&self) -> Option<&LrsOptions> {
        self.lrs.as_ref()
    }

    /// The trainable shared parameters (`<module>.lrs_u`, `<module>.lrs_v`; add `head.*` here
    /// too to have them saved in the shared file).
    pub fn shared_vars(&self) -> Option<&VarMap> {
        self.shared_vars.as_ref()
    }

    /// Every linear layer, in checkpoint order.
    pub fn linears(&self) -> Vec<&LrsLinear> {
        self.layers.iter().flat_map(BertLayer::linears).collect()
    }

    /// Adapted modules and their `(out, in)` shapes.
    pub fn adapted_modules(&self) -> BTreeMap<String, (usize, usize)> {
        self.linears()
            .into_iter()
            .filter(|l| l.low_rank().is_some())
            .filter_map(|l| l.shape().ok().map(|s| (l.name().to_string(), s)))
            .collect()
    }

    /// What shared/task files must agree with to be loaded into this model.
    pub fn load_check(&self, shared_sha256: Option<&str>) -> LoadCheck {
        LoadCheck {
            base_sha256: self.base.sha256.clone(),
            shared_sha256: shared_sha256.map(String::from),
            rank: self.lrs.as_ref().map(|o| o.rank),
            modules: self.adapted_modules(),
            hidden: Some(self.config.hidden_size),
        }
    }

    /// `[batch, seq, h]` hidden states. `tasks` (one per row) adds each row's task delta;
    /// `train` turns dropout on.
    pub fn forward_t(
        &self,
        input: &BertInput,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let (mask_bias, packing) = self.masks(&input.attention_mask)?;
        let mut x = self
            .embeddings
            .forward_t(&input.input_ids, &input.token_type_ids, train)?;
        for layer in &self.layers {
            x = layer.forward_t(&x, &mask_bias, packing.as_ref(), None, tasks, train)?;
        }
        Ok(x)
    }

    /// Where the first adapted linear sits (the earliest point the task parts or shared
    /// factors can change anything); `None` when no module is adapted.
    pub fn resume_point(&self) -> Option<ResumePoint> {
        self.layers
            .iter()
            .enumerate()
            .find_map(|(layer, l)| l.first_adapted().map(|stage| ResumePoint { layer, stage }))
    }

    /// The frozen prefix of `input` up to [`Self::resume_point`] (eval mode, no tasks: the
    /// prefix reads only base weights).
    pub fn prefix(&self, input: &BertInput) -> candle_core::Result<PrefixState> {
        self.prefix_at(input, self.resume_point())
    }

    /// The state of `input` at `point` (`None`: the end of the encoder), eval mode, with no
    /// task parts but the shared factors of the layers below `point`, detached from autograd.
    /// For a `point` past [`Self::resume_point`] this depends on `U`, `V`: a trainer whose
    /// task parts start at `point` recomputes it after every shared phase.
    pub fn prefix_at(
        &self,
        input: &BertInput,
        point: Option<ResumePoint>,
    ) -> candle_core::Result<PrefixState> {
        let state = self.prefix_to(input, point)?;
        Ok(PrefixState {
            hidden: state.hidden.detach(),
            inner: state.inner.map(|t| t.detach()),
            projections: None,
        })
    }

    fn prefix_to(
        &self,
        input: &BertInput,
        point: Option<ResumePoint>,
    ) -> candle_core::Result<PrefixState> {
        let (mask_bias, packing) = self.masks(&input.attention_mask)?;
        let mut x = self
            .embeddings
            .forward_t(&input.input_ids, &input.token_type_ids, false)?;
        let stop = point.map_or(self.layers.len(), |p| p.layer.min(self.layers.len()));
        for layer in &self.layers[..stop] {
            x = layer.forward_t(&x, &mask_bias, packing.as_ref(), None, None, false)?;
        }
        let Some(point) = point else {
            return Ok(PrefixState {
                hidden: x,
                inner: None,
                projections: None,
            });
        };
        let layer = &self.layers[point.layer];
        Ok(match point.stage {
            LayerStage::Attention => PrefixState {
                hidden: x,
                inner: None,
                projections: None,
            },
            LayerStage::Ffn => PrefixState {
                hidden: layer.attention_t(&x, &mask_bias, None, false)?,
                inner: None,
                projections: None,
            },
            LayerStage::FfnOutput => {
                let a = layer.attention_t(&x, &mask_bias, None, false)?;
                PrefixState {
                    inner: Some(layer.ffn_inner(&a, None)?),
                    hidden: a,
                    projections: None,
                }
            }
        })
    }

    /// `state` (taken at `point`) with the attention projections of its layer input attached
    /// ([`PrefixState::projections`]), for many passes over it while the shared factors stay
    /// fixed (a task phase); unchanged when `point` is not a layer input.
    pub fn with_projections(
        &self,
        mut state: PrefixState,
        point: Option<ResumePoint>,
    ) -> candle_core::Result<PrefixState> {
        if let Some(p) = point.filter(|p| p.stage == LayerStage::Attention) {
            if let Some(layer) = self.layers.get(p.layer) {
                state.projections = Some(Arc::new(layer.projections(&state.hidden)?));
            }
        }
        Ok(state)
    }

    /// `[batch, seq, h]` hidden states from a [`Self::prefix`] state: equal to
    /// [`Self::forward_t`] on the same input (up to rounding) when `train` is off.
    pub fn forward_from(
        &self,
        state: &PrefixState,
        attention_mask: &Tensor,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        self.forward_from_at(state, attention_mask, self.resume_point(), tasks, train)
    }

    /// [`Self::forward_from`] for a state taken at `point` by [`Self::prefix_at`] (`None`:
    /// the final hidden states, returned as they are).
    pub fn forward_from_at(
        &self,
        state: &PrefixState,
        attention_mask: &Tensor,
        point: Option<ResumePoint>,
        tasks: Option<&TaskBatch>,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let Some(point) = point.filter(|p| p.layer < self.layers.len()) else {
            return Ok(state.hidden.clone());
        };
        let (mask_bias, packing) = self.masks(attention_mask)?;
        let layer = &self.layers[point.layer];
        let mut x = match point.stage {
            LayerStage::Attention => {
                let projections = state.projections.as_deref();
                layer.forward_t(
                    &state.hidden,
                    &mask_bias,
                    packing.as_ref(),
                    projections,
                    tasks,
                    train,
                )?
            }
            LayerStage::Ffn => layer.forward_from_ffn(&state.hidden, tasks, train)?,
            LayerStage::FfnOutput => {
                let inner = state.inner.as_ref().ok_or_else(|| {
                    candle_core::Error::msg("prefix state lacks output.dense's input")
                })?;
                layer.forward_from_ffn_output(inner, &state.hidden, tasks, train)?
            }
        };
        for layer in &self.layers[point.layer + 1..] {
            x = layer.forward_t(&x, &mask_bias, packing.as_ref(), None, tasks, train)?;
        }
        Ok(x)
    }

    /// What every layer reads of `attention_mask`: the additive attention mask as in the
    /// original BERT (0 for tokens, −10000 for padding) and the batch's [`TokenPacking`].
    fn masks(
        &self,
        attention_mask: &Tensor,
    ) -> candle_core::Result<(Tensor, Option<TokenPacking>)> {
        let mask = attention_mask.to_dtype(self.dtype)?;
        let (b, s) = mask.dims2()?;
        let bias = ((mask.ones_like()? - &mask)? * -10000.0)?.reshape((b, 1, 1, s))?;
        Ok((bias, TokenPacking::from_mask(attention_mask)?))
    }

    /// Pooled `[batch, h]` embeddings (eval mode).
    pub fn embed(
        &self,
        input: &BertInput,
        tasks: Option<&TaskBatch>,
        pooling: Pooling,
    ) -> candle_core::Result<Tensor> {
        let hidden = self.forward_t(input, tasks, false)?;
        pool(&hidden, &input.attention_mask, pooling)
    }

    /// The shared factors' vars, `[U, V]` per adapted module in module-name order (what a
    /// trainer's optimizer updates).
    pub fn factor_vars(&self) -> Result<Vec<Var>> {
        let vm = self
            .shared_vars
            .as_ref()
            .ok_or_else(|| NnError::Invalid("model has no LRS adapters".into()))?;
        let data = vm
            .data()
            .lock()
            .map_err(|_| NnError::Invalid("var map poisoned".into()))?;
        let mut vars = Vec::new();
        for module in self.adapted_modules().keys() {
            for suffix in ["lrs_u", "lrs_v"] {
                let name = format!("{module}.{suffix}");
                let var = data
                    .get(&name)
                    .ok_or_else(|| NnError::Invalid(format!("model has no var {name}")))?;
                vars.push(var.clone());
            }
        }
        Ok(vars)
    }

    /// Draws the shared factors' starting point from `rng`: per adapted module in module-name
    /// order, `V [in, r] ~ U(±1/√in)` row-major and `U = 0`, so the model starts equal to its
    /// base (LoRA's convention) with a seeded direction for `U` to grow along. A model is built
    /// with both factors at zero; a trainer calls this once, and loading a shared file
    /// ([`Self::set_shared`]) replaces both.
    pub fn init_shared_factors(&self, rng: &mut impl rand::Rng) -> Result<()> {
        let modules = self.adapted_modules();
        let vars = self.factor_vars()?;
        for ((_, &(out_dim, in_dim)), uv) in modules.iter().zip(vars.chunks(2)) {
            let [u, v] = uv else {
                return Err(NnError::Invalid("factor vars come in pairs".into()));
            };
            let rank = v.dim(1)?;
            let bound = 1.0 / (in_dim as f32).sqrt();
            let init: Vec<f32> = (0..in_dim * rank)
                .map(|_| rng.gen_range(-bound..bound))
                .collect();
            let v_init = Tensor::from_vec(init, (in_dim, rank), &self.device)?;
            v.set(&v_init.to_dtype(self.dtype)?)?;
            u.set(&Tensor::zeros((out_dim, rank), self.dtype, &self.device)?)?;
        }
        Ok(())
    }

    /// The current shared factor (detached copies of `U`, `V` and any `head.*` shared vars).
    pub fn shared_factor(&self, dp: Option<serde_json::Value>) -> Result<SharedFactor> {
        let opts = self
            .lrs
            .as_ref()
            .ok_or_else(|| NnError::Invalid("model has no LRS adapters".into()))?;
        let mut layers = BTreeMap::new();
        for l in self.linears() {
            if let Some(lr) = l.low_rank() {
                layers.insert(
                    l.name().to_string(),
                    LowRank::new(lr.u.detach().copy()?, lr.v.detach().copy()?, lr.scale),
                );
            }
        }
        let mut head = BTreeMap::new();
        if let Some(vm) = &self.shared_vars {
            let data = vm
                .data()
                .lock()
                .map_err(|_| NnError::Invalid("var map poisoned".into()))?;
            for (name, var) in data.iter().filter(|(n, _)| n.starts_with("head.")) {
                head.insert(name.clone(), var.as_tensor().detach().copy()?);
            }
        }
        Ok(SharedFactor {
            base_model: self.base.model.clone(),
            base_sha256: self.base.sha256.clone(),
            rank: opts.rank,
            scale: opts.scale,
            target_modules: opts.target_modules.clone(),
            dp,
            layers,
            head,
            sha256: None,
        })
    }

    /// Copies a shared factor's `U`, `V` (and `head.*` present in [`Self::shared_vars`]) into
    /// the model. Every adapted module must be present with matching shapes and scale.
    pub fn set_shared(&self, shared: &SharedFactor) -> Result<()> {
        let vm = self
            .shared_vars
            .as_ref()
            .ok_or_else(|| NnError::Invalid("model has no LRS adapters".into()))?;
        if self.lrs.as_ref().map(|o| o.scale) != Some(shared.scale) {
            return Err(NnError::Invalid(format!(
                "shared scale {} differs from the model's {:?}",
                shared.scale,
                self.lrs.as_ref().map(|o| o.scale)
            )));
        }
        let data = vm
            .data()
            .lock()
            .map_err(|_| NnError::Invalid("var map poisoned".into()))?;
        for module in self.adapted_modules().keys() {
            let lr = shared
                .layers
                .get(module)
                .ok_or_else(|| NnError::Invalid(format!("shared factor lacks module {module}")))?;
            for (suffix, t) in [("lrs_u", &lr.u), ("lrs_v", &lr.v)] {
                let name = format!("{module}.{suffix}");
                let var = data
                    .get(&name)
                    .ok_or_else(|| NnError::Invalid(format!("model has no var {name}")))?;
                var.set(&t.to_device(&self.device)?.to_dtype(self.dtype)?)?;
            }
        }
        for (name, t) in &shared.head {
            if let Some(var) = data.get(name) {
                var.set(&t.to_device(&self.device)?.to_dtype(self.dtype)?)?;
            }
        }
        Ok(())
    }

    /// Loads, validates (against this model's base hash, rank and modules) and installs a
    /// shared file; returns it (with its `sha256` for task files to check against).
    pub fn load_shared(&self, path: &Path) -> Result<SharedFactor> {
        let shared = SharedFactor::load(path, &self.load_check(None), &self.device, self.dtype)?;
        self.set_shared(&shared)?;
        Ok(shared)
    }

    /// Loads and validates a task file against this model and the installed `shared` file.
    pub fn load_task(&self, path: &Path, shared: &SharedFactor) -> Result<TaskDelta> {
        let check = self.load_check(shared.sha256.as_deref());
        Ok(TaskDelta::load(path, &check, &self.device, self.dtype)?)
    }

    /// [`Self::load_task`] on a task file's bytes already in memory (`path` names it in errors).
    pub fn load_task_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        shared: &SharedFactor,
    ) -> Result<TaskDelta> {
        let check = self.load_check(shared.sha256.as_deref());
        Ok(TaskDelta::from_bytes(
            path,
            bytes,
            &check,
            &self.device,
            self.dtype,
        )?)
    }

    /// Device of the model.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Compute dtype of the model.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

impl std::fmt::Debug for BertModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BertModel")
            .field("config", &self.config)
            .field("lrs", &self.lrs)
            .field("base", &self.base)
            .field("layers", &self.layers.len())
            .finish_non_exhaustive()
    }
}

impl ModuleT for BertModel {
    /// Hidden states of unpadded `[batch, seq]` token ids, no tasks.
    fn forward_t(&self, input_ids: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        BertModel::forward_t(self, &BertInput::from_ids(input_ids.clone())?, None, train)
    }
}

/// Reduces `[batch, seq, h]` hidden states to `[batch, h]`.
pub fn pool(
    hidden: &Tensor,
    attention_mask: &Tensor,
    pooling: Pooling,
) -> candle_core::Result<Tensor> {
    match pooling {
        Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1),
        Pooling::Mean => {
            let m = attention_mask
                .to_dtype(hidden.dtype())?
                .unsqueeze(D::Minus1)?;
            let summed = hidden.broadcast_mul(&m)?.sum(1)?;
            let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
            summed.broadcast_div(&count)
        }
    }
}

/// Rows scaled to unit L2 norm.
pub fn normalize_l2(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&norm)
}
