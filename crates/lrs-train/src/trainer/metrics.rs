//! Per-task scores: ROC AUC (the protocol's score, docs/DESIGN.md §Data protocol), accuracy and
//! mean loss.

use serde::{Deserialize, Serialize};

/// ROC AUC of `scores` against binary `labels` (`true` = positive): the probability that a
/// random positive scores above a random negative, ties counting one half (Mann–Whitney U with
/// average ranks). `None` when either class is absent (the AUC is undefined) or the lengths
/// differ.
pub fn roc_auc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() {
        return None;
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the positives' 1-based ranks, tied groups sharing their average rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// Share of rows whose logit has the label's sign (`logit > 0` predicts positive).
pub fn accuracy(logits: &[f32], labels: &[bool]) -> f64 {
    if logits.is_empty() {
        return 0.0;
    }
    let right = logits
        .iter()
        .zip(labels)
        .filter(|(&z, &l)| (z > 0.0) == l)
        .count();
    right as f64 / logits.len() as f64
}

/// One task's scores on one part (train or test) of its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetrics {
    /// The task id.
    pub task: String,
    /// Rows scored.
    pub rows: usize,
    /// Mean logistic loss.
    pub loss: f64,
    /// Accuracy at logit 0.
    pub accuracy: f64,
    /// ROC AUC, `None` when the rows hold only one label.
    pub auc: Option<f64>,
}

/// Scores of every task on one part, with the aggregates the reports quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Per task, in data order.
    pub tasks: Vec<TaskMetrics>,
}

impl Evaluation {
    /// Mean loss over all rows of all tasks.
    pub fn mean_loss(&self) -> f64 {
        let rows: usize = self.tasks.iter().map(|t| t.rows).sum();
        if rows == 0 {
            return 0.0;
        }
        self.tasks
            .iter()
            .map(|t| t.loss * t.rows as f64)
            .sum::<f64>()
            / rows as f64
    }

    /// Mean per-task AUC over the tasks where it is defined (the protocol's score), with their
    /// count; `None` when no task has both labels.
    pub fn mean_auc(&self) -> Option<(f64, usize)> {
        let aucs: Vec<f64> = self.tasks.iter().filter_map(|t| t.auc).collect();
        (!aucs.is_empty()).then(|| (aucs.iter().sum::<f64>() / aucs.len() as f64, aucs.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_on_a_hand_example() {
        // Positives 0.8, 0.4; negatives 0.6, 0.2. Pairs (pos > neg): (0.8,0.6) (0.8,0.2)
        // (0.4,0.2) — 3 of 4.
        let auc = roc_auc(&[0.8, 0.6, 0.4, 0.2], &[true, false, true, false]);
        assert_eq!(auc, Some(0.75));
        // A tie between a positive and a negative counts one half: pairs (0.5,0.5) = ½,
        // (0.5,0.1) = 1, (0.9,0.5) = 1, (0.9,0.1) = 1 → 3.5 / 4.
        let auc = roc_auc(&[0.5, 0.5, 0.9, 0.1], &[true, false, true, false]);
        assert_eq!(auc, Some(0.875));
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(roc_auc(&[1.0], &[true, false]), None);
        assert_eq!(roc_auc(&[3.0, 1.0], &[true, false]), Some(1.0));
        assert_eq!(roc_auc(&[1.0, 3.0], &[true, false]), Some(0.0));
    }

    #[test]
    fn accuracy_and_aggregates() {
        assert_eq!(accuracy(&[1.0, -1.0, 0.5], &[true, true, false]), 1.0 / 3.0);
        let ev = Evaluation {
            tasks: vec![
                TaskMetrics {
                    task: "a".into(),
                    rows: 1,
                    loss: 1.0,
                    accuracy: 1.0,
                    auc: Some(0.5),
                },
                TaskMetrics {
                    task: "b".into(),
                    rows: 3,
                    loss: 3.0,
                    accuracy: 0.0,
                    auc: None,
                },
            ],
        };
        assert_eq!(ev.mean_loss(), 2.5);
        assert_eq!(ev.mean_auc(), Some((0.5, 1)));
    }
}
