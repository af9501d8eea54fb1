//! [`Location`]: a local path or an `s3://bucket/prefix` URL, as `--tasks` and `--shared`
//! take them.

use std::path::{Path, PathBuf};

use crate::error::{Result, ServeError};

/// Where a task registry or a file lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory or file.
    Dir(PathBuf),
    /// An S3-compatible bucket and a key prefix (no leading or trailing `/`; may be empty).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix (a directory-like path inside the bucket), or the whole key.
        prefix: String,
    },
}

impl Location {
    /// `s3://bucket[/prefix]` is a bucket location, anything else a local path.
    pub fn parse(text: &str) -> Result<Self> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Ok(Location::Dir(PathBuf::from(text)));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ServeError::Config(format!(
                "{text:?}: an object-store location is s3://BUCKET[/PREFIX]"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(ServeError::Config(format!(
                "{text:?}: `.` and `..` are not allowed in an object key prefix"
            )));
        }
        Ok(Location::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// [`Self::parse`] of a path as the config holds it (a non-UTF-8 path is local).
    pub fn of_path(path: &Path) -> Result<Self> {
        match path.to_str() {
            Some(text) => Self::parse(text),
            None => Ok(Location::Dir(path.to_path_buf())),
        }
    }

    /// Whether this is an object-store location.
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(p) => write!(f, "{}", p.display()),
            Location::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Location::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buckets_prefixes_and_paths() {
        let s3 = |b: &str, p: &str| Location::S3 {
            bucket: b.into(),
            prefix: p.into(),
        };
        assert_eq!(Location::parse("s3://b").ok(), Some(s3("b", "")));
        assert_eq!(Location::parse("s3://b/").ok(), Some(s3("b", "")));
        assert_eq!(Location::parse("s3://b/x/y/").ok(), Some(s3("b", "x/y")));
        assert_eq!(
            Location::parse("tasks").ok(),
            Some(Location::Dir("tasks".into()))
        );
        for bad in ["s3://", "s3:///p", "s3://b/../x", "s3://b/x/./y"] {
            assert!(Location::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(s3("b", "p/q").to_string(), "s3://b/p/q");
        assert!(s3("b", "").is_remote() && !Location::Dir("d".into()).is_remote());
    }
}
