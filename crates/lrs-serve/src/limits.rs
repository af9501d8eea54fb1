//! [`TaskLimits`]: what the task registry refuses before it reads or allocates anything a task
//! file merely claims.
//!
//! Order of checks for a task file (upload or disk):
//! 1. its size — from the upload body's length, or from the open file's metadata — against
//!    `max_task_file_bytes`, before a byte of it is read from disk (and the read itself stops
//!    at the limit, should the file grow meanwhile);
//! 2. its safetensors header against `max_task_nnz` ([`count_nnz`]): the `safetensors` crate
//!    checks the header length against the buffer (≤ 100 MB and within the bytes held), every
//!    tensor's shape × dtype against its byte range (checked multiplication), and the ranges
//!    against the buffer's length, so nothing sized by a claim outlives the check;
//! 3. only then the full parse and validation (`lrs_nn`), whose tensors are views of bytes
//!    already held.
//!
//! A new task file beyond `max_task_files` is refused at upload; files placed in the
//! directory by hand are still served (the count bounds what clients can create).

use std::path::Path;

use lrs_nn::{FileError, NnError};
use safetensors::SafeTensors;

use crate::error::{Result, ServeError};
use crate::task_id::TaskId;

/// Suffix of the index tensor of a sparse part (`<module>.lrs_idx`, shape `[nnz]`).
const INDEX_SUFFIX: &str = ".lrs_idx";

/// Limits on task files (see the module docs for when each is checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskLimits {
    /// Most task files an upload may bring the registry to.
    pub max_task_files: usize,
    /// Most sparse non-zeros in one task file.
    pub max_task_nnz: u64,
    /// Largest task file in bytes.
    pub max_task_file_bytes: u64,
}

impl Default for TaskLimits {
    /// No limits.
    fn default() -> Self {
        Self {
            max_task_files: usize::MAX,
            max_task_nnz: u64::MAX,
            max_task_file_bytes: u64::MAX,
        }
    }
}

impl TaskLimits {
    /// Refuses a task file of `bytes` bytes over `max_task_file_bytes`.
    pub fn check_file_size(&self, id: &TaskId, bytes: u64, uploaded: bool) -> Result<()> {
        if bytes > self.max_task_file_bytes {
            return Err(ServeError::TaskFileTooLarge {
                task: id.to_string(),
                bytes,
                max: self.max_task_file_bytes,
                uploaded,
            });
        }
        Ok(())
    }

    /// Parses the safetensors header of `bytes` (the whole file, already size-checked) and
    /// refuses it if its sparse parts exceed `max_task_nnz`. Returns the non-zero count.
    /// `file` names the file in errors.
    pub fn check_header(
        &self,
        id: &TaskId,
        file: &Path,
        bytes: &[u8],
        uploaded: bool,
    ) -> Result<u64> {
        let nnz = count_nnz(bytes).map_err(|reason| ServeError::InvalidTaskFile {
            task: id.to_string(),
            source: NnError::File(FileError::Malformed {
                file: file.to_path_buf(),
                reason,
            }),
        })?;
        if nnz > self.max_task_nnz {
            return Err(ServeError::TooManyNonZeros {
                task: id.to_string(),
                nnz,
                max: self.max_task_nnz,
                uploaded,
            });
        }
        Ok(nnz)
    }
}

/// Sparse non-zeros a task file's header declares: the sum of the element counts of its
/// `*.lrs_idx` tensors. Only the header is parsed; no tensor data is touched.
pub fn count_nnz(bytes: &[u8]) -> std::result::Result<u64, String> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
    let mut nnz = 0u64;
    for (name, info) in header.tensors() {
        if !name.ends_with(INDEX_SUFFIX) {
            continue;
        }
        let count = info
            .shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| format!("{name}: element count overflows"))?;
        nnz = nnz
            .checked_add(count)
            .ok_or_else(|| "non-zero count overflows".to_string())?;
    }
    Ok(nnz)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn file(tensors: &[(&str, usize)]) -> Vec<u8> {
        let data: Vec<Vec<u8>> = tensors.iter().map(|(_, n)| vec![0u8; 4 * n]).collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .zip(&data)
            .map(|((name, n), d)| {
                let view =
                    safetensors::tensor::TensorView::new(safetensors::Dtype::U32, vec![*n], d);
                (name.to_string(), view.expect("view"))
            })
            .collect();
        safetensors::serialize(views, Some(HashMap::new())).expect("serialize")
    }

    #[test]
    fn counts_index_tensors_only() {
        let bytes = file(&[
            ("a.lrs_idx", 7),
            ("a.lrs_val", 7),
            ("b.lrs_idx", 5),
            ("x", 3),
        ]);
        assert_eq!(count_nnz(&bytes), Ok(12));
    }

    #[test]
    fn refuses_over_limit_and_malformed_headers() {
        let id = TaskId::parse("t").expect("id");
        let limits = TaskLimits {
            max_task_nnz: 11,
            ..TaskLimits::default()
        };
        let bytes = file(&[("a.lrs_idx", 7), ("b.lrs_idx", 5)]);
        let e = limits.check_header(&id, Path::new("t"), &bytes, true).err();
        assert!(
            matches!(
                e,
                Some(ServeError::TooManyNonZeros {
                    nnz: 12,
                    max: 11,
                    ..
                })
            ),
            "{e:?}"
        );
        // A header claiming more bytes than the buffer holds: refused by the parser, before
        // anything sized by the claim is allocated.
        let mut lying = u64::MAX.to_le_bytes().to_vec();
        lying.extend_from_slice(b"{}");
        let e = limits.check_header(&id, Path::new("t"), &lying, true).err();
        assert!(
            matches!(e, Some(ServeError::InvalidTaskFile { .. })),
            "{e:?}"
        );
        let mut short = 1000u64.to_le_bytes().to_vec();
        short.extend_from_slice(b"{}");
        assert!(count_nnz(&short).is_err());
        // Shapes must match the byte ranges: a `[2^40]` index tensor over 4 bytes is refused.
        let header =
            r#"{"a.lrs_idx":{"dtype":"U32","shape":[1099511627776],"data_offsets":[0,4]}}"#;
        let mut claim = (header.len() as u64).to_le_bytes().to_vec();
        claim.extend_from_slice(header.as_bytes());
        claim.extend_from_slice(&[0; 4]);
        assert!(count_nnz(&claim).is_err());
        assert!(limits.check_file_size(&id, u64::MAX, false).is_ok());
        let small = TaskLimits {
            max_task_file_bytes: 10,
            ..limits
        };
        assert!(matches!(
            small.check_file_size(&id, 11, false),
            Err(ServeError::TaskFileTooLarge {
                uploaded: false,
                ..
            })
        ));
    }
}
