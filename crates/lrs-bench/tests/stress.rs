//! The load test in CI size: 64 concurrent clients over 1 100 distinct tasks
//! on a tiny BERT, a cache a quarter the size of the task set, while tasks are uploaded,
//! replaced and deleted. Bounded by request count (and a deadline). `lrs bench load` runs the
//! same driver at full size.

use std::time::Duration;

use lrs_bench::setup::SetupSpec;
use lrs_bench::stress::{run, StressSpec};
use lrs_bench::synth::TaskSpec;

#[test]
fn concurrent_clients_get_only_answers_of_the_task_they_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model_dir = dir.path().join("base");
    lrs_bench::testing::write_tiny_checkpoint(&model_dir).expect("tiny checkpoint");
    let tolerance = 1e-4;
    let spec = StressSpec {
        setup: SetupSpec {
            model: model_dir.display().to_string(),
            shared: None,
            rank: lrs_bench::testing::RANK,
            target_modules: None,
            task_spec: TaskSpec {
                density: 0.1,
                value_scale: 0.5,
                ..TaskSpec::default()
            },
            tasks: 1000,
            work_dir: dir.path().join("work"),
            cache_bytes: 0,
            cache_fraction: Some(0.25),
            max_tokens: 16,
            seed: 11,
            store: None,
        },
        extra_tasks: 100,
        clients: 64,
        requests: 10_000,
        inputs_per_request: 2,
        texts: 16,
        words: 6,
        churn_ops: 200,
        delete_fraction: 0.3,
        max_duration: Duration::from_secs(300),
        tolerance,
        rss_slack_bytes: 64 << 20,
        max_batch_rows: 64,
        max_wait_ms: 2,
        worker_threads: 2,
    };
    let r = run(&spec).expect("load test ran");
    println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
    assert_eq!(r.problems(), Vec::<String>::new(), "{r:#?}");
    assert_eq!((r.requests, r.errors()), (10_000, 0));
    assert_eq!(r.distinct_tasks, 1100);
    // Both kinds of answer happened, and every kind of change.
    assert!(
        r.statuses.get(&200).copied().unwrap_or(0) > 1000,
        "{:?}",
        r.statuses
    );
    assert!(
        r.statuses.get(&404).copied().unwrap_or(0) > 0,
        "{:?}",
        r.statuses
    );
    let c = &r.churn;
    assert!(
        c.uploads > 0 && c.replacements > 0 && c.deletes > 0,
        "{c:?}"
    );
    assert!(c.uploads + c.replacements + c.deletes >= 150, "{c:?}");
    // The cache was too small: tasks were loaded and evicted over and over.
    assert!(r.cache_budget * 3 < r.task_set_bytes);
    assert!(r.cache_evictions > 500 && r.cache_misses > 1000, "{r:?}");
    assert!(r.cache_polls > 0 && r.cache_peak_bytes > 0);
    // Every 200 was checked against its version's own logits, and two tasks' logits are far
    // apart, so an answer from the wrong task could not have passed.
    assert!(r.logits_checked >= 2 * 1000);
    assert!(r.min_task_gap > 100.0 * tolerance, "{}", r.min_task_gap);
    assert!(r.rss_peak > r.rss_baseline && r.rss_baseline > 0);
}
