//! The load test's own answers: every task version it ever uploaded, scored in isolation (one
//! task per forward pass) by a second [`Engine`] over a private copy of the version files, so
//! a server answer can be checked against the version it names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lrs_nn::BertModel;

use lrs_serve::engine::{Engine, Row};
use lrs_serve::error::{Result, ServeError};
use lrs_serve::metrics::Metrics;
use lrs_serve::task_id::TaskId;

/// Version files, by sha256 of their bytes: `<dir>/<file id>.safetensors`.
#[derive(Debug, Default)]
pub struct Versions {
    /// The directory holding them.
    pub dir: PathBuf,
    by_sha: HashMap<String, (usize, TaskId)>,
}

impl Versions {
    /// An empty set in `dir` (created).
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::Io {
            file: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            by_sha: HashMap::new(),
        })
    }

    /// The file for version `n` of the task `task_id`.
    pub fn file_id(task_id: &str, n: usize) -> Result<TaskId> {
        TaskId::parse(&format!("{task_id}.v{n}"))
    }

    /// Records version file `file` (in [`Self::dir`]) of task index `task` with its sha256.
    pub fn add(&mut self, sha256: String, task: usize, file: TaskId) {
        self.by_sha.insert(sha256, (task, file));
    }

    /// The task index and file of a version.
    pub fn get(&self, sha256: &str) -> Option<&(usize, TaskId)> {
        self.by_sha.get(sha256)
    }

    /// Number of versions.
    pub fn len(&self) -> usize {
        self.by_sha.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_sha.is_empty()
    }
}

/// Scores token rows with one version file at a time.
pub struct Reference {
    engine: Engine,
    rows: Vec<Vec<u32>>,
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reference")
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl Reference {
    /// A second engine of `model` (a clone of the server's: weights are shared, not copied)
    /// over `versions.dir`, scoring `rows`.
    pub fn new(
        model: &BertModel,
        shared: &Path,
        versions: &Versions,
        rows: Vec<Vec<u32>>,
        max_tokens: usize,
    ) -> Result<Self> {
        let engine = Engine::new(
            model.clone(),
            shared,
            &versions.dir,
            None,
            u64::MAX,
            max_tokens,
            Arc::new(Metrics::default()),
        )?;
        Ok(Self { engine, rows })
    }

    /// Logits of every row under version file `file`, computed alone (nothing else in the
    /// batch); the version is unloaded again after.
    pub fn logits(&self, file: &TaskId) -> Result<Vec<f32>> {
        let task = self.engine.registry().get(file)?;
        let rows: Vec<Row<'_>> = self
            .rows
            .iter()
            .map(|tokens| Row {
                task: Some(&task),
                tokens,
            })
            .collect();
        let out = self.engine.forward(&rows, false)?;
        self.engine.registry().unload(file);
        Ok(out.logits)
    }
}
