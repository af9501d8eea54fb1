//! The task phase: per task, with every shared var fixed,
//! 1. AdamW on the core `w` (every adapted layer) and the task head, on the task's full
//!    training set — with [`TaskPhaseConfig::head_nnz`](super::TaskPhaseConfig) set, the
//!    head is a k-sparse delta whose support is chosen first, as for `S`; with
//!    `head_weight = false`, only its bias (a per-task intercept);
//! 2. the sparse parts `S` ([`super::sparse_fit`]): support by Gauss–Newton gain and saliency at
//!    the round's annealed budget ([`SparsityConfig::k_at_round`]), values by AdamW on it.
//!
//! A task's new parts are built on a copy and copied out of their vars at the end, so the
//! stored [`TaskDelta`]s never alias optimizer state.
//!
//! [`SparsityConfig::k_at_round`]: super::SparsityConfig::k_at_round

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, Var};
use lrs_nn::{LoraPart, TaskDelta};
use rayon::prelude::*;

use super::adamw::{AdamW, AdamWParams};
use super::data::{Row, TaskData};
use super::error::{Result, TrainError};
use super::heads::task_head_parts;
use super::sparse_fit::head_support;
use super::support::stage_budget;
use super::Trainer;
use crate::stable_hash::fnv1a64;

impl Trainer {
    /// Fits every task, in parallel ([`Self::fit_task`] at the current round's budget) and stores
    /// the results; returns the mean over tasks of their final training loss, or `None` if
    /// the method has no per-task part.
    pub fn task_phase(&mut self, data: &TaskData) -> Result<Option<f64>> {
        self.check_data(data)?;
        let m = self.config.method;
        if !(m.trains_core()
            || self.config.task_heads()
            || m.trains_sparse()
            || m.trains_dense()
            || m.trains_lora())
            || self.tasks.is_empty()
        {
            return Ok(None);
        }
        self.refresh_task_cache(data.tasks.iter().flat_map(|t| &t.train))?;
        // Tasks are independent given the frozen shared parts: fit them in parallel, then
        // store the results in task order, so the outcome does not depend on scheduling.
        let fitted = self
            .tasks
            .par_iter()
            .zip(data.tasks.par_iter())
            .map(|(task, rows)| self.fit_task(task, &rows.train, self.round))
            .collect::<Result<Vec<_>>>()?;
        let mut total = 0.0;
        for (slot, (task, loss)) in self.tasks.iter_mut().zip(fitted) {
            *slot = task;
            total += loss;
        }
        Ok(Some(total / self.tasks.len() as f64))
    }

