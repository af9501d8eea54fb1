//! A benchmark setup for any BERT checkpoint: a shared file (random, or an existing one),
//! synthetic task files, and an [`Engine`] over them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device};
use lrs_nn::{BertCheckpoint, BertModel, LrsOptions, SharedFactor};

use crate::synth::{random_task, write_shared, write_tasks, TaskSpec};
use lrs_serve::engine::Engine;
use lrs_serve::error::{Result, ServeError};
use lrs_serve::metrics::Metrics;
use lrs_serve::store::{LocalDir, Location, StoreOptions, TaskStore};
use lrs_serve::task_id::TaskId;
use lrs_serve::text::TextEncoder;

/// What to build.
#[derive(Debug, Clone)]
pub struct SetupSpec {
    /// Checkpoint directory or hub id.
    pub model: String,
    /// An existing shared file to use (its rank and targets); `None`: write a random one
    /// with `rank` and `target_modules`.
    pub shared: Option<PathBuf>,
    /// Rank of a random shared file.
    pub rank: usize,
    /// Module-name patterns a random shared file adapts (`None`: the default BERT targets).
    pub target_modules: Option<Vec<String>>,
    /// How task files look.
    pub task_spec: TaskSpec,
    /// Number of task files to write (`bench-t0` …).
    pub tasks: usize,
    /// Where files go (`shared.safetensors`, `tasks/`).
    pub work_dir: PathBuf,
    /// Task cache budget of the engine.
    pub cache_bytes: u64,
    /// If set, the cache budget is this fraction of the written tasks' resident bytes
    /// (`tasks × task_resident_bytes`) instead of `cache_bytes`.
    pub cache_fraction: Option<f64>,
    /// Per-input token limit.
    pub max_tokens: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Serve the task files from this object-store location instead of `work_dir/tasks`
    /// (they are written there first, then uploaded); `None`: the local directory.
    pub store: Option<(Location, StoreOptions)>,
}

/// What was built.
#[derive(Debug)]
pub struct Setup {
    /// Engine over the base, the shared file and the task directory.
    pub engine: Arc<Engine>,
    /// Ids of the task files written.
    pub task_ids: Vec<String>,
    /// Their paths.
    pub task_files: Vec<PathBuf>,
    /// Mean task file size in bytes.
    pub task_file_bytes: f64,
    /// The shared file used.
    pub shared_path: PathBuf,
    /// The checkpoint's tokenizer, if any.
    pub tokenizer: Option<PathBuf>,
    /// Resident bytes of one loaded task ([`lrs_nn::TaskDelta::resident_bytes`]; all tasks of a spec have the same
    /// shapes and non-zero counts).
    pub task_resident_bytes: u64,
    /// The engine's cache budget.
    pub cache_bytes: u64,
    /// How the task files were made.
    pub task_spec: TaskSpec,
    /// Seconds the upload of the task files to the object store took (`None`: local).
    pub upload_s: Option<f64>,
}

/// Loads the checkpoint (f32, CPU), writes or adopts the shared file, writes the task
/// files (into `work_dir`, created if missing), and opens an engine.
pub fn setup(spec: &SetupSpec) -> Result<Setup> {
    std::fs::create_dir_all(&spec.work_dir).map_err(|source| ServeError::Io {
        file: spec.work_dir.clone(),
        source,
    })?;
    let ckpt = BertCheckpoint::resolve(&spec.model)?;
    let opts = match &spec.shared {
        Some(p) => SharedFactor::options_of(p).map_err(lrs_nn::NnError::from)?,
        None => {
            let mut opts = LrsOptions::bert_default(spec.rank);
            if let Some(t) = &spec.target_modules {
                opts.target_modules = t.clone();
            }
            opts
        }
    };
    let model = BertModel::load(&ckpt, Some(&opts), &Device::Cpu, DType::F32)?;
    let shared_path = match &spec.shared {
        Some(p) => p.clone(),
        None => spec.work_dir.join("shared.safetensors"),
    };
    let shared = match &spec.shared {
        Some(p) => model.load_shared(p)?,
        None => write_shared(&model, &shared_path, spec.seed)?,
    };
    let tasks_dir = spec.work_dir.join("tasks");
    let task_ids: Vec<String> = (0..spec.tasks).map(|i| format!("bench-t{i}")).collect();
    let total = write_tasks(
        &model,
        &shared,
        &tasks_dir,
        &task_ids,
        &spec.task_spec,
        spec.seed + 1,
    )?;
    let task_resident_bytes = random_task(&model, "probe", &spec.task_spec, 0)?.resident_bytes();
    let cache_bytes = match spec.cache_fraction {
        Some(f) => (f * (task_resident_bytes * spec.tasks as u64) as f64) as u64,
        None => spec.cache_bytes,
    };
    let text = ckpt
        .tokenizer
        .as_deref()
        .map(|t| TextEncoder::from_file(t, spec.max_tokens))
        .transpose()?;
    let (store, upload_s) = match &spec.store {
        None => (
            Arc::new(LocalDir::open(&tasks_dir)?) as Arc<dyn TaskStore>,
            None,
        ),
        Some((location, options)) => {
            let store = lrs_serve::store::open(location, options)?;
            let start = Instant::now();
            upload_tasks(store.as_ref(), &tasks_dir, &task_ids)?;
            (store, Some(start.elapsed().as_secs_f64()))
        }
    };
    let engine = Engine::with_store(
        model,
        &shared_path,
        store,
        text,
        cache_bytes,
        spec.max_tokens,
        Arc::new(Metrics::default()),
    )?;
    Ok(Setup {
        task_files: task_ids
            .iter()
            .map(|id| tasks_dir.join(format!("{id}.safetensors")))
            .collect(),
        task_file_bytes: total as f64 / spec.tasks.max(1) as f64,
        engine: Arc::new(engine),
        task_ids,
        shared_path,
        tokenizer: ckpt.tokenizer,
        task_resident_bytes,
        cache_bytes,
        task_spec: spec.task_spec,
        upload_s,
    })
}

/// Copies the task files `<dir>/<id>.safetensors` into `store`, and deletes whatever other
/// task files the store holds (a store left by an earlier run starts clean).
fn upload_tasks(store: &dyn TaskStore, dir: &Path, task_ids: &[String]) -> Result<()> {
    let keep: std::collections::HashSet<&str> = task_ids.iter().map(String::as_str).collect();
    for (id, _) in store.list()? {
        if !keep.contains(id.as_str()) {
            store.delete(&id)?;
        }
    }
    for id in task_ids {
        let id = TaskId::parse(id)?;
        let path = dir.join(id.file_name());
        let bytes = std::fs::read(&path).map_err(|source| ServeError::Io { file: path, source })?;
        store.write(&id, &bytes)?;
    }
    Ok(())
}

/// Token rows for the benchmark: `texts` tokenized if the engine has a tokenizer, else
/// `n` rows of `len` pseudo-random ids above the special tokens.
pub fn token_rows(
    engine: &Engine,
    texts: &[String],
    n: usize,
    len: usize,
) -> Result<Vec<Vec<u32>>> {
    if !texts.is_empty() {
        return engine.tokenize(texts);
    }
    let vocab = engine.model().config().vocab_size as u64;
    if vocab < 8 || len < 2 {
        return Err(ServeError::Config("vocabulary or length too small".into()));
    }
    Ok((0..n as u64)
        .map(|r| {
            (0..len as u64)
                .map(|j| (4 + (r * 7919 + j * 104_729) % (vocab - 4)) as u32)
                .collect()
        })
        .collect())
}
