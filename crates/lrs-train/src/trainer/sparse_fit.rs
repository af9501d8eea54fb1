//! The per-task sparse parts' fit, one round of it per task phase:
//!
//! 1. *Score*: each adapted layer's `S` becomes a dense scratch at its current values, one
//!    per row of a batch of rows; one backward pass per batch gives each row's logit
//!    gradient, and from them every entry's loss gradient `g` and Gauss–Newton curvature `h`
//!    ([`Trainer::sparse_scores`], [`ScoreSums`]).
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
use super::support::{choose_support, stage_budget};
use super::swap::{best_swap, Swap, SwapModel};
use super::Trainer;

/// Most bytes of per-row scratch (values and their gradients) one scoring pass holds: rows
/// beyond it go to further passes ([`Trainer::score_batches`]).
const SCORE_SCRATCH_BYTES: usize = 64 << 20;

/// Per entry of a parameter: the loss gradient and the Gauss–Newton curvature
/// ([`ScoreSums`]).
pub(super) struct EntryScores {
    grad: Vec<f32>,
    curvature: Vec<f32>,
    /// The weighted mean logit gradient `φ̄` of each entry: moving an entry by `d` with the
    /// intercept re-fitted moves the intercept by `−d·φ̄`.
    mean: Vec<f32>,
    /// The curvature between each entry of the support the sums were asked to cross with
    /// and every entry (`cross[j][i]`); empty unless asked ([`ScoreSums::new`]).
    cross: Vec<Vec<f64>>,
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

    /// The best exchange of one entry of the current support (`support`, `values`) for one
    /// outside it ([`best_swap`]); needs the scores crossed with that support.
    fn best_swap(&self, support: &[u32], values: &[f32]) -> Option<Swap> {
        best_swap(&SwapModel {
            support,
            values,
            grad: &self.grad,
            curvature: &self.curvature,
            cross: &self.cross,
            ridge: f64::from(self.floor()),
        })
    }

    fn floor(&self) -> f32 {
        let mean = self.curvature.iter().sum::<f32>() / self.curvature.len().max(1) as f32;
        (1e-3 * mean).max(f32::MIN_POSITIVE)
    }
}

/// The Gauss–Newton scores of a parameter's entries for the logistic loss, summed row by row,
/// with the task's intercept partialled out: from each row's residual `r = p − y`, weight
/// `w = p(1 − p)` and logit gradient `φ = ∂z/∂x`, the gradient `g = Σ r (φ − φ̄)` and
/// curvature `h = Σ w (φ − φ̄)²` around the `w`-weighted mean `φ̄` (a score test with the
/// intercept re-fitted: AUC ignores a task's base rate, so a direction that only shifts every
/// logit is no gain). `g²/2h` is then the loss decrease of a Newton step on one entry alone
/// (what growing it can gain), `h·x²/2` the loss increase of zeroing it (what dropping it
/// costs: Optimal Brain Damage).
struct ScoreSums {
    /// Per parameter: `Σ rφ`, `Σ wφ`, `Σ wφ²` per entry.
    sums: Vec<[Vec<f64>; 3]>,
    /// Per parameter: the entries to cross with, and `Σ w φ_c φ_i` for each of them `c` and
    /// every entry `i` (what the swap step reads, [`best_swap`]).
    cross: Vec<(Vec<u32>, Vec<Vec<f64>>)>,
    /// `Σ r`, `Σ w`.
    sr: f64,
    sw: f64,
    rows: usize,
}

impl ScoreSums {
    /// Empty sums for parameters of `sizes` entries, each crossed with the entries
    /// `cross[j]` (none where empty: the cross sums cost one pass over a parameter's entries
    /// per crossed entry and row).
    fn new(sizes: &[usize], cross: &[Vec<u32>]) -> Self {
        Self {
            sums: sizes
                .iter()
                .map(|&n| std::array::from_fn(|_| vec![0.0; n]))
                .collect(),
            cross: sizes
                .iter()
                .enumerate()
                .map(|(j, &n)| {
                    let cols = cross.get(j).cloned().unwrap_or_default();
                    let sums = vec![vec![0.0; n]; cols.len()];
                    (cols, sums)
                })
                .collect(),
            sr: 0.0,
            sw: 0.0,
            rows: 0,
        }
    }

