//! The evaluation split (docs/DESIGN.md §Data protocol), the same for every method: per task,
//! order rows by timestamp; the latest `test_percent` % (rounded down, at least one row) are
//! the test set; the train set is `shots` rows drawn uniformly without replacement from the
//! earlier rest (all of it when it has fewer). Scores average over tasks whose test set holds
//! both labels ([`with_both_test_labels`]).
//!
//! Determinism: the sort is stable, so rows with equal timestamps keep their source order
//! (rows without a timestamp sort before all timestamped rows, in source order). Each task
//! draws from its own ChaCha20 stream, keyed by the seed and a hash of the task id, so a task's
//! split depends only on its rows, the seed and `shots` — not on which other tasks are loaded.

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::stable_hash::fnv1a64;
use crate::{Example, Task, TaskDataset};

/// The protocol's test share, in percent.
pub const DEFAULT_TEST_PERCENT: u32 = 20;

/// Parameters of the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitConfig {
    /// Train rows per task (`m ∈ {5, 10, 20, 50}` in the protocol).
    pub shots: usize,
    /// Share of each task's latest rows held out for test, in percent (values over 100 act as
    /// 100); the count is rounded down but never below one row.
    pub test_percent: u32,
    /// Seed of the train-row draw.
    pub seed: u64,
}

impl SplitConfig {
    /// The protocol's split: `shots` train rows, latest [`DEFAULT_TEST_PERCENT`] % for test.
    pub fn new(shots: usize, seed: u64) -> Self {
        SplitConfig {
            shots,
            test_percent: DEFAULT_TEST_PERCENT,
            seed,
        }
    }
}

/// One task's train and test rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The task id.
    pub task: String,
    /// The sampled train rows, in time order.
    pub train: Vec<Example>,
    /// The latest rows, in time order.
    pub test: Vec<Example>,
}

impl Split {
    /// Whether the test set holds a positive and a negative row, so its ROC AUC is defined.
    pub fn test_has_both_labels(&self) -> bool {
        self.test.iter().any(Example::is_positive) && self.test.iter().any(|e| !e.is_positive())
    }
}

/// Number of test rows for a task of `n` rows: `⌊n · percent / 100⌋`, at least one (none when
/// `n == 0`), at most `n`. Integer arithmetic, so no float rounding can move a boundary.
pub fn test_len(n: usize, percent: u32) -> usize {
    let percent = percent.min(100) as u128;
    let k = (n as u128 * percent / 100) as usize;
    k.max(1).min(n)
}

/// Splits one task. See the [module docs](self).
pub fn split_task(task: &Task, config: &SplitConfig) -> Split {
    let examples = task.examples();
    let mut order: Vec<usize> = (0..examples.len()).collect();
    // Stable: equal timestamps keep source order.
    order.sort_by_key(|&i| examples[i].timestamp);
    let n_test = test_len(order.len(), config.test_percent);
    let (rest, test) = order.split_at(order.len() - n_test);

    let train_idx: Vec<usize> = if config.shots >= rest.len() {
        rest.to_vec()
    } else {
        let mut rng = ChaCha20Rng::seed_from_u64(config.seed);
        rng.set_stream(fnv1a64(task.name().as_bytes()));
        let mut picked = rand::seq::index::sample(&mut rng, rest.len(), config.shots).into_vec();
        picked.sort_unstable();
        picked.into_iter().map(|j| rest[j]).collect()
    };
    Split {
        task: task.name().to_string(),
        train: train_idx.iter().map(|&i| examples[i].clone()).collect(),
        test: test.iter().map(|&i| examples[i].clone()).collect(),
    }
}

/// Splits every task, in the dataset's task order.
pub fn split_dataset(dataset: &TaskDataset, config: &SplitConfig) -> Vec<Split> {
    dataset
        .tasks()
        .iter()
        .map(|t| split_task(t, config))
        .collect()
}

