//! The request handlers. Blocking work (reading task files, tokenizing) runs on tokio's
//! blocking pool, model compute on the batcher's thread; handlers only await.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::api::{PredictBody, PredictResponse, TaskLoaded, TasksResponse};
use super::error::{body_error, parse_json};
use super::AppState;
use crate::batcher::PredictRequest;
use crate::error::{Result, ServeError};
use crate::registry::LoadedTask;
use crate::task_id::TaskId;

/// Runs blocking work off the executor threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServeError::Internal(format!("blocking task failed: {e}")))?
}

fn task_id(path: std::result::Result<Path<String>, PathRejection>) -> Result<TaskId> {
    let Path(id) = path.map_err(|_| ServeError::InvalidTaskId {
        id: String::new(),
        reason: "not a decodable path segment",
    })?;
    TaskId::parse(&id)
}

fn loaded(task: &LoadedTask) -> TaskLoaded {
    TaskLoaded {
        id: task.id.to_string(),
        loaded_bytes: task.bytes,
        nnz: task.delta.nnz(),
        sha256: task.sha256.clone(),
    }
}

/// `POST /v1/predict`.
pub async fn predict(
    State(state): State<AppState>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<PredictResponse>> {
    let body = body.map_err(|e| body_error(&e, state.limits.max_body_bytes))?;
    let req: PredictBody = parse_json(&body)?;
    if req.inputs.is_empty() {
        return Err(ServeError::InvalidRequest("`inputs` is empty".into()));
    }
    if req.inputs.len() > state.limits.max_inputs {
        return Err(ServeError::TooManyInputs {
            got: req.inputs.len(),
            max: state.limits.max_inputs,
        });
    }
    let id = req.task.as_deref().map(TaskId::parse).transpose()?;
    let engine = state.engine.clone();
    let (task, tokens) = blocking(move || {
        // Tokenize first: a bad input is refused before any task file is read.
        let tokens = engine.tokenize(&req.inputs)?;
        let task = engine.resolve(id.as_ref())?;
        Ok((task, tokens))
    })
    .await?;
    let prediction = state
        .batcher
        .predict(PredictRequest {
            task: task.clone(),
            tokens,
            embeddings: req.embeddings,
        })
        .await?;
    Ok(Json(PredictResponse {
        task: task.as_ref().map(|t| t.id.to_string()),
        scores: prediction.scores,
        logits: prediction.logits,
        embeddings: prediction.embeddings,
        task_sha256: task.map(|t| t.sha256.clone()),
    }))
}

/// `GET /v1/tasks`.
pub async fn list_tasks(State(state): State<AppState>) -> Result<Json<TasksResponse>> {
    let engine = state.engine.clone();
    blocking(move || {
        Ok(Json(TasksResponse {
            tasks: engine.registry().list()?,
            cache: engine.registry().stats(),
        }))
    })
    .await
}

/// `PUT /v1/tasks/{id}`: the raw task file as the body; validated, then written atomically.
pub async fn put_task(
    State(state): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<TaskLoaded>> {
    let id = task_id(path)?;
    let body = body.map_err(|e| body_error(&e, state.limits.max_body_bytes))?;
    let engine = state.engine.clone();
    blocking(move || Ok(Json(loaded(&*engine.registry().install(&id, &body)?)))).await
}

/// `DELETE /v1/tasks/{id}`: removes the file and unloads the task.
pub async fn delete_task(
    State(state): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse> {
    let id = task_id(path)?;
    let engine = state.engine.clone();
    blocking(move || engine.registry().remove(&id)).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `POST /v1/tasks/{id}/load`: loads (or reloads if changed) the task now.
pub async fn load_task(
    State(state): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<TaskLoaded>> {
    let id = task_id(path)?;
    let engine = state.engine.clone();
    blocking(move || Ok(Json(loaded(&*engine.registry().load(&id)?)))).await
}

/// `POST /v1/tasks/{id}/unload`: drops the task from the cache (the file stays).
pub async fn unload_task(
    State(state): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse> {
    let id = task_id(path)?;
    let was_loaded = state.engine.registry().unload(&id);
    Ok(Json(
        serde_json::json!({"id": id.as_str(), "was_loaded": was_loaded}),
    ))
}

/// `GET /healthz`.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let stats = state.engine.registry().stats();
    Json(serde_json::json!({"status": "ok", "cache": stats}))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.engine.metrics().render(),
    )
}

/// Any other path: 404 with the usual error body.
pub async fn not_found() -> impl IntoResponse {
    let body = super::api::ErrorBody {
        error: super::api::ErrorDetail {
            code: "no_route".into(),
            message: "no such route".into(),
        },
    };
    (axum::http::StatusCode::NOT_FOUND, Json(body))
}
