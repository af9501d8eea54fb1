//! [`TaskId`]: a validated task id, `[A-Za-z0-9_.-]{1,128}` and never `.` or `..`.
//!
//! The id becomes the file name `<id>.safetensors` inside the registry directory. With only
//! those characters it holds no separator, so the one way it could leave the directory is as a
//! `.`/`..` component — which `<id>.safetensors` never is, but we refuse both anyway so that no
//! id is ever read as "this directory" or "the parent" by any later code.

use std::fmt;

use crate::error::{Result, ServeError};

/// Longest allowed id, in bytes (all allowed characters are ASCII).
pub const MAX_TASK_ID_LEN: usize = 128;

/// Extension of task files in the registry.
pub const TASK_FILE_SUFFIX: &str = ".safetensors";

/// A task id that is safe to use as a file name in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(String);

impl TaskId {
    /// Validates `id`.
    pub fn parse(id: &str) -> Result<Self> {
        let bad = |reason| ServeError::InvalidTaskId {
            id: id.chars().take(200).collect(),
            reason,
        };
        if id.is_empty() {
            return Err(bad("empty"));
        }
        if id.len() > MAX_TASK_ID_LEN {
            return Err(bad("longer than 128 characters"));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(bad("only A-Z, a-z, 0-9, '_', '.' and '-' are allowed"));
        }
        if id == "." || id == ".." {
            return Err(bad("'.' and '..' are not task ids"));
        }
        Ok(Self(id.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<id>.safetensors`.
    pub fn file_name(&self) -> String {
        format!("{}{TASK_FILE_SUFFIX}", self.0)
    }

    /// The id of a registry file name (`alice.safetensors` → `alice`), if it is a valid one.
    pub fn from_file_name(name: &str) -> Option<Self> {
        name.strip_suffix(TASK_FILE_SUFFIX)
            .and_then(|id| Self::parse(id).ok())
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        for ok in ["alice", "A-b_c.9", "...", ".hidden", &"x".repeat(128)] {
            assert!(TaskId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_path_tricks_and_bad_lengths() {
        for bad in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "a\\b",
            "/abs",
            "a\0b",
            "é",
            "a b",
            "%2e%2e",
            &"x".repeat(129),
        ] {
            let e = TaskId::parse(bad).err();
            assert!(
                matches!(e, Some(ServeError::InvalidTaskId { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn file_names_round_trip() {
        let id = TaskId::parse("bob.v2").ok();
        let name = id.as_ref().map(TaskId::file_name);
        assert_eq!(name.as_deref(), Some("bob.v2.safetensors"));
        assert_eq!(TaskId::from_file_name("bob.v2.safetensors"), id);
        assert_eq!(TaskId::from_file_name(".safetensors"), None);
        assert_eq!(TaskId::from_file_name("bob.tmp"), None);
    }
}
