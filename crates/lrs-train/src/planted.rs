//! The planted deep benchmark's teacher: the paper's linear experiment carried to the deep model.
//!
//! A frozen BERT `W0` (any checkpoint; the benchmark uses a small seeded random one) becomes a
//! teacher whose task `i` computes, in every adapted layer, with
//! `W0 + s·U*·diag(w*_i)·V*ᵀ + S*_i`: one planted low-rank factor `U*, V*` for all tasks,
//! per-task coordinates `w*_i ~ N(0, core_std²)` and a per-task `k`-sparse `S*_i` on a random
//! support with values `±sparse_value`. Texts are random token sequences from the vocabulary;
//! a row is positive where the task's teacher logit is above that task's median over its rows
//! (balanced labels). A student starts from the same `W0` and must find the rest from labels.
//!
//! [`PlantedTruth::oracle_auc`] scores the teacher with parts of the truth removed: how much
//! of the labels the shared part alone, or the sparse part alone, explains, i.e. what
//! shared-only and sparse-only students can reach at best.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use lrs_nn::{BertCheckpoint, LayerDelta, SparseDelta, SparsePart, TaskDelta};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

use crate::trainer::{
    roc_auc, Method, Result, Row, TaskData, TaskRows, TrainConfig, TrainError, Trainer, HEAD_BIAS,
    HEAD_WEIGHT,
};

/// What to plant and how much data to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantedSpec {
    /// Number of tasks.
    pub tasks: usize,
    /// Training rows drawn per task (the largest `m` a benchmark uses; smaller `m` take a
    /// prefix, see [`PlantedTruth::with_shots`]).
    pub train_rows: usize,
    /// Test rows per task.
    pub test_rows: usize,
    /// Rank `r` of the planted factor.
    pub rank: usize,
    /// Planted entries per task and adapted layer.
    pub k: usize,
    /// Modules that carry planted parts (matched as [`TrainConfig::target_modules`]).
    pub target_modules: Vec<String>,
    /// Magnitude of every planted sparse value (random sign).
    pub sparse_value: f32,
    /// Standard deviation of `U*`'s entries (`V*`'s are `N(0, 1/in)`).
    pub factor_std: f32,
    /// Standard deviation of the per-task coordinates `w*_i`.
    pub core_std: f32,
    /// Standard deviation of the teacher's head weights.
    pub head_std: f32,
    /// Word tokens per text, drawn uniformly from `[min, max]`.
    pub text_len: (usize, usize),
    /// Seed of every draw.
    pub seed: u64,
}

impl Default for PlantedSpec {
    fn default() -> Self {
        Self {
            tasks: 64,
            train_rows: 80,
            test_rows: 64,
            rank: 4,
            k: 8,
            target_modules: vec!["value".into()],
            sparse_value: 2.0,
            factor_std: 1.0,
            core_std: 1.0,
            head_std: 1.0,
            text_len: (6, 12),
            seed: 0,
        }
    }
}

/// Which parts of the truth a teacher variant keeps ([`PlantedTruth::oracle_auc`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruthParts {
    /// Base and head only.
    None,
    /// The low-rank part (`w*_i`), no sparse part.
    LowRank,
    /// The sparse part, no low-rank part (`w = 0`).
    Sparse,
    /// Both (the teacher itself).
    Both,
}

/// A generated benchmark: labelled data, the planted parts and the teacher.
#[derive(Debug)]
pub struct PlantedTruth {
    /// The labelled tasks (`spec.train_rows` training rows each, no validation rows).
    pub data: TaskData,
    /// Per task, the planted `w*_i` and `S*_i` (data order).
    pub tasks: Vec<TaskDelta>,
    teacher: Trainer,
}

