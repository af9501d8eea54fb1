//! Where task files live: the [`TaskStore`] backends behind a
//! [`TaskRegistry`](crate::TaskRegistry).
//!
//! - [`LocalDir`]: a directory of `<task_id>.safetensors` files (one machine).
//! - [`ObjectTasks`]: objects `<prefix>/<task_id>.safetensors` in an object store
//!   (S3-compatible through the `object_store` crate), shared by any number of replicas.
//!
//! Every version of a task file has a [`Version`]: `(size, inode, mtime)` for a file, the
//! ETag for an object. The registry caches loaded tasks by version and asks the store again
//! when its polling interval has passed (or at once, for a local directory), so a replica
//! sees a task changed or deleted by another one within that interval.
//!
//! Writes are whole-object: a file is written to a temporary name and renamed, an object PUT
//! becomes visible all at once, so no reader ever sees a torn task file.
//!
//! ```
//! use lrs_serve::store::Location;
//!
//! let loc = Location::parse("s3://tasks-bucket/prod/v1").unwrap();
//! assert_eq!(
//!     loc,
//!     Location::S3 { bucket: "tasks-bucket".into(), prefix: "prod/v1".into() }
//! );
//! assert_eq!(loc.to_string(), "s3://tasks-bucket/prod/v1");
//! assert!(matches!(Location::parse("runs/x/tasks").unwrap(), Location::Dir(_)));
//! assert!(Location::parse("s3:///no-bucket").is_err());
//! ```

pub mod bridge;
pub mod local_dir;
pub mod location;
pub mod object;
pub mod s3;

use std::path::PathBuf;

pub use local_dir::LocalDir;
pub use location::Location;
pub use object::ObjectTasks;
pub use s3::{fetch_object, open, StoreOptions};

use crate::error::Result;
use crate::task_id::TaskId;

/// Identity of one version of a task file, as the store reports it cheaply (no read of
/// the content): two equal versions have the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    /// Size of the file or object in bytes.
    pub len: u64,
    /// What else names the version: `inode:mtime` of a file, the ETag of an object.
    pub tag: String,
}

/// A task file read from the store: its version and its bytes.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The version these bytes are (taken from the same handle or response).
    pub version: Version,
    /// The content; empty when `version.len` exceeded the reader's size limit (never read).
    pub bytes: Vec<u8>,
}

/// A place that holds task files by task id. Calls block (the registry runs them on
/// blocking threads); a store that cannot be reached answers
/// [`ServeError::Store`](crate::ServeError::Store), never a hang.
pub trait TaskStore: Send + Sync + std::fmt::Debug {
    /// Where it is, for messages and `/healthz` (`tasks/`, `s3://bucket/prefix`).
    fn location(&self) -> String;

    /// The name of task `id`'s file, for error messages (a path or an object URL).
    fn path(&self, id: &TaskId) -> PathBuf;

    /// The current version of task `id`, `None` if it has no file.
    fn head(&self, id: &TaskId) -> Result<Option<Version>>;

    /// Task `id`'s file: its version and bytes, read only if its size is at most
    /// `max_bytes` (else `bytes` is empty); `None` if it has no file.
    fn read(&self, id: &TaskId, max_bytes: u64) -> Result<Option<Fetched>>;

    /// Replaces (or creates) task `id`'s file with `bytes` as one atomic write; returns
    /// the new version.
    fn write(&self, id: &TaskId, bytes: &[u8]) -> Result<Version>;

    /// Deletes task `id`'s file. Returns whether there was one.
    fn delete(&self, id: &TaskId) -> Result<bool>;

    /// Every task file: its id and size, in no particular order.
    fn list(&self) -> Result<Vec<(TaskId, u64)>>;

    /// Whether the store answers now (`/healthz`).
    fn check(&self) -> Result<()>;

    /// Whether a version seen a moment ago is still worth asking about: `false` for a
    /// local directory (asking is one `stat`, so every lookup asks), `true` for a remote
    /// store (lookups within the polling interval trust the cached version).
    fn remote(&self) -> bool;
}
