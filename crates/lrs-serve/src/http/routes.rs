//! The request handlers. Blocking work (reading task files, tokenizing) runs on tokio's
//! blocking pool, model compute on the batcher's thread; handlers only await.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use super::api::{
    ErrorBody, Health, PredictBody, PredictResponse, StoreHealth, TaskLoaded, TasksResponse,
    Unloaded,
};
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
#[utoipa::path(
    post,
    path = "/v1/predict",
    tag = "predict",
    request_body = PredictBody,
    responses(
        (status = 200, description = "Scores, logits and the task version that computed them", body = PredictResponse),
        (status = 400, description = "`bad_json` (not JSON), `invalid_task_id`", body = ErrorBody),
        (status = 404, description = "`unknown_task`", body = ErrorBody),
        (status = 413, description = "`too_many_inputs`, `input_too_long`, `body_too_large`", body = ErrorBody),
        (status = 422, description = "`bad_json` (wrong shape), `invalid_request`, `invalid_task_file`, `task_too_large`, `task_file_too_large`, `too_many_nonzeros`", body = ErrorBody),
        (status = 503, description = "`overloaded`, `shutting_down`, `store_unavailable`", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/v1/tasks",
    tag = "tasks",
    responses((status = 200, description = "Task files on disk and cache occupancy", body = TasksResponse))
)]
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
#[utoipa::path(
    put,
    path = "/v1/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "Task id, `[A-Za-z0-9_.-]{1,128}`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The task file's raw bytes (safetensors)"),
    responses(
        (status = 200, description = "Validated, written and loaded", body = TaskLoaded),
        (status = 400, description = "`invalid_task_id`", body = ErrorBody),
        (status = 409, description = "`too_many_tasks`", body = ErrorBody),
        (status = 413, description = "`body_too_large`, `task_file_too_large`, `too_many_nonzeros`", body = ErrorBody),
        (status = 422, description = "`invalid_task_file`, `task_too_large`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/v1/tasks/{id}",
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 204, description = "Removed and unloaded"),
        (status = 400, description = "`invalid_task_id`", body = ErrorBody),
        (status = 404, description = "`unknown_task`", body = ErrorBody),
        (status = 503, description = "`store_unavailable`", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/load",
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "Loaded", body = TaskLoaded),
        (status = 400, description = "`invalid_task_id`", body = ErrorBody),
        (status = 404, description = "`unknown_task`", body = ErrorBody),
        (status = 422, description = "`invalid_task_file`, `task_too_large`, `task_file_too_large`, `too_many_nonzeros`", body = ErrorBody),
    )
)]
pub async fn load_task(
    State(state): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<TaskLoaded>> {
    let id = task_id(path)?;
    let engine = state.engine.clone();
    blocking(move || Ok(Json(loaded(&*engine.registry().load(&id)?)))).await
}

/// `POST /v1/tasks/{id}/unload`: drops the task from the cache (the file stays).
#[utoipa::path(
    post,
    path = "/v1/tasks/{id}/unload",
    tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 200, description = "Dropped from the cache", body = Unloaded),
        (status = 400, description = "`invalid_task_id`", body = ErrorBody),
    )
)]
pub async fn unload_task(
    State(state): State<AppState>,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse> {
    let id = task_id(path)?;
    let was_loaded = state.engine.registry().unload(&id);
    Ok(Json(Unloaded {
        id: id.as_str().to_string(),
        was_loaded,
    }))
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "server",
    responses(
        (status = 200, description = "The server and its task store answer", body = Health),
        (status = 503, description = "The task store does not answer (`status`: `store_unavailable`)", body = Health),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let engine = state.engine.clone();
    let checked = blocking(move || Ok(engine.registry().store().check())).await;
    let error = match checked {
        Ok(Ok(())) => None,
        Ok(Err(e)) | Err(e) => Some(e.to_string()),
    };
    let status = if error.is_none() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if error.is_none() {
            "ok"
        } else {
            "store_unavailable"
        }
        .into(),
        cache: state.engine.registry().stats(),
        store: StoreHealth {
            location: state.engine.registry().store().location(),
            reachable: error.is_none(),
            error,
        },
    };
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "server",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
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

/// `GET /openapi.json`: the OpenAPI document of every route, generated with them.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "server",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json"))
)]
pub async fn openapi_json(
    axum::Extension(doc): axum::Extension<std::sync::Arc<utoipa::openapi::OpenApi>>,
) -> impl IntoResponse {
    Json((*doc).clone())
}