    /// Fits one task's parts on `rows` with everything shared frozen, at round `round`'s
    /// sparse budget: the task phase for one task, and personalization of a new task (start
    /// from [`Self::blank_task`]). Returns the new parts and their training loss.
    pub fn fit_task(
        &self,
        task: &TaskDelta,
        rows: &[Row],
        round: usize,
    ) -> Result<(TaskDelta, f64)> {
        if rows.is_empty() {
            return Err(TrainError::EmptyTask {
                task: task.task_id.clone(),
            });
        }
        let cfg = &self.config;
        let m = cfg.method;
        let device = self.model.device().clone();
        let hidden = self.model.config().hidden_size;
        let refs: Vec<&Row> = rows.iter().collect();
        let full = self.row_batch(&refs)?;
        let y = full.targets().clone();
        let mut work = task.clone();

        let mut vars: Vec<Var> = Vec::new();
        if m.trains_core() {
            for module in self.task_modules.keys() {
                let layer = work.layers.entry(module.clone()).or_default();
                let w0 = match &layer.w {
                    Some(w) => w.copy()?,
                    None => Tensor::ones(cfg.rank, DType::F32, &device)?,
                };
                let var = Var::from_tensor(&w0)?;
                layer.w = Some(var.as_tensor().clone());
                vars.push(var);
            }
        }
        // A k-sparse head: its weight var, its final budget this round, its current non-zeros
        // and its bias var.
        let mut sparse_head: Option<(Var, usize, usize, Var)> = None;
        if cfg.task_heads() {
            for (name, t) in task_head_parts(&work, cfg, hidden, &device)? {
                let var = Var::from_tensor(&t.copy()?)?;
                work.head.insert(name.into(), var.as_tensor().clone());
                vars.push(var);
            }
            if cfg.task.head_nnz > 0 {
                let head_w = vars[vars.len() - 2].clone();
                let k =
                    cfg.sparsity
                        .anneal(cfg.task.head_nnz, head_w.elem_count(), round, cfg.rounds);
                let nonzero = head_support(&head_w)?.0.len();
                sparse_head = Some((head_w, k, nonzero, vars[vars.len() - 1].clone()));
            }
        }
        if m.trains_dense() {
            for (module, &shape) in &self.task_modules {
                let layer = work.layers.entry(module.clone()).or_default();
                vars.push(layer.start_dense_scratch(shape, &y)?);
            }
        }
        if m.trains_lora() {
            for (module, &shape) in &self.task_modules {
                let part = match work.lora.get(module) {
                    Some(p) => p.clone(),
                    None => self.new_lora(&work.task_id, module, shape)?,
                };
                let a = Var::from_tensor(&part.a.copy()?)?;
                let b = Var::from_tensor(&part.b.copy()?)?;
                work.lora.insert(
                    module.clone(),
                    LoraPart::new(a.as_tensor().clone(), b.as_tensor().clone(), part.scale),
                );
                vars.push(a);
                vars.push(b);
            }
        }
        // An optimizer over the task's vars (none without steps or vars); a swap step starts
        // a fresh one, since the moments of the support before are stale.
        let new_opt = || -> Result<Option<AdamW>> {
            Ok(if cfg.task.steps > 0 && !vars.is_empty() {
                Some(AdamW::new(
                    vars.clone(),
                    AdamWParams::new(cfg.task.lr, 0.0),
                )?)
            } else {
                None
            })
        };
        let mut opt = new_opt()?;
        // Steps on the task's vars, a sparse head kept on its mask.
        let fit = |work: &TaskDelta, opt: &mut Option<AdamW>, mask: Option<&Tensor>| {
            if let Some(opt) = opt {
                for _ in 0..cfg.task.steps {
                    opt.backward_step(&self.task_loss(work, &full, cfg.dropout)?)?;
                    if let (Some((var, ..)), Some(mask)) = (&sparse_head, mask) {
                        var.set(&(var.as_tensor() * mask)?)?;
                    }
                }
            }
            Ok::<(), TrainError>(())
        };
        // A sparse head grows its support in stages, each fitted before the next is scored.
        let stages = match sparse_head {
            Some(_) => cfg.task.support_stages.max(1),
            None => 1,
        };
        for stage in 0..stages {
            let mut head_mask: Option<Tensor> = None;
            if let Some((head_w, k, start, _)) = &sparse_head {
                let budget = stage_budget(*start, *k, stage, stages);
                let regrow = if stage == 0 { cfg.task.regrow } else { 0.0 };
                head_mask = Some(self.sparse_head_support(&work, head_w, &refs, budget, regrow)?);
            }
            fit(&work, &mut opt, head_mask.as_ref())?;
        }
        // Then swap steps, each kept only where the training loss fell.
        let swapping = sparse_head.as_ref().filter(|_| cfg.task.support_swaps > 0);
        if let Some((head_w, _, _, head_b)) = swapping {
            let mut before = self.task_loss(&work, &full, false)?.to_scalar::<f32>()?;
            for _ in 0..cfg.task.support_swaps {
                let saved = vars
                    .iter()
                    .map(|v| v.as_tensor().copy())
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let Some(mask) = self.swap_head_support(&work, (head_w, head_b), &refs)? else {
                    break;
                };
                fit(&work, &mut new_opt()?, Some(&mask))?;
                let after = self.task_loss(&work, &full, false)?.to_scalar::<f32>()?;
                if after >= before {
                    for (var, t) in vars.iter().zip(&saved) {
                        var.set(t)?;
                    }
                    break;
                }
                before = after;
            }
        }
        // Out of the vars: stored parts own their storage.
        for layer in work.layers.values_mut() {
            if let Some(w) = &layer.w {
                layer.w = Some(w.detach().copy()?);
            }
        }
        for t in work.head.values_mut() {
            *t = t.detach().copy()?;
        }
        for part in work.lora.values_mut() {
            *part = LoraPart::new(part.a.detach().copy()?, part.b.detach().copy()?, part.scale);
        }
        if m.trains_dense() {
            // Every entry kept: the dense update, stored in the sparse format.
            let sizes: BTreeMap<&str, usize> = self
                .task_modules
                .iter()
                .map(|(name, &(o, i))| (name.as_str(), o * i))
                .collect();
            work.harden(|module| sizes.get(module).copied().unwrap_or(0))?;
        }

        let mut loss = None;
        if m.trains_sparse() && cfg.task.sparse_steps > 0 {
            let budgets: BTreeMap<&str, usize> = self
                .task_modules
                .iter()
                .map(|(name, &(o, i))| {
                    (
                        name.as_str(),
                        cfg.sparsity.k_at_round(o, i, round, cfg.rounds),
                    )
                })
                .collect();
            loss = self.fit_sparse(&mut work, &full, &refs, &budgets)?;
        }
        let loss = match loss {
            Some(l) => l,
            None => f64::from(self.task_loss(&work, &full, false)?.to_scalar::<f32>()?),
        };
        Ok((work, loss))
    }

    /// Personalizes an unseen task: from [`Self::blank_task`], one [`Self::fit_task`] per
    /// configured round (so the sparse budget anneals exactly as in training, ending at `k`),
    /// everything shared frozen. Returns the task's parts and final training loss.
    pub fn personalize(&self, task_id: &str, rows: &[Row]) -> Result<(TaskDelta, f64)> {
        let mut task = self.blank_task(task_id)?;
        let mut loss = f64::NAN;
        for round in 0..self.config.rounds.max(1) {
            (task, loss) = self.fit_task(&task, rows, round)?;
        }
        Ok((task, loss))
    }

    /// A fresh LoRA pair for `module` of `task` ([`LoraPart::seeded`]: PEFT's initialisation),
    /// its stream keyed by the config seed, task and module, so runs are reproducible.
    fn new_lora(
        &self,
        task: &str,
        module: &str,
        (out_dim, in_dim): (usize, usize),
    ) -> Result<LoraPart> {
        let cfg = &self.config;
        let rank = cfg.lora_rank.unwrap_or(cfg.rank);
        let alpha = cfg.lora_alpha.unwrap_or(rank as f64);
        // A stable per-(task, module) stream, keyed by seed, task and module.
        let key: Vec<u8> = cfg
            .seed
            .to_le_bytes()
            .iter()
            .chain(task.as_bytes())
            .chain(b"/")
            .chain(module.as_bytes())
            .copied()
            .collect();
        Ok(LoraPart::seeded(
            (out_dim, in_dim),
            rank,
            alpha,
            fnv1a64(&key),
            self.model.device(),
        )?)
    }

    /// A new task's starting parts for this trainer's method (`w = 1`, `S = 0`, zero head),
    /// to personalize with [`Self::fit_task`].
    pub fn blank_task(&self, task_id: &str) -> Result<TaskDelta> {
        super::new_task(
            task_id,
            &self.config,
            &self.task_modules,
            self.model.config().hidden_size,
            self.model.device(),
        )
    }
}
