//! [`TrainConfig`]: everything one training run needs, read from TOML
//! (`lrs train --config configs/<name>.toml`).
//!
//! ```
//! use lrs_train::trainer::{Budget, Method, TrainConfig};
//!
//! let cfg = TrainConfig::from_toml_str(r#"
//!     method = "lrs"
//!     rank = 4
//!     rounds = 3
//!     seed = 7
//!     [sparsity]
//!     budget = { density = 0.01 }
//!     anneal_start = 4.0
//!     [shared]
//!     steps = 20
//!     lr = 1e-3
//!     [task]
//!     sparse_steps = 5
//! "#, "<inline>")?;
//! assert_eq!(cfg.method, Method::Lrs);
//! assert_eq!(cfg.sparsity.budget, Budget::Density(0.01));
//! // 1 % of a 32×32 layer is 11 entries; round 0 of 3 starts at 4× that.
//! assert_eq!(cfg.sparsity.k_final(32, 32), 11);
//! assert_eq!(cfg.sparsity.k_at_round(32, 32, 0, cfg.rounds), 44);
//! assert_eq!(cfg.sparsity.k_at_round(32, 32, 2, cfg.rounds), 11);
//! # Ok::<(), lrs_train::trainer::TrainError>(())
//! ```

use std::path::Path;

use lrs_nn::LrsOptions;
use serde::{Deserialize, Serialize};

use super::error::{Result, TrainError};

/// Which parameters a run trains (LRS and its baselines, docs/DESIGN.md §The model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Shared `U`, `V` and head; per task `w`, head and sparse `S` (IHT).
    #[default]
    Lrs,
    /// One shared head on the frozen base, nothing per task.
    Global,
    /// Shared `U`, `V` (with `w = 1`: one LoRA for every task) and head; nothing per task
    /// (PEFT's one global LoRA).
    GlobalLora,
    /// A per-task head on the frozen base, nothing shared.
    HeadOnly,
    /// Shared `U`, `V` and head; per task `w` and head, no `S` (FedRep-style representation).
    SharedOnly,
    /// A shared head; per task head and sparse `S`, no shared factor (diff-pruning style).
    SparseOnly,
    /// A shared head; per task head and a LoRA pair `(A, B)` on every target module, trained
    /// with AdamW on the task's rows (PEFT's LoRA, one adapter per task).
    Lora,
    /// A shared head; per task head and a dense update of every adapted matrix trained with
    /// AdamW (full fine-tuning of the target modules; meant for small task counts).
    FullFt,
}

impl Method {
    /// Whether the shared phase steps the low-rank factors `U`, `V`.
    pub fn trains_factors(self) -> bool {
        matches!(self, Method::Lrs | Method::SharedOnly | Method::GlobalLora)
    }

    /// Whether the shared phase steps the shared head.
    pub fn trains_shared_head(self) -> bool {
        !matches!(self, Method::HeadOnly)
    }

    /// Whether the task phase steps the per-task core `w`.
    pub fn trains_core(self) -> bool {
        matches!(self, Method::Lrs | Method::SharedOnly)
    }

    /// Whether the task phase steps a per-task head.
    pub fn trains_task_head(self) -> bool {
        !matches!(self, Method::Global | Method::GlobalLora)
    }

    /// Whether the task phase runs IHT on a per-task sparse part.
    pub fn trains_sparse(self) -> bool {
        matches!(self, Method::Lrs | Method::SparseOnly)
    }

    /// Whether the task phase trains a per-task LoRA pair on every target module.
    pub fn trains_lora(self) -> bool {
        matches!(self, Method::Lora)
    }

    /// Whether the task phase trains a dense per-task update of every adapted matrix.
    pub fn trains_dense(self) -> bool {
        matches!(self, Method::FullFt)
    }

    /// Every method, in table order.
    pub const ALL: [Method; 8] = [
        Method::Lrs,
        Method::Global,
        Method::GlobalLora,
        Method::HeadOnly,
        Method::SharedOnly,
        Method::SparseOnly,
        Method::Lora,
        Method::FullFt,
    ];

    /// The config spelling (`"shared-only"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Method::Lrs => "lrs",
            Method::Global => "global",
            Method::GlobalLora => "global-lora",
            Method::HeadOnly => "head-only",
            Method::SharedOnly => "shared-only",
            Method::SparseOnly => "sparse-only",
            Method::Lora => "lora",
            Method::FullFt => "full-ft",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
                format!("unknown method `{s}` (one of {})", names.join(", "))
            })
    }
}

