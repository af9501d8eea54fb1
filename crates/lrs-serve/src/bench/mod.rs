//! `lrs bench serve`'s measurements (docs/DESIGN.md §Serving): throughput and latency of
//! mixed-task batches vs base-only ([`throughput`]), task load time vs task files on disk and
//! loaded ([`load`]), memory per loaded task, in process or against a running server
//! ([`http_client`]); and `lrs bench load`'s load test with verified answers ([`stress`]).

pub mod http_client;
pub mod load;
pub mod setup;
pub mod stats;
pub mod stress;
pub mod texts;
pub mod throughput;

pub use stats::{rss_bytes, Summary};
