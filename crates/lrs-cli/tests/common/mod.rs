//! Shared helpers of the process-level tests: a tiny model directory and generated task data
//! for real `lrs` runs, and checks that what a run directory holds is complete.
#![allow(dead_code)]

pub mod http;
pub mod kill;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::Device;
use lrs_nn::{BertModel, SharedFactor, TaskDelta};
use lrs_train::run::{load_run_data, resolve_model, RunDir};
use lrs_train::trainer::TaskData;
use lrs_train::{TrainConfig, Trainer};

/// The `lrs` binary under test.
pub fn lrs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lrs"))
}

/// `lrs train --config CONFIG --run RUN`, run to completion.
pub fn train_run(config: &Path, run: &Path) -> Output {
    lrs()
        .args(["train", "--config"])
        .arg(config)
        .arg("--run")
        .arg(run)
        .output()
        .expect("lrs train")
}

/// Stdout of a successful run; panics with both streams otherwise.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lrs failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a tiny seeded BERT (`lrs_nn::testing::tiny_config`, vocabulary `w4` … `w99`) with
/// a word-level `tokenizer.json` into `dir`; a run's `model` can name the directory.
pub fn write_tiny_model(dir: &Path) {
    let cfg = lrs_nn::testing::tiny_config();
    std::fs::create_dir_all(dir).expect("model dir");
    lrs_nn::testing::write_seeded_checkpoint(dir, &cfg, 7).expect("tiny checkpoint");
    std::fs::write(
        dir.join("tokenizer.json"),
        lrs_bench::testing::word_level_tokenizer(cfg.vocab_size),
    )
    .expect("tokenizer.json");
}

/// A JSONL file of `tasks` tasks (`{prefix}0`, …) of `rows` rows each: a row is positive iff
/// it holds its task's key word; labels alternate, so every test split holds both. `flip`
/// inverts every label (a second version of the same tasks).
pub fn write_data(path: &Path, prefix: &str, tasks: usize, rows: usize, flip: bool) {
    let mut text = String::new();
    for t in 0..tasks {
        let key = 10 + t;
        for i in 0..rows {
            let positive = i % 2 == 0;
            let a = 30 + (i * 7 + t * 3) % 60;
            let b = 30 + (i * 11 + t * 5 + 1) % 60;
            let words = if positive {
                format!("w{a} w{key} w{b}")
            } else {
                format!("w{a} w{b}")
            };
            let label = u8::from(positive != flip);
            text.push_str(&format!(
                "{{\"task\": \"{prefix}{t}\", \"text\": \"{words}\", \"label\": {label}, \
                 \"timestamp\": {i}}}\n"
            ));
        }
    }
    std::fs::write(path, text).expect("data file");
}

/// A training config on `model` and `data` with a checkpoint after every round.
pub fn config_toml(model: &Path, data: &Path, rounds: usize) -> String {
    format!(
        r#"model = {:?}
method = "lrs"
rank = 2
rounds = {rounds}
seed = 5
max_len = 16
checkpoint_every = 1
[data]
source = "file"
path = {:?}
shots = 8
[sparsity]
budget = {{ count = 6 }}
[shared]
steps = 3
batch_size = 8
[task]
steps = 3
sparse_steps = 2
"#,
        model.display().to_string(),
        data.display().to_string()
    )
}

/// sha256 of a shared or task file's content: its tensors and metadata, independent of the
/// order the header lists its keys in, without the `created` timestamp and without
/// `shared_sha256`. That hash names the bytes of a shared file, and the same shared factor
/// written by two processes gets different bytes (safetensors writes metadata from a
/// `HashMap`); whether a task file matches the shared file next to it is checked by loading
/// it ([`RunCheck::outputs`]). Equal for two writes of the same parameters; panics if the
/// bytes are not a whole safetensors file.
pub fn content_hash(bytes: &[u8], what: &Path) -> String {
    use std::collections::BTreeMap;
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .unwrap_or_else(|| panic!("{}: shorter than a header", what.display()));
    let header = bytes
        .get(8..8 + n)
        .unwrap_or_else(|| panic!("{}: torn header", what.display()));
    let mut h: BTreeMap<String, serde_json::Value> = serde_json::from_slice(header)
        .unwrap_or_else(|e| panic!("{}: header: {e}", what.display()));
    let mut meta: BTreeMap<String, String> = h
        .remove("__metadata__")
        .map(|m| serde_json::from_value(m).expect("string metadata"))
        .unwrap_or_default();
    meta.remove("created");
    meta.remove("shared_sha256");
    let data = &bytes[8 + n..];
    let mut canon = serde_json::to_vec(&meta).expect("json");
    for (name, info) in &h {
        let info: BTreeMap<String, serde_json::Value> =
            serde_json::from_value(info.clone()).expect("tensor info");
        let [start, end]: [usize; 2] =
            serde_json::from_value(info["data_offsets"].clone()).expect("offsets");
        let tensor = data
            .get(start..end)
            .unwrap_or_else(|| panic!("{}: {name} is torn", what.display()));
        canon.extend(serde_json::to_vec(&(name, &info)).expect("json"));
        canon.extend(tensor);
    }
    lrs_nn::files::sha256_hex(&canon)
}

