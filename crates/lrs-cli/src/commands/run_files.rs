//! What `lrs predict` and `lrs export` read from a run directory: its config, shared file and
//! task files, with one-line errors for the usual mistakes (no run, no tasks, unknown task, a
//! task made against another shared file or base).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use lrs_nn::{BertCheckpoint, BertModel, FileError, NnError, SharedFactor, TaskDelta};
use lrs_train::run::{resolve_model, RunDir};
use lrs_train::TrainConfig;

/// A trained run: its directory and config.
pub struct Run {
    /// The run directory.
    pub dir: RunDir,
    /// Its `config.toml`.
    pub config: TrainConfig,
}

/// A run's base model with its shared file installed.
pub struct RunModel {
    /// The base checkpoint the run was trained on.
    pub ckpt: BertCheckpoint,
    /// The LRS model (f32, CPU) with the run's shared factor.
    pub model: BertModel,
    /// The run's shared factor (with its sha256).
    pub shared: SharedFactor,
}

impl Run {
    /// Opens a run directory that holds a config and a shared file.
    pub fn open(root: &Path) -> anyhow::Result<Self> {
        let dir = RunDir::open(root).map_err(|e| anyhow!("{e}"))?;
        let config = TrainConfig::from_file(&dir.config_path()).map_err(|e| anyhow!("{e}"))?;
        if !dir.shared_path().is_file() {
            bail!(
                "{} has no shared.safetensors: the run has not finished training",
                root.display()
            );
        }
        Ok(Self { dir, config })
    }

    /// Task ids with a task file, sorted.
    pub fn task_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.dir.tasks_dir())
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".safetensors")?.to_string();
                (!name.starts_with(lrs_nn::files::atomic::TEMP_PREFIX)).then_some(id)
            })
            .collect();
        ids.sort();
        ids
    }

    /// The task file of `id`; an unknown id or a run without tasks is an error naming what the
    /// run has.
    pub fn task_path(&self, id: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.task_path(id).map_err(|e| anyhow!("{e}"))?;
        if path.is_file() {
            return Ok(path);
        }
        let ids = self.task_ids();
        if ids.is_empty() {
            bail!(
                "{} has no task files (tasks/ is empty); train or personalize tasks first",
                self.dir.root().display()
            );
        }
        let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
        bail!(
            "unknown task {id:?}: no {} ({} tasks in the run: {}{})",
            path.display(),
            ids.len(),
            shown.join(", "),
            if ids.len() > shown.len() { ", …" } else { "" }
        )
    }

    /// The base model with the run's shared file installed (validated against the base).
    pub fn model(&self) -> anyhow::Result<RunModel> {
        let (ckpt, _) = resolve_model(&self.config).map_err(|e| anyhow!("{e}"))?;
        let shared_path = self.dir.shared_path();
        let opts = lrs_nn::SharedFactor::options_of(&shared_path)?;
        let model = BertModel::load(
            &ckpt,
            Some(&opts),
            &candle_core::Device::Cpu,
            candle_core::DType::F32,
        )
        .map_err(|e| anyhow!("{e}"))?;
        let shared = model
            .load_shared(&shared_path)
            .map_err(|e| mismatch_or(e, "the run's shared file", &self.config.model))?;
        Ok(RunModel {
            ckpt,
            model,
            shared,
        })
    }
}

impl RunModel {
    /// Loads task `id`'s file (`path`) against the run's base and shared file.
    pub fn task(&self, id: &str, path: &Path) -> anyhow::Result<TaskDelta> {
        self.model
            .load_task(path, &self.shared)
            .map_err(|e| mismatch_or(e, &format!("task {id:?}"), &self.ckpt.source))
    }
}

/// A hash mismatch as "made against another shared file / base"; any other error as it is.
fn mismatch_or(e: NnError, what: &str, base: &str) -> anyhow::Error {
    match e {
        NnError::File(FileError::HashMismatch {
            file,
            what: hash,
            recorded,
            actual,
        }) => {
            let against = if hash == "shared_sha256" {
                "another shared file than this run's".to_string()
            } else {
                format!("another base model than {base}")
            };
            anyhow!(
                "{what} ({}) was made against {against}: {hash} recorded {}…, this run has {}…",
                file.display(),
                &recorded[..recorded.len().min(12)],
                &actual[..actual.len().min(12)]
            )
        }
        other => anyhow!("{other}"),
    }
}
