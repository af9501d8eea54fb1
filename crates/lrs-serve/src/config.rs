//! [`ServeConfig`]: everything `lrs serve` needs, from a TOML file and/or flags.
//!
//! ```
//! let cfg = lrs_serve::ServeConfig::from_toml_str(r#"
//!     model = "sentence-transformers/all-MiniLM-L6-v2"
//!     shared = "shared.safetensors"
//!     tasks_dir = "tasks"
//!     cache_bytes = "256MiB"
//!     max_batch_rows = 128
//! "#).unwrap();
//! assert_eq!(cfg.cache_bytes.0, 256 << 20);
//! assert_eq!(cfg.max_inputs, 64); // default
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ServeError};
use crate::limits::TaskLimits;
use crate::store::StoreOptions;

/// A byte count that reads `1048576`, `"1048576"`, `"512KB"`, `"64MiB"`, `"1GiB"`, `"2G"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?}: expected a byte count like 1048576 or 512MiB"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => return Err(format!("{s:?}: unknown unit {other:?}")),
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?}: too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Server configuration. Every field has a default except `model` and `shared`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    /// Base checkpoint: a directory or a hub id (`id` or `id@revision`).
    pub model: String,
    /// The shared file (`shared.safetensors`) fitted to that base: a path, or an object
    /// `s3://bucket/key` (downloaded once at start).
    pub shared: PathBuf,
    /// Registry of `<task_id>.safetensors` files: a directory (created if missing), or an
    /// object-store prefix `s3://bucket/prefix` that any number of replicas share.
    pub tasks_dir: PathBuf,
    /// How long a replica trusts a task version the object store confirmed before asking
    /// again, in ms (`0`: on every request). A task changed or deleted through another
    /// replica is seen within this interval. Local directories are asked on every request.
    pub poll_ms: u64,
    /// Object-store endpoint URL (default: `AWS_ENDPOINT_URL`, else AWS).
    pub store_endpoint: Option<String>,
    /// Object-store region (default: `AWS_REGION`, else `us-east-1`).
    pub store_region: Option<String>,
    /// Allow a plain-HTTP object-store endpoint (default: `AWS_ALLOW_HTTP`).
    pub store_allow_http: Option<bool>,
    /// Longest one object-store request may take, in ms; a store that does not answer in
    /// time is a 503 `store_unavailable`.
    pub store_timeout_ms: u64,
    /// Retries of a failed object-store request, with exponential backoff.
    pub store_retries: usize,
    /// `tokenizer.json` (default: the checkpoint's).
    pub tokenizer: Option<PathBuf>,
    /// Address to listen on.
    pub listen: String,
    /// Byte budget of the loaded-task cache.
    pub cache_bytes: ByteSize,
    /// Most rows (inputs, across requests) in one forward pass.
    pub max_batch_rows: usize,
    /// Longest a request waits for others to join its batch, in milliseconds.
    pub max_wait_ms: u64,
    /// Requests queued for the batcher before new ones are refused with 503.
    pub queue_capacity: usize,
    /// Most inputs in one request.
    pub max_inputs: usize,
    /// Most tokens in one input (special tokens included; capped by the model's positions).
    pub max_tokens: usize,
    /// Largest request body in bytes (uploads included).
    pub max_body_bytes: ByteSize,
    /// Most task files in the registry: an upload that would create one more is refused
    /// (409 `too_many_tasks`); replacing an existing task is always allowed.
    pub max_task_files: usize,
    /// Most sparse non-zeros in one task file, counted from its safetensors header before any
    /// tensor is read (upload: 413, file on disk: 422, `too_many_nonzeros`).
    pub max_task_nnz: u64,
    /// Largest task file: upload bodies (413) and files on disk, checked from the file's
    /// metadata before it is read (422), `task_file_too_large`. Uploads are also bounded by
    /// `max_body_bytes`.
    pub max_task_file_bytes: ByteSize,
    /// glibc malloc arenas for the server process (`0`: glibc's default, eight per core),
    /// set by `lrs serve` before its threads start. Task files are loaded and freed on many
    /// threads, and each arena keeps its own freed memory: fewer arenas hold less beyond the
    /// task cache.
    pub malloc_arenas: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            model: String::new(),
            shared: PathBuf::new(),
            tasks_dir: PathBuf::from("tasks"),
            poll_ms: crate::registry::DEFAULT_POLL.as_millis() as u64,
            store_endpoint: None,
            store_region: None,
            store_allow_http: None,
            store_timeout_ms: StoreOptions::default().timeout_ms,
            store_retries: StoreOptions::default().retries,
            tokenizer: None,
            listen: "127.0.0.1:8080".into(),
            cache_bytes: ByteSize(1 << 30),
            max_batch_rows: 256,
            max_wait_ms: 5,
            queue_capacity: 1024,
            max_inputs: 64,
            max_tokens: 128,
            max_body_bytes: ByteSize(16 << 20),
            max_task_files: 100_000,
            max_task_nnz: 1 << 24,
            max_task_file_bytes: ByteSize(64 << 20),
            malloc_arenas: 2,
        }
    }
}