/// The final sparse budget of each adapted layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// A share of the layer's `out × in` entries, in `(0, 1]`; rounded up to whole entries.
    Density(f64),
    /// A number of entries per layer (capped at `out × in`).
    Count(usize),
}

/// The per-layer sparse budget and its annealing schedule: round `ℓ` of an `A`-round schedule
/// keeps `k_ℓ = round(k · (c + (1 − c) · ℓ / (A − 1)))` entries, from `c·k` down to `k`, then
/// `k` for every later round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SparsityConfig {
    /// The final budget `k` per layer.
    pub budget: Budget,
    /// The starting multiple `c ≥ 1` of `k`.
    pub anneal_start: f64,
    /// Rounds `A` over which to anneal (default: all rounds).
    pub anneal_rounds: Option<usize>,
}

impl Default for SparsityConfig {
    fn default() -> Self {
        Self {
            budget: Budget::Count(16),
            anneal_start: 4.0,
            anneal_rounds: None,
        }
    }
}

impl SparsityConfig {
    /// The final budget `k` for an `[out, in]` layer.
    pub fn k_final(&self, out_dim: usize, in_dim: usize) -> usize {
        let size = out_dim * in_dim;
        match self.budget {
            Budget::Count(k) => k.min(size),
            Budget::Density(d) => ((d * size as f64).ceil() as usize).min(size),
        }
    }

    /// The annealed budget of round `round` (0-based) in a run of `rounds` rounds.
    pub fn k_at_round(&self, out_dim: usize, in_dim: usize, round: usize, rounds: usize) -> usize {
        self.anneal(
            self.k_final(out_dim, in_dim),
            out_dim * in_dim,
            round,
            rounds,
        )
    }

    /// Whether round `round` (0-based) of `rounds` keeps the final budget `k`: the
    /// annealing is over.
    pub fn annealed(&self, round: usize, rounds: usize) -> bool {
        round + 1 >= self.anneal_rounds.unwrap_or(rounds)
    }

    /// A final budget `k` of `size` entries annealed to round `round` of `rounds`: the same
    /// schedule as [`Self::k_at_round`], for any k-sparse part (the per-task head too).
    pub fn anneal(&self, k: usize, size: usize, round: usize, rounds: usize) -> usize {
        let k = k.min(size);
        let span = self.anneal_rounds.unwrap_or(rounds);
        if span <= 1 {
            return k;
        }
        let progress = round.min(span - 1) as f64 / (span - 1) as f64;
        let multiple = self.anneal_start + (1.0 - self.anneal_start) * progress;
        ((k as f64 * multiple).round() as usize).clamp(k, size)
    }
}

/// The shared phase: AdamW on `U`, `V` and the shared head over mixed-task minibatches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedPhaseConfig {
    /// Optimizer steps per round (unless [`Self::epochs`] is set).
    pub steps: usize,
    /// Passes over all tasks' training rows per round: when set, a round takes
    /// `⌈epochs · rows / batch_size⌉` steps instead of [`Self::steps`], so one config trains
    /// the same number of epochs at any `m`. Not with `[privacy]` (its budget is planned in
    /// steps).
    pub epochs: Option<f64>,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Rows per minibatch (drawn across all tasks).
    pub batch_size: usize,
    /// Length bucketing: each shuffled pool of `length_buckets × batch_size` rows is sorted by
    /// token count and cut into minibatches (served in shuffled order), so a minibatch pads to
    /// rows of similar length. `0` or `1`: plain shuffled minibatches.
    pub length_buckets: usize,
    /// Whether each row of the shared phase is computed with its task's per-task parts
    /// (`true`, the default: the alternating minimisation) or with neutral ones (`false`:
    /// `w = 1`, no `S`, no task head, so `U`, `V` and the head fit one model for every task and
    /// the task phase personalizes it). Applies to the private phase too.
    pub task_parts: bool,
}

impl SharedPhaseConfig {
    /// The steps of one round over `rows` training rows ([`Self::epochs`] or [`Self::steps`]).
    pub fn steps_for(&self, rows: usize) -> usize {
        match self.epochs {
            Some(e) => (e * rows as f64 / self.batch_size.max(1) as f64).ceil() as usize,
            None => self.steps,
        }
    }
}

