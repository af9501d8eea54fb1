//! Many-task data for lrs training (docs/DESIGN.md §Data protocol): rows `{task, text, label}`
//! grouped by task, loaded from JSONL, CSV or MovieLens-100k, and split per task by the evaluation
//! protocol.
//!
//! * [`Example`] — one labelled text of one task; [`TaskDataset`] — examples grouped by task,
//!   in a deterministic task order ([`task_order`]).
//! * [`load_jsonl`] / [`load_csv`] — generic files; [`load_movielens`] — MovieLens-100k in the
//!   GroupLens (`u.data`/`u.item`) or RecBole (`ml-100k.inter`/`.item`) layout, detected from
//!   the directory (seed it with `scripts/seed-movielens.sh`).
//! * Every load returns a [`LoadReport`]: malformed rows are counted with their line and reason,
//!   never silently dropped; only problems that leave nothing to load are a [`DataError`].
//! * [`planted`] — the planted deep benchmark's teacher: a BERT whose task `i` computes with
//!   `W0 + U*·diag(w*_i)·V*ᵀ + S*_i`, labelling random texts (`lrs bench planted`).
//! * [`trainer`] — the alternating LRS trainer ([`Trainer`], configured by [`TrainConfig`]).
//! * [`split_dataset`] — per task, the latest 20 % for test and `shots` seeded train rows;
//!   [`with_both_test_labels`] — the tasks the protocol scores.
//!
//! ```
//! use lrs_train::{read_jsonl, split_dataset, with_both_test_labels, SplitConfig};
//!
//! let jsonl = r#"
//! {"task": "alice", "text": "Toy Story (1995) | Animation", "label": 1, "timestamp": 1}
//! {"task": "alice", "text": "Heat (1995) | Action", "label": 0, "timestamp": 2}
//! {"task": "alice", "text": "Fargo (1996) | Crime", "label": 1, "timestamp": 3}
//! {"task": "bob", "text": "Babe (1995) | Comedy", "label": 1, "timestamp": 9}
//! {"task": "bob", "text": "a row without a label"}
//! "#;
//! let loaded = read_jsonl(jsonl.as_bytes(), "inline.jsonl")?;
//! assert_eq!(loaded.dataset.len(), 2);
//! assert_eq!(loaded.report.loaded, 4);
//! assert_eq!(loaded.report.malformed_total, 1); // line 6: missing field `label`
//!
//! let splits = split_dataset(&loaded.dataset, &SplitConfig::new(5, 0));
//! let alice = &splits[0];
//! assert_eq!(alice.test.len(), 1); // ⌊20 % of 3⌋, but at least one
//! assert_eq!(alice.test[0].text, "Fargo (1996) | Crime"); // the latest row
//! assert_eq!(alice.train.len(), 2); // fewer than 5 left: all of them
//! assert_eq!(with_both_test_labels(&splits).count(), 0);
//! # Ok::<(), lrs_train::DataError>(())
//! ```

#![warn(missing_docs)]

pub mod csv;
pub mod dataset;
pub mod error;
pub mod example;
pub mod jsonl;
pub mod movielens;
pub mod planted;
pub mod report;
pub mod run;
pub mod split;
pub mod stable_hash;
pub mod trainer;

pub use crate::csv::{load_csv, read_csv};
pub use dataset::{task_order, Task, TaskDataset};
pub use error::DataError;
pub use example::Example;
pub use jsonl::{load_jsonl, read_jsonl};
pub use movielens::{load_movielens, load_movielens_layout, Layout, Movie, MovieLens, GENRES};
pub use report::{count, LoadReport, Loaded, RejectReason, FIRST_LINES, MAX_REPORTED_MALFORMED};
pub use split::{
    split_dataset, split_task, test_len, with_both_test_labels, Split, SplitConfig,
    DEFAULT_TEST_PERCENT,
};
pub use trainer::{TrainConfig, TrainError, Trainer};
