//! End to end on the real MovieLens-100k, as seeded by `scripts/seed-movielens.sh` into
//! `$LRS_DATA/ml-100k` (default `~/.cache/lrs/data/ml-100k`). Fails, never skips, when the data
//! is missing: the protocol numbers in docs/DESIGN.md §Data protocol rest on it.

use std::path::PathBuf;

use lrs_train::movielens::default_dir;
use lrs_train::{
    load_movielens, split_dataset, with_both_test_labels, Layout, MovieLens, SplitConfig,
};

fn data_dir() -> PathBuf {
    let dir = default_dir().expect(
        "neither LRS_DATA nor HOME is set: run `scripts/seed-movielens.sh` and set LRS_DATA \
         to the folder holding ml-100k/",
    );
    if let Err(err) = Layout::detect(&dir) {
        panic!(
            "MovieLens-100k is missing ({err}).\nRun `scripts/seed-movielens.sh` to seed it \
             (into ${{LRS_DATA:-~/.cache/lrs/data}}/ml-100k), or point LRS_DATA at the folder \
             holding ml-100k/."
        );
    }
    dir
}

fn load() -> MovieLens {
    let dir = data_dir();
    load_movielens(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

#[test]
fn counts_match_movielens_100k() {
    let ml = load();
    assert!(ml.is_clean(), "{}\n{}", ml.ratings, ml.items);
    assert_eq!(ml.dataset.len(), 943, "users");
    assert_eq!(ml.dataset.num_examples(), 100_000, "ratings");
    assert_eq!(ml.ratings.loaded, 100_000);
    assert_eq!(ml.items.loaded, 1_682, "items");
    let positives = ml.dataset.examples().filter(|e| e.is_positive()).count();
    assert_eq!(positives, 55_375, "ratings ≥ 4");
    assert!(ml.dataset.examples().all(|e| e.timestamp.is_some()));
    assert!(ml.dataset.tasks().iter().all(|t| t.examples().len() >= 20));
    assert_eq!(ml.dataset.task_names().next(), Some("1"));
    assert_eq!(ml.dataset.task_names().last(), Some("943"));
}

#[test]
fn texts_follow_the_design() {
    let ml = load();
    let texts: Vec<&str> = ml.dataset.examples().map(|e| e.text.as_str()).collect();
    for want in [
        "Toy Story (1995) | Animation, Children's, Comedy",
        "Kolya (1996) | Comedy",
        "Misérables, Les (1995) | Drama, Musical",
        "Seven (Se7en) (1995) | Crime, Thriller",
        "Land Before Time III: The Time of the Great Giving (V) (1995) | Animation, Children's",
        "unknown | unknown",
    ] {
        assert!(texts.contains(&want), "no example with text {want:?}");
    }
    // The first row of the ratings file: user 196 rated Kolya 3 stars at 881250949.
    let first = &ml.dataset.task("196").unwrap().examples()[0];
    assert_eq!(first.text, "Kolya (1996) | Comedy");
    assert_eq!((first.label, first.timestamp), (0.0, Some(881_250_949)));
}

#[test]
fn protocol_split_scores_811_users() {
    let ml = load();
    for shots in [5, 10, 20, 50] {
        for seed in [0, 1] {
            let splits = split_dataset(&ml.dataset, &SplitConfig::new(shots, seed));
            assert_eq!(splits.len(), 943);
            let test_rows: usize = splits.iter().map(|s| s.test.len()).sum();
            assert_eq!(test_rows, 19_633, "Σ ⌊n/5⌋ over users");
            for (split, task) in splits.iter().zip(ml.dataset.tasks()) {
                let rest = task.examples().len() - split.test.len();
                assert_eq!(split.train.len(), shots.min(rest), "user {}", split.task);
            }
            // docs/DESIGN.md §Data protocol: the score averages over the 811 users whose test set
            // holds both labels (latest ⌊20 %⌋ by timestamp, ties in file order).
            assert_eq!(
                with_both_test_labels(&splits).count(),
                811,
                "shots {shots} seed {seed}"
            );
        }
    }
}
