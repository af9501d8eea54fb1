//! The alternating LRS trainer (docs/DESIGN.md §Training, docs/training.md): rounds of a *shared
//! phase* (AdamW on `U`, `V` and the shared head over mixed-task minibatches, per-task parts fixed)
//! and a *task phase* (per task: AdamW on `w` and the task head, then the sparse part `S` with a
//! per-layer budget annealed down to `k`; shared parts fixed).
//!
//! * [`TrainConfig`] — the run's TOML config; [`Method`] picks LRS or a baseline.
//! * [`TaskData`] — tasks' train/test splits tokenized once ([`TextEncoder`], implemented by
//!   [`lrs_nn::BertTokenizer`]).
//! * [`Trainer`] — holds the model (frozen base + shared vars) and one [`TaskDelta`] per task;
//!   [`Trainer::round`] = [`Trainer::shared_phase`] + [`Trainer::task_phase`];
//!   [`Trainer::fit_task`] fits one task with everything shared frozen, [`Trainer::personalize`]
//!   fits an unseen one;
//!   [`Trainer::evaluate`] scores per-task loss, accuracy and ROC AUC ([`roc_auc`]).
//!
//! Determinism: minibatch order and the initial `V` come from a ChaCha20 stream keyed by
//! [`TrainConfig::seed`]; heads and `U` start at zero; dropout is off unless asked for.

mod adamw;
mod checkpoint;
mod config;
mod data;
pub(crate) mod error;
mod heads;
mod metrics;
mod prefix_cache;
pub mod privacy;
mod private_phase;
mod shared_phase;
mod sparse_fit;
mod support;
mod swap;
mod task_phase;

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use lrs_nn::bert::model::pool;
use lrs_nn::bert::prefix::{PrefixState, ResumePoint};
use lrs_nn::{BertCheckpoint, BertModel, LayerDelta, Pooling, TaskBatch, TaskDelta};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;

pub use adamw::{AdamW, AdamWParams};
pub use config::{
    Budget, DataConfig, DataSource, Method, SharedPhaseConfig, SparsityConfig, TaskPhaseConfig,
    TrainConfig,
};
pub use data::{batch, targets, validation_len, Part, Row, TaskData, TaskRows, TextEncoder};
pub use error::{Result, TrainError};
pub use heads::{logistic_loss, logits, shared_head, task_head, HEAD_BIAS, HEAD_WEIGHT};
pub use metrics::{accuracy, roc_auc, Evaluation, TaskMetrics};
pub use prefix_cache::PrefixCache;
pub use support::{choose_support, stage_budget};
pub use swap::{best_swap, Swap, SwapModel};

/// Adapted module name → its `(out, in)` shape.
type ModuleShapes = BTreeMap<String, (usize, usize)>;

/// Rows per forward pass when scoring.
const EVAL_BATCH: usize = 64;

/// What one [`Trainer::round`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundStats {
    /// The round's index (0-based).
    pub round: usize,
    /// Mean minibatch loss of the shared phase (`None` if it trained nothing).
    pub shared_loss: Option<f64>,
    /// Mean over tasks of the final training loss of the task phase (`None` if skipped).
    pub task_loss: Option<f64>,
}

/// The alternating trainer: a model with LRS adapters, its shared head, and one
/// [`TaskDelta`] per task of the [`TaskData`] it was built for (same order).
pub struct Trainer {
    config: TrainConfig,
    model: BertModel,
    head: (Var, Var),
    tasks: Vec<TaskDelta>,
    /// Adapted module → `(out, in)`.
    modules: BTreeMap<String, (usize, usize)>,
    /// The adapted modules that carry per-task parts (all, or those of the top
    /// [`TrainConfig::task_layers`] layers).
    task_modules: BTreeMap<String, (usize, usize)>,
    shared_opt: Option<AdamW>,
    rng: ChaCha20Rng,
    round: usize,
    cache: PrefixCache,
    /// When per-task parts start past the first adapted layer: the cache of states where they
    /// start (rebuilt by [`Trainer::refresh_task_cache`]).
    task_cache: Option<PrefixCache>,
    private: Option<PrivateState>,
}

