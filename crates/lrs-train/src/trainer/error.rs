//! The trainer's error type: every failure names the config file, task or tensor at fault.

use std::path::PathBuf;

use thiserror::Error;

/// Errors from configuring, preparing data for, or running the alternating trainer.
#[derive(Debug, Error)]
pub enum TrainError {
    /// A config file could not be read.
    #[error("{}: {source}", path.display())]
    ConfigIo {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A config could not be parsed as TOML into a [`TrainConfig`](super::TrainConfig).
    #[error("{origin}: {source}")]
    ConfigParse {
        /// Where the text came from (a path or `"<inline>"`).
        origin: String,
        /// The parser's error (it carries the line and column).
        source: toml::de::Error,
    },
    /// A config value is out of range.
    #[error("config field `{field}`: {reason}")]
    Config {
        /// The dotted field name (`task.sparse_steps`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A text could not be tokenized.
    #[error("task `{task}`, example {index}: cannot tokenize: {reason}")]
    Encode {
        /// The task.
        task: String,
        /// The example's position in its split.
        index: usize,
        /// The tokenizer's message.
        reason: String,
    },
    /// A task has no training examples.
    #[error("task `{task}` has no training examples")]
    EmptyTask {
        /// The task.
        task: String,
    },
    /// The data handed to a trainer does not match the tasks it was built for.
    #[error("data does not match the trainer's tasks: {reason}")]
    DataMismatch {
        /// Which task or count differs.
        reason: String,
    },
    /// The model cannot be trained with this config (no adapters, rank differs, …).
    #[error("model: {reason}")]
    Model {
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint cannot be written, read, or does not match this run.
    #[error("checkpoint: {reason}")]
    Checkpoint {
        /// What is wrong.
        reason: String,
    },
    /// The private mode cannot proceed (budget spent, bad update, accountant error).
    #[error("privacy: {reason}")]
    Privacy {
        /// What is wrong.
        reason: String,
    },
    /// A file of the run directory cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A task file of the run directory cannot be written or read.
    #[error(transparent)]
    File(#[from] lrs_nn::FileError),
    /// An error from the LRS layers, BERT model or file formats.
    #[error(transparent)]
    Nn(#[from] lrs_nn::NnError),
    /// A tensor operation failed.
    #[error("tensor op: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Maps an I/O error on `path` to [`TrainError::Io`].
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Result alias for the trainer.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
