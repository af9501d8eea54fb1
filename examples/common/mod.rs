//! The seeded tiny setup the examples share: a tiny BERT with a word-level tokenizer
//! (vocabulary `w4` … `w99`), generated many-user data, and a trained run directory, all in
//! a temporary directory, built in a few seconds on one core.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lrs_train::run::{train, Event, RunDir, TrainOptions};
use lrs_train::TrainConfig;

/// A tiny seeded BERT checkpoint (`config.json`, `model.safetensors`, `tokenizer.json`) in
/// `dir`.
pub fn write_tiny_model(dir: &Path) -> anyhow::Result<()> {
    let cfg = lrs_nn::testing::tiny_config();
    std::fs::create_dir_all(dir)?;
    lrs_nn::testing::write_seeded_checkpoint(dir, &cfg, 7)?;
    std::fs::write(
        dir.join("tokenizer.json"),
        lrs_bench::testing::word_level_tokenizer(cfg.vocab_size),
    )?;
    Ok(())
}

/// One JSONL row of user `task`: positive iff its text holds the user's key word `w{key}`.
pub fn row(task: &str, key: usize, i: usize) -> String {
    let positive = i.is_multiple_of(2);
    let (a, b) = (
        30 + (i * 7 + key * 3) % 60,
        30 + (i * 11 + key * 5 + 1) % 60,
    );
    let words = if positive {
        format!("w{a} w{key} w{b}")
    } else {
        format!("w{a} w{b}")
    };
    format!(
        "{{\"task\": \"{task}\", \"text\": \"{words}\", \"label\": {}, \"timestamp\": {i}}}\n",
        u8::from(positive)
    )
}

/// `users` users `u0`, `u1`, … of `rows` rows each into `path`.
pub fn write_users(path: &Path, users: usize, rows: usize) -> anyhow::Result<()> {
    let mut text = String::new();
    for u in 0..users {
        for i in 0..rows {
            text.push_str(&row(&format!("u{u}"), 10 + u, i));
        }
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// A small LRS training config on `model` and `data`.
pub fn config(model: &Path, data: &Path) -> anyhow::Result<TrainConfig> {
    let text = format!(
        r#"model = {:?}
method = "lrs"
rank = 2
rounds = 2
seed = 5
max_len = 16
[data]
source = "file"
path = {:?}
shots = 10
[sparsity]
budget = {{ count = 6 }}
[shared]
steps = 4
batch_size = 8
[task]
steps = 4
sparse_steps = 2
"#,
        model.display().to_string(),
        data.display().to_string()
    );
    Ok(TrainConfig::from_toml_str(&text, "example config")?)
}

/// The tiny model, `users` users' data and a run trained on them, under `dir`. Returns the
/// model directory and the run.
pub fn trained_run(dir: &Path, users: usize) -> anyhow::Result<(PathBuf, RunDir)> {
    let model = dir.join("base");
    write_tiny_model(&model)?;
    let data = dir.join("users.jsonl");
    write_users(&data, users, 16)?;
    let cfg = config(&model, &data)?;
    let run = RunDir::create(&dir.join("run"))?;
    let summary = train(&cfg, &run, TrainOptions::default(), &mut |e| {
        if let Event::Round(r) = e {
            println!(
                "  training round {}: train loss {:.4}",
                r.round + 1,
                r.train_loss
            );
        }
    })?;
    println!(
        "trained {} users into {} (shared file {} bytes)",
        summary.tasks,
        run.root().display(),
        summary.shared_bytes
    );
    Ok((model, run))
}