/// The splits the protocol scores: those whose test set holds both labels.
pub fn with_both_test_labels(splits: &[Split]) -> impl Iterator<Item = &Split> + '_ {
    splits.iter().filter(|s| s.test_has_both_labels())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` rows for `task`, timestamps shuffled deterministically, with ties.
    fn task_rows(task: &str, n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example {
                task: task.into(),
                text: format!("{task}-{i}"),
                label: (i % 3 == 0) as u8 as f32,
                timestamp: Some(((i * 7919) % n / 2) as i64),
            })
            .collect()
    }

    fn dataset() -> TaskDataset {
        TaskDataset::from_examples(
            [1, 4, 5, 9, 10, 23, 100]
                .iter()
                .flat_map(|&n| task_rows(&format!("t{n}"), n)),
        )
    }

    #[test]
    fn test_len_is_floor_of_share_and_at_least_one() {
        assert_eq!(test_len(0, 20), 0);
        assert_eq!(test_len(1, 20), 1);
        assert_eq!(test_len(4, 20), 1);
        assert_eq!(test_len(9, 20), 1);
        assert_eq!(test_len(10, 20), 2);
        assert_eq!(test_len(24, 20), 4);
        assert_eq!(test_len(25, 20), 5);
        assert_eq!(test_len(3, 250), 3);
    }

    #[test]
    fn test_is_the_latest_share_and_train_respects_shots() {
        let ds = dataset();
        for shots in [0, 1, 3, 5, 1000] {
            let splits = split_dataset(&ds, &SplitConfig::new(shots, 7));
            assert_eq!(splits.len(), ds.len());
            for (split, task) in splits.iter().zip(ds.tasks()) {
                let n = task.examples().len();
                assert_eq!(split.task, task.name());
                assert_eq!(split.test.len(), test_len(n, 20));
                assert!(!split.test.is_empty());
                assert_eq!(split.train.len(), shots.min(n - split.test.len()));

                // Test is the latest rows: no train row is later than any test row, and the
                // test rows are exactly the top of a stable sort.
                let first_test = split.test[0].timestamp;
                assert!(split.train.iter().all(|e| e.timestamp <= first_test));
                let mut sorted = task.examples().to_vec();
                sorted.sort_by_key(|e| e.timestamp);
                assert_eq!(split.test, sorted[n - split.test.len()..]);

                // Disjoint (texts are unique within a task).
                assert!(split
                    .train
                    .iter()
                    .all(|e| !split.test.iter().any(|t| t.text == e.text)));
                // Train in time order, no duplicates.
                assert!(split
                    .train
                    .windows(2)
                    .all(|w| w[0].timestamp <= w[1].timestamp));
                let mut texts: Vec<_> = split.train.iter().map(|e| &e.text).collect();
                texts.sort();
                texts.dedup();
                assert_eq!(texts.len(), split.train.len());
            }
        }
    }

    #[test]
    fn ties_keep_source_order_and_missing_timestamps_sort_first() {
        let rows = [
            (Some(5), "a"),
            (None, "b"),
            (Some(5), "c"),
            (Some(1), "d"),
            (Some(5), "e"),
        ];
        let ds = TaskDataset::from_examples(rows.iter().map(|&(ts, text)| Example {
            task: "u".into(),
            text: text.into(),
            label: 0.0,
            timestamp: ts,
        }));
        let config = SplitConfig {
            shots: 10,
            test_percent: 40,
            seed: 0,
        };
        let split = split_task(&ds.tasks()[0], &config);
        let names = |v: &[Example]| v.iter().map(|e| e.text.clone()).collect::<Vec<_>>();
        assert_eq!(names(&split.train), ["b", "d", "a"]);
        assert_eq!(names(&split.test), ["c", "e"]);
    }

    #[test]
    fn reproducible_by_seed_and_seeds_differ() {
        let ds = dataset();
        let a = split_dataset(&ds, &SplitConfig::new(5, 42));
        let b = split_dataset(&ds, &SplitConfig::new(5, 42));
        let c = split_dataset(&ds, &SplitConfig::new(5, 43));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Tests never depend on the seed, only train rows do.
        assert!(a.iter().zip(&c).all(|(x, y)| x.test == y.test));

        // A task's split does not depend on the other tasks present.
        let alone = TaskDataset::from_examples(task_rows("t100", 100));
        let s = split_task(&alone.tasks()[0], &SplitConfig::new(5, 42));
        assert_eq!(&s, a.iter().find(|x| x.task == "t100").unwrap());
    }

    #[test]
    fn both_labels_filter() {
        let ds = dataset();
        let splits = split_dataset(&ds, &SplitConfig::new(5, 0));
        let kept: Vec<&str> = with_both_test_labels(&splits)
            .map(|s| s.task.as_str())
            .collect();
        for s in &splits {
            let pos = s.test.iter().filter(|e| e.label == 1.0).count();
            let both = pos > 0 && pos < s.test.len();
            assert_eq!(kept.contains(&s.task.as_str()), both, "{}", s.task);
        }
        assert!(!kept.is_empty() && kept.len() < splits.len());
    }
}
