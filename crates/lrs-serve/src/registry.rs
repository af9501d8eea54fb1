//! [`TaskRegistry`]: the directory of task files (`<task_id>.safetensors`) and the LRU cache of
//! loaded ones, bounded in bytes.
//!
//! A task is loaded on first use and validated against the loaded base and shared file
//! (`BertModel::load_task_bytes`). Every lookup stats the file: a changed
//! `(size, mtime, inode)` reloads it (uploads replace files by rename, so the inode always
//! changes), a vanished file makes the task unknown.
//!
//! Each load knows exactly which bytes it validated ([`LoadedTask::sha256`]): the file is
//! opened, its stamp taken from the open handle, and its bytes read, validated and hashed from
//! memory, so the stamp always describes the checked bytes (for writers that replace files by
//! rename, as uploads do). At most one load per CPU runs at once ([`LoadSlots`]).
//!
//! Loaded tasks are handed out as `Arc`s: evicting, reloading or deleting a task never
//! disturbs a request that already holds it (memory may then briefly exceed the budget by the
//! tasks in flight).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime};

use lrs_nn::{BertModel, NnError, SharedFactor, TaskDelta};
use serde::Serialize;

use crate::error::{Result, ServeError};
use crate::limits::TaskLimits;
use crate::load_slots::LoadSlots;
use crate::lru::ByteLru;
use crate::metrics::{inc, Metrics};
use crate::task_bytes::task_bytes;
use crate::task_id::TaskId;

/// Identity of a file's content as far as the file system tells cheaply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

/// A validated task, ready for the forward pass.
#[derive(Debug)]
pub struct LoadedTask {
    /// Its id.
    pub id: TaskId,
    /// Its parameters, on the model's device and in its dtype.
    pub delta: TaskDelta,
    /// Bytes counted against the cache budget ([`task_bytes`]).
    pub bytes: u64,
    /// Lowercase hex sha256 of the task file bytes this was validated from: which version
    /// of the task computes with it.
    pub sha256: String,
    /// Size of that file.
    pub file_bytes: u64,
    stamp: FileStamp,
}

/// A task file read for loading: the stamp of the handle it was read through and its bytes
/// (validated from memory, so the stamp always describes the bytes that were checked).
struct Opened {
    stamp: FileStamp,
    bytes: Vec<u8>,
}

/// One task file, as `GET /v1/tasks` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TaskInfo {
    /// The task id.
    pub id: String,
    /// Size of the task file on disk.
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

/// The task directory plus the byte-bounded LRU cache of loaded tasks.
pub struct TaskRegistry {
    dir: PathBuf,
    model: Arc<BertModel>,
    shared: Arc<SharedFactor>,
    metrics: Arc<Metrics>,
    cache: Mutex<ByteLru<TaskId, Arc<LoadedTask>>>,
    /// Serializes uploads and deletions so a cached stamp always matches the cached content.
    writes: Mutex<()>,
    /// Bounds concurrent loads (one per CPU).
    load_slots: LoadSlots,
    limits: RwLock<TaskLimits>,
}

impl std::fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("dir", &self.dir)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn io(file: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        file: file.to_path_buf(),
        source,
    }
}

