//! [`Engine`]: the base model + shared file + task registry, and the one forward pass that
//! scores a batch of rows from any mix of tasks.
//!
//! Scores follow the training convention (`lrs_nn::bert::binary_head`): mean-pooled embedding
//! `h`, logit `z = h·a + c + h·a_i + c_i` (shared head from the shared file, task head from the
//! task file, absent heads count as zero), score `σ(z)`. A row without a task runs the shared
//! model with the empty delta (`w = 1`, no sparse part, no task head).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use lrs_nn::bert::binary_head::{binary_logits, HEAD_BIAS, HEAD_WEIGHT};
use lrs_nn::bert::model::pool;
use lrs_nn::{BertCheckpoint, BertInput, BertModel, Pooling, SharedFactor, TaskBatch, TaskDelta};

use crate::config::ServeConfig;
use crate::error::{Result, ServeError};
use crate::metrics::Metrics;
use crate::registry::{LoadedTask, TaskRegistry};
use crate::store::{fetch_object, LocalDir, Location, StoreOptions, TaskStore};
use crate::task_id::TaskId;
use crate::text::TextEncoder;

/// One input row of a batch: its task (`None`: base model + shared factor only) and tokens.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// The row's task.
    pub task: Option<&'a LoadedTask>,
    /// Its token ids (with `[CLS]`/`[SEP]`), unpadded.
    pub tokens: &'a [u32],
}

/// What one forward pass returns, row by row.
#[derive(Debug, Clone)]
pub struct BatchOutput {
    /// Binary logit per row.
    pub logits: Vec<f32>,
    /// Mean-pooled embedding per row (when asked for).
    pub embeddings: Option<Vec<Vec<f32>>>,
}

/// The shared file as a local path: the file itself, or a temporary copy of an object.
enum SharedFile {
    Local(std::path::PathBuf),
    Fetched(tempfile::NamedTempFile),
}

impl SharedFile {
    fn fetch(location: &Location, options: &StoreOptions) -> Result<Self> {
        match location {
            Location::Dir(path) => Ok(SharedFile::Local(path.clone())),
            Location::S3 { .. } => {
                let bytes = fetch_object(location, options)?;
                let tmp_err = |source| ServeError::Io {
                    file: std::env::temp_dir(),
                    source,
                };
                let mut file = tempfile::NamedTempFile::new().map_err(tmp_err)?;
                std::io::Write::write_all(&mut file, &bytes).map_err(tmp_err)?;
                Ok(SharedFile::Fetched(file))
            }
        }
    }

    fn path(&self) -> &Path {
        match self {
            SharedFile::Local(path) => path,
            SharedFile::Fetched(file) => file.path(),
        }
    }
}

