//! [`PrefixCache`]: each distinct text's frozen-prefix state
//! ([`BertModel::prefix`]), computed once. Every forward pass of training and evaluation then
//! runs only the network from the first adapted linear on ([`BertModel::forward_from`]); with
//! adapters in the top layer only, that is a fraction of the full model's cost. Texts repeat
//! across tasks (MovieLens: 1 682 movies for 100 000 ratings), so the cache holds one state
//! per distinct token sequence, not per row.
//!
//! A cache may also hold states at a later point ([`PrefixCache::build_at`]): where a run's
//! per-task parts start (`task_layers`), so the task phase runs only the top layers. Such
//! states depend on the shared factors below that point and are rebuilt after each shared
//! phase.

use std::collections::HashMap;

use candle_core::Tensor;
use lrs_nn::bert::model::padding_mask;
use lrs_nn::bert::prefix::{PrefixState, ResumePoint};
use lrs_nn::BertModel;

use super::data::{batch, Row};
use super::error::{Result, TrainError};

/// Rows per prefix forward pass when filling the cache.
const FILL_BATCH: usize = 64;

/// Frozen-prefix states by token sequence.
#[derive(Debug, Clone, Default)]
pub struct PrefixCache {
    states: HashMap<Vec<u32>, PrefixState>,
    /// Where the states are taken (`None`: the model's frozen prefix).
    at: Option<ResumePoint>,
}

impl PrefixCache {
    /// Computes the frozen-prefix state of every distinct token sequence among `rows`.
    pub fn build<'a>(model: &BertModel, rows: impl IntoIterator<Item = &'a Row>) -> Result<Self> {
        Self::build_inner(model, None, rows)
    }

    /// Computes every distinct token sequence's state at `at` ([`BertModel::prefix_at`]).
    pub fn build_at<'a>(
        model: &BertModel,
        at: ResumePoint,
        rows: impl IntoIterator<Item = &'a Row>,
    ) -> Result<Self> {
        Self::build_inner(model, Some(at), rows)
    }

    /// An empty cache whose states will be taken at `at` (filled by the rows it is asked for,
    /// or rebuilt with [`Self::build_at`]).
    pub fn empty_at(at: ResumePoint) -> Self {
        Self {
            states: HashMap::new(),
            at: Some(at),
        }
    }

    /// Drops every state (they are stale after the shared factors changed) but keeps where
    /// the states are taken.
    pub fn clear(&mut self) {
        self.states.clear();
    }

    /// Where the states are taken: the point [`BertModel::forward_from_at`] resumes from.
    pub fn point(&self, model: &BertModel) -> Option<ResumePoint> {
        self.at.or_else(|| model.resume_point())
    }

    fn build_inner<'a>(
        model: &BertModel,
        at: Option<ResumePoint>,
        rows: impl IntoIterator<Item = &'a Row>,
    ) -> Result<Self> {
        let mut cache = Self {
            states: HashMap::new(),
            at,
        };
        let mut todo: Vec<&Row> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            if seen.insert(row.ids.as_slice()) {
                todo.push(row);
            }
        }
        // Similar lengths together: little padding per pass.
        todo.sort_by_key(|r| r.ids.len());
        for chunk in todo.chunks(FILL_BATCH) {
            for (row, state) in chunk.iter().zip(compute(model, cache.point(model), chunk)?) {
                cache.states.insert(row.ids.clone(), state);
            }
        }
        Ok(cache)
    }

    /// Distinct sequences held.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Bytes held by the cached tensors.
    pub fn bytes(&self) -> usize {
        self.states.values().map(PrefixState::bytes).sum()
    }

    /// The stacked, zero-padded prefix state of `rows` and its `[batch, seq]` attention mask.
    /// Rows missing from the cache (texts of a task seen only now) are computed on the fly
    /// and not stored, so a shared cache can serve parallel readers.
    pub fn batch(&self, model: &BertModel, rows: &[&Row]) -> Result<(PrefixState, Tensor)> {
        let missing: Vec<&Row> = rows
            .iter()
            .filter(|r| !self.states.contains_key(&r.ids))
            .copied()
            .collect();
        let extra: HashMap<&[u32], PrefixState> = if missing.is_empty() {
            HashMap::new()
        } else {
            missing
                .iter()
                .map(|r| r.ids.as_slice())
                .zip(compute(model, self.point(model), &missing)?)
                .collect()
        };
        let states = rows
            .iter()
            .map(|r| {
                self.states
                    .get(&r.ids)
                    .or_else(|| extra.get(r.ids.as_slice()))
                    .ok_or_else(|| TrainError::Model {
                        reason: "prefix state missing after computing it".into(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let stacked = PrefixState::stack_padded(&states)?;
        let mask = padding_mask(rows.iter().map(|r| r.ids.len()), model.device())?;
        Ok((stacked, mask))
    }
}

/// One prefix pass over `rows` up to `at` (padded by [`batch`]), split back into per-row states
/// trimmed to their length.
fn compute(model: &BertModel, at: Option<ResumePoint>, rows: &[&Row]) -> Result<Vec<PrefixState>> {
    let (input, _) = batch(rows.iter().copied(), model.device())?;
    let state = model.prefix_at(&input, at)?;
    rows.iter()
        .enumerate()
        .map(|(i, r)| Ok(state.row(i, r.ids.len())?))
        .collect()
}
