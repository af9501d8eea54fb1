//! [`Metrics`]: counters, gauges and histograms of the server, rendered in the Prometheus text
//! exposition format (version 0.0.4) by [`Metrics::render`].

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A cumulative histogram with fixed upper bounds (`le`), plus sum and count.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    state: Mutex<HistogramState>,
}

#[derive(Debug, Clone, Default)]
struct HistogramState {
    /// Per bucket (not cumulative), plus one for `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// A histogram with the given increasing upper bounds.
    pub fn new(bounds: Vec<f64>) -> Self {
        let counts = vec![0; bounds.len() + 1];
        Self {
            bounds,
            state: Mutex::new(HistogramState {
                counts,
                ..HistogramState::default()
            }),
        }
    }

    /// Latency buckets from 0.5 ms to 30 s.
    pub fn seconds() -> Self {
        Self::new(vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ])
    }

    /// Powers of two from 1 to 4096 (batch sizes, tasks per batch).
    pub fn counts() -> Self {
        Self::new((0..13).map(|i| f64::from(1u32 << i)).collect())
    }

    /// Records one observation.
    pub fn observe(&self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        if let Ok(mut s) = self.state.lock() {
            s.counts[i] += 1;
            s.sum += v;
            s.count += 1;
        }
    }

    /// Number of observations so far.
    pub fn count(&self) -> u64 {
        self.state.lock().map(|s| s.count).unwrap_or(0)
    }

    /// Sum of observations so far.
    pub fn sum(&self) -> f64 {
        self.state.lock().map(|s| s.sum).unwrap_or(0.0)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let Ok(s) = self.state.lock().map(|s| s.clone()) else {
            return;
        };
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&s.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", s.count);
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), s.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), s.count);
    }
}

/// Everything `GET /metrics` reports. Shared (`Arc`) by the HTTP layer, the batcher and the
/// task registry.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Rows per forward pass.
    pub batch_rows: Histogram,
    /// Distinct tasks per forward pass (base-only rows count as one task).
    pub batch_tasks: Histogram,
    /// Seconds per forward pass (tokens in → scores out).
    pub forward_seconds: Histogram,
    /// Seconds to read and validate one task file.
    pub task_load_seconds: Histogram,
    /// Task lookups served from the cache.
    pub cache_hits: AtomicU64,
    /// Task lookups that had to read the file (first use, eviction or change on disk).
    pub cache_misses: AtomicU64,
    /// Tasks evicted to stay within the byte budget.
    pub cache_evictions: AtomicU64,
    /// Misses caused by a changed file (a subset of misses).
    pub cache_reloads: AtomicU64,
    /// Bytes held by loaded tasks.
    pub loaded_bytes: AtomicU64,
    /// Number of loaded tasks.
    pub loaded_tasks: AtomicU64,
    /// The cache's byte budget.
    pub cache_budget_bytes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Mutex::default(),
            latency: Mutex::default(),
            batch_rows: Histogram::counts(),
            batch_tasks: Histogram::counts(),
            forward_seconds: Histogram::seconds(),
            task_load_seconds: Histogram::seconds(),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_evictions: AtomicU64::new(0),
            cache_reloads: AtomicU64::new(0),
            loaded_bytes: AtomicU64::new(0),
            loaded_tasks: AtomicU64::new(0),
            cache_budget_bytes: AtomicU64::new(0),
        }
    }
}

/// Adds one to a counter.
pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Records one finished HTTP request: its route template (`/v1/tasks/{id}`), status and
    /// latency.
    pub fn record_request(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_string(), status)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            l.entry(route.to_string())
                .or_insert_with(Histogram::seconds)
                .observe(seconds);
        }
    }

    /// Requests recorded so far for `route` with `status`.
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .ok()
            .and_then(|r| r.get(&(route.to_string(), status)).copied())
            .unwrap_or(0)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        head(
            &mut out,
            "lrs_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "lrs_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        head(
            &mut out,
            "lrs_http_request_duration_seconds",
            "histogram",
            "HTTP request latency by route.",
        );
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                h.render(
                    &mut out,
                    "lrs_http_request_duration_seconds",
                    &format!("route=\"{}\"", escape(route)),
                );
            }
        }
        for (name, help, h) in [
            ("lrs_batch_rows", "Rows per forward pass.", &self.batch_rows),
            (
                "lrs_batch_tasks",
                "Distinct tasks per forward pass.",
                &self.batch_tasks,
            ),
            (
                "lrs_forward_seconds",
                "Seconds per forward pass.",
                &self.forward_seconds,
            ),
            (
                "lrs_task_load_seconds",
                "Seconds to read and validate a task file.",
                &self.task_load_seconds,
            ),
        ] {
            head(&mut out, name, "histogram", help);
            h.render(&mut out, name, "");
        }
        for (name, kind, help, v) in [
            (
                "lrs_task_cache_hits_total",
                "counter",
                "Task lookups served from the cache.",
                &self.cache_hits,
            ),
            (
                "lrs_task_cache_misses_total",
                "counter",
                "Task lookups that read the task file.",
                &self.cache_misses,
            ),
            (
                "lrs_task_cache_evictions_total",
                "counter",
                "Tasks evicted to stay within the byte budget.",
                &self.cache_evictions,
            ),
            (
                "lrs_task_cache_reloads_total",
                "counter",
                "Tasks reloaded because their file changed.",
                &self.cache_reloads,
            ),
            (
                "lrs_task_cache_loaded_bytes",
                "gauge",
                "Bytes held by loaded tasks.",
                &self.loaded_bytes,
            ),
            (
                "lrs_task_cache_loaded_tasks",
                "gauge",
                "Loaded tasks.",
                &self.loaded_tasks,
            ),
            (
                "lrs_task_cache_budget_bytes",
                "gauge",
                "Byte budget of the task cache.",
                &self.cache_budget_bytes,
            ),
        ] {
            head(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

/// Escapes a label value (`\`, `"`, newline).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_counters() {
        let m = Metrics::default();
        m.batch_rows.observe(3.0);
        m.batch_rows.observe(1.0);
        m.record_request("/v1/predict", 200, 0.002);
        inc(&m.cache_hits);
        let text = m.render();
        assert!(text.contains("lrs_batch_rows_bucket{le=\"1\"} 1"), "{text}");
        assert!(text.contains("lrs_batch_rows_bucket{le=\"4\"} 2"), "{text}");
        assert!(text.contains("lrs_batch_rows_count 2"), "{text}");
        assert!(text.contains("lrs_http_requests_total{route=\"/v1/predict\",status=\"200\"} 1"));
        assert!(text.contains("lrs_task_cache_hits_total 1"));
        assert_eq!(m.requests("/v1/predict", 200), 1);
    }
}
