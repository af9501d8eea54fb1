//! Task load time vs how many task files are on disk and how many are already loaded, and
//! memory per loaded task.
//!
//! A registry directory is filled with `on_disk` task files — hard links to a few real task
//! files (copies where links are impossible), so 10 000 files cost no disk space; the
//! content of a file does not depend on its name. Then tasks are loaded one by one into an
//! empty cache, timing each cold load (file read + parse + validation + conversion).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::{rss_bytes, Summary};
use lrs_serve::engine::Engine;
use lrs_serve::error::{Result, ServeError};
use lrs_serve::metrics::Metrics;
use lrs_serve::registry::TaskRegistry;
use lrs_serve::task_id::TaskId;

/// Load times for the loads made while `loaded_from..loaded_to` tasks were already loaded.
#[derive(Debug, Clone, Serialize)]
pub struct LoadBin {
    /// Task files in the directory.
    pub on_disk: usize,
    /// Tasks already loaded at the first load of the bin.
    pub loaded_from: usize,
    /// Tasks already loaded after the last load of the bin, exclusive.
    pub loaded_to: usize,
    /// Per-load latency.
    pub latency: Summary,
}

/// Memory held once `loaded` tasks are in the cache.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryPoint {
    /// Tasks loaded.
    pub loaded: usize,
    /// Cache bytes per task (what the budget counts).
    pub cache_bytes_per_task: f64,
    /// Growth of the process's resident memory per task, if measurable.
    pub rss_bytes_per_task: Option<f64>,
}

/// Fills `dir` with `on_disk` files `l{i}.safetensors`, each a hard link (or copy) of
/// `templates[i % templates.len()]`.
pub fn fill_registry(dir: &Path, templates: &[PathBuf], on_disk: usize) -> Result<()> {
    let io = |file: &Path| {
        let file = file.to_path_buf();
        move |source| ServeError::Io { file, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if templates.is_empty() {
        return Err(ServeError::Config("no template task files".into()));
    }
    for i in 0..on_disk {
        let target = dir.join(format!("l{i}.safetensors"));
        if target.exists() {
            continue;
        }
        let src = &templates[i % templates.len()];
        if std::fs::hard_link(src, &target).is_err() {
            std::fs::copy(src, &target).map_err(io(&target))?;
        }
    }
    Ok(())
}

/// Loads `l0 … l{n-1}` (n = `min(on_disk, max_loaded)`) from `dir` into a fresh registry of
/// the engine's model, timing each; returns one [`LoadBin`] per consecutive pair of `bins`
/// edges (e.g. `[0, 10, 100, 1000]`) and the memory point at the end.
pub fn load_times(
    engine: &Engine,
    dir: &Path,
    on_disk: usize,
    max_loaded: usize,
    bins: &[usize],
) -> Result<(Vec<LoadBin>, MemoryPoint)> {
    let registry = TaskRegistry::new(
        dir,
        engine.model().clone(),
        engine.shared().clone(),
        u64::MAX,
        Arc::new(Metrics::default()),
    )?;
    let n = on_disk.min(max_loaded);
    let rss0 = rss_bytes();
    let mut times: Vec<Duration> = Vec::with_capacity(n);
    for i in 0..n {
        let id = TaskId::parse(&format!("l{i}"))?;
        let start = Instant::now();
        registry.get(&id)?;
        times.push(start.elapsed());
    }
    let rss1 = rss_bytes();
    let stats = registry.stats();
    let out = bins
        .windows(2)
        .filter(|w| w[0] < n)
        .map(|w| LoadBin {
            on_disk,
            loaded_from: w[0],
            loaded_to: w[1].min(n),
            latency: Summary::of(&times[w[0]..w[1].min(n)]),
        })
        .collect();
    let per = |b: f64| b / n.max(1) as f64;
    let memory = MemoryPoint {
        loaded: stats.loaded,
        cache_bytes_per_task: per(stats.bytes as f64),
        rss_bytes_per_task: rss0.zip(rss1).map(|(a, b)| per(b.saturating_sub(a) as f64)),
    };
    Ok((out, memory))
}
