//! [`TaskRegistry`]: the task files of a [`TaskStore`] (a local directory or an object-store
//! prefix) and the LRU cache of loaded ones, bounded in bytes.
//!
//! A task is loaded on first use and validated against the loaded base and shared file
//! (`BertModel::load_task_bytes`). Lookups ask the store for the task's current [`Version`]
//! (`(size, mtime, inode)` of a file, the ETag of an object): a changed version reloads the
//! task, a vanished file makes it unknown. A local directory is asked on every lookup (one
//! `stat`); a remote store is asked when the polling interval has passed since the cached
//! version was last confirmed ([`TaskRegistry::set_poll_interval`]), and always on a miss — so
//! a replica serves a task changed or deleted by another replica for at most that interval.
//!
//! Each load knows exactly which bytes it validated ([`LoadedTask::sha256`]): the version is
//! taken from the same open handle or GET response the bytes are read from, and the bytes are
//! validated and hashed from memory. At most one load per CPU runs at once ([`LoadSlots`]).
//! A load that overlapped an upload or deletion of the same registry is served but not cached,
//! so an older version never replaces a newer one in the cache.
//!
//! Loaded tasks are handed out as `Arc`s: evicting, reloading or deleting a task never
//! disturbs a request that already holds it (memory may then briefly exceed the budget by the
//! tasks in flight).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use lrs_nn::{BertModel, SharedFactor, TaskDelta};
use serde::Serialize;

use crate::error::{Result, ServeError};
use crate::limits::TaskLimits;
use crate::load_slots::LoadSlots;
use crate::lru::ByteLru;
use crate::metrics::{inc, Metrics};
use crate::store::{LocalDir, TaskStore, Version};
use crate::task_id::TaskId;

/// A validated task, ready for the forward pass.
#[derive(Debug)]
pub struct LoadedTask {
    /// Its id.
    pub id: TaskId,
    /// Its parameters, on the model's device and in its dtype.
    pub delta: TaskDelta,
    /// Bytes counted against the cache budget ([`TaskDelta::resident_bytes`]).
    pub bytes: u64,
    /// Lowercase hex sha256 of the task file bytes this was validated from: which version
    /// of the task computes with it.
    pub sha256: String,
    /// Size of that file.
    pub file_bytes: u64,
    version: Version,
    /// When the store last confirmed `version` as current (ms since the registry opened).
    confirmed_ms: AtomicU64,
}

/// One task file, as `GET /v1/tasks` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TaskInfo {
    /// The task id.
    pub id: String,
    /// Size of the task file in the store.
    pub file_bytes: u64,
    /// Resident bytes if loaded now.
    pub loaded_bytes: Option<u64>,
    /// sha256 of the loaded version, if loaded now.
    pub loaded_sha256: Option<String>,
}

/// Cache occupancy.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CacheStats {
    /// Loaded tasks.
    pub loaded: usize,
    /// Bytes they hold.
    pub bytes: u64,
    /// The byte budget.
    pub budget: u64,
}

/// The task store plus the byte-bounded LRU cache of loaded tasks.
pub struct TaskRegistry {
    store: Arc<dyn TaskStore>,
    model: Arc<BertModel>,
    shared: Arc<SharedFactor>,
    metrics: Arc<Metrics>,
    cache: Mutex<ByteLru<TaskId, Arc<LoadedTask>>>,
    /// Serializes uploads and deletions so a cached version always matches the cached content.
    writes: Mutex<()>,
    /// Bumped before and after every upload and deletion: a load that saw it change did not
    /// run alone, and is not cached.
    generation: AtomicU64,
    /// How long a remote store's confirmation of a cached version holds, in ms.
    poll_ms: AtomicU64,
    opened: Instant,
    /// Bounds concurrent loads (one per CPU).
    load_slots: LoadSlots,
    limits: RwLock<TaskLimits>,
}

