//! Throughput and latency of the batcher when every batch mixes `N` distinct tasks.
//!
//! Each round submits `rows` single-input requests at once (request `i` in task `i mod N`),
//! so the batcher — configured with `max_batch_rows = rows` — runs them as one forward pass;
//! a round ends when all are answered. Throughput is rows per second of wall time over all
//! rounds; latency is per request, from submission to its answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::{cpu_seconds, Summary};
use lrs_serve::batcher::{Batcher, BatcherConfig, PredictRequest};
use lrs_serve::engine::Engine;
use lrs_serve::error::{Result, ServeError};
use lrs_serve::registry::LoadedTask;

/// One measured scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    /// Scenario name (`base`, `1 task`, `1000 tasks`).
    pub label: String,
    /// Distinct tasks per batch (0: base-only).
    pub distinct_tasks: usize,
    /// Rows per batch asked for.
    pub rows: usize,
    /// Rows per forward pass actually run (mean).
    pub mean_batch_rows: f64,
    /// Measured rounds.
    pub rounds: usize,
    /// Rows per second of wall time.
    pub rows_per_s: f64,
    /// Rows per second of the process's CPU time (user + system), which a machine shared with
    /// other work disturbs far less than wall time.
    pub rows_per_cpu_s: f64,
    /// Per-request latency.
    pub latency: Summary,
}

/// Runs `warmup + rounds` rounds of `rows` requests cycling over `tasks` (`None`: base-only
/// rows) and `inputs` (token rows), on a fresh batcher over `engine`.
pub fn run(
    engine: &Arc<Engine>,
    label: &str,
    tasks: &[Option<Arc<LoadedTask>>],
    inputs: &[Vec<u32>],
    rows: usize,
    rounds: usize,
    warmup: usize,
) -> Result<ThroughputResult> {
    if tasks.is_empty() || inputs.is_empty() || rows == 0 {
        return Err(ServeError::Config(
            "throughput bench needs tasks, inputs and rows".into(),
        ));
    }
    let batcher = Batcher::spawn(
        engine.clone(),
        BatcherConfig {
            max_batch_rows: rows,
            // Long enough for all of a round's requests to arrive, short next to a forward.
            max_wait: Duration::from_millis(20),
            queue_capacity: rows,
        },
    )?;
    let metrics = engine.metrics();
    let mut latencies = Vec::new();
    let (mut wall, mut batches0, mut rows0) = (Duration::ZERO, 0, 0.0);
    let mut cpu = 0.0;
    for round in 0..warmup + rounds {
        if round == warmup {
            batches0 = metrics.batch_rows.count();
            rows0 = metrics.batch_rows.sum();
        }
        let start = Instant::now();
        let cpu_start = cpu_seconds().unwrap_or(0.0);
        let pending = (0..rows)
            .map(|i| {
                let request = PredictRequest {
                    task: tasks[i % tasks.len()].clone(),
                    tokens: vec![inputs[i % inputs.len()].clone()],
                    embeddings: false,
                };
                Ok((Instant::now(), batcher.submit(request)?))
            })
            .collect::<Result<Vec<_>>>()?;
        for (sent, rx) in pending {
            rx.blocking_recv()
                .map_err(|_| ServeError::Internal("request dropped".into()))??;
            if round >= warmup {
                latencies.push(sent.elapsed());
            }
        }
        if round >= warmup {
            wall += start.elapsed();
            cpu += cpu_seconds().unwrap_or(0.0) - cpu_start;
        }
    }
    let batches = metrics.batch_rows.count().saturating_sub(batches0).max(1);
    let distinct = tasks.iter().filter(|t| t.is_some()).count();
    Ok(ThroughputResult {
        label: label.to_string(),
        distinct_tasks: distinct,
        rows,
        mean_batch_rows: (metrics.batch_rows.sum() - rows0) / batches as f64,
        rounds,
        rows_per_s: (rows * rounds) as f64 / wall.as_secs_f64().max(1e-9),
        rows_per_cpu_s: (rows * rounds) as f64 / cpu.max(1e-9),
        latency: Summary::of(&latencies),
    })
}
