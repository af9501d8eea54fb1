//! The per-task sparse parts' fit, one round of it per task phase:
//!
//! 1. *Score*: each adapted layer's `S` becomes a dense scratch at its current values; one
//!    backward pass per row gives every entry's loss gradient `g` and Gauss–Newton curvature
//!    `h` ([`Trainer::newton_scores`]).
//! 2. *Support*: [`choose_support`] keeps the current entries whose removal would cost most
//!    (`h·x²/2`, Optimal Brain Damage) and grows the new positions whose Newton step would gain
//!    most (`g²/2h`) up to the round's annealed budget `k_ℓ`. Scoring by the gain rather than
//!    by `|g|` alone keeps inputs with large activations from taking every slot.
//! 3. *Values*: AdamW at their own learning rate [`TaskPhaseConfig::sparse_lr`] on the support
//!    alone (the fused sparse kernel's value gradient), for
//!    [`TaskPhaseConfig::sparse_steps`] full-batch steps; the iterate with the lowest
//!    training loss is kept (the start included, so the fit never makes the task worse).
//!
//! AdamW normalises each entry's step, so the values move even where the loss gradient is
//! tiny — which plain gradient steps on a dense scratch never did.
//!
//! [`TaskPhaseConfig::sparse_lr`]: super::TaskPhaseConfig::sparse_lr
//! [`TaskPhaseConfig::sparse_steps`]: super::TaskPhaseConfig::sparse_steps

use std::collections::BTreeMap;

use candle_core::{Tensor, Var};
use lrs_nn::bert::prefix::{PrefixState, ResumePoint};
use lrs_nn::{SparseDelta, SparsePart, TaskBatch, TaskDelta};

use super::adamw::{AdamW, AdamWParams};
use super::data::{targets, Row};
use super::error::Result;
use super::heads::logistic_loss;
use super::support::choose_support;
use super::Trainer;

/// Per entry of a parameter: the loss gradient and the Gauss–Newton curvature
/// ([`Trainer::newton_scores`]).
pub(super) struct EntryScores {
    grad: Vec<f32>,
    curvature: Vec<f32>,
}

impl EntryScores {
    /// What growing entry `i` from its value can gain: `g²/2h` (`h` floored at a small share of
    /// the mean curvature, so flat entries do not divide by zero).
    fn gain(&self) -> Vec<f32> {
        let floor = self.floor();
        self.grad
            .iter()
            .zip(&self.curvature)
            .map(|(g, h)| g * g / (2.0 * h.max(floor)))
            .collect()
    }

    /// What zeroing the entries at `indices` with `values` costs: `h·x²/2`.
    fn saliency(&self, indices: &[u32], values: &[f32]) -> Vec<f32> {
        let floor = self.floor();
        indices
            .iter()
            .zip(values)
            .map(|(&i, v)| 0.5 * self.curvature[i as usize].max(floor) * v * v)
            .collect()
    }

    fn floor(&self) -> f32 {
        let mean = self.curvature.iter().sum::<f32>() / self.curvature.len().max(1) as f32;
        (1e-3 * mean).max(f32::MIN_POSITIVE)
    }
}

/// Rows of one task, ready for repeated forward passes from the prefix cache.
pub(super) struct RowBatch {
    state: PrefixState,
    /// Where `state` was taken.
    at: Option<ResumePoint>,
    mask: Tensor,
    y: Tensor,
    n: usize,
}

impl RowBatch {
    /// The `[n]` f32 targets.
    pub(super) fn targets(&self) -> &Tensor {
        &self.y
    }
}

impl Trainer {
    /// `rows` as one [`RowBatch`].
    pub(super) fn row_batch(&self, rows: &[&Row]) -> Result<RowBatch> {
        let (cache, at) = self.task_rows_cache();
        let (state, mask) = cache.batch(&self.model, rows)?;
        Ok(RowBatch {
            state,
            at,
            mask,
            y: targets(rows, self.model.device())?,
            n: rows.len(),
        })
    }

    /// Each of `rows` as a batch of its own.
    pub(super) fn single_rows(&self, rows: &[&Row]) -> Result<Vec<RowBatch>> {
        rows.iter().map(|r| self.row_batch(&[r])).collect()
    }

