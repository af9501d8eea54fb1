//! `lrs-bench`: the serving benchmarks and their synthetic fixtures, kept out of the serving
//! library so that `lrs-serve` holds only the cache, batcher, registry and HTTP API.
//!
//! * `lrs bench serve`'s measurements (docs/DESIGN.md §Serving): throughput and latency of
//!   mixed-task batches vs base-only ([`throughput`]), task load time vs task files on disk and
//!   loaded ([`load`]), memory per loaded task, in process or against a running server
//!   ([`http_client`]), all on a [`setup`] of real files;
//! * `lrs bench load`'s load test with verified answers ([`stress`]);
//! * [`synth`]: shared and task files with random numbers for any model, and [`testing`]: a
//!   complete tiny serving setup in a temporary directory, for tests and smoke runs.
#![warn(missing_docs)]

pub mod http_client;
pub mod load;
pub mod setup;
pub mod stats;
pub mod stress;
pub mod synth;
pub mod testing;
pub mod texts;
pub mod throughput;

pub use stats::{rss_bytes, Summary};
