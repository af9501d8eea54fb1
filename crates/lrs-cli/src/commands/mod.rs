//! One module per top-level subcommand.

pub mod bench;
pub mod bench_load;
pub mod bench_planted;
pub mod bench_serve;
pub mod bench_train;
pub mod data_report;
pub mod eval;
pub mod export;
pub mod import;
pub mod inspect;
pub mod linear;
pub mod personalize;
pub mod predict;
pub mod privacy;
pub mod quickstart;
pub mod report;
pub mod report_plot;
pub mod run_files;
pub mod serve;
pub mod split;
pub mod train;
pub mod train_plots;