impl Default for SharedPhaseConfig {
    fn default() -> Self {
        Self {
            steps: 50,
            epochs: None,
            lr: 1e-3,
            weight_decay: 0.0,
            batch_size: 32,
            length_buckets: 8,
            task_parts: true,
        }
    }
}

/// The task phase: per task, AdamW on `w` and the task head, then the sparse part `S`:
/// support by Gauss–Newton gain (grow) and saliency (drop), values by AdamW on the support.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskPhaseConfig {
    /// AdamW steps on `w` and the task head per task per round (full task batch).
    pub steps: usize,
    /// Their learning rate.
    pub lr: f64,
    /// AdamW steps on the sparse values per task per round (full task batch, support fixed);
    /// 0 leaves `S` out.
    pub sparse_steps: usize,
    /// The sparse values' AdamW learning rate.
    pub sparse_lr: f64,
    /// Share of each layer's budget re-chosen by gain every round (the rest kept by
    /// saliency); 0 only grows the support to the budget and prunes it by saliency.
    pub regrow: f64,
    /// Stages in which a round grows each support to its budget (forward stepwise selection):
    /// each stage scores every entry at the current values, grows an equal share of the
    /// entries still missing and fits the values (the sparse values for
    /// [`Self::sparse_steps`], a sparse head with the core for [`Self::steps`]) before the
    /// next stage scores again, so an entry is chosen for what it adds to those already
    /// chosen. 1 (the default) grows every entry from one scoring; each further stage costs
    /// one more scoring pass and one more value fit.
    pub support_stages: usize,
    /// Swap steps after a round's growth: each trades one entry of every sparse support (`S`
    /// per module, or a sparse head) for one outside it where the local Gauss–Newton model
    /// of the loss, with the support's values re-fitted, says the loss falls most
    /// (forward–backward selection); the values are then fitted again and the swap is kept
    /// only if the training loss fell, else the steps stop. Growth scores each entry alone,
    /// so of two correlated entries it may keep the worse; a swap corrects that. 0 (the
    /// default) leaves the grown support. Each step costs one scoring pass crossed with the
    /// support (`k` times the entries' work) and one value fit.
    pub support_swaps: usize,
    /// Non-zeros of the per-task head weight (a k-sparse per-task logistic regression on the
    /// pooled embedding); 0 keeps the head dense. Needs a task head.
    pub head_nnz: usize,
    /// Whether a per-task head has a weight row (the default); `false` keeps only its bias, a
    /// per-task intercept: one value in the task file, which moves the task's logits (its
    /// base rate) but not the order of its rows. Needs a task head.
    pub head_weight: bool,
    /// Standard deviation `σ` of each task's starting core: `w ~ N(1, σ²)` per entry, seeded by
    /// the config's seed and the task id (so a task starts the same in any task order). 0 (the
    /// default) starts every task at `w = 1`, where the first shared phase fits one LoRA for
    /// all tasks; `σ > 0` lets it fit task-specific directions at once, which matters when the
    /// tasks' coordinates have little in common (mean near 0).
    pub core_init_std: f64,
}

impl Default for TaskPhaseConfig {
    fn default() -> Self {
        Self {
            steps: 20,
            lr: 1e-2,
            sparse_steps: 20,
            sparse_lr: 5e-3,
            regrow: 0.0,
            support_stages: 1,
            support_swaps: 0,
            head_nnz: 0,
            head_weight: true,
            core_init_std: 0.0,
        }
    }
}

/// Where a run's many-task data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DataSource {
    /// MovieLens-100k (either layout; see [`crate::load_movielens`]).
    #[default]
    Movielens,
    /// A JSONL or CSV file of `{task, text, label[, timestamp]}` rows (by extension).
    File,
}

