//! What the load test knows about each task over time, and whether an answer fits it.
//!
//! Every change of a task (upload, replacement, deletion) is made by one client at a time and
//! logged as an [`Op`] with the times its request was sent and its answer received. The change
//! takes effect somewhere inside that interval, so a version (or the task's absence) may be
//! observed by a request iff the request's own interval overlaps
//! `[op.sent, next op's done]` — the widest window in which that state can have been current.
//! An answer outside every such window is stale (or from another task): a wrong answer.

use std::collections::HashMap;

/// One change of a task, with the times (seconds since the run began) it was sent and done.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// The state it left: `Some(sha256)` of the file now served, `None`: no such task.
    pub state: Option<String>,
    /// When its request was sent.
    pub sent: f64,
    /// When its answer came back.
    pub done: f64,
}

/// Why an answer does not fit the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mismatch {
    /// The version belongs to another task.
    WrongTask,
    /// The version was never uploaded for any task.
    UnknownVersion,
    /// A version of this task, but not current at any time during the request.
    StaleVersion,
    /// A 404 while the task existed during the whole request.
    Unexplained404,
}

/// The change log of every task, by task index.
#[derive(Debug, Clone, Default)]
pub struct History {
    tasks: Vec<Vec<Op>>,
    owner: HashMap<String, usize>,
}

impl History {
    /// `initial[t]`: task `t`'s state when the run begins (`None`: absent).
    pub fn new(initial: Vec<Option<String>>) -> Self {
        let mut h = Self::default();
        for (t, state) in initial.into_iter().enumerate() {
            h.tasks.push(Vec::new());
            h.push(t, state, 0.0, 0.0);
        }
        h
    }

    /// Logs a change of task `t` (changes of one task must be logged in order).
    pub fn push(&mut self, t: usize, state: Option<String>, sent: f64, done: f64) {
        if let Some(sha) = &state {
            self.owner.insert(sha.clone(), t);
        }
        if let Some(ops) = self.tasks.get_mut(t) {
            ops.push(Op { state, sent, done });
        }
    }

    /// Task `t`'s current state (its last logged change).
    pub fn current(&self, t: usize) -> Option<&Option<String>> {
        self.tasks
            .get(t)
            .and_then(|ops| ops.last())
            .map(|o| &o.state)
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether there are no tasks.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Checks that a request for task `t` sent at `start` and answered at `end` may have
    /// seen `observed` (`Some(sha256)` for a 200, `None` for a 404).
    pub fn check(
        &self,
        t: usize,
        observed: Option<&str>,
        start: f64,
        end: f64,
    ) -> Result<(), Mismatch> {
        let ops = self.tasks.get(t).map(Vec::as_slice).unwrap_or_default();
        let mut seen_here = false;
        for (k, op) in ops.iter().enumerate() {
            if op.state.as_deref() != observed {
                continue;
            }
            seen_here = true;
            let until = ops.get(k + 1).map_or(f64::INFINITY, |next| next.done);
            if op.sent <= end && until >= start {
                return Ok(());
            }
        }
        match observed {
            None => Err(Mismatch::Unexplained404),
            Some(_) if seen_here => Err(Mismatch::StaleVersion),
            Some(sha) if self.owner.contains_key(sha) => Err(Mismatch::WrongTask),
            Some(_) => Err(Mismatch::UnknownVersion),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Option<String> {
        Some(x.to_string())
    }

    #[test]
    fn versions_and_absences_fit_only_their_windows() {
        // Task 0: v0 at start, replaced by v1 during [10, 12], deleted during [20, 21].
        // Task 1: absent at start, uploaded as w during [5, 6].
        let mut h = History::new(vec![s("v0"), None]);
        h.push(0, s("v1"), 10.0, 12.0);
        h.push(0, None, 20.0, 21.0);
        h.push(1, s("w"), 5.0, 6.0);
        // v0 may be seen until v1's upload is done.
        assert_eq!(h.check(0, Some("v0"), 11.0, 11.5), Ok(()));
        assert_eq!(
            h.check(0, Some("v0"), 12.5, 13.0),
            Err(Mismatch::StaleVersion)
        );
        // v1 from its upload's start until the delete is done.
        assert_eq!(h.check(0, Some("v1"), 9.0, 10.5), Ok(()));
        assert_eq!(
            h.check(0, Some("v1"), 8.0, 9.5),
            Err(Mismatch::StaleVersion)
        );
        assert_eq!(h.check(0, Some("v1"), 20.5, 22.0), Ok(()));
        assert_eq!(
            h.check(0, Some("v1"), 21.5, 22.0),
            Err(Mismatch::StaleVersion)
        );
        // A 404 only once the delete has been sent (or before task 1's upload was done).
        assert_eq!(h.check(0, None, 15.0, 19.0), Err(Mismatch::Unexplained404));
        assert_eq!(h.check(0, None, 19.0, 20.5), Ok(()));
        assert_eq!(h.check(1, None, 1.0, 2.0), Ok(()));
        assert_eq!(h.check(1, None, 6.5, 7.0), Err(Mismatch::Unexplained404));
        // Another task's version, or one never uploaded.
        assert_eq!(h.check(1, Some("v0"), 1.0, 30.0), Err(Mismatch::WrongTask));
        assert_eq!(
            h.check(0, Some("zz"), 1.0, 30.0),
            Err(Mismatch::UnknownVersion)
        );
        assert_eq!(h.current(0), Some(&None));
        assert_eq!(h.current(1), Some(&s("w")));
    }
}