impl PlantedTruth {
    /// Draws the planted parts and the data on `ckpt`'s base (f32, CPU).
    pub fn generate(ckpt: &BertCheckpoint, spec: &PlantedSpec) -> Result<Self> {
        validate(spec)?;
        let config = teacher_config(spec);
        let model = Trainer::load_model(ckpt, &config, &Device::Cpu)?;
        let vocab = model.config().vocab_size as u32;
        let mut rng = ChaCha20Rng::seed_from_u64(spec.seed);
        let mut unlabelled = TaskData { tasks: Vec::new() };
        for t in 0..spec.tasks {
            let mut draw = |n: usize| texts(n, spec.text_len, vocab, &mut rng);
            unlabelled.tasks.push(TaskRows {
                task: format!("planted-{t:04}"),
                train: draw(spec.train_rows),
                validation: Vec::new(),
                test: draw(spec.test_rows),
            });
        }
        let teacher = Trainer::new(model, config, &unlabelled)?;
        plant_shared(&teacher, spec, &mut rng)?;
        let mut tasks = Vec::with_capacity(spec.tasks);
        for rows in &unlabelled.tasks {
            tasks.push(plant_task(&teacher, &rows.task, spec, &mut rng)?);
        }
        let mut data = unlabelled;
        for (rows, truth) in data.tasks.iter_mut().zip(&tasks) {
            let all: Vec<Row> = rows.train.iter().chain(&rows.test).cloned().collect();
            let z = teacher.logits_of(truth, &all)?;
            let mut sorted = z.clone();
            sorted.sort_by(f32::total_cmp);
            let median = sorted[sorted.len() / 2];
            for (row, &zi) in rows.train.iter_mut().chain(&mut rows.test).zip(&z) {
                row.positive = zi > median;
            }
        }
        Ok(Self {
            data,
            tasks,
            teacher,
        })
    }

    /// The data with the first `m` training rows of each task (all test rows): nested, so a
    /// larger `m` sees every row a smaller one does. Errors if `m` is 0 or above the drawn rows.
    pub fn with_shots(&self, m: usize) -> Result<TaskData> {
        let drawn = self.data.tasks.first().map_or(0, |t| t.train.len());
        if m == 0 || m > drawn {
            return Err(TrainError::Config {
                field: "shots",
                reason: format!("must be in 1..={drawn}, got {m}"),
            });
        }
        let mut data = self.data.clone();
        for t in &mut data.tasks {
            t.train.truncate(m);
        }
        Ok(data)
    }

    /// The planted support (sorted flat indices) of task `task` in `module`, if planted there.
    pub fn support(&self, task: usize, module: &str) -> Option<&[u32]> {
        match &self.tasks.get(task)?.layers.get(module)?.sparse {
            SparsePart::Sparse(s) => Some(s.indices()),
            _ => None,
        }
    }

    /// The teacher: the base with the planted `U*`, `V*` and head in its shared vars (a task's
    /// logits are [`Trainer::logits_of`] with that task's entry of [`Self::tasks`]).
    pub fn teacher(&self) -> &Trainer {
        &self.teacher
    }

    /// The modules that carry planted parts and their `(out, in)` shapes.
    pub fn modules(&self) -> &BTreeMap<String, (usize, usize)> {
        self.teacher.task_modules()
    }

    /// Mean per-task test AUC of the teacher keeping only `parts` of the truth, against the
    /// labels (which the full teacher made, so [`TruthParts::Both`] is 1 up to ties).
    pub fn oracle_auc(&self, parts: TruthParts) -> Result<f64> {
        let mut sum = 0.0;
        for (rows, truth) in self.data.tasks.iter().zip(&self.tasks) {
            let mut variant = truth.clone();
            for layer in variant.layers.values_mut() {
                if matches!(parts, TruthParts::None | TruthParts::Sparse) {
                    layer.w = Some(Tensor::zeros(
                        truth.rank,
                        candle_core::DType::F32,
                        &Device::Cpu,
                    )?);
                }
                if matches!(parts, TruthParts::None | TruthParts::LowRank) {
                    layer.sparse = SparsePart::None;
                }
            }
            let z = self.teacher.logits_of(&variant, &rows.test)?;
            let labels: Vec<bool> = rows.test.iter().map(|r| r.positive).collect();
            sum += roc_auc(&z, &labels).unwrap_or(0.5);
        }
        Ok(sum / self.tasks.len().max(1) as f64)
    }
}

/// Precision and recall of the support `found` against `planted` (flat indices).
pub fn precision_recall(found: &[u32], planted: &[u32]) -> (f64, f64) {
    let hits = found.iter().filter(|i| planted.contains(i)).count();
    (
        hits as f64 / found.len().max(1) as f64,
        hits as f64 / planted.len().max(1) as f64,
    )
}

fn validate(spec: &PlantedSpec) -> Result<()> {
    let bad = |field: &'static str, reason: &str| {
        Err(TrainError::Config {
            field,
            reason: reason.into(),
        })
    };
    if spec.tasks == 0 || spec.train_rows == 0 || spec.test_rows < 2 {
        return bad(
            "planted",
            "needs at least one task, one training row and two test rows",
        );
    }
    if spec.rank == 0 {
        return bad("planted.rank", "must be at least 1");
    }
    if spec.text_len.0 == 0 || spec.text_len.0 > spec.text_len.1 {
        return bad("planted.text_len", "needs 1 ≤ min ≤ max");
    }
    let finite = [
        spec.sparse_value,
        spec.factor_std,
        spec.core_std,
        spec.head_std,
    ];
    if finite.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return bad("planted", "scales must be finite and non-negative");
    }
    Ok(())
}

