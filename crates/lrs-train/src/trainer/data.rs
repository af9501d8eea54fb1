//! The trainer's in-memory many-task data: each task's train/test [`Split`] tokenized once,
//! batched on demand (padded to the longest row of the batch).

use candle_core::{Device, Tensor};
use lrs_nn::{BertInput, BertTokenizer};

use super::error::{Result, TrainError};
use crate::Split;

/// Turns a text into token ids (with `[CLS]`/`[SEP]`, truncated), unpadded.
pub trait TextEncoder {
    /// The ids of `text`; an error is a short reason.
    fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String>;
}

impl TextEncoder for BertTokenizer {
    fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        // One row: padding to the longest row pads nothing.
        let input = self
            .encode_batch(&[text], &Device::Cpu)
            .map_err(|e| e.to_string())?;
        let mut rows: Vec<Vec<u32>> = input.input_ids.to_vec2().map_err(|e| e.to_string())?;
        rows.pop()
            .ok_or_else(|| "tokenizer returned no row".to_string())
    }
}

/// One tokenized, labelled row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Token ids, unpadded, never empty.
    pub ids: Vec<u32>,
    /// Whether the label is positive ([`crate::Example::is_positive`]).
    pub positive: bool,
}

/// One task's tokenized train and test rows.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRows {
    /// The task id.
    pub task: String,
    /// Training rows (never empty).
    pub train: Vec<Row>,
    /// Validation rows carved from the end of the training rows
    /// ([`TaskData::carve_validation`]); empty unless asked for. Never test rows.
    pub validation: Vec<Row>,
    /// Held-out rows.
    pub test: Vec<Row>,
}

/// Which rows of each task to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The training rows.
    Train,
    /// The validation rows (carved from the training rows, for tuning and early stopping).
    Validation,
    /// The held-out rows.
    Test,
}

impl TaskRows {
    /// The rows of `part`.
    pub fn rows(&self, part: Part) -> &[Row] {
        match part {
            Part::Train => &self.train,
            Part::Validation => &self.validation,
            Part::Test => &self.test,
        }
    }
}

/// Many tasks' tokenized rows, in split order (the trainer's task order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskData {
    /// Per task.
    pub tasks: Vec<TaskRows>,
}

impl TaskData {
    /// Tokenizes every split. Tasks without training rows are an error (the task phase would
    /// have nothing to fit); texts the encoder rejects name their task and position.
    pub fn from_splits(splits: &[Split], encoder: &impl TextEncoder) -> Result<Self> {
        let mut tasks = Vec::with_capacity(splits.len());
        for split in splits {
            if split.train.is_empty() {
                return Err(TrainError::EmptyTask {
                    task: split.task.clone(),
                });
            }
            let encode = |rows: &[crate::Example]| -> Result<Vec<Row>> {
                rows.iter()
                    .enumerate()
                    .map(|(index, e)| {
                        let ids = encoder
                            .encode(&e.text)
                            .map_err(|reason| TrainError::Encode {
                                task: split.task.clone(),
                                index,
                                reason,
                            })?;
                        if ids.is_empty() {
                            return Err(TrainError::Encode {
                                task: split.task.clone(),
                                index,
                                reason: "no tokens".into(),
                            });
                        }
                        Ok(Row {
                            ids,
                            positive: e.is_positive(),
                        })
                    })
                    .collect()
            };
            tasks.push(TaskRows {
                task: split.task.clone(),
                train: encode(&split.train)?,
                validation: Vec::new(),
                test: encode(&split.test)?,
            });
        }
        Ok(Self { tasks })
    }

    /// Moves the latest `⌈fraction · m⌉` of each task's `m` training rows (training rows are
    /// in time order) into its validation rows, always leaving at least one training row;
    /// `fraction = 0` carves nothing. Test rows are never touched. Errors unless `fraction`
    /// is in `[0, 1)`.
    pub fn carve_validation(&mut self, fraction: f64) -> Result<()> {
        if !(fraction.is_finite() && (0.0..1.0).contains(&fraction)) {
            return Err(TrainError::Config {
                field: "data.validation",
                reason: format!("must be in [0, 1), got {fraction}"),
            });
        }
        for task in &mut self.tasks {
            let m = task.train.len();
            let kept = m - validation_len(m, fraction);
            let mut moved = task.train.split_off(kept);
            moved.append(&mut task.validation);
            task.validation = moved;
        }
        Ok(())
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// How many of a task's `m` training rows (the latest ones) [`TaskData::carve_validation`]
/// moves into its validation rows: `⌈fraction · m⌉`, leaving at least one training row.
/// `fraction` is expected in `[0, 1)` (the caller checks it).
pub fn validation_len(m: usize, fraction: f64) -> usize {
    ((fraction * m as f64).ceil() as usize).min(m.saturating_sub(1))
}

/// `[batch]` f32 targets of `rows` (1 positive, 0 negative).
pub fn targets(rows: &[&Row], device: &Device) -> Result<Tensor> {
    let y: Vec<f32> = rows
        .iter()
        .map(|r| f32::from(u8::from(r.positive)))
        .collect();
    Ok(Tensor::from_vec(y, rows.len(), device)?)
}

/// The id padded positions of the trainer's batches get. They are masked out, so any id gives
/// the same result; 0 is `[PAD]` in BERT vocabularies.
pub const PAD_ID: u32 = 0;

/// A padded batch ([`BertInput::padded`]) and its `[batch]` f32 targets (1 positive,
/// 0 negative).
pub fn batch<'a>(
    rows: impl IntoIterator<Item = &'a Row>,
    device: &Device,
) -> Result<(BertInput, Tensor)> {
    let rows: Vec<&Row> = rows.into_iter().collect();
    let ids: Vec<&[u32]> = rows.iter().map(|r| r.ids.as_slice()).collect();
    Ok((
        BertInput::padded(&ids, PAD_ID, device)?,
        targets(&rows, device)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_pads_to_the_longest_row_and_masks_padding() -> Result<()> {
        let rows = [
            Row {
                ids: vec![1, 7, 2],
                positive: true,
            },
            Row {
                ids: vec![1, 2],
                positive: false,
            },
        ];
        let (input, y) = batch(&rows, &Device::Cpu)?;
        assert_eq!(input.input_ids.to_vec2::<u32>()?, [[1, 7, 2], [1, 2, 0]]);
        assert_eq!(
            input.attention_mask.to_vec2::<u32>()?,
            [[1, 1, 1], [1, 1, 0]]
        );
        assert_eq!(
            input.token_type_ids.to_vec2::<u32>()?,
            [[0, 0, 0], [0, 0, 0]]
        );
        assert_eq!(y.to_vec1::<f32>()?, [1.0, 0.0]);
        Ok(())
    }
}