    /// Adds a batch of rows: their logits `z`, targets `y` and, per parameter, their logit
    /// gradients `phis[j]` (`[rows, entries]`, row-major).
    fn add_batch(&mut self, z: &[f32], y: &[f32], phis: &[Vec<f32>]) -> Result<()> {
        if z.len() != y.len() || phis.len() != self.sums.len() {
            return Err(super::TrainError::Model {
                reason: format!(
                    "scores: {} logits, {} targets, {} gradients for {} parameters",
                    z.len(),
                    y.len(),
                    phis.len(),
                    self.sums.len()
                ),
            });
        }
        for (row, (&z, &y)) in z.iter().zip(y).enumerate() {
            let p = 1.0 / (1.0 + (-f64::from(z)).exp());
            let (r, w) = (p - f64::from(y), p * (1.0 - p));
            self.sr += r;
            self.sw += w;
            for (([rphi, wphi, wphi2], (cols, cross)), phi) in
                self.sums.iter_mut().zip(&mut self.cross).zip(phis)
            {
                let n = rphi.len();
                let Some(phi) = phi.get(row * n..(row + 1) * n) else {
                    return Err(super::TrainError::Model {
                        reason: format!(
                            "scores: a gradient of {} values for {n} entries",
                            phi.len()
                        ),
                    });
                };
                for (j, &d) in phi.iter().enumerate() {
                    let d = f64::from(d);
                    rphi[j] += r * d;
                    wphi[j] += w * d;
                    wphi2[j] += w * d * d;
                }
                for (&c, sums) in cols.iter().zip(cross.iter_mut()) {
                    let wc = w * f64::from(phi.get(c as usize).copied().unwrap_or(0.0));
                    for (sum, &d) in sums.iter_mut().zip(phi) {
                        *sum += wc * f64::from(d);
                    }
                }
            }
        }
        self.rows += z.len();
        Ok(())
    }