/// The run's data and its evaluation split (docs/DESIGN.md §Data protocol).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The loader.
    pub source: DataSource,
    /// The data directory (MovieLens; default `$LRS_DATA/ml-100k`, `$LRS_DATA` defaulting to
    /// `~/.cache/lrs/data`) or file.
    pub path: Option<std::path::PathBuf>,
    /// Training rows per task (`m`).
    pub shots: usize,
    /// Seed of the per-task training subsample.
    pub split_seed: u64,
    /// Use only the first this-many tasks (in task order) that have both labels in test;
    /// 0 = all.
    pub max_tasks: usize,
    /// Share of each task's training rows (its latest ones) held out as validation rows for
    /// tuning and choosing the number of rounds; 0 = none. Test rows are never used for
    /// either.
    pub validation: f64,
    /// Also train on the tasks whose test rows hold one label only. Their AUC is undefined, so
    /// they are never scored (every mean stays over the tasks with both labels), but their
    /// training rows inform the shared parts like any other task's and they get task files.
    /// With `max_tasks`, the unscored tasks before the last kept scored one are kept.
    pub train_unscored: bool,
    /// After the rounds are chosen on the validation rows (early stopping), train again from
    /// the start on every training row, validation rows included, for the chosen number of
    /// rounds, and keep that run's outputs: the selection sees `(1 − validation)·m` rows per
    /// task, the kept model all `m`. Needs `validation > 0`; not with privacy (the accountant
    /// counts one training).
    pub refit: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            source: DataSource::Movielens,
            path: None,
            shots: 20,
            split_seed: 0,
            max_tasks: 0,
            validation: 0.0,
            train_unscored: false,
            refit: false,
        }
    }
}

/// A training run's configuration (TOML; unknown fields are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// What to train.
    pub method: Method,
    /// Rank `r` of the shared factor.
    pub rank: usize,
    /// Scale `s` of the low-rank path.
    pub scale: f64,
    /// Module-name patterns to adapt (PEFT convention, see [`LrsOptions::matches`]).
    pub target_modules: Vec<String>,
    /// Sparse budget per layer and its annealing.
    pub sparsity: SparsityConfig,
    /// Alternating rounds (shared phase, then task phase).
    pub rounds: usize,
    /// The shared phase.
    pub shared: SharedPhaseConfig,
    /// The task phase.
    pub task: TaskPhaseConfig,
    /// Maximum tokens per text, special tokens included.
    pub max_len: usize,
    /// Rank of the per-task LoRA pairs of method `lora` (default: [`Self::rank`]).
    pub lora_rank: Option<usize>,
    /// PEFT's `lora_alpha` of those pairs, scale `alpha / lora_rank` (default: the LoRA rank,
    /// i.e. scale 1).
    pub lora_alpha: Option<f64>,
    /// Whether methods with an optional per-task head (all but `global`, which has none, and
    /// `head-only`, which is nothing else) train one; off, a task's personal part is only
    /// what its method adapts in the encoder.
    pub task_head: bool,
    /// Per-task parts (core `w`, sparse `S`, LoRA pairs, dense updates) only in the top this
    /// many encoder layers; `U`, `V` stay in every adapted layer. Everything below the first
    /// per-task part is then the same for every task: its state is computed once per text
    /// after each shared phase, and the task phase and personalization run only the top
    /// layers. `0`: every adapted layer.
    pub task_layers: usize,
    /// Whether dropout is on while training (off by default: candle's CPU dropout cannot be
    /// seeded, so runs with it are not reproducible).
    pub dropout: bool,
    /// Seed of the minibatch order and of the `V` initialisation.
    pub seed: u64,
    /// The base model: a hub id (`org/name[@revision]`, from the hf-hub cache) or a directory.
    pub model: String,
    /// The data and its split.
    pub data: DataConfig,
    /// Write a checkpoint every this-many rounds (0: only at the end).
    pub checkpoint_every: usize,
    /// Early stopping on validation loss (needs `[data] validation > 0`): training stops once
    /// this many rounds in a row have not lowered the best mean validation loss, and the run's
    /// outputs are those of the best round. Only rounds whose sparse budget has annealed to
    /// `k` can be the best one, so a stopped run still holds k-sparse parts. `0`: off (every
    /// round runs, the last one is kept).
    pub patience: usize,
    /// User-level differential privacy of the shared phase (off when absent).
    pub privacy: Option<super::privacy::PrivacyConfig>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let lrs = LrsOptions::bert_default(4);
        Self {
            method: Method::Lrs,
            rank: lrs.rank,
            scale: lrs.scale,
            target_modules: lrs.target_modules,
            sparsity: SparsityConfig::default(),
            rounds: 5,
            shared: SharedPhaseConfig::default(),
            task: TaskPhaseConfig::default(),
            max_len: 64,
            lora_rank: None,
            lora_alpha: None,
            task_head: true,
            task_layers: 0,
            dropout: false,
            seed: 0,
            model: "sentence-transformers/all-MiniLM-L6-v2".into(),
            data: DataConfig::default(),
            checkpoint_every: 1,
            patience: 0,
            privacy: None,
        }
    }
}

