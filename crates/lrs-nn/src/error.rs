//! Error types: [`NnError`] for everything the crate does, [`FileError`] for reading and
//! writing the shared/task file formats (docs/FORMATS.md). Both name the file and tensor at fault.

use std::path::PathBuf;

/// Why a shared, task or checkpoint file was rejected. Every variant names the file, and the
/// tensor or metadata key where there is one.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading, writing or renaming the file failed.
    #[error("{file}: i/o error: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid safetensors file (bad header, truncated data, ...).
    #[error("{file}: malformed safetensors: {reason}")]
    Malformed {
        /// The file.
        file: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// `format` metadata is absent or names another kind of file.
    #[error("{file}: wrong format: expected {expected:?}, found {found:?}")]
    WrongFormat {
        /// The file.
        file: PathBuf,
        /// The expected `format` value.
        expected: &'static str,
        /// What the file says (`None`: no `format` key).
        found: Option<String>,
    },
    /// `version` metadata is absent or not one this build reads.
    #[error("{file}: unsupported version {found:?} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The file.
        file: PathBuf,
        /// What the file says (`None`: no `version` key).
        found: Option<String>,
        /// The version this build reads and writes.
        supported: &'static str,
    },
    /// A required metadata key is absent or does not parse.
    #[error("{file}: metadata {key:?}: {reason}")]
    BadMetadata {
        /// The file.
        file: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A recorded sha256 does not match the base checkpoint or shared file actually loaded.
    #[error("{file}: {what} hash mismatch: file records {recorded}, loaded has {actual}")]
    HashMismatch {
        /// The file.
        file: PathBuf,
        /// Which hash (`base_sha256` or `shared_sha256`).
        what: &'static str,
        /// The hash stored in the file's metadata.
        recorded: String,
        /// The hash of what is loaded.
        actual: String,
    },
    /// A tensor the format requires is absent.
    #[error("{file}: missing tensor {tensor:?}")]
    MissingTensor {
        /// The file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
    },
    /// A tensor names a module the model does not adapt, or a suffix the format does not know.
    #[error("{file}: tensor {tensor:?}: unknown module or tensor kind")]
    UnknownModule {
        /// The file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
    },
    /// A tensor has the wrong shape.
    #[error("{file}: tensor {tensor:?}: shape {found:?}, expected {expected}")]
    Shape {
        /// The file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape found.
        found: Vec<usize>,
    },
    /// A tensor has a dtype the format does not allow.
    #[error("{file}: tensor {tensor:?}: dtype {found}, expected {expected}")]
    DType {
        /// The file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The allowed dtypes, in words.
        expected: &'static str,
        /// The dtype found.
        found: String,
    },
    /// A sparse index points outside `[out, in]`.
    #[error(
        "{file}: tensor {tensor:?}: index {index} at position {position} out of range (< {bound})"
    )]
    IndexOutOfRange {
        /// The file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Position in the index tensor.
        position: usize,
        /// The offending index.
        index: u64,
        /// `out * in`.
        bound: u64,
    },
    /// Sparse indices are not strictly increasing.
    #[error("{file}: tensor {tensor:?}: indices not strictly increasing at position {position}")]
    IndicesNotSorted {
        /// The file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// First position whose index is not greater than its predecessor.
        position: usize,
    },
    /// A module's sparse part is a dense training scratch; harden it (top-k) before saving.
    #[error("{file}: module {module:?} holds a dense scratch S; call `harden` before saving")]
    DenseScratch {
        /// The file.
        file: PathBuf,
        /// The module.
        module: String,
    },
    /// Any other tensor-level failure while converting file contents.
    #[error("{file}: tensor {tensor:?}: {source}")]
    Tensor {
        /// The file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The underlying candle error.
        #[source]
        source: Box<candle_core::Error>,
    },
}

/// The crate's error type.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(Box<candle_core::Error>),
    /// A shared, task or checkpoint file was rejected.
    #[error(transparent)]
    File(#[from] FileError),
    /// A model config (`config.json`) is unreadable or unsupported.
    #[error("{file}: config: {reason}")]
    Config {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer failed to load or encode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The Hugging Face hub (or its cache) could not provide a file.
    #[error("hub {repo}: {file}: {reason}")]
    Hub {
        /// Model id.
        repo: String,
        /// File in the repo.
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// An argument does not fit the model (wrong rank, unknown module, bad sparse indices...).
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl From<candle_core::Error> for NnError {
    fn from(e: candle_core::Error) -> Self {
        NnError::Candle(Box::new(e))
    }
}

/// Shorthand for results with [`NnError`].
pub type Result<T> = std::result::Result<T, NnError>;
