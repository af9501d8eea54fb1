//! A complete tiny serving setup in a temporary directory — random tiny BERT checkpoint,
//! word-level `tokenizer.json`, shared file and task files — for tests, examples and smoke
//! runs (no download needed).

use std::path::PathBuf;

use candle_core::{DType, Device};
use lrs_nn::{BertCheckpoint, BertModel, LrsOptions, SharedFactor};

use crate::synth::{write_shared, write_tasks, TaskSpec};
use lrs_serve::config::{ByteSize, ServeConfig};
use lrs_serve::error::{Result, ServeError};

/// Rank of the fixture's shared factor.
pub const RANK: usize = 4;

/// The files of a tiny serving setup; removed when dropped.
#[derive(Debug)]
pub struct Fixture {
    /// Owns the directory.
    pub dir: tempfile::TempDir,
    /// Checkpoint directory (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub model_dir: PathBuf,
    /// `shared.safetensors`.
    pub shared_path: PathBuf,
    /// The shared factor written there (with its sha256).
    pub shared: SharedFactor,
    /// Registry directory holding `t0.safetensors` … .
    pub tasks_dir: PathBuf,
    /// Ids of the task files written.
    pub task_ids: Vec<String>,
    /// A config serving all of it.
    pub config: ServeConfig,
}

impl Fixture {
    /// A tiny BERT (`lrs_nn::testing::tiny_config`), its shared file (rank [`RANK`], default
    /// targets) and `tasks` random task files at 10 % density.
    pub fn new(tasks: usize) -> Result<Self> {
        let io = |file: PathBuf| move |source| ServeError::Io { file, source };
        let dir = tempfile::tempdir().map_err(io("tempdir".into()))?;
        let model_dir = dir.path().join("base");
        let tokenizer = write_tiny_checkpoint(&model_dir)?;
        let model = Self::load_model(&model_dir)?;
        let shared_path = dir.path().join("shared.safetensors");
        let shared = write_shared(&model, &shared_path, 7)?;
        let tasks_dir = dir.path().join("tasks");
        let task_ids: Vec<String> = (0..tasks).map(|i| format!("t{i}")).collect();
        let spec = TaskSpec {
            density: 0.1,
            value_scale: 0.5,
            ..TaskSpec::default()
        };
        write_tasks(&model, &shared, &tasks_dir, &task_ids, &spec, 100)?;
        let config = ServeConfig {
            model: model_dir.display().to_string(),
            shared: shared_path.clone(),
            tasks_dir: tasks_dir.clone(),
            tokenizer: Some(tokenizer),
            listen: "127.0.0.1:0".into(),
            cache_bytes: ByteSize(64 << 20),
            max_batch_rows: 64,
            max_wait_ms: 2,
            queue_capacity: 256,
            max_inputs: 16,
            max_tokens: 16,
            max_body_bytes: ByteSize(1 << 20),
            ..ServeConfig::default()
        };
        Ok(Self {
            dir,
            model_dir,
            shared_path,
            shared,
            tasks_dir,
            task_ids,
            config,
        })
    }

    /// The fixture's base model (f32, CPU) with fresh LRS adapters of rank [`RANK`].
    pub fn load_model(model_dir: &std::path::Path) -> Result<BertModel> {
        let ckpt = BertCheckpoint::from_dir(model_dir)?;
        Ok(BertModel::load(
            &ckpt,
            Some(&LrsOptions::bert_default(RANK)),
            &Device::Cpu,
            DType::F32,
        )?)
    }

    /// A model matching this fixture's files, for writing more task files.
    pub fn model(&self) -> Result<BertModel> {
        Self::load_model(&self.model_dir)
    }
}

/// Writes a tiny seeded BERT checkpoint (`lrs_nn::testing::tiny_config`: `config.json`,
/// `model.safetensors`) and a word-level `tokenizer.json` into `dir` (created). Returns the
/// tokenizer's path. Texts for it are words `w4` … `w99`.
pub fn write_tiny_checkpoint(dir: &std::path::Path) -> Result<PathBuf> {
    let io = |file: PathBuf| move |source| ServeError::Io { file, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let cfg = lrs_nn::testing::tiny_config();
    lrs_nn::testing::write_seeded_checkpoint(dir, &cfg, 1)?;
    let tokenizer = dir.join("tokenizer.json");
    std::fs::write(&tokenizer, word_level_tokenizer(cfg.vocab_size))
        .map_err(io(tokenizer.clone()))?;
    Ok(tokenizer)
}

/// A `tokenizer.json` for a word-level vocabulary: `[PAD]`=0, `[CLS]`=1, `[SEP]`=2,
/// `[UNK]`=3, then `w4` … `w{vocab-1}`; whitespace pre-tokenizer, BERT post-processor.
pub fn word_level_tokenizer(vocab: usize) -> String {
    let mut words: serde_json::Map<String, serde_json::Value> =
        ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
            .iter()
            .enumerate()
            .map(|(i, w)| (w.to_string(), serde_json::json!(i)))
            .collect();
    for i in 4..vocab {
        words.insert(format!("w{i}"), serde_json::json!(i));
    }
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": words, "unk_token": "[UNK]"}
    })
    .to_string()
}