    /// Mean logistic loss of `work` on `batch`.
    pub(super) fn task_loss(
        &self,
        work: &TaskDelta,
        batch: &RowBatch,
        train: bool,
    ) -> Result<Tensor> {
        let tb = TaskBatch::single(work, batch.n, self.model.device())?;
        logistic_loss(
            &self.logits_from(&batch.state, &batch.mask, batch.at, &tb, train)?,
            &batch.y,
        )
    }

    /// Gauss–Newton scores of every entry of `vars` (flattened) for the logistic loss on
    /// `rows` (one [`RowBatch`] per row, one backward pass each), with the task's intercept
    /// partialled out: from each row's residual `r = p − y`, weight `w = p(1 − p)` and logit
    /// gradient `φ = ∂z/∂x`, the gradient `g = Σ r (φ − φ̄)` and curvature `h = Σ w (φ − φ̄)²`
    /// around the `w`-weighted mean `φ̄` (a score test with the intercept re-fitted: AUC
    /// ignores a task's base rate, so a direction that only shifts every logit is no gain).
    /// `g²/2h` is then the loss decrease of a Newton step on one entry alone (what growing
    /// it can gain), `h·x²/2` the loss increase of zeroing it (what dropping it costs:
    /// Optimal Brain Damage). `work` must already read the vars.
    pub(super) fn newton_scores(
        &self,
        work: &TaskDelta,
        vars: &[Var],
        rows: &[RowBatch],
    ) -> Result<Vec<EntryScores>> {
        // Σ rφ, Σ wφ, Σ wφ² per entry; Σ r, Σ w.
        let mut sums: Vec<[Vec<f64>; 3]> = vars
            .iter()
            .map(|v| std::array::from_fn(|_| vec![0.0; v.elem_count()]))
            .collect();
        let (mut sr, mut sw) = (0.0f64, 0.0f64);
        for row in rows {
            let tb = TaskBatch::single(work, row.n, self.model.device())?;
            let z = self
                .logits_from(&row.state, &row.mask, row.at, &tb, false)?
                .sum_all()?;
            let p = 1.0 / (1.0 + (-f64::from(z.to_scalar::<f32>()?)).exp());
            let y = f64::from(row.y.sum_all()?.to_scalar::<f32>()?);
            let (r, w) = (p - y, p * (1.0 - p));
            sr += r;
            sw += w;
            let grads = z.backward()?;
            for ([rphi, wphi, wphi2], var) in sums.iter_mut().zip(vars) {
                if let Some(dz) = grads.get(var) {
                    let dz = dz.flatten_all()?.to_vec1::<f32>()?;
                    for (j, d) in dz.into_iter().enumerate() {
                        let d = f64::from(d);
                        rphi[j] += r * d;
                        wphi[j] += w * d;
                        wphi2[j] += w * d * d;
                    }
                }
            }
        }
        let n = rows.len().max(1) as f64;
        let sw = sw.max(f64::MIN_POSITIVE);
        Ok(sums
            .into_iter()
            .map(|[rphi, wphi, wphi2]| EntryScores {
                grad: rphi
                    .iter()
                    .zip(&wphi)
                    .map(|(a, b)| ((a - sr * b / sw) / n) as f32)
                    .collect(),
                curvature: wphi2
                    .iter()
                    .zip(&wphi)
                    .map(|(a, b)| ((a - b * b / sw).max(0.0) / n) as f32)
                    .collect(),
            })
            .collect())
    }