impl TrainConfig {
    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|source| TrainError::ConfigParse {
            origin: origin.to_string(),
            source,
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads, parses and validates a TOML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| TrainError::ConfigIo {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// The layer options a model for this run must be built with.
    pub fn lrs_options(&self) -> LrsOptions {
        LrsOptions {
            target_modules: self.target_modules.clone(),
            rank: self.rank,
            scale: self.scale,
        }
    }

    /// Whether tasks carry a head: always for `head-only` (the head is all it trains),
    /// never for `global` and `global-lora` (nothing per task), otherwise as
    /// [`Self::task_head`] says.
    pub fn task_heads(&self) -> bool {
        match self.method {
            Method::HeadOnly => true,
            Method::Global | Method::GlobalLora => false,
            _ => self.task_head,
        }
    }

    /// Checks every value is in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(TrainError::Config { field, reason });
        if self.rank == 0 {
            return bad("rank", "must be at least 1".into());
        }
        if !self.scale.is_finite() {
            return bad("scale", format!("must be finite, got {}", self.scale));
        }
        if self.target_modules.is_empty() {
            return bad("target_modules", "must name at least one module".into());
        }
        if let Budget::Density(d) = self.sparsity.budget {
            if !(d > 0.0 && d <= 1.0) {
                return bad(
                    "sparsity.budget",
                    format!("density must be in (0, 1], got {d}"),
                );
            }
        }
        if !(self.sparsity.anneal_start.is_finite() && self.sparsity.anneal_start >= 1.0) {
            return bad(
                "sparsity.anneal_start",
                format!("must be ≥ 1, got {}", self.sparsity.anneal_start),
            );
        }
        if !(self.task.regrow.is_finite() && (0.0..1.0).contains(&self.task.regrow)) {
            return bad(
                "task.regrow",
                format!("must be in [0, 1), got {}", self.task.regrow),
            );
        }
        if self.task.support_stages == 0 {
            return bad("task.support_stages", "must be ≥ 1, got 0".into());
        }
        if !(self.task.core_init_std.is_finite() && self.task.core_init_std >= 0.0) {
            return bad(
                "task.core_init_std",
                format!("must be finite and ≥ 0, got {}", self.task.core_init_std),
            );
        }
        if !self.task.head_weight && !self.task_heads() {
            return bad(
                "task.head_weight",
                format!(
                    "false (an intercept-only task head) needs a task head, and method {} has \
                     none here (task_head = true gives one to every method but global and \
                     global-lora)",
                    self.method
                ),
            );
        }
        if self.task.head_nnz > 0 && !self.task.head_weight {
            return bad(
                "task.head_nnz",
                "a sparse head weight needs task.head_weight = true".into(),
            );
        }
        if self.task.head_nnz > 0 && !self.task_heads() {
            return bad(
                "task.head_nnz",
                format!("needs a task head (method {} has none here)", self.method),
            );
        }
        if let Some(e) = self.shared.epochs {
            if !(e.is_finite() && e > 0.0) {
                return bad("shared.epochs", format!("must be finite and > 0, got {e}"));
            }
            if self.privacy.is_some() {
                return bad(
                    "shared.epochs",
                    "a private run plans its budget in steps: set shared.steps instead".into(),
                );
            }
        }
        if let Some(p) = &self.privacy {
            p.validate()?;
        }
        if self.lora_rank == Some(0) {
            return bad("lora_rank", "must be at least 1".into());
        }
        if self.lora_alpha.is_some_and(|a| !(a.is_finite() && a > 0.0)) {
            return bad("lora_alpha", "must be finite and > 0".into());
        }
        if !(self.data.validation.is_finite() && (0.0..1.0).contains(&self.data.validation)) {
            return bad(
                "data.validation",
                format!("must be in [0, 1), got {}", self.data.validation),
            );
        }
        if self.patience > 0 && self.data.validation == 0.0 {
            return bad(
                "patience",
                "early stopping needs validation rows: set [data] validation > 0".into(),
            );
        }
        if self.data.refit && self.data.validation == 0.0 {
            return bad(
                "data.refit",
                "choosing the rounds to refit needs validation rows: set [data] validation > 0"
                    .into(),
            );
        }
        if self.data.refit && self.privacy.is_some() {
            return bad(
                "data.refit",
                "a private run's guarantee covers one training: refit trains twice".into(),
            );
        }
        if self.data.shots == 0 {
            return bad("data.shots", "must be at least 1".into());
        }
        if self.model.trim().is_empty() {
            return bad("model", "must name a hub id or a directory".into());
        }
        if self.shared.batch_size == 0 {
            return bad("shared.batch_size", "must be at least 1".into());
        }
        if self.max_len < 2 {
            return bad("max_len", "must leave room for [CLS] and [SEP]".into());
        }
        for (field, lr) in [
            ("shared.lr", self.shared.lr),
            ("shared.weight_decay", self.shared.weight_decay),
            ("task.lr", self.task.lr),
            ("task.sparse_lr", self.task.sparse_lr),
        ] {
            if !(lr.is_finite() && lr >= 0.0) {
                return bad(field, format!("must be finite and ≥ 0, got {lr}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip_through_toml() -> Result<()> {
        let cfg = TrainConfig::default();
        cfg.validate()?;
        let text = toml::to_string(&cfg).map_err(|e| TrainError::Config {
            field: "*",
            reason: e.to_string(),
        })?;
        assert_eq!(TrainConfig::from_toml_str(&text, "rt")?, cfg);
        Ok(())
    }

    #[test]
    fn bad_values_and_unknown_fields_are_errors() {
        assert!(matches!(
            TrainConfig::from_toml_str("rank = 0", "x"),
            Err(TrainError::Config { field: "rank", .. })
        ));
        assert!(matches!(
            TrainConfig::from_toml_str("rnak = 3", "x"),
            Err(TrainError::ConfigParse { .. })
        ));
        assert!(matches!(
            TrainConfig::from_toml_str("[sparsity]\nbudget = { density = 1.5 }", "x"),
            Err(TrainError::Config {
                field: "sparsity.budget",
                ..
            })
        ));
        assert!(matches!(
            TrainConfig::from_toml_str("method = \"shared-only\"", "x").map(|c| c.method),
            Ok(Method::SharedOnly)
        ));
        assert!(matches!(
            TrainConfig::from_toml_str("patience = 2", "x"),
            Err(TrainError::Config {
                field: "patience",
                ..
            })
        ));
        assert!(TrainConfig::from_toml_str("patience = 2\n[data]\nvalidation = 0.25", "x").is_ok());
        let refit = TrainConfig::from_toml_str("[data]\nrefit = true", "x").unwrap_err();
        assert!(refit.to_string().contains("data.refit"), "{refit}");
        assert!(TrainConfig::from_toml_str("[data]\nrefit = true\nvalidation = 0.25", "x").is_ok());
        assert!(matches!(
            TrainConfig::from_toml_str("[shared]\nepochs = 0.0", "x"),
            Err(TrainError::Config {
                field: "shared.epochs",
                ..
            })
        ));
        let cfg = TrainConfig::from_toml_str("[shared]\nepochs = 1.5\nbatch_size = 32", "x");
        assert_eq!(cfg.map(|c| c.shared.steps_for(100)).ok(), Some(5)); // ⌈150 / 32⌉
    }

    #[test]
    fn annealing_goes_from_multiple_to_k_and_stays() {
        let s = SparsityConfig {
            budget: Budget::Count(10),
            anneal_start: 3.0,
            anneal_rounds: Some(3),
        };
        let ks: Vec<_> = (0..5).map(|l| s.k_at_round(8, 8, l, 5)).collect();
        assert_eq!(ks, [30, 20, 10, 10, 10]);
        let annealed: Vec<_> = (0..5).map(|l| s.annealed(l, 5)).collect();
        assert_eq!(annealed, [false, false, true, true, true]);
        // Capped at the layer size.
        assert_eq!(s.k_at_round(2, 3, 0, 5), 6);
        assert_eq!(s.k_final(2, 3), 6);
    }
}