impl TaskRegistry {
    /// A registry over `dir` (created if missing) whose tasks are validated against `model`
    /// and `shared`, holding at most `budget_bytes` of loaded tasks.
    pub fn new(
        dir: &Path,
        model: Arc<BertModel>,
        shared: Arc<SharedFactor>,
        budget_bytes: u64,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        // Temp files of uploads interrupted by a crash (never visible as tasks).
        lrs_nn::files::atomic::remove_stale_temps(dir, lrs_nn::files::atomic::STALE_TEMP_AGE)
            .map_err(|e| ServeError::Model(NnError::File(e)))?;
        metrics
            .cache_budget_bytes
            .store(budget_bytes, Ordering::Relaxed);
        Ok(Self {
            dir: dir.to_path_buf(),
            model,
            shared,
            metrics,
            cache: Mutex::new(ByteLru::new(budget_bytes)),
            writes: Mutex::new(()),
            load_slots: LoadSlots::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ),
            limits: RwLock::new(TaskLimits::default()),
        })
    }

    /// The limits enforced on task files (default: none).
    pub fn limits(&self) -> TaskLimits {
        *self.limits.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the limits enforced on task files from now on.
    pub fn set_limits(&self, limits: TaskLimits) {
        *self.limits.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// The registry directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where task `id`'s file lives.
    pub fn path(&self, id: &TaskId) -> PathBuf {
        self.dir.join(id.file_name())
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

    /// Task `id`, loaded and validated: from the cache when its file is unchanged, else read
    /// now (first use, evicted, or changed on disk).
    pub fn get(&self, id: &TaskId) -> Result<Arc<LoadedTask>> {
        let path = self.path(id);
        let stamp = match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => FileStamp::of(&m),
            Ok(_) => return Err(ServeError::UnknownTask(id.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.unload(id);
                return Err(ServeError::UnknownTask(id.to_string()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let changed = {
            let mut cache = self.cache();
            match cache.get(id) {
                Some(t) if t.stamp == stamp => {
                    inc(&self.metrics.cache_hits);
                    return Ok(t.clone());
                }
                Some(_) => true,
                None => false,
            }
        };
        inc(&self.metrics.cache_misses);
        if changed {
            inc(&self.metrics.cache_reloads);
        }
        // At most `load_slots` loads at once: each holds a file's bytes and its parsed task
        // until admitted, so this bounds memory beyond the cache budget during a load storm.
        let _slot = self.load_slots.acquire();
        // Another request may have loaded this version while this one waited for a slot.
        if let Some(t) = self.cache().get(id).filter(|t| t.stamp == stamp) {
            return Ok(t.clone());
        }
        let opened = self.open(id, &path)?;
        self.limits()
            .check_header(id, &path, &opened.bytes, false)?;
        let delta = self.validate(id, &path, &opened.bytes)?;
        let sha256 = lrs_nn::files::sha256_hex(&opened.bytes);
        let file_bytes = opened.bytes.len() as u64;
        self.admit(id, delta, opened.stamp, sha256, file_bytes)
    }

    /// Opens task `id`'s file, checks its size from the handle's metadata, and reads it
    /// (never past the size limit).
    fn open(&self, id: &TaskId, path: &Path) -> Result<Opened> {
        let unknown = || ServeError::UnknownTask(id.to_string());
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.unload(id);
                return Err(unknown());
            }
            Err(e) => return Err(io(path)(e)),
        };
        let meta = file.metadata().map_err(io(path))?;
        if !meta.is_file() {
            return Err(unknown());
        }
        let limits = self.limits();
        limits.check_file_size(id, meta.len(), false)?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        (&mut file)
            .take(limits.max_task_file_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io(path))?;
        limits.check_file_size(id, bytes.len() as u64, false)?;
        Ok(Opened {
            stamp: FileStamp::of(&meta),
            bytes,
        })
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
    /// as `<id>.safetensors` (atomic write) and caches it. Nothing is written if validation
    /// fails. Refused before anything else: a file over `max_task_file_bytes`, a header
    /// declaring more than `max_task_nnz` non-zeros, a new task beyond `max_task_files`.
    pub fn install(&self, id: &TaskId, bytes: &[u8]) -> Result<Arc<LoadedTask>> {
        let limits = self.limits();
        limits.check_file_size(id, bytes.len() as u64, true)?;
        let path = self.path(id);
        limits.check_header(id, &path, bytes, true)?;
        let _writing = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        if !path.is_file() {
            let count = self.count_files()?;
            if count >= limits.max_task_files {
                return Err(ServeError::TooManyTasks {
                    count,
                    max: limits.max_task_files,
                });
            }
        }
        let delta = self.validate(id, &path, bytes)?;
        let budget = self.cache().budget();
        let size = task_bytes(&delta);
        if size > budget {
            return Err(ServeError::TaskTooLarge {
                task: id.to_string(),
                bytes: size,
                budget,
            });
        }
        lrs_nn::files::atomic::write_atomic(&path, bytes)
            .map_err(|e| ServeError::Model(NnError::File(e)))?;
        let stamp = FileStamp::of(&std::fs::metadata(&path).map_err(io(&path))?);
        let sha256 = lrs_nn::files::sha256_hex(bytes);
        self.admit(id, delta, stamp, sha256, bytes.len() as u64)
    }

    /// Task files in the directory now.
    fn count_files(&self) -> Result<usize> {
        let mut count = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let is_task = entry
                .file_name()
                .to_str()
                .and_then(TaskId::from_file_name)
                .is_some();
            if is_task && entry.file_type().is_ok_and(|t| t.is_file()) {
                count += 1;
            }
        }
        Ok(count)
    }

    /// Deletes task `id`'s file and drops it from the cache.
    pub fn remove(&self, id: &TaskId) -> Result<()> {
        let _writing = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path(id);
        let removed = std::fs::remove_file(&path);
        self.unload(id);
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ServeError::UnknownTask(id.to_string()))
            }
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Every task file in the directory, sorted by id, with its loaded size if loaded.
    pub fn list(&self) -> Result<Vec<TaskInfo>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let Some(id) = entry.file_name().to_str().and_then(TaskId::from_file_name) else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() {
                out.push((id, meta.len()));
            }
        }
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
        stamp: FileStamp,
        sha256: String,
        file_bytes: u64,
    ) -> Result<Arc<LoadedTask>> {
        let bytes = task_bytes(&delta);
        let task = Arc::new(LoadedTask {
            id: id.clone(),
            delta,
            bytes,
            sha256,
            file_bytes,
            stamp,
        });
        let mut cache = self.cache();
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
