//! The file formats of docs/FORMATS.md: [`shared_factor`] (`shared.safetensors`) and
//! [`task_delta`] (`<task_id>.safetensors`), written atomically ([`atomic`]) and read strictly.

pub mod atomic;
pub mod shared_factor;
pub mod summary;
pub mod task_delta;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::safetensors::Load;
use candle_core::{DType, Device, Tensor};
use safetensors::SafeTensors;
use sha2::{Digest, Sha256};

use crate::error::FileError;

/// The format version this build reads and writes.
pub const FORMAT_VERSION: &str = "1";

/// What a loaded shared or task file must agree with: the loaded base model (and shared file).
#[derive(Debug, Clone, Default)]
pub struct LoadCheck {
    /// sha256 (hex) of the base weight file bytes.
    pub base_sha256: String,
    /// sha256 (hex) of the shared file bytes (checked by task files only).
    pub shared_sha256: Option<String>,
    /// Expected rank `r` (`None`: take the file's).
    pub rank: Option<usize>,
    /// Adapted modules and their `(out, in)` shapes.
    pub modules: BTreeMap<String, (usize, usize)>,
    /// Hidden size `h` a binary head (`head.weight [1, h]`) must match (`None`: any).
    pub hidden: Option<usize>,
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, FileError> {
    Ok(sha256_hex(&read_bytes(path)?))
}

pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>, FileError> {
    std::fs::read(path).map_err(|source| FileError::Io {
        file: path.to_path_buf(),
        source,
    })
}

/// The errors of loading a file.
pub type FileResult<T> = Result<T, FileError>;

/// The loading skeleton of both model files ([`shared_factor::SharedFactor`] and
/// [`task_delta::TaskDelta`]): read the bytes, parse the safetensors header, check
/// `format`/`version` and the base model's hash against the [`LoadCheck`], then the file's own
/// checks. Values land on the given device in the given dtype.
pub trait ModelFile: sealed::FileBody {
    /// Reads and validates the file at `path`.
    fn load(path: &Path, check: &LoadCheck, device: &Device, dtype: DType) -> FileResult<Self> {
        Self::from_bytes(path, &read_bytes(path)?, check, device, dtype)
    }

    /// [`Self::load`] on the file's bytes already in memory; `path` only names the file in
    /// errors.
    fn from_bytes(
        path: &Path,
        bytes: &[u8],
        check: &LoadCheck,
        device: &Device,
        dtype: DType,
    ) -> FileResult<Self> {
        let p = Parsed::new(path, bytes)?;
        p.check_format(Self::FORMAT)?;
        p.check_hash("base_sha256", &check.base_sha256)?;
        Self::from_parsed(&p, check, device, dtype)
    }
}

impl<T: sealed::FileBody> ModelFile for T {}

/// What each model file adds to the skeleton (not implementable outside this crate).
#[doc(hidden)]
pub mod sealed {
    use super::*;

    /// A model file's `format` and its own checks and tensors.
    pub trait FileBody: Sized {
        /// The `format` metadata.
        const FORMAT: &'static str;
        /// The checks and tensors past the skeleton's (format, version, base hash).
        fn from_parsed(p: &Parsed, check: &LoadCheck, dev: &Device, dt: DType) -> FileResult<Self>;
    }
}

/// A parsed safetensors buffer with its metadata, tied to the file it came from for errors
/// (the skeleton's hand-over to each file's own checks; not for use outside this crate).
#[doc(hidden)]
pub struct Parsed<'a> {
    pub path: &'a Path,
    /// The whole file.
    pub bytes: &'a [u8],
    pub st: SafeTensors<'a>,
    pub meta: HashMap<String, String>,
}

impl<'a> Parsed<'a> {
    /// Parses `bytes`; any parser complaint becomes [`FileError::Malformed`].
    pub fn new(path: &'a Path, bytes: &'a [u8]) -> Result<Self, FileError> {
        let malformed = |e: safetensors::SafeTensorError| FileError::Malformed {
            file: path.to_path_buf(),
            reason: e.to_string(),
        };
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(malformed)?;
        let meta = header.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(bytes).map_err(malformed)?;
        Ok(Self {
            path,
            bytes,
            st,
            meta,
        })
    }

    /// Checks `format` and `version`.
    pub fn check_format(&self, expected: &'static str) -> Result<(), FileError> {
        let found = self.meta.get("format");
        if found.map(String::as_str) != Some(expected) {
            return Err(FileError::WrongFormat {
                file: self.path.to_path_buf(),
                expected,
                found: found.cloned(),
            });
        }
        let version = self.meta.get("version");
        if version.map(String::as_str) != Some(FORMAT_VERSION) {
            return Err(FileError::UnsupportedVersion {
                file: self.path.to_path_buf(),
                found: version.cloned(),
                supported: FORMAT_VERSION,
            });
        }
        Ok(())
    }