/// The serving model: frozen base, shared factor, task registry, optional tokenizer.
pub struct Engine {
    model: Arc<BertModel>,
    shared: Arc<SharedFactor>,
    head: Option<(Tensor, Tensor)>,
    base_task: TaskDelta,
    registry: TaskRegistry,
    text: Option<TextEncoder>,
    metrics: Arc<Metrics>,
    pad_id: u32,
    max_tokens: usize,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.model)
            .field("registry", &self.registry)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads the checkpoint (f32, CPU) with the shared file's rank/scale/targets, installs
    /// the shared file, opens the registry (with the config's task limits) and the tokenizer
    /// (the config's or the checkpoint's).
    ///
    /// `cfg.shared` and `cfg.tasks_dir` may be `s3://` locations: the shared file is then
    /// downloaded once at start, and tasks are read from the object store.
    pub fn open(cfg: &ServeConfig, metrics: Arc<Metrics>) -> Result<Self> {
        cfg.validate()?;
        let store_options = cfg.store_options();
        let shared_file = SharedFile::fetch(&Location::of_path(&cfg.shared)?, &store_options)?;
        let tasks = crate::store::open(&Location::of_path(&cfg.tasks_dir)?, &store_options)?;
        let ckpt = BertCheckpoint::resolve(&cfg.model)?;
        let opts = SharedFactor::options_of(shared_file.path()).map_err(lrs_nn::NnError::from)?;
        let model = BertModel::load(&ckpt, Some(&opts), &Device::Cpu, DType::F32)?;
        let tokenizer = cfg.tokenizer.clone().or(ckpt.tokenizer);
        let text = tokenizer
            .map(|t| TextEncoder::from_file(&t, cfg.max_tokens))
            .transpose()?;
        let engine = Self::with_store(
            model,
            shared_file.path(),
            tasks,
            text,
            cfg.cache_bytes.0,
            cfg.max_tokens,
            metrics,
        )?;
        engine.registry.set_limits(cfg.task_limits());
        engine.registry.set_poll_interval(cfg.poll_interval());
        Ok(engine)
    }

    /// An engine over an already built LRS `model`: installs `shared`, opens the registry at
    /// `tasks_dir` with a `cache_bytes` budget. `text` is needed only for text inputs.
    /// `max_tokens` is capped by the model's position embeddings.
    pub fn new(
        model: BertModel,
        shared: &Path,
        tasks_dir: &Path,
        text: Option<TextEncoder>,
        cache_bytes: u64,
        max_tokens: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let tasks = Arc::new(LocalDir::open(tasks_dir)?);
        Self::with_store(model, shared, tasks, text, cache_bytes, max_tokens, metrics)
    }

    /// [`Self::new`] over any task store (a directory, an object-store prefix).
    pub fn with_store(
        model: BertModel,
        shared: &Path,
        tasks: Arc<dyn TaskStore>,
        text: Option<TextEncoder>,
        cache_bytes: u64,
        max_tokens: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let rank = model
            .lrs_options()
            .map(|o| o.rank)
            .ok_or_else(|| ServeError::Config("the model has no LRS adapters".into()))?;
        let shared = Arc::new(model.load_shared(shared)?);
        let head = match (shared.head.get(HEAD_WEIGHT), shared.head.get(HEAD_BIAS)) {
            (Some(w), Some(b)) => Some((w.clone(), b.clone())),
            _ => None,
        };
        let max_tokens = max_tokens.min(model.config().max_position_embeddings);
        let text = text.map(|t| t.with_max_tokens(max_tokens));
        let model = Arc::new(model);
        let registry = TaskRegistry::with_store(
            tasks,
            model.clone(),
            shared.clone(),
            cache_bytes,
            metrics.clone(),
        );
        Ok(Self {
            pad_id: text.as_ref().map(TextEncoder::pad_id).unwrap_or(0),
            model,
            shared,
            head,
            base_task: TaskDelta::new("", rank),
            registry,
            text,
            metrics,
            max_tokens,
        })
    }

    /// The base model.
    pub fn model(&self) -> &Arc<BertModel> {
        &self.model
    }

    /// The installed shared file (with its sha256).
    pub fn shared(&self) -> &Arc<SharedFactor> {
        &self.shared
    }

    /// Id of the padding token.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The task registry.
    pub fn registry(&self) -> &TaskRegistry {
        &self.registry
    }

    /// The metrics this engine reports to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The per-input token limit.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Tokenizes texts, refusing any over the token limit.
    pub fn tokenize(&self, texts: &[String]) -> Result<Vec<Vec<u32>>> {
        self.text
            .as_ref()
            .ok_or_else(|| ServeError::InvalidRequest("this server has no tokenizer".into()))?
            .encode(texts)
    }

    /// The loaded task for `task` (`None` for base-only rows), loading it if needed.
    pub fn resolve(&self, task: Option<&TaskId>) -> Result<Option<Arc<LoadedTask>>> {
        task.map(|id| self.registry.get(id)).transpose()
    }

    /// Checks token rows against the token limit and the vocabulary.
    pub fn check_tokens(&self, rows: &[Vec<u32>]) -> Result<()> {
        let vocab = self.model.config().vocab_size as u32;
        for (index, r) in rows.iter().enumerate() {
            if r.is_empty() {
                return Err(ServeError::InvalidRequest(format!(
                    "input {index} has no tokens"
                )));
            }
            if r.len() > self.max_tokens {
                return Err(ServeError::InputTooLong {
                    index,
                    tokens: r.len(),
                    max: self.max_tokens,
                });
            }
            if let Some(t) = r.iter().find(|&&t| t >= vocab) {
                return Err(ServeError::InvalidRequest(format!(
                    "input {index}: token id {t} outside the vocabulary ({vocab})"
                )));
            }
        }
        Ok(())
    }

    /// One forward pass over `rows` (any mix of tasks): logits, and pooled embeddings when
    /// `embeddings`. Rows are padded to the longest; padding does not change any row's result.
    pub fn forward(&self, rows: &[Row<'_>], embeddings: bool) -> Result<BatchOutput> {
        let start = Instant::now();
        let dev = self.model.device();
        if rows.is_empty() {
            return Ok(BatchOutput {
                logits: Vec::new(),
                embeddings: embeddings.then(Vec::new),
            });
        }
        // Rows share a task slot only if they hold the same load (grouped by identity).
        let deltas: Vec<&TaskDelta> = rows
            .iter()
            .map(|r| r.task.map_or(&self.base_task, |t| &t.delta))
            .collect();
        let batch = TaskBatch::per_row(&deltas, dev)?.for_inference();
        let n_tasks = batch.tasks().len();
        let tokens: Vec<&[u32]> = rows.iter().map(|r| r.tokens).collect();
        let input = BertInput::padded(&tokens, self.pad_id, dev)?;
        let hidden = self.model.forward_t(&input, Some(&batch), false)?;
        let pooled = pool(&hidden, &input.attention_mask, Pooling::Mean)?;
        let head = self.head.as_ref().map(|(w, b)| (w, b));
        let logits = binary_logits(&pooled, head, &batch, true)?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        let embeddings = if embeddings {
            Some(pooled.to_dtype(DType::F32)?.to_vec2::<f32>()?)
        } else {
            None
        };
        self.metrics.batch_rows.observe(rows.len() as f64);
        self.metrics.batch_tasks.observe(n_tasks as f64);
        self.metrics
            .forward_seconds
            .observe(start.elapsed().as_secs_f64());
        Ok(BatchOutput { logits, embeddings })
    }
}

/// The logistic function, as scores are reported.
pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}
