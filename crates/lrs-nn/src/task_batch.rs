//! Which task each row of a batch belongs to, grouped once per forward pass.

use std::collections::HashMap;

use candle_core::{Device, Tensor};

use crate::files::task_delta::TaskDelta;
use crate::{NnError, Result};

/// A batch's task assignment: the distinct tasks present and each row's task.
///
/// Built once per batch and threaded through every layer, so grouping rows by task is done once,
/// not once per layer.
#[derive(Debug, Clone)]
pub struct TaskBatch<'a> {
    tasks: Vec<&'a TaskDelta>,
    /// `[batch]` u32: index into `tasks` per row.
    row_task: Tensor,
    /// The same indices on the host (for CPU kernels, without a copy back per layer).
    row_task_ids: Vec<u32>,
    /// Per task: the rows it owns (`None`: every row, in order — no gather needed).
    groups: Vec<Option<Tensor>>,
    batch: usize,
    inference: bool,
}

impl<'a> TaskBatch<'a> {
    /// `tasks` are the distinct tasks; `row_task[i]` is the index in `tasks` of row `i`.
    pub fn new(tasks: Vec<&'a TaskDelta>, row_task: &[usize], device: &Device) -> Result<Self> {
        let batch = row_task.len();
        let mut members: Vec<Vec<u32>> = vec![Vec::new(); tasks.len()];
        for (row, &t) in row_task.iter().enumerate() {
            let slot = members.get_mut(t).ok_or_else(|| {
                NnError::Invalid(format!("row {row}: task index {t} ≥ {} tasks", tasks.len()))
            })?;
            slot.push(row as u32);
        }
        let groups = members
            .into_iter()
            .map(|rows| {
                if rows.len() == batch {
                    Ok(None)
                } else {
                    let n = rows.len();
                    Tensor::from_vec(rows, n, device).map(Some)
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let row_task: Vec<u32> = row_task.iter().map(|&t| t as u32).collect();
        Ok(Self {
            tasks,
            row_task: Tensor::new(row_task.as_slice(), device)?,
            row_task_ids: row_task,
            groups,
            batch,
            inference: false,
        })
    }

    /// Marks the batch as inference-only: no gradient will be taken through it, so layers may
    /// use forward-only kernels (one pass for all tasks' sparse parts).
    pub fn for_inference(mut self) -> Self {
        self.inference = true;
        self
    }

    /// Whether the batch is inference-only ([`Self::for_inference`]).
    pub fn is_inference(&self) -> bool {
        self.inference
    }

    /// Every row of a `batch`-row batch belongs to `task`.
    pub fn single(task: &'a TaskDelta, batch: usize, device: &Device) -> Result<Self> {
        Self::new(vec![task], &vec![0; batch], device)
    }

    /// One task per row; rows sharing a task (the same reference, not merely equal contents)
    /// are grouped together, tasks in order of first appearance. The one place rows are
    /// grouped by task, for the server's mixed batches as for tests.
    pub fn per_row(rows: &[&'a TaskDelta], device: &Device) -> Result<Self> {
        let mut slot_of: HashMap<*const TaskDelta, usize> = HashMap::new();
        let mut tasks: Vec<&'a TaskDelta> = Vec::new();
        let row_task: Vec<usize> = rows
            .iter()
            .map(|&r| {
                *slot_of.entry(std::ptr::from_ref(r)).or_insert_with(|| {
                    tasks.push(r);
                    tasks.len() - 1
                })
            })
            .collect();
        Self::new(tasks, &row_task, device)
    }

    /// Number of rows.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The distinct tasks.
    pub fn tasks(&self) -> &[&'a TaskDelta] {
        &self.tasks
    }

    /// `[batch]` u32 task index per row.
    pub fn row_task(&self) -> &Tensor {
        &self.row_task
    }

    /// The task index of each row, on the host.
    pub fn row_task_ids(&self) -> &[u32] {
        &self.row_task_ids
    }

    /// Per distinct task, the `[rows]` u32 row indices it owns (`None`: all rows in order).
    pub fn groups(&self) -> &[Option<Tensor>] {
        &self.groups
    }
}
