//! One labelled row of one task: the unit every loader produces and every split moves around.

use serde::{Deserialize, Serialize};

/// A labelled text for one task (one user, in MovieLens terms).
///
/// Labels are binary in the evaluation protocol (docs/DESIGN.md §Data protocol): `1.0` positive,
/// `0.0` negative; see [`Example::is_positive`]. The timestamp, when present, orders a task's rows
/// for the train/test split ([`crate::split`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The task (user) this row belongs to; never empty.
    pub task: String,
    /// The model input.
    pub text: String,
    /// The target, finite; `1.0` / `0.0` for binary tasks.
    pub label: f32,
    /// Seconds since the Unix epoch (or any monotone clock), if the source has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
}

impl Example {
    /// Whether the label counts as positive for AUC and the "both labels" rule: `label ≥ 0.5`,
    /// so `1.0` is positive and `0.0` negative.
    pub fn is_positive(&self) -> bool {
        self.label >= 0.5
    }

    /// Checks the invariants loaders enforce on every row: a non-blank task and a finite
    /// label. The error is a short reason for a [`LoadReport`](crate::LoadReport).
    pub fn validate(&self) -> Result<(), String> {
        if self.task.trim().is_empty() {
            return Err("empty task".to_string());
        }
        if !self.label.is_finite() {
            return Err(format!("label is not a finite number: {}", self.label));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(task: &str, label: f32) -> Example {
        Example {
            task: task.into(),
            text: "t".into(),
            label,
            timestamp: None,
        }
    }

    #[test]
    fn validate_rejects_blank_task_and_non_finite_label() {
        assert!(ex("u1", 1.0).validate().is_ok());
        assert!(ex("  ", 1.0).validate().is_err());
        assert!(ex("u1", f32::NAN).validate().is_err());
        assert!(ex("u1", f32::INFINITY).validate().is_err());
    }

    #[test]
    fn positive_threshold_is_one_half() {
        assert!(ex("u", 1.0).is_positive());
        assert!(!ex("u", 0.0).is_positive());
    }
}