    /// A required metadata value.
    pub fn meta(&self, key: &str) -> Result<&str, FileError> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| self.bad_meta(key, "missing"))
    }

    /// A required metadata value parsed with `FromStr`.
    pub fn meta_parse<T: std::str::FromStr>(&self, key: &str) -> Result<T, FileError>
    where
        T::Err: std::fmt::Display,
    {
        self.meta(key)?
            .parse()
            .map_err(|e: T::Err| self.bad_meta(key, &e.to_string()))
    }

    /// The `rank` metadata, checked against the rank the loading model expects (if any).
    pub fn rank_matching(&self, expected: Option<usize>) -> Result<usize, FileError> {
        let rank: usize = self.meta_parse("rank")?;
        if expected.is_some_and(|r| r != rank) {
            return Err(self.bad_meta("rank", &format!("{rank}, model expects {expected:?}")));
        }
        Ok(rank)
    }

    pub fn bad_meta(&self, key: &str, reason: &str) -> FileError {
        FileError::BadMetadata {
            file: self.path.to_path_buf(),
            key: key.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Checks a recorded hash against the loaded one.
    pub fn check_hash(&self, key: &'static str, actual: &str) -> Result<(), FileError> {
        let recorded = self.meta(key)?;
        if recorded != actual {
            return Err(FileError::HashMismatch {
                file: self.path.to_path_buf(),
                what: key,
                recorded: recorded.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Loads a tensor onto `device`, checking its dtype is one of `allowed`.
    pub fn tensor(
        &self,
        name: &str,
        allowed: &[DType],
        allowed_words: &'static str,
        device: &Device,
    ) -> Result<Tensor, FileError> {
        let view = self.st.tensor(name).map_err(|_| FileError::MissingTensor {
            file: self.path.to_path_buf(),
            tensor: name.to_string(),
        })?;
        let dtype_err = || FileError::DType {
            file: self.path.to_path_buf(),
            tensor: name.to_string(),
            expected: allowed_words,
            found: format!("{:?}", view.dtype()),
        };
        let dtype = DType::try_from(view.dtype()).map_err(|_| dtype_err())?;
        if !allowed.contains(&dtype) {
            return Err(dtype_err());
        }
        view.load(device)
            .map_err(|source| self.tensor_err(name, source))
    }

    pub fn tensor_err(&self, name: &str, source: candle_core::Error) -> FileError {
        FileError::Tensor {
            file: self.path.to_path_buf(),
            tensor: name.to_string(),
            source: Box::new(source),
        }
    }

    pub fn shape_err(&self, name: &str, expected: String, found: &[usize]) -> FileError {
        FileError::Shape {
            file: self.path.to_path_buf(),
            tensor: name.to_string(),
            expected,
            found: found.to_vec(),
        }
    }

    /// Checks the binary head (`head.weight [1, h]`, `head.bias [1]`, both or neither; with
    /// `bias_alone`, also `head.bias` alone: an intercept-only head) among the loaded
    /// `head.*` tensors. Serving and training stack every task's head row by row, so any other
    /// shape would fail the forward pass or shift rows onto other tasks.
    pub fn check_head(
        &self,
        head: &BTreeMap<String, Tensor>,
        hidden: Option<usize>,
        bias_alone: bool,
    ) -> Result<(), FileError> {
        const WEIGHT: &str = crate::bert::binary_head::HEAD_WEIGHT;
        const BIAS: &str = crate::bert::binary_head::HEAD_BIAS;
        let check_bias = |b: &Tensor| {
            if b.dims() == [1] {
                Ok(())
            } else {
                Err(self.shape_err(BIAS, "[1]".into(), b.dims()))
            }
        };
        match (head.get(WEIGHT), head.get(BIAS)) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(self.missing(BIAS)),
            (None, Some(b)) if bias_alone => check_bias(b),
            (None, Some(_)) => Err(self.missing(WEIGHT)),
            (Some(w), Some(b)) => {
                let fits = match hidden {
                    Some(hidden) => w.dims() == [1, hidden],
                    None => matches!(w.dims(), &[1, h] if h >= 1),
                };
                if !fits {
                    let want = hidden.map_or("[1, h]".to_string(), |h| format!("[1, {h}]"));
                    return Err(self.shape_err(WEIGHT, want, w.dims()));
                }
                check_bias(b)
            }
        }
    }

    fn missing(&self, tensor: &str) -> FileError {
        FileError::MissingTensor {
            file: self.path.to_path_buf(),
            tensor: tensor.to_string(),
        }
    }

    /// Tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.st.names().into_iter().map(String::from).collect();
        names.sort();
        names
    }
}

/// Serializes named tensors + metadata to safetensors bytes.
pub(crate) fn serialize(
    path: &Path,
    tensors: Vec<(String, Tensor)>,
    meta: HashMap<String, String>,
) -> Result<Vec<u8>, FileError> {
    let tensors = tensors
        .into_iter()
        .map(|(n, t)| {
            t.contiguous()
                .map(|t| (n.clone(), t))
                .map_err(|source| FileError::Tensor {
                    file: path.to_path_buf(),
                    tensor: n,
                    source: Box::new(source),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(tensors, Some(meta)).map_err(|e| FileError::Malformed {
        file: path.to_path_buf(),
        reason: format!("serialize: {e}"),
    })?;
    canonical_header(path, bytes)
}

/// Rewrites a safetensors buffer's JSON header with every object's keys sorted (safetensors
/// writes `__metadata__` from a `HashMap`, in a different order in every process), so equal
/// tensors and metadata always give equal bytes — and equal sha256, which task files record
/// for their shared file. The header stays padded with spaces to a multiple of 8 bytes.
fn canonical_header(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, FileError> {
    let bad = |reason: String| FileError::Malformed {
        file: path.to_path_buf(),
        reason: format!("serialize: {reason}"),
    };
    let n = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| bad("no header".into()))? as usize;
    let header = bytes
        .get(8..8 + n)
        .ok_or_else(|| bad("torn header".into()))?;
    let mut h: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(e.to_string()))?;
    if let Some(meta) = h.get_mut("__metadata__") {
        let sorted: BTreeMap<String, String> =
            serde_json::from_value(meta.take()).map_err(|e| bad(e.to_string()))?;
        *meta = serde_json::to_value(sorted).map_err(|e| bad(e.to_string()))?;
    }
    let mut text = serde_json::to_vec(&h).map_err(|e| bad(e.to_string()))?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`2026-11-28T14:25:00Z`).
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
