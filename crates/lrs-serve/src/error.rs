//! [`ServeError`]: everything serving can refuse or fail at, each naming the task, input or file
//! at fault. The HTTP layer maps each variant to one status code ([`ServeError::status`]):
//! bad input is always a 4xx, only our own failures are a 5xx.

use std::path::PathBuf;

/// Why a serving call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A task id does not match `[A-Za-z0-9_.-]{1,128}` or is `.` / `..`.
    #[error("invalid task id {id:?}: {reason}")]
    InvalidTaskId {
        /// The id as given (truncated to 200 characters).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No task file `<id>.safetensors` in the registry.
    #[error("unknown task {0:?}")]
    UnknownTask(String),
    /// A task file (on disk or uploaded) failed validation against the loaded base/shared.
    #[error("task {task:?}: invalid task file: {source}")]
    InvalidTaskFile {
        /// The task id.
        task: String,
        /// What the validator said (names the file and tensor).
        #[source]
        source: lrs_nn::NnError,
    },
    /// A task's loaded size exceeds the whole cache budget, so it can never be held.
    #[error("task {task:?} needs {bytes} bytes, more than the cache budget of {budget}")]
    TaskTooLarge {
        /// The task id.
        task: String,
        /// Its resident bytes.
        bytes: u64,
        /// The cache budget.
        budget: u64,
    },
    /// A task file is larger than `max_task_file_bytes` (an upload body, or a file found in the
    /// registry directory, checked from its metadata before it is read).
    #[error("task {task:?}: the task file is {bytes} bytes, at most {max} allowed (max_task_file_bytes)")]
    TaskFileTooLarge {
        /// The task id.
        task: String,
        /// The file's size.
        bytes: u64,
        /// The limit.
        max: u64,
        /// `true`: the client sent it (413); `false`: it was found on disk (422).
        uploaded: bool,
    },
    /// A task file holds more sparse non-zeros than `max_task_nnz` (counted from its
    /// safetensors header, before any tensor is read).
    #[error("task {task:?}: the task file holds {nnz} sparse non-zeros, at most {max} allowed (max_task_nnz)")]
    TooManyNonZeros {
        /// The task id.
        task: String,
        /// Non-zeros the header declares (sum over `*.lrs_idx` shapes).
        nnz: u64,
        /// The limit.
        max: u64,
        /// `true`: the client sent it (413); `false`: it was found on disk (422).
        uploaded: bool,
    },
    /// An upload would create a task file beyond `max_task_files` (replacing an existing task
    /// is always allowed; deleting one makes room).
    #[error("the registry already holds {count} task files, at most {max} allowed (max_task_files): delete one first")]
    TooManyTasks {
        /// Task files in the registry now.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More inputs in one request than allowed.
    #[error("{got} inputs in one request, at most {max} allowed")]
    TooManyInputs {
        /// Inputs sent.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// An input tokenizes to more tokens than allowed.
    #[error("input {index} has {tokens} tokens, at most {max} allowed")]
    InputTooLong {
        /// Position of the input in the request.
        index: usize,
        /// Its token count (special tokens included).
        tokens: usize,
        /// The limit.
        max: usize,
    },
    /// The request body exceeds the configured limit.
    #[error("request body too large (limit {max} bytes)")]
    BodyTooLarge {
        /// The limit.
        max: usize,
    },
    /// The request body is not JSON (syntax) or not the expected JSON (shape, types, fields).
    #[error("bad request body: {reason}")]
    BadJson {
        /// What the parser said.
        reason: String,
        /// `true`: well-formed JSON of the wrong shape (422); `false`: not JSON (400).
        shape: bool,
    },
    /// The request is well-formed but cannot be served as asked (empty inputs, no tokenizer…).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The batch queue is full; try again later.
    #[error("overloaded: the batch queue is full")]
    Overloaded,
    /// The server is shutting down and takes no new work.
    #[error("shutting down")]
    ShuttingDown,
    /// The configuration is unusable.
    #[error("config: {0}")]
    Config(String),
    /// A file-system operation on the registry failed.
    #[error("{file}: {source}")]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The task store (an object store) could not be reached or refused a request: the
    /// client may retry later (503).
    #[error("task store {location} unavailable: {message}")]
    Store {
        /// The store (`s3://bucket/prefix`).
        location: String,
        /// What was asked and what went wrong.
        message: String,
    },
    /// A failure of the server itself (a panicked or failed forward pass, a lost worker).
    #[error("internal error: {0}")]
    Internal(String),
    /// Loading the model, tokenizer or shared file, or running the forward pass, failed.
    #[error(transparent)]
    Model(#[from] lrs_nn::NnError),
}

impl From<candle_core::Error> for ServeError {
    fn from(e: candle_core::Error) -> Self {
        ServeError::Model(e.into())
    }
}

impl ServeError {
    /// The HTTP status for this error: 4xx for anything the client controls, 5xx otherwise.
    pub fn status(&self) -> u16 {
        match self {
            ServeError::InvalidTaskId { .. } => 400,
            ServeError::BadJson { shape: false, .. } => 400,
            ServeError::UnknownTask(_) => 404,
            ServeError::TooManyInputs { .. }
            | ServeError::InputTooLong { .. }
            | ServeError::BodyTooLarge { .. }
            | ServeError::TaskFileTooLarge { uploaded: true, .. }
            | ServeError::TooManyNonZeros { uploaded: true, .. } => 413,
            ServeError::TooManyTasks { .. } => 409,
            ServeError::InvalidTaskFile { .. }
            | ServeError::TaskTooLarge { .. }
            | ServeError::TaskFileTooLarge {
                uploaded: false, ..
            }
            | ServeError::TooManyNonZeros {
                uploaded: false, ..
            }
            | ServeError::BadJson { shape: true, .. }
            | ServeError::InvalidRequest(_) => 422,
            ServeError::Overloaded | ServeError::ShuttingDown | ServeError::Store { .. } => 503,
            ServeError::Config(_)
            | ServeError::Io { .. }
            | ServeError::Internal(_)
            | ServeError::Model(_) => 500,
        }
    }

    /// A stable machine-readable code for the error (`unknown_task`, `invalid_task_file`, …).
    pub fn code(&self) -> &'static str {
        match self {
            ServeError::InvalidTaskId { .. } => "invalid_task_id",
            ServeError::UnknownTask(_) => "unknown_task",
            ServeError::InvalidTaskFile { .. } => "invalid_task_file",
            ServeError::TaskTooLarge { .. } => "task_too_large",
            ServeError::TaskFileTooLarge { .. } => "task_file_too_large",
            ServeError::TooManyNonZeros { .. } => "too_many_nonzeros",
            ServeError::TooManyTasks { .. } => "too_many_tasks",
            ServeError::TooManyInputs { .. } => "too_many_inputs",
            ServeError::InputTooLong { .. } => "input_too_long",
            ServeError::BodyTooLarge { .. } => "body_too_large",
            ServeError::BadJson { .. } => "bad_json",
            ServeError::InvalidRequest(_) => "invalid_request",
            ServeError::Overloaded => "overloaded",
            ServeError::ShuttingDown => "shutting_down",
            ServeError::Config(_) => "config",
            ServeError::Io { .. } => "io",
            ServeError::Store { .. } => "store_unavailable",
            ServeError::Internal(_) => "internal",
            ServeError::Model(_) => "model",
        }
    }
}

/// Shorthand for results with [`ServeError`].
pub type Result<T> = std::result::Result<T, ServeError>;
