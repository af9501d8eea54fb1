//! Serving many personalized tasks from one base model (docs/DESIGN.md §Serving).
//!
//! One process holds the frozen base BERT, the shared low-rank factor and a registry of task
//! files ([`TaskRegistry`]: lazy loading, reload on change, an LRU cache bounded in bytes). The
//! registry reads task files from a [`store`]: a local directory, or an S3-compatible object
//! store shared by many replicas. A [`Batcher`] gathers requests for any mix of tasks into one forward pass
//! ([`Engine::forward`], rows carry their task), and [`http`] puts an axum API in front.
//!
//! ```no_run
//! use std::sync::Arc;
//! use lrs_serve::{AppState, ServeConfig};
//!
//! # async fn demo() -> lrs_serve::Result<()> {
//! let cfg = ServeConfig::from_file("serve.toml".as_ref())?;
//! let state = AppState::from_config(&cfg)?;
//! // Score two texts in task "alice"'s personalized model, without HTTP:
//! let task = lrs_serve::TaskId::parse("alice")?;
//! let engine = state.engine.clone();
//! let request = lrs_serve::PredictRequest {
//!     task: engine.resolve(Some(&task))?,
//!     tokens: engine.tokenize(&["a good movie".into(), "a bad one".into()])?,
//!     embeddings: false,
//! };
//! let prediction = state.batcher.predict(request).await?;
//! println!("{:?}", prediction.scores);
//! // Or serve the HTTP API until Ctrl-C:
//! let listener = tokio::net::TcpListener::bind(&cfg.listen).await
//!     .map_err(|source| lrs_serve::ServeError::Io { file: cfg.listen.clone().into(), source })?;
//! lrs_serve::http::serve(listener, state, lrs_serve::http::shutdown_signal()).await
//! # }
//! ```
#![warn(missing_docs)]

pub mod batcher;
pub mod config;
pub mod engine;
pub mod error;
pub mod http;
pub mod limits;
pub mod load_slots;
pub mod lru;
pub mod metrics;
pub mod registry;
pub mod store;
pub mod task_id;
pub mod text;

pub use batcher::{Batcher, BatcherConfig, PredictRequest, Prediction};
pub use config::{ByteSize, ServeConfig};
pub use engine::{BatchOutput, Engine, Row};
pub use error::{Result, ServeError};
pub use http::{router, serve, AppState};
pub use limits::TaskLimits;
pub use metrics::Metrics;
pub use registry::{LoadedTask, TaskInfo, TaskRegistry};
pub use task_id::TaskId;
pub use text::TextEncoder;