impl std::fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("store", &self.store.location())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Whether a task is admitted by a load (cached unless an upload or deletion overlapped it,
/// as the generation it started at tells) or by an upload (always cached).
#[derive(Debug, Clone, Copy)]
enum Admission {
    Loaded { generation: u64 },
    Written,
}

/// Which bytes a task was validated from, and when the store was asked for them.
struct Source {
    version: Version,
    sha256: String,
    file_bytes: u64,
    asked_ms: u64,
}

/// Concurrent task loads from a remote store, at least: a load there mostly waits on the
/// network (a GET's round trip), so as many loads as CPUs would leave the CPUs idle while
/// misses queue; each slot holds at most one task file and its parsed form.
pub const REMOTE_LOAD_SLOTS: usize = 16;

/// How many task loads may run at once: one per CPU from a local directory (a load is parsing
/// and validation), at least [`REMOTE_LOAD_SLOTS`] from a remote store.
fn load_slots_for(remote: bool) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    if remote {
        cpus.max(REMOTE_LOAD_SLOTS)
    } else {
        cpus
    }
}

/// Default polling interval of a remote store.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

impl TaskRegistry {
    /// A registry over the directory `dir` (created if missing) whose tasks are validated
    /// against `model` and `shared`, holding at most `budget_bytes` of loaded tasks.
    pub fn new(
        dir: &Path,
        model: Arc<BertModel>,
        shared: Arc<SharedFactor>,
        budget_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let store = Arc::new(LocalDir::open(dir)?);
        Ok(Self::with_store(
            store,
            model,
            shared,
            budget_bytes,
            metrics,
        ))
    }

    /// A registry over any task store (polling a remote one every [`DEFAULT_POLL`]).
    pub fn with_store(
        store: Arc<dyn TaskStore>,
        model: Arc<BertModel>,
        shared: Arc<SharedFactor>,
        budget_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics
            .cache_budget_bytes
            .store(budget_bytes, Ordering::Relaxed);
        let store_is_remote = store.remote();
        Self {
            store,
            model,
            shared,
            metrics,
            cache: Mutex::new(ByteLru::new(budget_bytes)),
            writes: Mutex::new(()),
            generation: AtomicU64::new(0),
            poll_ms: AtomicU64::new(DEFAULT_POLL.as_millis() as u64),
            opened: Instant::now(),
            load_slots: LoadSlots::new(load_slots_for(store_is_remote)),
            limits: RwLock::new(TaskLimits::default()),
        }
    }

    /// How long a remote store's confirmation of a cached task version is trusted before
    /// the store is asked again (`0`: ask on every lookup). Local directories are always
    /// asked.
    pub fn set_poll_interval(&self, poll: Duration) {
        self.poll_ms.store(
            poll.as_millis().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    /// The polling interval ([`Self::set_poll_interval`]).
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_ms.load(Ordering::Relaxed))
    }

    /// The task store.
    pub fn store(&self) -> &Arc<dyn TaskStore> {
        &self.store
    }