/// Where a private run stands: its noise multiplier and the steps taken of those planned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrivateState {
    /// Noise multiplier σ.
    pub sigma: f64,
    /// Private shared steps taken so far.
    pub steps_done: u64,
    /// Steps the budget was planned for (`rounds × shared.steps`).
    pub planned: u64,
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("config", &self.config)
            .field("tasks", &self.tasks.len())
            .field("round", &self.round)
            .field("cached_texts", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Trainer {
    /// Loads `ckpt` in f32 on `device` with the adapters `config` asks for.
    pub fn load_model(
        ckpt: &BertCheckpoint,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<BertModel> {
        Ok(BertModel::load(
            ckpt,
            Some(&config.lrs_options()),
            device,
            DType::F32,
        )?)
    }

    /// A trainer for `data`'s tasks on `model` (f32, built with [`TrainConfig::lrs_options`]).
    /// Draws the shared factors' start from the config's seed
    /// ([`BertModel::init_shared_factors`]) and creates the zero shared head; every task starts
    /// at `w = 1`, `S = 0` and a zero head.
    pub fn new(model: BertModel, config: TrainConfig, data: &TaskData) -> Result<Self> {
        config.validate()?;
        let private = private_state(&config)?;
        let mut trainer = Self::assemble(model, config, data, &[Part::Train, Part::Test])?;
        trainer.model.init_shared_factors(&mut trainer.rng)?;
        trainer.shared_opt = shared_optimizer(&trainer.model, &trainer.config, &trainer.head)?;
        trainer.private = private;
        Ok(trainer)
    }

    /// A trainer whose shared parts stay frozen, for scoring task files and fitting tasks
    /// against a run's shared file ([`Self::fit_task`], [`Self::evaluate`]): no shared
    /// optimizer, no privacy state, no draw of the factors (both stay zero until a shared file
    /// is installed over them), and prefix states cached for `parts` of `data` only (other rows
    /// are computed when they are needed). A [`Self::round`] of it trains only the tasks.
    pub fn frozen(
        model: BertModel,
        config: TrainConfig,
        data: &TaskData,
        parts: &[Part],
    ) -> Result<Self> {
        config.validate()?;
        Self::assemble(model, config, data, parts)
    }

    /// What every trainer holds: the checked model, its per-task modules, the zero shared head,
    /// the prefix cache of `parts` of `data` and a fresh delta per task.
    fn assemble(
        model: BertModel,
        config: TrainConfig,
        data: &TaskData,
        parts: &[Part],
    ) -> Result<Self> {
        check_model(&model, &config)?;
        let modules = model.adapted_modules();
        let (task_modules, task_cache) = task_modules(&model, &config, &modules)?;
        let device = model.device().clone();
        let vars = model.shared_vars().ok_or_else(|| TrainError::Model {
            reason: "model has no shared var map".into(),
        })?;
        let hidden = model.config().hidden_size;
        let head = shared_head(vars, hidden, &device)?;
        let cache = PrefixCache::build(
            &model,
            data.tasks
                .iter()
                .flat_map(|t| parts.iter().flat_map(move |&p| t.rows(p))),
        )?;
        let tasks = data
            .tasks
            .iter()
            .map(|t| new_task(&t.task, &config, &task_modules, hidden, &device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            rng: ChaCha20Rng::seed_from_u64(config.seed),
            config,
            model,
            head,
            tasks,
            modules,
            task_modules,
            shared_opt: None,
            round: 0,
            cache,
            task_cache,
            private: None,
        })
    }

    /// One alternating round: the shared phase, then the task phase.
    pub fn round(&mut self, data: &TaskData) -> Result<RoundStats> {
        let round = self.round;
        let shared_loss = self.shared_phase(data)?;
        let task_loss = self.task_phase(data)?;
        self.round += 1;
        Ok(RoundStats {
            round,
            shared_loss,
            task_loss,
        })
    }

    /// Per-task loss, accuracy and AUC on `part` of `data` (eval mode, no dropout). Tasks are
    /// scored in parallel; with per-task parts confined to the top layers
    /// ([`TrainConfig::task_layers`]) the state below them is computed once per distinct text
    /// of `part` with the current shared factors, so each row runs only the top layers.
    pub fn evaluate(&self, data: &TaskData, part: Part) -> Result<Evaluation> {
        self.check_data(data)?;
        let top = match self.task_cache.as_ref().and_then(|c| c.point(&self.model)) {
            Some(point) => Some(PrefixCache::build_at(
                &self.model,
                point,
                data.tasks.iter().flat_map(|t| t.rows(part)),
            )?),
            None => None,
        };
        let cache = top.as_ref().unwrap_or(&self.cache);
        let device = self.model.device();
        let tasks = self
            .tasks
            .par_iter()
            .zip(data.tasks.par_iter())
            .map(|(delta, rows)| {
                let rows = rows.rows(part);
                let scores = self.logits_with(cache, delta, rows)?;
                let labels: Vec<bool> = rows.iter().map(|r| r.positive).collect();
                let loss = if rows.is_empty() {
                    0.0
                } else {
                    let refs: Vec<&Row> = rows.iter().collect();
                    let z = Tensor::new(scores.as_slice(), device)?;
                    f64::from(logistic_loss(&z, &targets(&refs, device)?)?.to_scalar::<f32>()?)
                };
                Ok(TaskMetrics {
                    task: delta.task_id.clone(),
                    rows: rows.len(),
                    loss,
                    accuracy: accuracy(&scores, &labels),
                    auc: roc_auc(&scores, &labels),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Evaluation { tasks })
    }

    /// The logits of `rows` under the per-task parts `task` (eval mode, inference batches).
    pub fn logits_of(&self, task: &TaskDelta, rows: &[Row]) -> Result<Vec<f32>> {
        self.logits_with(&self.cache, task, rows)
    }

    /// [`Self::logits_of`] from the states of `cache` (rows it lacks are computed on the fly).
    fn logits_with(&self, cache: &PrefixCache, task: &TaskDelta, rows: &[Row]) -> Result<Vec<f32>> {
        let point = cache.point(&self.model);
        let mut scores = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(EVAL_BATCH) {
            let refs: Vec<&Row> = chunk.iter().collect();
            let tb = TaskBatch::single(task, chunk.len(), self.model.device())?.for_inference();
            let (state, mask) = cache.batch(&self.model, &refs)?;
            scores.extend(
                self.logits_from(&state, &mask, point, &tb, false)?
                    .to_vec1::<f32>()?,
            );
        }
        Ok(scores)
    }

    /// Replaces the per-task parts (e.g. by task files loaded for evaluation); `tasks` must
    /// name this trainer's tasks in order.
    pub fn install_tasks(&mut self, tasks: Vec<TaskDelta>) -> Result<()> {
        let ids = |t: &[TaskDelta]| t.iter().map(|t| t.task_id.clone()).collect::<Vec<_>>();
        if ids(&tasks) != ids(&self.tasks) {
            return Err(TrainError::DataMismatch {
                reason: "installed tasks differ from the trainer's".into(),
            });
        }
        self.tasks = tasks;
        Ok(())
    }

    /// The config.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// The model (frozen base; its [`BertModel::shared_vars`] hold `U`, `V` and `head.*`).
    pub fn model(&self) -> &BertModel {
        &self.model
    }

    /// The per-task parts, in data order.
    pub fn tasks(&self) -> &[TaskDelta] {
        &self.tasks
    }

    /// Rounds completed.
    pub fn rounds_done(&self) -> usize {
        self.round
    }

    /// Adapted modules and their `(out, in)` shapes.
    pub fn modules(&self) -> &BTreeMap<String, (usize, usize)> {
        &self.modules
    }

    /// The private mode's state (`None` for a non-private run).
    pub fn private_state(&self) -> Option<PrivateState> {
        self.private
    }

    /// The user-level guarantee of the shared parameters so far (private runs only).
    pub fn privacy_guarantee(&self) -> Result<Option<lrs_privacy::Guarantee>> {
        match (&self.config.privacy, &self.private) {
            (Some(p), Some(s)) => Ok(Some(p.guarantee(s.sigma, s.steps_done)?)),
            _ => Ok(None),
        }
    }

    /// The cache of frozen-prefix states.
    pub fn prefix_cache(&self) -> &PrefixCache {
        &self.cache
    }

    /// `[batch]` logits of `rows`, whose tasks `tasks` gives.
    fn logits_rows(&self, rows: &[&Row], tasks: &TaskBatch, train: bool) -> Result<Tensor> {
        let (state, mask) = self.cache.batch(&self.model, rows)?;
        self.logits_from(&state, &mask, self.cache.point(&self.model), tasks, train)
    }

    /// The cache the task phase reads (states where per-task parts start) and its point.
    fn task_rows_cache(&self) -> (&PrefixCache, Option<ResumePoint>) {
        let cache = self.task_cache.as_ref().unwrap_or(&self.cache);
        (cache, cache.point(&self.model))
    }

    /// With per-task parts confined to the top layers ([`TrainConfig::task_layers`]):
    /// recomputes, with the current shared factors, the state where they start of every
    /// distinct text of `rows`. The task phase calls it for its tasks' training rows; call it
    /// before [`Self::personalize`] of new rows (rows missing from the cache are computed on
    /// every use). Does nothing otherwise.
    pub fn refresh_task_cache<'a>(
        &mut self,
        rows: impl IntoIterator<Item = &'a Row>,
    ) -> Result<()> {
        if let Some(point) = self.task_cache.as_ref().and_then(|c| c.point(&self.model)) {
            self.task_cache = Some(PrefixCache::build_at(&self.model, point, rows)?);
        }
        Ok(())
    }

    /// Adapted modules carrying per-task parts.
    pub fn task_modules(&self) -> &BTreeMap<String, (usize, usize)> {
        &self.task_modules
    }

    /// `[batch]` logits from a stacked state taken at `point` and its mask.
    fn logits_from(
        &self,
        state: &PrefixState,
        mask: &Tensor,
        point: Option<ResumePoint>,
        tasks: &TaskBatch,
        train: bool,
    ) -> Result<Tensor> {
        let pooled = self.pooled_from(state, mask, point, tasks, train)?;
        self.head_logits(&pooled, tasks)
    }

    /// `[batch, hidden]` pooled embeddings from a stacked state taken at `point`.
    fn pooled_from(
        &self,
        state: &PrefixState,
        mask: &Tensor,
        point: Option<ResumePoint>,
        tasks: &TaskBatch,
        train: bool,
    ) -> Result<Tensor> {
        let hidden = self
            .model
            .forward_from_at(state, mask, point, Some(tasks), train)?;
        Ok(pool(&hidden, mask, Pooling::Mean)?)
    }

    /// `[batch]` logits of pooled embeddings: the shared head plus, if configured, each
    /// row's task head.
    fn head_logits(&self, pooled: &Tensor, tasks: &TaskBatch) -> Result<Tensor> {
        logits(
            pooled,
            (self.head.0.as_tensor(), self.head.1.as_tensor()),
            tasks,
            self.config.task_heads(),
        )
    }

    /// Errors unless `data` holds exactly this trainer's tasks, in order.
    fn check_data(&self, data: &TaskData) -> Result<()> {
        if data.len() != self.tasks.len() {
            return Err(TrainError::DataMismatch {
                reason: format!(
                    "{} tasks in data, {} in trainer",
                    data.len(),
                    self.tasks.len()
                ),
            });
        }
        for (i, (d, t)) in data.tasks.iter().zip(&self.tasks).enumerate() {
            if d.task != t.task_id {
                return Err(TrainError::DataMismatch {
                    reason: format!(
                        "task {i} is `{}` in data, `{}` in trainer",
                        d.task, t.task_id
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `N` of a module named `encoder.layer.N.…`.
fn encoder_layer(module: &str) -> Option<usize> {
    module
        .strip_prefix("encoder.layer.")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// Checks that `model` is what `config` trains: the same adapters, f32, at least one adapted
/// module.
fn check_model(model: &BertModel, config: &TrainConfig) -> Result<()> {
    if model.lrs_options() != Some(&config.lrs_options()) {
        return Err(TrainError::Model {
            reason: format!(
                "model adapters {:?} differ from the config's {:?}",
                model.lrs_options(),
                config.lrs_options()
            ),
        });
    }
    if model.dtype() != DType::F32 {
        return Err(TrainError::Model {
            reason: format!("training needs f32, model is {:?}", model.dtype()),
        });
    }
    if model.adapted_modules().is_empty() {
        return Err(TrainError::Model {
            reason: format!(
                "no module matches target_modules {:?}",
                config.target_modules
            ),
        });
    }
    Ok(())
}

/// The adapted modules that carry per-task parts (those of the top
/// [`TrainConfig::task_layers`] layers, or all), and the empty cache of the states where they
/// start when that is past the model's own resume point.
fn task_modules(
    model: &BertModel,
    config: &TrainConfig,
    modules: &ModuleShapes,
) -> Result<(ModuleShapes, Option<PrefixCache>)> {
    let layers = model.config().num_hidden_layers;
    if config.task_layers > layers {
        return Err(TrainError::Config {
            field: "task_layers",
            reason: format!("{} exceeds the model's {layers} layers", config.task_layers),
        });
    }
    let first_task_layer = match config.task_layers {
        0 => 0,
        n => layers - n,
    };
    let task_modules: ModuleShapes = modules
        .iter()
        .filter(|(name, _)| encoder_layer(name).is_none_or(|l| l >= first_task_layer))
        .map(|(n, s)| (n.clone(), *s))
        .collect();
    if task_modules.is_empty() {
        return Err(TrainError::Config {
            field: "task_layers",
            reason: format!(
                "no adapted module lies in the top {} layers",
                config.task_layers
            ),
        });
    }
    let task_point = ResumePoint {
        layer: first_task_layer,
        stage: lrs_nn::bert::encoder::LayerStage::Attention,
    };
    let task_cache = model
        .resume_point()
        .is_some_and(|p| p < task_point)
        .then(|| PrefixCache::empty_at(task_point));
    Ok((task_modules, task_cache))
}

/// AdamW over what the method trains in the shared phase (`U`, `V` and/or the shared head);
/// `None` when it trains nothing there.
fn shared_optimizer(
    model: &BertModel,
    config: &TrainConfig,
    head: &(Var, Var),
) -> Result<Option<AdamW>> {
    let mut trained = Vec::new();
    if config.method.trains_factors() {
        trained.extend(model.factor_vars()?);
    }
    if config.method.trains_shared_head() {
        trained.extend([head.0.clone(), head.1.clone()]);
    }
    if trained.is_empty() {
        return Ok(None);
    }
    Ok(Some(AdamW::new(
        trained,
        AdamWParams::new(config.shared.lr, config.shared.weight_decay),
    )?))
}

/// A private run's noise multiplier, calibrated for its planned `rounds × shared.steps` steps.
fn private_state(config: &TrainConfig) -> Result<Option<PrivateState>> {
    let Some(p) = &config.privacy else {
        return Ok(None);
    };
    let planned = (config.rounds * config.shared.steps) as u64;
    Ok(Some(PrivateState {
        sigma: p.sigma(planned)?,
        steps_done: 0,
        planned,
    }))
}

/// A task's starting parts: `w = 1` on every adapted layer (when the method learns `w`; drawn
/// from `N(1, σ²)` with [`TaskPhaseConfig::core_init_std`] `σ > 0`), no sparse part, a zero
/// head (when the method has task heads).
fn new_task(
    name: &str,
    config: &TrainConfig,
    modules: &BTreeMap<String, (usize, usize)>,
    hidden: usize,
    device: &Device,
) -> Result<TaskDelta> {
    let mut task = TaskDelta::new(name, config.rank);
    // The random start's stream and law, only when asked for.
    let mut random_core = match config.task.core_init_std {
        std if std > 0.0 => {
            let normal = rand_distr::Normal::new(1.0, std).map_err(|e| TrainError::Config {
                field: "task.core_init_std",
                reason: e.to_string(),
            })?;
            let key = crate::stable_hash::fnv1a64(format!("core-init/{name}").as_bytes());
            Some((normal, ChaCha20Rng::seed_from_u64(config.seed ^ key)))
        }
        _ => None,
    };
    for module in modules.keys() {
        let w = if !config.method.trains_core() {
            None
        } else if let Some((normal, rng)) = random_core.as_mut() {
            let w: Vec<f32> = (0..config.rank)
                .map(|_| rand_distr::Distribution::<f64>::sample(normal, rng) as f32)
                .collect();
            Some(Tensor::from_vec(w, config.rank, device)?)
        } else {
            Some(Tensor::ones(config.rank, DType::F32, device)?)
        };
        task.layers.insert(
            module.clone(),
            LayerDelta {
                w,
                ..LayerDelta::default()
            },
        );
    }
    for (name, t) in heads::task_head_parts(&task, config, hidden, device)? {
        task.head.insert(name.into(), t);
    }
    Ok(task)
}