/// The teacher: the LRS model of the planted modules at rank `r`, per-task parts everywhere.
fn teacher_config(spec: &PlantedSpec) -> TrainConfig {
    TrainConfig {
        method: Method::Lrs,
        rank: spec.rank,
        scale: 1.0,
        target_modules: spec.target_modules.clone(),
        task_head: false,
        seed: spec.seed,
        ..TrainConfig::default()
    }
}

/// `n` rows of `[CLS]`, `len` random word ids (from 3, past `[PAD]`, `[CLS]`, `[SEP]`), `[SEP]`.
fn texts(n: usize, len: (usize, usize), vocab: u32, rng: &mut ChaCha20Rng) -> Vec<Row> {
    (0..n)
        .map(|_| {
            let words = rng.gen_range(len.0..=len.1);
            let mut ids = Vec::with_capacity(words + 2);
            ids.push(1);
            ids.extend((0..words).map(|_| rng.gen_range(3..vocab.max(4))));
            ids.push(2);
            Row {
                ids,
                positive: false,
            }
        })
        .collect()
}

fn normal(std: f32) -> Result<Normal<f32>> {
    Normal::new(0.0, std.max(f32::MIN_POSITIVE)).map_err(|e| TrainError::Config {
        field: "planted",
        reason: e.to_string(),
    })
}

fn draw(shape: (usize, usize), std: f32, rng: &mut ChaCha20Rng) -> Result<Tensor> {
    let dist = normal(std)?;
    let v: Vec<f32> = (0..shape.0 * shape.1).map(|_| dist.sample(rng)).collect();
    Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
}

/// Sets the teacher's `U*`, `V*` and head.
fn plant_shared(teacher: &Trainer, spec: &PlantedSpec, rng: &mut ChaCha20Rng) -> Result<()> {
    let vars = teacher
        .model()
        .shared_vars()
        .ok_or_else(|| TrainError::Model {
            reason: "teacher has no shared vars".into(),
        })?;
    let data = vars.data().lock().map_err(|_| TrainError::Model {
        reason: "shared var map poisoned".into(),
    })?;
    let get = |name: &str| {
        data.get(name).ok_or_else(|| TrainError::Model {
            reason: format!("teacher lacks {name}"),
        })
    };
    for (module, &(out, inp)) in teacher.modules() {
        get(&format!("{module}.lrs_u"))?.set(&draw((out, spec.rank), spec.factor_std, rng)?)?;
        let v_std = 1.0 / (inp as f32).sqrt();
        get(&format!("{module}.lrs_v"))?.set(&draw((inp, spec.rank), v_std, rng)?)?;
    }
    let hidden = teacher.model().config().hidden_size;
    get(HEAD_WEIGHT)?.set(&draw((1, hidden), spec.head_std, rng)?)?;
    get(HEAD_BIAS)?.set(&Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?)?;
    Ok(())
}

/// One task's `w*_i` and `S*_i` in every planted module.
fn plant_task(
    teacher: &Trainer,
    task: &str,
    spec: &PlantedSpec,
    rng: &mut ChaCha20Rng,
) -> Result<TaskDelta> {
    let mut delta = TaskDelta::new(task, spec.rank);
    let core = normal(spec.core_std)?;
    for (module, &(out, inp)) in teacher.task_modules() {
        let w: Vec<f32> = (0..spec.rank).map(|_| core.sample(rng)).collect();
        let k = spec.k.min(out * inp);
        let mut support: Vec<u32> = sample(rng, out * inp, k)
            .into_iter()
            .map(|i| i as u32)
            .collect();
        support.sort_unstable();
        let values: Vec<f32> = (0..k)
            .map(|_| {
                if rng.gen_bool(0.5) {
                    spec.sparse_value
                } else {
                    -spec.sparse_value
                }
            })
            .collect();
        let sparse = if k == 0 {
            SparsePart::None
        } else {
            SparsePart::Sparse(SparseDelta::new(
                out,
                inp,
                support,
                Tensor::new(values.as_slice(), &Device::Cpu)?,
            )?)
        };
        delta.layers.insert(
            module.clone(),
            LayerDelta {
                w: Some(Tensor::new(w.as_slice(), &Device::Cpu)?),
                sparse,
            },
        );
    }
    Ok(delta)
}
