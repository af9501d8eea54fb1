//! The private shared phase (see [`super::privacy`]): per step, Poisson-sampled users'
//! clipped gradients of the shared vars, summed with Gaussian noise, one AdamW step.

use candle_core::{DType, Tensor, Var};
use rayon::prelude::*;

use super::adamw::AdamW;
use super::data::{targets, Row, TaskData};
use super::error::{Result, TrainError};
use super::heads::logistic_loss;
use super::privacy::{check_update, noisy_clipped_sum, poisson_sample};
use super::Trainer;
use lrs_nn::TaskBatch;

/// The values of `vars`, flattened in order, as f64.
fn flatten(tensors: impl IntoIterator<Item = Tensor>) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for t in tensors {
        out.extend(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
    }
    Ok(out)
}

impl Trainer {
    /// User `task`'s gradient of `vars` over all its training rows (flattened, f64; a var the
    /// loss does not reach contributes zeros) and its loss.
    pub fn user_gradient(
        &self,
        task: usize,
        data: &TaskData,
        vars: &[Var],
    ) -> Result<(Vec<f64>, f64)> {
        let rows: Vec<&Row> = data.tasks[task].train.iter().collect();
        let (state, mask) = self.cache.batch(&self.model, &rows)?;
        let y = targets(&rows, self.model.device())?;
        let neutral = self.neutral_task();
        let delta = neutral.as_ref().unwrap_or(&self.tasks[task]);
        let tb = TaskBatch::single(delta, rows.len(), self.model.device())?;
        let loss = logistic_loss(
            &self.logits_from(
                &state,
                &mask,
                self.cache.point(&self.model),
                &tb,
                self.config.dropout,
            )?,
            &y,
        )?;
        let grads = loss.backward()?;
        let per_var = vars
            .iter()
            .map(|v| match grads.get(v) {
                Some(g) => Ok(g.clone()),
                None => Ok(v.as_tensor().zeros_like()?),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((flatten(per_var)?, f64::from(loss.to_scalar::<f32>()?)))
    }

    /// The noisy sum of step `step`: the sampled users and `Σ clip(g_i) + N(0, σ²C²)`.
    pub fn private_sum(
        &self,
        data: &TaskData,
        vars: &[Var],
        step: u64,
    ) -> Result<(Vec<usize>, Vec<f64>, f64)> {
        let (pcfg, state) = match (&self.config.privacy, &self.private) {
            (Some(p), Some(s)) => (p, s),
            _ => {
                return Err(TrainError::Privacy {
                    reason: "not a private run".into(),
                })
            }
        };
        let (mut sampler, mut noise) = pcfg.step_rngs(state.sigma, step)?;
        let sampled = poisson_sample(data.len(), pcfg.sample_rate, &mut sampler);
        let per_user = sampled
            .par_iter()
            .map(|&t| self.user_gradient(t, data, vars))
            .collect::<Result<Vec<_>>>()?;
        let len: usize = vars.iter().map(|v| v.elem_count()).sum();
        let loss = if per_user.is_empty() {
            f64::NAN
        } else {
            per_user.iter().map(|(_, l)| l).sum::<f64>() / per_user.len() as f64
        };
        let contributions: Vec<Vec<f64>> = per_user.into_iter().map(|(g, _)| g).collect();
        Ok((
            sampled,
            noisy_clipped_sum(&contributions, len, &mut noise)?,
            loss,
        ))
    }

    /// [`SharedPhaseConfig::steps`](super::SharedPhaseConfig::steps) private steps; the mean
    /// loss of the sampled users (a local diagnostic, not part of the release).
    pub(super) fn private_steps(
        &mut self,
        opt: &mut AdamW,
        data: &TaskData,
    ) -> Result<Option<f64>> {
        self.check_data(data)?;
        let steps = self.config.shared.steps;
        if steps == 0 || data.is_empty() {
            return Ok(None);
        }
        let q = self.config.privacy.as_ref().map_or(1.0, |p| p.sample_rate);
        let vars: Vec<Var> = opt.vars().to_vec();
        let (mut total, mut counted) = (0.0, 0usize);
        for _ in 0..steps {
            let state = self.private.ok_or_else(|| TrainError::Privacy {
                reason: "not a private run".into(),
            })?;
            if state.steps_done >= state.planned {
                return Err(TrainError::Privacy {
                    reason: format!(
                        "the budget was planned for {} private steps and all are spent; \
                         training cannot continue without exceeding it",
                        state.planned
                    ),
                });
            }
            let (_, sum, loss) = self.private_sum(data, &vars, state.steps_done)?;
            if loss.is_finite() {
                total += loss;
                counted += 1;
            }
            let scale = 1.0 / (q * data.len() as f64);
            let mut grads = Vec::with_capacity(vars.len());
            let mut offset = 0;
            for v in &vars {
                let n = v.elem_count();
                let g: Vec<f32> = sum[offset..offset + n]
                    .iter()
                    .map(|x| (x * scale) as f32)
                    .collect();
                grads.push(Some(Tensor::from_vec(g, v.shape(), v.device())?));
                offset += n;
            }
            let before = flatten(vars.iter().map(|v| v.as_tensor().clone()))?;
            opt.step_with(&grads)?;
            let after = flatten(vars.iter().map(|v| v.as_tensor().clone()))?;
            let delta: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            let theta = before.iter().map(|x| x * x).sum::<f64>().sqrt();
            let p = opt.params();
            check_update(&delta, p.lr, p.weight_decay, theta)?;
            if let Some(s) = &mut self.private {
                s.steps_done += 1;
            }
        }
        Ok((counted > 0).then(|| total / counted as f64))
    }
}
