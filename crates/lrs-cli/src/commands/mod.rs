//! One module per top-level subcommand.

pub mod bench;
pub mod linear;
pub mod privacy;
pub mod quickstart;
pub mod private_linear;
pub mod sweep;