    fn now_ms(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// The limits enforced on task files (default: none).
    pub fn limits(&self) -> TaskLimits {
        *self.limits.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the limits enforced on task files from now on.
    pub fn set_limits(&self, limits: TaskLimits) {
        *self.limits.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// Where task `id`'s file lives (a path, or the object's `s3://` URL).
    pub fn path(&self, id: &TaskId) -> PathBuf {
        self.store.path(id)
    }

    fn cache(&self) -> MutexGuard<'_, ByteLru<TaskId, Arc<LoadedTask>>> {
        // A panic while holding the lock cannot leave the LRU half-updated in a way that
        // matters more than refusing service forever would: keep going with its state.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, cache: &ByteLru<TaskId, Arc<LoadedTask>>) {
        self.metrics
            .loaded_bytes
            .store(cache.used(), Ordering::Relaxed);
        self.metrics
            .loaded_tasks
            .store(cache.len() as u64, Ordering::Relaxed);
    }

    /// Task `id`, loaded and validated: from the cache when its version is unchanged (or,
    /// for a remote store, was confirmed within the polling interval), else read now (first
    /// use, evicted, or changed in the store).
    pub fn get(&self, id: &TaskId) -> Result<Arc<LoadedTask>> {
        let poll_ms = self.poll_ms.load(Ordering::Relaxed);
        let cached = self.cache().get(id).cloned();
        if let Some(t) = &cached {
            let age = self
                .now_ms()
                .saturating_sub(t.confirmed_ms.load(Ordering::Relaxed));
            if self.store.remote() && poll_ms > 0 && age < poll_ms {
                inc(&self.metrics.cache_hits);
                return Ok(t.clone());
            }
        }
        // A confirmation dates from when the store was asked, not answered: a version changed
        // in between is then still dropped within the polling interval of the change.
        let asked = self.now_ms();
        let Some(version) = self.store.head(id)? else {
            self.unload(id);
            return Err(ServeError::UnknownTask(id.to_string()));
        };
        if let Some(t) = cached.as_ref().filter(|t| t.version == version) {
            t.confirmed_ms.fetch_max(asked, Ordering::Relaxed);
            inc(&self.metrics.cache_hits);
            return Ok(t.clone());
        }
        inc(&self.metrics.cache_misses);
        if cached.is_some() {
            inc(&self.metrics.cache_reloads);
        }
        // At most `load_slots` loads at once: each holds a file's bytes and its parsed task
        // until admitted, so this bounds memory beyond the cache budget during a load storm.
        let _slot = self.load_slots.acquire();
        // Another request may have loaded this version while this one waited for a slot.
        if let Some(t) = self.cache().get(id).filter(|t| t.version == version) {
            return Ok(t.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let path = self.path(id);
        let limits = self.limits();
        let asked = self.now_ms();
        let Some(fetched) = self.store.read(id, limits.max_task_file_bytes)? else {
            self.unload(id);
            return Err(ServeError::UnknownTask(id.to_string()));
        };
        limits.check_file_size(id, fetched.version.len, false)?;
        limits.check_file_size(id, fetched.bytes.len() as u64, false)?;
        limits.check_header(id, &path, &fetched.bytes, false)?;
        let delta = self.validate(id, &path, &fetched.bytes)?;
        let sha256 = lrs_nn::files::sha256_hex(&fetched.bytes);
        let file_bytes = fetched.bytes.len() as u64;
        let source = Source {
            version: fetched.version,
            sha256,
            file_bytes,
            asked_ms: asked,
        };
        self.admit(id, delta, source, Admission::Loaded { generation })
    }

    /// Loads task `id` now if it is not loaded or changed (explicit preloading); same as
    /// [`Self::get`].
    pub fn load(&self, id: &TaskId) -> Result<Arc<LoadedTask>> {
        self.get(id)
    }

    /// Drops task `id` from the cache (its file stays). Returns whether it was loaded.
    pub fn unload(&self, id: &TaskId) -> bool {
        let mut cache = self.cache();
        let was = cache.remove(id).is_some();
        self.publish(&cache);
        was
    }

    /// Validates `bytes` as a task file for the loaded base and shared file, then installs it
    /// as `<id>.safetensors` in the store (one atomic write) and caches it. Nothing is written if validation
    /// fails. Refused before anything else: a file over `max_task_file_bytes`, a header
    /// declaring more than `max_task_nnz` non-zeros, a new task beyond `max_task_files`.
    pub fn install(&self, id: &TaskId, bytes: &[u8]) -> Result<Arc<LoadedTask>> {
        let limits = self.limits();
        limits.check_file_size(id, bytes.len() as u64, true)?;
        let path = self.path(id);
        limits.check_header(id, &path, bytes, true)?;
        let _writing = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        if self.store.head(id)?.is_none() {
            let count = self.store.list()?.len();
            if count >= limits.max_task_files {
                return Err(ServeError::TooManyTasks {
                    count,
                    max: limits.max_task_files,
                });
            }
        }
        let delta = self.validate(id, &path, bytes)?;
        let budget = self.cache().budget();
        let size = delta.resident_bytes();
        if size > budget {
            return Err(ServeError::TaskTooLarge {
                task: id.to_string(),
                bytes: size,
                budget,
            });
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        let asked = self.now_ms();
        let version = self.store.write(id, bytes);
        let version = match version {
            Ok(v) => v,
            Err(e) => {
                // The write may or may not have happened: forget the cached version.
                self.unload_written(id);
                return Err(e);
            }
        };
        let sha256 = lrs_nn::files::sha256_hex(bytes);
        let source = Source {
            version,
            sha256,
            file_bytes: bytes.len() as u64,
            asked_ms: asked,
        };
        self.admit(id, delta, source, Admission::Written)
    }

    /// Deletes task `id`'s file from the store and drops it from the cache.
    pub fn remove(&self, id: &TaskId) -> Result<()> {
        let _writing = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        let removed = self.store.delete(id);
        self.unload_written(id);
        match removed {
            Ok(true) => Ok(()),
            Ok(false) => Err(ServeError::UnknownTask(id.to_string())),
            Err(e) => Err(e),
        }
    }

    /// Drops task `id` from the cache after a write or deletion, bumping the generation
    /// under the cache lock so no load that overlapped the change caches its older version.
    fn unload_written(&self, id: &TaskId) {
        let mut cache = self.cache();
        cache.remove(id);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.publish(&cache);
    }

    /// Every task file in the store, sorted by id, with its loaded size if loaded.
    pub fn list(&self) -> Result<Vec<TaskInfo>> {
        let mut out = self.store.list()?;
        out.sort();
        let cache = self.cache();
        Ok(out
            .into_iter()
            .map(|(id, file_bytes)| TaskInfo {
                loaded_bytes: cache.bytes_of(&id),
                loaded_sha256: cache.peek(&id).map(|t| t.sha256.clone()),
                id: id.to_string(),
                file_bytes,
            })
            .collect())
    }

    /// Ids of the loaded tasks, least recently used first.
    pub fn loaded(&self) -> Vec<TaskId> {
        self.cache().keys_lru_first().cloned().collect()
    }

    /// Cache occupancy now.
    pub fn stats(&self) -> CacheStats {
        let cache = self.cache();
        CacheStats {
            loaded: cache.len(),
            bytes: cache.used(),
            budget: cache.budget(),
        }
    }

    /// Validates a task file's bytes against the base and shared file (no cache involved).
    fn validate(&self, id: &TaskId, path: &Path, bytes: &[u8]) -> Result<TaskDelta> {
        let start = Instant::now();
        let delta = self
            .model
            .load_task_bytes(path, bytes, &self.shared)
            .map_err(|source| ServeError::InvalidTaskFile {
                task: id.to_string(),
                source,
            })?;
        self.metrics
            .task_load_seconds
            .observe(start.elapsed().as_secs_f64());
        Ok(delta)
    }

    fn admit(
        &self,
        id: &TaskId,
        delta: TaskDelta,
        source: Source,
        admission: Admission,
    ) -> Result<Arc<LoadedTask>> {
        let bytes = delta.resident_bytes();
        let task = Arc::new(LoadedTask {
            id: id.clone(),
            delta,
            bytes,
            sha256: source.sha256,
            file_bytes: source.file_bytes,
            version: source.version,
            confirmed_ms: AtomicU64::new(source.asked_ms),
        });
        let mut cache = self.cache();
        match admission {
            Admission::Loaded { generation }
                if generation != self.generation.load(Ordering::SeqCst) =>
            {
                // An upload or deletion overlapped this load: the version read was current
                // during this request, but may be older than what the cache holds now.
                if bytes > cache.budget() {
                    return Err(ServeError::TaskTooLarge {
                        task: id.to_string(),
                        bytes,
                        budget: cache.budget(),
                    });
                }
                return Ok(task);
            }
            Admission::Loaded { .. } => {}
            Admission::Written => {
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
        }
        match cache.insert(id.clone(), task.clone(), bytes) {
            Ok(gone) => {
                let evicted = gone.iter().filter(|g| &g.key != id).count() as u64;
                self.metrics
                    .cache_evictions
                    .fetch_add(evicted, Ordering::Relaxed);
                self.publish(&cache);
                Ok(task)
            }
            Err(_) => Err(ServeError::TaskTooLarge {
                task: id.to_string(),
                bytes,
                budget: cache.budget(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_stores_load_more_tasks_at_once_than_local_directories() {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(load_slots_for(false), cpus);
        assert!(load_slots_for(true) >= REMOTE_LOAD_SLOTS);
        assert!(load_slots_for(true) >= load_slots_for(false));
    }
}