impl ServeConfig {
    /// Parses TOML (missing keys take their defaults; unknown keys are an error).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| ServeError::Config(e.to_string()))
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text)
            .map_err(|e| ServeError::Config(format!("{}: {e}", path.display())))
    }

    /// The config as TOML (every key, defaults included).
    pub fn to_toml_string(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| ServeError::Config(e.to_string()))
    }

    /// The batch wait as a duration.
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }

    /// Checks the required fields and the limits.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(ServeError::Config(m.to_string()));
        if self.model.is_empty() {
            return bad("`model` is required (a checkpoint directory or hub id)");
        }
        if self.shared.as_os_str().is_empty() {
            return bad("`shared` is required (the shared.safetensors file)");
        }
        self.validate_limits()
    }

    /// Checks that the batching and request limits fit together.
    pub fn validate_limits(&self) -> Result<()> {
        let bad = |m: &str| Err(ServeError::Config(m.to_string()));
        if self.max_batch_rows == 0 || self.max_inputs == 0 || self.max_tokens < 2 {
            return bad("max_batch_rows and max_inputs must be ≥ 1, max_tokens ≥ 2");
        }
        if self.max_inputs > self.max_batch_rows {
            return bad("max_inputs must not exceed max_batch_rows (a request fits one batch)");
        }
        if self.queue_capacity == 0 {
            return bad("queue_capacity must be ≥ 1");
        }
        if self.max_task_file_bytes.0 == 0 {
            return bad("max_task_file_bytes must be ≥ 1");
        }
        if self.store_timeout_ms == 0 {
            return bad("store_timeout_ms must be ≥ 1");
        }
        Ok(())
    }

    /// The polling interval of an object-store registry.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    /// How to reach the object store (when `shared` or `tasks_dir` is an `s3://` location).
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            endpoint: self.store_endpoint.clone(),
            region: self.store_region.clone(),
            allow_http: self.store_allow_http,
            timeout_ms: self.store_timeout_ms,
            retries: self.store_retries,
        }
    }

    /// The limits the task registry enforces.
    pub fn task_limits(&self) -> TaskLimits {
        TaskLimits {
            max_task_files: self.max_task_files,
            max_task_nnz: self.max_task_nnz,
            max_task_file_bytes: self.max_task_file_bytes.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_units() {
        for (s, n) in [
            ("12", 12),
            ("1k", 1000),
            ("3KiB", 3072),
            ("2 MiB", 2 << 20),
            ("1GB", 1_000_000_000),
        ] {
            assert_eq!(s.parse::<ByteSize>(), Ok(ByteSize(n)), "{s}");
        }
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert!("".parse::<ByteSize>().is_err());
    }

    #[test]
    fn toml_defaults_unknown_keys_and_validation() {
        let cfg = ServeConfig::from_toml_str("model = \"m\"\nshared = \"s\"\ncache_bytes = 100")
            .unwrap_or_default();
        assert_eq!(cfg.cache_bytes, ByteSize(100));
        assert!(cfg.validate().is_ok());
        assert!(ServeConfig::from_toml_str("modle = \"m\"").is_err());
        let cfg = ServeConfig {
            max_inputs: 1000,
            ..cfg
        };
        assert!(cfg.validate().is_err());
        assert!(ServeConfig::default().validate().is_err());
        let cfg = ServeConfig::from_toml_str(
            "model = \"m\"\nshared = \"s\"\nmax_task_files = 3\nmax_task_nnz = 10\n\
             max_task_file_bytes = \"2KiB\"\nmalloc_arenas = 0",
        )
        .unwrap_or_default();
        assert_eq!(cfg.malloc_arenas, 0);
        assert_eq!(ServeConfig::default().malloc_arenas, 2);
        assert_eq!(
            cfg.task_limits(),
            TaskLimits {
                max_task_files: 3,
                max_task_nnz: 10,
                max_task_file_bytes: 2048
            }
        );
    }
}
