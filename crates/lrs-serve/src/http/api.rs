//! The JSON bodies of the HTTP API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::registry::{CacheStats, TaskInfo};

/// `POST /v1/predict` body.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictBody {
    /// Task id; absent or `null`: the base model with the shared factor only.
    #[serde(default)]
    pub task: Option<String>,
    /// Texts to score.
    pub inputs: Vec<String>,
    /// Also return each input's mean-pooled embedding.
    #[serde(default)]
    pub embeddings: bool,
}

/// `POST /v1/predict` answer.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct PredictResponse {
    /// The task scored against (`null`: base-only).
    pub task: Option<String>,
    /// `σ(logit)` per input.
    pub scores: Vec<f32>,
    /// Binary logit per input.
    pub logits: Vec<f32>,
    /// Mean-pooled embedding per input, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<Vec<Vec<f32>>>,
    /// sha256 of the task file bytes that computed these scores (`null`: base-only): which
    /// version of the task answered.
    #[serde(default)]
    pub task_sha256: Option<String>,
}

/// `GET /v1/tasks` answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TasksResponse {
    /// Every task file in the registry, sorted by id.
    pub tasks: Vec<TaskInfo>,
    /// Cache occupancy.
    pub cache: CacheStats,
}

/// `PUT /v1/tasks/{id}` and `POST /v1/tasks/{id}/load` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskLoaded {
    /// The task id.
    pub id: String,
    /// Resident bytes of the loaded task.
    pub loaded_bytes: u64,
    /// Total sparse non-zeros.
    pub nnz: usize,
    /// sha256 of the loaded task file's bytes.
    #[serde(default)]
    pub sha256: String,
}

/// Every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error's code and message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`unknown_task`, `invalid_task_file`, …).
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// `POST /v1/tasks/{id}/unload` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Unloaded {
    /// The task id.
    pub id: String,
    /// Whether the task was in the cache.
    pub was_loaded: bool,
}

/// `GET /healthz` answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// `"ok"`, or `"store_unavailable"` (with status 503) when the task store does not answer.
    pub status: String,
    /// Cache occupancy.
    pub cache: CacheStats,
    /// The task store and whether it answered.
    pub store: StoreHealth,
}

/// Whether the task store answers (`/healthz`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StoreHealth {
    /// Where tasks are read from (a directory, `s3://bucket/prefix`).
    pub location: String,
    /// Whether it answered just now.
    pub reachable: bool,
    /// Why not, if it did not.
    pub error: Option<String>,
}