    /// One round's fit of every adapted layer's sparse part of `work` (see the module docs),
    /// with `budgets[module]` entries at most.
    pub(super) fn fit_sparse(
        &self,
        work: &mut TaskDelta,
        full: &RowBatch,
        singles: &[RowBatch],
        budgets: &BTreeMap<&str, usize>,
    ) -> Result<()> {
        let cfg = &self.config.task;
        // 1. Scores, from dense scratches at the current values.
        let previous: BTreeMap<String, SparsePart> = work
            .layers
            .iter()
            .filter(|(m, _)| self.task_modules.contains_key(*m))
            .map(|(m, l)| (m.clone(), l.sparse.clone()))
            .collect();
        let mut scratch = Vec::new();
        for (module, &shape) in &self.task_modules {
            let layer = work.layers.entry(module.clone()).or_default();
            scratch.push(layer.start_dense_scratch(shape, &full.y)?);
        }
        let scores = self.newton_scores(work, &scratch, singles)?;
        drop(scratch);

        // 2. Supports; values start at their current value, 0 where new.
        let mut fitted: Vec<(String, Vec<u32>, Var)> = Vec::new();
        for ((module, &(out_dim, in_dim)), score) in self.task_modules.iter().zip(&scores) {
            let (current, values) = match previous.get(module) {
                Some(SparsePart::Sparse(s)) => (s.indices().to_vec(), s.values().to_vec1::<f32>()?),
                _ => (Vec::new(), Vec::new()),
            };
            let k = budgets.get(module.as_str()).copied().unwrap_or(0);
            let support = choose_support(
                &current,
                &score.saliency(&current, &values),
                &score.gain(),
                k,
                cfg.regrow,
            );
            let start: Vec<f32> = support
                .iter()
                .map(|i| match current.binary_search(i) {
                    Ok(j) => values[j],
                    Err(_) => 0.0,
                })
                .collect();
            let layer = work.layers.entry(module.clone()).or_default();
            if support.is_empty() {
                layer.sparse = SparsePart::Sparse(SparseDelta::empty(
                    out_dim,
                    in_dim,
                    full.y.dtype(),
                    full.y.device(),
                )?);
                continue;
            }
            let var = Var::from_vec(start, support.len(), full.y.device())?;
            layer.sparse = SparsePart::Sparse(SparseDelta::new(
                out_dim,
                in_dim,
                support.clone(),
                var.as_tensor().clone(),
            )?);
            fitted.push((module.clone(), support, var));
        }

        // 3. Values by AdamW, the best iterate kept.
        if !fitted.is_empty() {
            let vars: Vec<Var> = fitted.iter().map(|(_, _, v)| v.clone()).collect();
            let mut opt = AdamW::new(vars.clone(), AdamWParams::new(cfg.sparse_lr, 0.0))?;
            let mut best: Option<(f32, Vec<Tensor>)> = None;
            for step in 0..=cfg.sparse_steps {
                let loss = self.task_loss(work, full, self.config.dropout)?;
                let value = loss.to_scalar::<f32>()?;
                if best.as_ref().is_none_or(|(b, _)| value < *b) {
                    let kept = vars
                        .iter()
                        .map(|v| v.as_tensor().copy())
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    best = Some((value, kept));
                }
                if step == cfg.sparse_steps {
                    break;
                }
                opt.backward_step(&loss)?;
            }
            let kept = best.map(|(_, k)| k).unwrap_or_default();
            for ((module, support, _), values) in fitted.into_iter().zip(kept) {
                let (out_dim, in_dim) = self.task_modules[&module];
                if let Some(layer) = work.layers.get_mut(&module) {
                    layer.sparse =
                        SparsePart::Sparse(SparseDelta::new(out_dim, in_dim, support, values)?);
                }
            }
        }
        Ok(())
    }

    /// The support of a k-sparse per-task head delta ([`TaskPhaseConfig::head_nnz`] entries of
    /// the head weight `head_w` at the end, annealed from a multiple like `S`'s budget and
    /// chosen as for `S`), applied: entries off it are zeroed.
    /// Returns the var and its `{0, 1}` mask, to re-apply after every optimizer step.
    ///
    /// [`TaskPhaseConfig::head_nnz`]: super::TaskPhaseConfig::head_nnz
    pub(super) fn sparse_head_support(
        &self,
        work: &TaskDelta,
        head_w: &Var,
        singles: &[RowBatch],
        round: usize,
    ) -> Result<(Var, Tensor)> {
        let Some(score) = self
            .newton_scores(work, std::slice::from_ref(head_w), singles)?
            .pop()
        else {
            return Err(super::TrainError::Model {
                reason: "no score for the task head".into(),
            });
        };
        let flat: Vec<f32> = head_w.as_tensor().flatten_all()?.to_vec1()?;
        let (current, values): (Vec<u32>, Vec<f32>) = flat
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| (i as u32, *v))
            .unzip();
        let support = choose_support(
            &current,
            &score.saliency(&current, &values),
            &score.gain(),
            self.config.sparsity.anneal(
                self.config.task.head_nnz,
                flat.len(),
                round,
                self.config.rounds,
            ),
            self.config.task.regrow,
        );
        let mut mask = vec![0f32; flat.len()];
        for i in support {
            mask[i as usize] = 1.0;
        }
        let mask = Tensor::from_vec(mask, head_w.shape(), head_w.device())?;
        head_w.set(&(head_w.as_tensor() * &mask)?)?;
        Ok((head_w.clone(), mask))
    }
}