    /// The mean scores per row, per parameter.
    fn finish(self) -> Vec<EntryScores> {
        let n = self.rows.max(1) as f64;
        let (sr, sw) = (self.sr, self.sw.max(f64::MIN_POSITIVE));
        self.sums
            .into_iter()
            .zip(self.cross)
            .map(|([rphi, wphi, wphi2], (cols, cross))| EntryScores {
                mean: wphi.iter().map(|a| (a / sw) as f32).collect(),
                cross: cols
                    .iter()
                    .zip(cross)
                    .map(|(&c, sums)| {
                        let wc = wphi.get(c as usize).copied().unwrap_or(0.0);
                        sums.iter()
                            .zip(&wphi)
                            .map(|(a, b)| (a - wc * b / sw) / n)
                            .collect()
                    })
                    .collect(),
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
            .collect()
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
        // Every pass over this batch keeps the shared factors fixed: the projections of the
        // first task layer's input are made once.
        let state = self.model.with_projections(state, at)?;
        Ok(RowBatch {
            state,
            at,
            mask,
            y: targets(rows, self.model.device())?,
            n: rows.len(),
        })
    }

    /// `rows` in batches for the per-row scores, each as large as keeps its per-row scratch
    /// (`entries` values per row, and as many gradients) within [`SCORE_SCRATCH_BYTES`], the
    /// rows spread evenly over the fewest such batches.
    pub(super) fn score_batches(&self, rows: &[&Row], entries: usize) -> Result<Vec<RowBatch>> {
        let per_row = 2 * entries.max(1) * std::mem::size_of::<f32>();
        let most = (SCORE_SCRATCH_BYTES / per_row).clamp(1, rows.len().max(1));
        let count = rows.len().div_ceil(most).max(1);
        let size = rows.len().div_ceil(count).max(1);
        rows.chunks(size).map(|c| self.row_batch(c)).collect()
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

    /// Gauss–Newton scores ([`ScoreSums`]) of every entry of every per-task module's sparse
    /// part of `work`, at its current values, on `rows` (in [`Self::score_batches`]): in each
    /// batch every row gets a dense scratch of its own ([`SparsePart::RowScratch`]), so one
    /// backward pass of the summed logits gives each row's logit gradient `φ`. Each module's
    /// scores are crossed with the entries `cross[j]` (none where `cross` is empty; for
    /// [`EntryScores::best_swap`]). In [`Self::task_modules`] order.
    pub(super) fn sparse_scores(
        &self,
        work: &TaskDelta,
        rows: &[&Row],
        cross: &[Vec<u32>],
    ) -> Result<Vec<EntryScores>> {
        let sizes: Vec<usize> = self.task_modules.values().map(|&(o, i)| o * i).collect();
        let mut sums = ScoreSums::new(&sizes, cross);
        for batch in &self.score_batches(rows, sizes.iter().sum())? {
            let mut scratch = work.clone();
            let mut vars = Vec::with_capacity(sizes.len());
            for (module, &shape) in &self.task_modules {
                let layer = scratch.layers.entry(module.clone()).or_default();
                vars.push(layer.start_row_scratch(shape, batch.n, &batch.y)?);
            }
            let tb = TaskBatch::single(&scratch, batch.n, self.model.device())?;
            let z = self.logits_from(&batch.state, &batch.mask, batch.at, &tb, false)?;
            let grads = z.sum_all()?.backward()?;
            let phis = vars
                .iter()
                .map(|var| match grads.get(var) {
                    Some(g) => Ok(g.flatten_all()?.to_vec1::<f32>()?),
                    None => Ok(vec![0.0; var.elem_count()]),
                })
                .collect::<Result<Vec<_>>>()?;
            sums.add_batch(&z.to_vec1()?, &batch.y.to_vec1()?, &phis)?;
        }
        Ok(sums.finish())
    }

    /// Gauss–Newton scores ([`ScoreSums`]) of every entry of the per-task head weight of
    /// `work` on `rows`, crossed with the entries `cross` (none where empty): a row's logit
    /// gradient there is its pooled embedding, so a forward pass suffices.
    pub(super) fn head_scores(
        &self,
        work: &TaskDelta,
        rows: &[&Row],
        cross: &[u32],
    ) -> Result<EntryScores> {
        let hidden = self.model.config().hidden_size;
        let mut sums = ScoreSums::new(&[hidden], &[cross.to_vec()]);
        for batch in &self.score_batches(rows, hidden)? {
            let tb = TaskBatch::single(work, batch.n, self.model.device())?;
            let pooled = self.pooled_from(&batch.state, &batch.mask, batch.at, &tb, false)?;
            let z = self.head_logits(&pooled, &tb)?;
            let phi = pooled.flatten_all()?.to_vec1::<f32>()?;
            sums.add_batch(&z.to_vec1()?, &batch.y.to_vec1()?, &[phi])?;
        }
        sums.finish().pop().ok_or_else(|| super::TrainError::Model {
            reason: "no score for the task head".into(),
        })
    }

    /// One round's fit of every adapted layer's sparse part of `work` (see the module docs),
    /// with `budgets[module]` entries at most. Returns the kept iterate's training loss on
    /// `full` when it was measured without dropout (so the caller need not recompute it).
    /// With [`TaskPhaseConfig::support_stages`] above 1 the supports grow in stages
    /// ([`stage_budget`]), each scored at the values the stage before fitted; then up to
    /// [`TaskPhaseConfig::support_swaps`] swap steps ([`Self::swap_sparse`]).
    ///
    /// [`TaskPhaseConfig::support_stages`]: super::TaskPhaseConfig::support_stages
    /// [`TaskPhaseConfig::support_swaps`]: super::TaskPhaseConfig::support_swaps
    pub(super) fn fit_sparse(
        &self,
        work: &mut TaskDelta,
        full: &RowBatch,
        rows: &[&Row],
        budgets: &BTreeMap<&str, usize>,
    ) -> Result<Option<f64>> {
        let stages = self.config.task.support_stages.max(1);
        let start: BTreeMap<&str, usize> = budgets
            .keys()
            .map(|&module| Ok((module, sparse_support(work, module)?.0.len())))
            .collect::<Result<_>>()?;
        let mut loss = None;
        for stage in 0..stages {
            let stage_budgets: BTreeMap<&str, usize> = budgets
                .iter()
                .map(|(&module, &k)| (module, stage_budget(start[module], k, stage, stages)))
                .collect();
            // Regrowth moves the support once a round, in its first stage.
            let regrow = if stage == 0 {
                self.config.task.regrow
            } else {
                0.0
            };
            // 1. Scores, from per-row scratches at the current values.
            let scores = self.sparse_scores(work, rows, &[])?;
            // 2. Supports by gain and saliency.
            let mut supports = Vec::with_capacity(scores.len());
            for (module, score) in self.task_modules.keys().zip(&scores) {
                let (current, values) = sparse_support(work, module)?;
                let k = stage_budgets.get(module.as_str()).copied().unwrap_or(0);
                let support = choose_support(
                    &current,
                    &score.saliency(&current, &values),
                    &score.gain(),
                    k,
                    regrow,
                );
                supports.push((module.clone(), support));
            }
            // 3. Values.
            loss = self.fit_sparse_values(work, full, supports)?;
        }
        if self.config.task.support_swaps > 0 {
            let mut current = self.task_loss(work, full, false)?.to_scalar::<f32>()?;
            for _ in 0..self.config.task.support_swaps {
                match self.swap_sparse(work, full, rows, current)? {
                    Some(l) => {
                        current = l;
                        loss = Some(f64::from(l));
                    }
                    None => break,
                }
            }
        }
        Ok(loss)
    }

    /// One swap step of every per-task module's sparse support ([`best_swap`]): from scores
    /// crossed with the supports, each module trades the entry whose exchange the local model
    /// says lowers the loss most, the values are re-fitted, and the swaps are kept only if the
    /// training loss on `full` (without dropout) fell below `before`, the current one. Returns
    /// that loss, or `None` (and `work` unchanged) where no module found an exchange or the
    /// loss did not fall.
    fn swap_sparse(
        &self,
        work: &mut TaskDelta,
        full: &RowBatch,
        rows: &[&Row],
        before: f32,
    ) -> Result<Option<f32>> {
        let current = self
            .task_modules
            .keys()
            .map(|module| sparse_support(work, module))
            .collect::<Result<Vec<_>>>()?;
        let cross: Vec<Vec<u32>> = current.iter().map(|(support, _)| support.clone()).collect();
        let scores = self.sparse_scores(work, rows, &cross)?;
        let mut supports = Vec::with_capacity(scores.len());
        let mut swapped = false;
        for ((module, score), (support, values)) in
            self.task_modules.keys().zip(&scores).zip(current)
        {
            match score.best_swap(&support, &values) {
                Some(swap) => {
                    supports.push((module.clone(), swap.support));
                    swapped = true;
                }
                None => supports.push((module.clone(), support)),
            }
        }
        if !swapped {
            return Ok(None);
        }
        // Without a per-task intercept to absorb the model's re-fitted values, the value fit
        // starts from the kept entries' values and 0 for the grown one.
        let saved = work.clone();
        self.fit_sparse_values(work, full, supports)?;
        let after = self.task_loss(work, full, false)?.to_scalar::<f32>()?;
        if after < before {
            Ok(Some(after))
        } else {
            *work = saved;
            Ok(None)
        }
    }

    /// Installs `supports` (per module, sorted flat indices; values start at their current
    /// value, 0 where new) in `work` and fits their values by AdamW for
    /// [`TaskPhaseConfig::sparse_steps`] full-batch steps at [`TaskPhaseConfig::sparse_lr`],
    /// keeping the iterate with the lowest training loss (the start included). Returns that
    /// loss when it was measured without dropout.
    ///
    /// [`TaskPhaseConfig::sparse_steps`]: super::TaskPhaseConfig::sparse_steps
    /// [`TaskPhaseConfig::sparse_lr`]: super::TaskPhaseConfig::sparse_lr
    fn fit_sparse_values(
        &self,
        work: &mut TaskDelta,
        full: &RowBatch,
        supports: Vec<(String, Vec<u32>)>,
    ) -> Result<Option<f64>> {
        let cfg = &self.config.task;
        let mut fitted: Vec<(String, Vec<u32>, Var)> = Vec::new();
        for (module, support) in supports {
            let Some(&(out_dim, in_dim)) = self.task_modules.get(&module) else {
                continue;
            };
            let (current, values) = sparse_support(work, &module)?;
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
            fitted.push((module, support, var));
        }
        if fitted.is_empty() {
            return Ok(None);
        }
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
        let (loss, kept) = best.map_or((None, Vec::new()), |(l, k)| (Some(l), k));
        for ((module, support, _), values) in fitted.into_iter().zip(kept) {
            let (out_dim, in_dim) = self.task_modules[&module];
            if let Some(layer) = work.layers.get_mut(&module) {
                layer.sparse =
                    SparsePart::Sparse(SparseDelta::new(out_dim, in_dim, support, values)?);
            }
        }
        Ok(loss.filter(|_| !self.config.dropout).map(f64::from))
    }

    /// The support of a k-sparse per-task head delta ([`TaskPhaseConfig::head_nnz`] entries of
    /// the head weight `head_w` at the end, annealed from a multiple like `S`'s budget; here
    /// `budget` entries, a `regrow` share re-chosen, chosen as for `S`), applied: entries off
    /// it are zeroed. Returns its `{0, 1}` mask, to re-apply after every optimizer step.
    ///
    /// [`TaskPhaseConfig::head_nnz`]: super::TaskPhaseConfig::head_nnz
    pub(super) fn sparse_head_support(
        &self,
        work: &TaskDelta,
        head_w: &Var,
        rows: &[&Row],
        budget: usize,
        regrow: f64,
    ) -> Result<Tensor> {
        let score = self.head_scores(work, rows, &[])?;
        let (current, values) = head_support(head_w)?;
        let support = choose_support(
            &current,
            &score.saliency(&current, &values),
            &score.gain(),
            budget,
            regrow,
        );
        let mask = support_mask(&support, head_w)?;
        head_w.set(&(head_w.as_tensor() * &mask)?)?;
        Ok(mask)
    }

    /// One swap step of a sparse head's support ([`best_swap`] on head scores crossed with
    /// the current support): the best exchange applied to the head weight `head_w`, its
    /// entries set to the local model's re-fitted values and the head bias `head_b` moved as
    /// the model's re-fitted intercept moves; `None` (nothing changed) where no exchange
    /// lowers the model. Returns the new `{0, 1}` mask.
    pub(super) fn swap_head_support(
        &self,
        work: &TaskDelta,
        (head_w, head_b): (&Var, &Var),
        rows: &[&Row],
    ) -> Result<Option<Tensor>> {
        let (current, values) = head_support(head_w)?;
        let score = self.head_scores(work, rows, &current)?;
        let Some(swap) = score.best_swap(&current, &values) else {
            return Ok(None);
        };
        let mut head = vec![0f32; head_w.elem_count()];
        for (&i, &v) in swap.support.iter().zip(&swap.values) {
            head[i as usize] = v;
        }
        let mut shift = 0f32;
        for (&i, &v) in current.iter().zip(&values) {
            shift += v * score.mean[i as usize];
        }
        for (&i, &v) in swap.support.iter().zip(&swap.values) {
            shift -= v * score.mean[i as usize];
        }
        head_b.set(&(head_b.as_tensor() + f64::from(shift))?)?;
        head_w.set(&Tensor::from_vec(head, head_w.shape(), head_w.device())?)?;
        Ok(Some(support_mask(&swap.support, head_w)?))
    }
}

/// `work`'s sparse support of `module` and its values (empty before its first fit).
fn sparse_support(work: &TaskDelta, module: &str) -> Result<(Vec<u32>, Vec<f32>)> {
    Ok(match work.layers.get(module).map(|l| &l.sparse) {
        Some(SparsePart::Sparse(s)) => (s.indices().to_vec(), s.values().to_vec1::<f32>()?),
        _ => (Vec::new(), Vec::new()),
    })
}

/// The `{0, 1}` mask, shaped like `head_w`, that is 1 on `support` (flat indices).
fn support_mask(support: &[u32], head_w: &Var) -> Result<Tensor> {
    let mut mask = vec![0f32; head_w.elem_count()];
    for &i in support {
        mask[i as usize] = 1.0;
    }
    Ok(Tensor::from_vec(mask, head_w.shape(), head_w.device())?)
}

/// The non-zero entries of a sparse head weight `head_w` (flat indices) and their values.
pub(super) fn head_support(head_w: &Var) -> Result<(Vec<u32>, Vec<f32>)> {
    let flat: Vec<f32> = head_w.as_tensor().flatten_all()?.to_vec1()?;
    Ok(flat
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0.0)
        .map(|(i, v)| (i as u32, *v))
        .unzip())
}
