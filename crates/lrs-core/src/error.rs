//! The error type of `lrs-core`.

use std::path::PathBuf;

/// Everything that can go wrong in the linear solver and its file formats.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter's name as the user knows it.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor in a data or model file is missing, of the wrong dtype or of the wrong shape.
    #[error("{path}: tensor `{tensor}`: {reason}")]
    BadTensor {
        /// The file at fault.
        path: PathBuf,
        /// The tensor at fault.
        tensor: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be parsed as safetensors at all.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Malformed {
        /// The file at fault.
        path: PathBuf,
        /// The parser's message.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The privacy layer rejected a parameter or failed to calibrate.
    #[error(transparent)]
    Privacy(#[from] lrs_privacy::PrivacyError),
    /// A linear-algebra step failed (singular system, failed decomposition).
    #[error("numerical failure in {step}: {reason}")]
    Numerical {
        /// The step that failed.
        step: &'static str,
        /// Why.
        reason: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, CoreError>;

/// Returns an [`CoreError::InvalidParameter`] unless `ok`.
pub(crate) fn ensure(ok: bool, name: &'static str, reason: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidParameter {
            name,
            reason: reason(),
        })
    }
}
