//! The HTTP API (axum): [`router`] builds it over an [`AppState`], [`serve`] runs it on a
//! listener until a shutdown signal, then drains in-flight requests.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/predict` `{"task": id?, "inputs": [..], "embeddings": bool?}` | scores (σ of the binary logit), logits, embeddings on request, and `task_sha256`: the version of the task file that computed them |
//! | `GET /v1/tasks` | task files on disk, loaded sizes, cache occupancy |
//! | `PUT /v1/tasks/{id}` (raw safetensors body) | validated, written atomically, loaded; answers the version's `sha256` |
//! | `DELETE /v1/tasks/{id}` | file removed, task unloaded (204) |
//! | `POST /v1/tasks/{id}/load`, `/unload` | explicit cache control |
//! | `GET /healthz` | `{"status": "ok", ..}` |
//! | `GET /metrics` | Prometheus text |
//! | `GET /openapi.json` | the OpenAPI document of these routes ([`openapi`]) |
//!
//! Every route is registered together with its OpenAPI operation (utoipa-axum), so the
//! document and the router list the same routes. `docs/http-api.md` explains each one.
//!
//! Errors are `{"error": {"code", "message"}}` with the status of [`ServeError::status`].
//!
//! Limits ([`ServeConfig`]): `max_body_bytes` (413 `body_too_large`, the body is never
//! buffered past it and nothing is preallocated from `Content-Length`), `max_inputs` (413
//! `too_many_inputs`), `max_tokens` (413 `input_too_long`), `max_task_file_bytes` (upload 413,
//! file on disk 422, `task_file_too_large`), `max_task_nnz` (upload 413, disk 422,
//! `too_many_nonzeros`), `max_task_files` (409 `too_many_tasks`: a client can free room by
//! deleting a task, so it is not a server failure). See [`crate::limits`].

pub mod api;
pub mod error;
pub mod routes;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use tokio::net::TcpListener;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::batcher::{Batcher, BatcherConfig};
use crate::config::ServeConfig;
use crate::engine::Engine;
use crate::error::{Result, ServeError};
use crate::metrics::Metrics;

/// Request limits the handlers enforce.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Most inputs per request.
    pub max_inputs: usize,
    /// Largest body in bytes.
    pub max_body_bytes: usize,
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The model and task registry.
    pub engine: Arc<Engine>,
    /// The batching thread.
    pub batcher: Arc<Batcher>,
    /// Request limits.
    pub limits: HttpLimits,
}

impl AppState {
    /// Opens the engine and starts the batcher as `cfg` says.
    pub fn from_config(cfg: &ServeConfig) -> Result<Self> {
        let engine = Arc::new(Engine::open(cfg, Arc::new(Metrics::default()))?);
        Self::with_engine(engine, cfg)
    }

    /// Starts a batcher over an existing engine with `cfg`'s limits (the task-file limits
    /// are applied to the engine's registry).
    pub fn with_engine(engine: Arc<Engine>, cfg: &ServeConfig) -> Result<Self> {
        cfg.validate_limits()?;
        engine.registry().set_limits(cfg.task_limits());
        let batcher = Batcher::spawn(
            engine.clone(),
            BatcherConfig {
                max_batch_rows: cfg.max_batch_rows,
                max_wait: cfg.max_wait(),
                queue_capacity: cfg.queue_capacity,
            },
        )?;
        Ok(Self {
            engine,
            batcher: Arc::new(batcher),
            limits: HttpLimits {
                max_inputs: cfg.max_inputs,
                max_body_bytes: usize::try_from(cfg.max_body_bytes.0).unwrap_or(usize::MAX),
            },
        })
    }
}

/// Records every request's route template, status and latency.
async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let response = next.run(req).await;
    metrics.record_request(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// The document's header (title, version); the paths come from the routes.
#[derive(OpenApi)]
#[openapi(info(
    title = "lrs serve",
    description = "Predictions of many personalized tasks over one base model and shared \
                   factor, with task-file upload and cache control."
))]
struct ApiDoc;

/// Every route with its handler and OpenAPI operation.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(routes::predict))
        .routes(routes!(routes::list_tasks))
        .routes(routes!(routes::put_task, routes::delete_task))
        .routes(routes!(routes::load_task))
        .routes(routes!(routes::unload_task))
        .routes(routes!(routes::healthz))
        .routes(routes!(routes::metrics))
        .routes(routes!(routes::openapi_json))
}

/// The OpenAPI document `GET /openapi.json` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The API router over `state`.
pub fn router(state: AppState) -> Router {
    let metrics = state.engine.metrics().clone();
    let body_limit = state.limits.max_body_bytes;
    let (routes, doc) = api_routes().split_for_parts();
    routes
        .fallback(routes::not_found)
        .layer(axum::Extension(Arc::new(doc)))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(metrics, track))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting connections,
/// lets every in-flight request finish, and closes the batcher.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let batcher = state.batcher.clone();
    let addr = listener.local_addr().ok();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Io {
            file: addr.map(|a| a.to_string()).unwrap_or_default().into(),
            source,
        })?;
    tokio::task::spawn_blocking(move || batcher.close())
        .await
        .map_err(|e| ServeError::Internal(e.to_string()))?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