/// Content hashes of every `*.safetensors` in `dir`, by file name.
pub fn task_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    kill::names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".safetensors"))
        .map(|n| {
            let p = dir.join(&n);
            let bytes = std::fs::read(&p).expect("read task file");
            (n, content_hash(&bytes, &p))
        })
        .collect()
}

/// The run's own model, data and a trainer for them, rebuilt from its `config.toml` as
/// `lrs train --resume` does: checks that every file of a run directory is complete.
pub struct RunCheck {
    /// The run directory.
    pub root: PathBuf,
    /// A trainer for the run's config and data.
    pub trainer: Trainer,
}

impl RunCheck {
    /// Builds the run's trainer; panics if `config.toml` does not load.
    pub fn new(root: &Path) -> Self {
        let cfg = TrainConfig::from_file(&root.join("config.toml")).expect("config.toml loads");
        let (ckpt, tokenizer) = resolve_model(&cfg).expect("model");
        let data = load_run_data(&cfg.data).expect("data");
        let data = TaskData::from_splits(&data.splits, &tokenizer).expect("task data");
        let model = Trainer::load_model(&ckpt, &cfg, &Device::Cpu).expect("model loads");
        let trainer = Trainer::new(model, cfg, &data).expect("trainer");
        Self {
            root: root.to_path_buf(),
            trainer,
        }
    }

    /// The model (its shared part is whatever was restored or loaded last).
    pub fn model(&self) -> &BertModel {
        self.trainer.model()
    }

    /// Checks the checkpoint root: `LATEST`, if present, names an existing `round-*`
    /// directory, and every `round-*` directory restores completely (hashes, optimizer, every
    /// task). Returns the round `LATEST`'s checkpoint resumes after (0 without one).
    pub fn checkpoints(&mut self) -> usize {
        self.checkpoints_under(&self.root.join("checkpoint"))
    }

    /// [`Self::checkpoints`] of the checkpoint root `root` (say a refit's, `<run>/refit/checkpoint`).
    pub fn checkpoints_under(&mut self, root: &Path) -> usize {
        let latest = Trainer::latest_checkpoint(root).expect("LATEST readable and well-formed");
        let rounds: Vec<String> = kill::names(root)
            .into_iter()
            .filter(|n| n.starts_with("round-"))
            .collect();
        let mut resumed = 0;
        for name in &rounds {
            let dir = root.join(name);
            self.trainer
                .restore_checkpoint(&dir)
                .unwrap_or_else(|e| panic!("{} does not restore: {e}", dir.display()));
            if latest.as_deref() == Some(dir.as_path()) {
                resumed = self.trainer.rounds_done();
            }
        }
        if let Some(dir) = &latest {
            assert!(
                rounds.iter().any(|n| root.join(n) == *dir),
                "LATEST names {} which is not a checkpoint directory (have {rounds:?})",
                dir.display()
            );
        }
        resumed
    }

    /// Checks every file under its final name in the run directory: `config.toml`,
    /// `metrics.jsonl` (whole records, rounds 0, 1, …), `summary.json`, `eval.jsonl`,
    /// `shared.safetensors` and each `tasks/*.safetensors` (validated against the base model
    /// and the shared file). Returns the loaded tasks by file name.
    pub fn outputs(&self) -> Vec<(String, TaskDelta)> {
        let run = RunDir::open(&self.root).expect("run directory");
        let records = run
            .read_metrics()
            .expect("metrics.jsonl holds whole records");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.round, i, "metrics.jsonl rounds out of order");
        }
        if let Ok(bytes) = std::fs::read(run.summary_path()) {
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("summary.json is whole");
        }
        if let Ok(text) = std::fs::read_to_string(run.eval_path()) {
            for line in text.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("eval.jsonl line");
            }
        }
        let tasks: Vec<String> = kill::names(&run.tasks_dir())
            .into_iter()
            .filter(|n| n.ends_with(".safetensors"))
            .collect();
        let shared: Option<SharedFactor> = run.shared_path().is_file().then(|| {
            self.model()
                .load_shared(&run.shared_path())
                .expect("shared.safetensors loads")
        });
        if !tasks.is_empty() {
            assert!(shared.is_some(), "task files without a shared file");
        }
        tasks
            .into_iter()
            .map(|n| {
                let p = run.tasks_dir().join(&n);
                let shared = shared.as_ref().expect("shared file");
                let task = self
                    .model()
                    .load_task(&p, shared)
                    .unwrap_or_else(|e| panic!("{} does not load: {e}", p.display()));
                (n, task)
            })
            .collect()
    }
}

/// Every `.lrs-tmp-*` file under `dir` (recursively).
pub fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in kill::names(dir) {
        let p = dir.join(&n);
        if p.is_dir() {
            out.extend(temp_files(&p));
        } else if n.starts_with(lrs_nn::files::atomic::TEMP_PREFIX) {
            out.push(p);
        }
    }
    out
}

/// Sets `path`'s modification time two hours back (past `lrs_train::run::dir::STALE_TEMP_AGE`).
pub fn backdate(path: &Path) {
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(hour_ago))
        .expect("set mtime");
}
