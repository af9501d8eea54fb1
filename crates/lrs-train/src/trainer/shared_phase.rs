//! The shared phase: AdamW on the shared vars (`U`, `V`, shared head — which of them the
//! [`Method`](super::Method) says) over minibatches that mix tasks. Each row carries its task
//! through a [`TaskBatch`], so every task's `w`, `S` and head shape its rows' predictions, but
//! only the shared vars are stepped: the per-task parts are plain tensors here, not vars.

use lrs_nn::{TaskBatch, TaskDelta};
use rand::seq::SliceRandom;

use super::adamw::AdamW;
use super::data::{targets, Row, TaskData};
use super::error::Result;
use super::heads::logistic_loss;
use super::Trainer;

impl Trainer {
    /// Runs [`SharedPhaseConfig::steps`](super::SharedPhaseConfig::steps) AdamW steps on
    /// minibatches drawn without replacement (reshuffled when exhausted) from all tasks'
    /// training rows; returns the mean minibatch loss, or `None` if the method trains no
    /// shared parameter.
    pub fn shared_phase(&mut self, data: &TaskData) -> Result<Option<f64>> {
        self.check_data(data)?;
        let Some(mut opt) = self.shared_opt.take() else {
            return Ok(None);
        };
        let result = if self.private.is_some() {
            self.private_steps(&mut opt, data)
        } else {
            self.shared_steps(&mut opt, data)
        };
        self.shared_opt = Some(opt);
        // States above the shared factors are stale now; the task phase recomputes them.
        if let Some(cache) = &mut self.task_cache {
            cache.clear();
        }
        result
    }

    fn shared_steps(&mut self, opt: &mut AdamW, data: &TaskData) -> Result<Option<f64>> {
        let mut pairs: Vec<(usize, usize)> = data
            .tasks
            .iter()
            .enumerate()
            .flat_map(|(t, rows)| (0..rows.train.len()).map(move |j| (t, j)))
            .collect();
        let steps = self.config.shared.steps_for(pairs.len());
        if steps == 0 || pairs.is_empty() {
            return Ok(None);
        }
        let size = self.config.shared.batch_size.min(pairs.len());
        let buckets = self.config.shared.length_buckets;
        let len = |&(t, j): &(usize, usize)| data.tasks[t].train[j].ids.len();
        let mut batches = minibatches(&mut pairs, size, buckets, &len, &mut self.rng);
        let (mut cursor, mut total) = (0, 0.0);
        let device = self.model.device().clone();
        let neutral = self.neutral_task();
        for _ in 0..steps {
            if cursor == batches.len() {
                batches = minibatches(&mut pairs, size, buckets, &len, &mut self.rng);
                cursor = 0;
            }
            let chunk = &batches[cursor];
            cursor += 1;
            // Distinct tasks in order of first appearance; each row points at its task.
            let mut present: Vec<usize> = Vec::new();
            let mut row_task = Vec::with_capacity(size);
            for &(t, _) in chunk {
                let slot = match present.iter().position(|&p| p == t) {
                    Some(slot) => slot,
                    None => {
                        present.push(t);
                        present.len() - 1
                    }
                };
                row_task.push(slot);
            }
            let deltas: Vec<&TaskDelta> = present
                .iter()
                .map(|&t| neutral.as_ref().unwrap_or(&self.tasks[t]))
                .collect();
            let tb = TaskBatch::new(deltas, &row_task, &device)?;
            let rows: Vec<&Row> = chunk
                .iter()
                .map(|&(t, j)| &data.tasks[t].train[j])
                .collect();
            let z = self.logits_rows(&rows, &tb, self.config.dropout)?;
            let y = targets(&rows, &device)?;
            let loss = logistic_loss(&z, &y)?;
            opt.backward_step(&loss)?;
            total += f64::from(loss.to_scalar::<f32>()?);
        }
        Ok(Some(total / steps as f64))
    }

    /// With [`SharedPhaseConfig::task_parts`](super::SharedPhaseConfig::task_parts) off, the
    /// neutral parts every row of the shared phase is computed with (`w = 1`, no `S`, no task
    /// head); `None` when rows use their own task's parts.
    pub(super) fn neutral_task(&self) -> Option<TaskDelta> {
        (!self.config.shared.task_parts).then(|| TaskDelta::new("", self.config.rank))
    }
}

/// One epoch of minibatches of `size` rows: `pairs` shuffled, then (with `buckets` > 1) each
/// pool of `buckets × size` consecutive rows sorted by `len` and cut into minibatches, whose
/// order is shuffled again, so rows of similar length share a minibatch but every epoch and
/// every minibatch's place in it stay random. A last partial minibatch is dropped, as before.
fn minibatches<T: Copy>(
    pairs: &mut [T],
    size: usize,
    buckets: usize,
    len: &dyn Fn(&T) -> usize,
    rng: &mut impl rand::Rng,
) -> Vec<Vec<T>> {
    pairs.shuffle(rng);
    let size = size.max(1);
    let mut out: Vec<Vec<T>> = Vec::with_capacity(pairs.len() / size);
    for pool in pairs.chunks(size * buckets.max(1)) {
        let mut pool = pool.to_vec();
        if buckets > 1 {
            pool.sort_by_key(len);
        }
        out.extend(pool.chunks_exact(size).map(<[T]>::to_vec));
    }
    if buckets > 1 {
        out.shuffle(rng);
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::minibatches;

    #[test]
    fn buckets_cover_each_row_once_per_epoch_and_pad_less() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let mut rows: Vec<usize> = (0..256).collect();
        let len = |&r: &usize| 5 + (r * 37) % 23; // lengths 5..27, interleaved
        let padded = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| b.iter().map(len).max().unwrap_or(0) * b.len())
                .sum()
        };
        let plain = minibatches(&mut rows, 16, 1, &len, &mut rng);
        let bucketed = minibatches(&mut rows, 16, 8, &len, &mut rng);
        for batches in [&plain, &bucketed] {
            assert_eq!(batches.len(), 16);
            let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..256).collect::<Vec<_>>());
        }
        let (p, b) = (padded(&plain), padded(&bucketed));
        assert!(b * 10 < p * 8, "bucketed {b} padded tokens vs plain {p}");
    }
}
