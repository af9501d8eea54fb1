//! One module per top-level subcommand.

pub mod bench;
pub mod inspect;
pub mod linear;
pub mod privacy;
pub mod private_linear;
pub mod quickstart;
pub mod sweep;
