//! The linear harness's safetensors files.
//!
//! Data file (`lrs linear generate`): f64 tensors `x [t,m,d]`, `y [t,m]`, optional `x_test
//! [t,m',d]`, `y_test [t,m']`, optional truth `u_star [d,r]`, `w_star [t,r]`, `b_star [t,d]`;
//! metadata `format = "lrs-linear-data"` plus the generating parameters.
//! Model file (`lrs linear fit --out`): `u [d,r]`, `w [t,r]`, `b [t,d]`,
//! `format = "lrs-linear-model"`. Readers check names, dtypes, shapes and finiteness and name
//! the tensor at fault; writers are atomic (temp file, fsync, rename).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::error::{CoreError, Result};
use crate::linalg::{mat_from_row_major, mat_to_row_major};
use crate::problem::{Instance, LrsParams, TaskData};
use crate::samples::Samples;

/// Format tag of data files.
pub const DATA_FORMAT: &str = "lrs-linear-data";
/// Format tag of model files.
pub const MODEL_FORMAT: &str = "lrs-linear-model";

/// Writes an instance; `metadata` is stored beside the format tag.
pub fn write_instance(
    path: &Path,
    inst: &Instance,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let tr = &inst.train;
    let (t, m, d) = (tr.tasks, tr.samples, tr.dim);
    let mut tensors: Vec<(String, Vec<usize>, &[f64])> = vec![
        ("x".into(), vec![t, m, d], &tr.x[..]),
        ("y".into(), vec![t, m], &tr.y),
    ];
    if let Some(te) = &inst.test {
        tensors.push(("x_test".into(), vec![t, te.samples, d], &te.x[..]));
        tensors.push(("y_test".into(), vec![t, te.samples], &te.y));
    }
    let u_flat;
    if let Some(truth) = &inst.truth {
        let r = truth.rank();
        u_flat = mat_to_row_major(&truth.u);
        tensors.push(("u_star".into(), vec![d, r], &u_flat));
        tensors.push(("w_star".into(), vec![t, r], &truth.w));
        tensors.push(("b_star".into(), vec![t, d], &truth.b));
    }
    write_f64_tensors(path, &tensors, DATA_FORMAT, metadata)
}

/// Writes fitted parameters `u`, `w`, `b`.
pub fn write_params(
    path: &Path,
    params: &LrsParams,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let (d, r, t) = (params.dim(), params.rank(), params.tasks());
    let u = mat_to_row_major(&params.u);
    let tensors: Vec<(String, Vec<usize>, &[f64])> = vec![
        ("u".into(), vec![d, r], &u),
        ("w".into(), vec![t, r], &params.w),
        ("b".into(), vec![t, d], &params.b),
    ];
    write_f64_tensors(path, &tensors, MODEL_FORMAT, metadata)
}

/// A data file's contents.
#[derive(Debug, Clone)]
pub struct DataFile {
    /// The instance.
    pub instance: Instance,
    /// The file's metadata.
    pub metadata: HashMap<String, String>,
}

/// Reads and validates a data file. The file is mapped, not read: the features (`x`, `x_test`)
/// stay in the mapping, viewed in place ([`Samples`]), and the smaller tensors are decoded
/// from it.
pub fn read_instance(path: &Path) -> Result<DataFile> {
    let map = Arc::new(map_file(path)?);
    instance_from(path, &map, Some(&map))
}

/// [`read_instance`] on a data file's bytes already in memory; `path` only names the file in
/// errors.
pub fn instance_from_bytes(path: &Path, bytes: &[u8]) -> Result<DataFile> {
    instance_from(path, bytes, None)
}

/// A data file's instance from `bytes`; where they are `map`'s, the features stay in it.
fn instance_from(path: &Path, bytes: &[u8], map: Option<&Arc<memmap2::Mmap>>) -> Result<DataFile> {
    let file = OpenFile::parse(path, bytes)?;
    file.check_format(DATA_FORMAT)?;
    let (x_shape, x) = file.f64_samples("x", 3, map)?;
    let (t, m, d) = (x_shape[0], x_shape[1], x_shape[2]);
    let y = file.f64_tensor("y", 2)?;
    file.expect_shape("y", &y.shape, &[t, m])?;
    let bad = |tensor: &str, reason: String| CoreError::BadTensor {
        path: path.into(),
        tensor: tensor.into(),
        reason,
    };
    let train = TaskData::new(t, m, d, x, y.data).map_err(|e| bad("x", e.to_string()))?;
    let test = match (file.has("x_test"), file.has("y_test")) {
        (false, false) => None,
        (true, true) => {
            let (xt_shape, xt) = file.f64_samples("x_test", 3, map)?;
            let mt = xt_shape[1];
            file.expect_shape("x_test", &xt_shape, &[t, mt, d])?;
            let yt = file.f64_tensor("y_test", 2)?;
            file.expect_shape("y_test", &yt.shape, &[t, mt])?;
            Some(TaskData::new(t, mt, d, xt, yt.data).map_err(|e| bad("x_test", e.to_string()))?)
        }
        (has_x, _) => {
            let missing = if has_x { "y_test" } else { "x_test" };
            return Err(bad(
                missing,
                "missing (x_test and y_test come together)".into(),
            ));
        }
    };
    let truth_names = ["u_star", "w_star", "b_star"];
    let present = truth_names.iter().filter(|n| file.has(n)).count();
    let truth = match present {
        0 => None,
        3 => {
            let u = file.f64_tensor("u_star", 2)?;
            let r = u.shape[1];
            file.expect_shape("u_star", &u.shape, &[d, r])?;
            let w = file.f64_tensor("w_star", 2)?;
            file.expect_shape("w_star", &w.shape, &[t, r])?;
            let b = file.f64_tensor("b_star", 2)?;
            file.expect_shape("b_star", &b.shape, &[t, d])?;
            Some(LrsParams {
                u: mat_from_row_major(&u.data, d, r),
                w: w.data,
                b: b.data,
            })
        }
        _ => {
            let missing = truth_names
                .iter()
                .find(|n| !file.has(n))
                .copied()
                .unwrap_or("u_star");
            return Err(bad(
                missing,
                "missing (u_star, w_star and b_star come together)".into(),
            ));
        }
    };
    Ok(DataFile {
        instance: Instance { train, test, truth },
        metadata: file.metadata,
    })
}

/// Reads and validates a model file.
pub fn read_params(path: &Path) -> Result<LrsParams> {
    params_from_bytes(path, &map_file(path)?)
}

/// [`read_params`] on a model file's bytes already in memory; `path` only names the file in
/// errors.
pub fn params_from_bytes(path: &Path, bytes: &[u8]) -> Result<LrsParams> {
    let file = OpenFile::parse(path, bytes)?;
    file.check_format(MODEL_FORMAT)?;
    let u = file.f64_tensor("u", 2)?;
    let (d, r) = (u.shape[0], u.shape[1]);
    let w = file.f64_tensor("w", 2)?;
    let t = w.shape[0];
    file.expect_shape("w", &w.shape, &[t, r])?;
    let b = file.f64_tensor("b", 2)?;
    file.expect_shape("b", &b.shape, &[t, d])?;
    Ok(LrsParams {
        u: mat_from_row_major(&u.data, d, r),
        w: w.data,
        b: b.data,
    })
}

/// The file's bytes, mapped read-only and populated up front (one call instead of a page
/// fault per page). The writers replace files by rename, so a mapping stays valid while a new
/// version is written; a file cut short under a live mapping by some other program is the one
/// case this does not guard against.
fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let io = |source| CoreError::Io {
        path: path.into(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is read-only. It lives as long as the data set whose features view it
    // (a model file's map only while it is parsed); see above for the one way another program
    // could change it underneath.
    unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(io)
}

struct F64Tensor {
    shape: Vec<usize>,
    data: Vec<f64>,
}

struct OpenFile<'a> {
    path: PathBuf,
    tensors: SafeTensors<'a>,
    metadata: HashMap<String, String>,
}

impl<'a> OpenFile<'a> {
    fn parse(path: &Path, bytes: &'a [u8]) -> Result<Self> {
        let malformed = |e: safetensors::SafeTensorError| CoreError::Malformed {
            path: path.into(),
            reason: e.to_string(),
        };
        let (_, meta) = SafeTensors::read_metadata(bytes).map_err(malformed)?;
        let tensors = SafeTensors::deserialize(bytes).map_err(malformed)?;
        Ok(Self {
            path: path.into(),
            tensors,
            metadata: meta.metadata().clone().unwrap_or_default(),
        })
    }

    fn bad(&self, tensor: &str, reason: String) -> CoreError {
        CoreError::BadTensor {
            path: self.path.clone(),
            tensor: tensor.into(),
            reason,
        }
    }

    fn check_format(&self, want: &str) -> Result<()> {
        match self.metadata.get("format") {
            Some(f) if f == want => Ok(()),
            Some(f) => Err(self.bad(
                "__metadata__",
                format!("format is `{f}`, expected `{want}`"),
            )),
            None => Err(self.bad(
                "__metadata__",
                format!("no `format` entry, expected `{want}`"),
            )),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.tensor(name).is_ok()
    }

    /// The tensor `name` after the checks every reader makes: present, f64, `rank`
    /// dimensions, none empty.
    fn checked_view(
        &self,
        name: &str,
        rank: usize,
    ) -> Result<(safetensors::tensor::TensorView<'a>, Vec<usize>)> {
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| self.bad(name, "missing".into()))?;
        if view.dtype() != Dtype::F64 {
            return Err(self.bad(name, format!("dtype is {:?}, expected F64", view.dtype())));
        }
        let shape = view.shape().to_vec();
        if shape.len() != rank {
            return Err(self.bad(
                name,
                format!("has {} dimensions {shape:?}, expected {rank}", shape.len()),
            ));
        }
        if shape.contains(&0) {
            return Err(self.bad(name, format!("has an empty dimension {shape:?}")));
        }
        Ok((view, shape))
    }

    fn non_finite(&self, name: &str, pos: usize) -> CoreError {
        self.bad(
            name,
            format!("holds a non-finite value at flat index {pos}"),
        )
    }

    fn f64_tensor(&self, name: &str, rank: usize) -> Result<F64Tensor> {
        let (view, shape) = self.checked_view(name, rank)?;
        self.finite(name, le_f64s(view.data()))
            .map(|data| F64Tensor { shape, data })
    }

    /// `values` if every one is finite; else the error naming the first that is not.
    fn finite<V: std::ops::Deref<Target = [f64]>>(&self, name: &str, values: V) -> Result<V> {
        match first_non_finite(&values) {
            Some(pos) => Err(self.non_finite(name, pos)),
            None => Ok(values),
        }
    }

    /// [`Self::f64_tensor`] as [`Samples`]: a view in place when the bytes come from `map`
    /// and are aligned for f64 there (they are in files this crate writes), a decoded copy
    /// otherwise. Both are checked for finiteness.
    fn f64_samples(
        &self,
        name: &str,
        rank: usize,
        map: Option<&Arc<memmap2::Mmap>>,
    ) -> Result<(Vec<usize>, Samples)> {
        let (view, shape) = self.checked_view(name, rank)?;
        let bytes = view.data();
        let mapped = map.and_then(|map| {
            let offset = (bytes.as_ptr() as usize).checked_sub(map.as_ptr() as usize)?;
            Samples::mapped(Arc::clone(map), offset, bytes.len() / 8)
        });
        let samples = match mapped {
            Some(samples) => samples,
            None => le_f64s(bytes).into(),
        };
        Ok((shape, self.finite(name, samples)?))
    }

    fn expect_shape(&self, name: &str, got: &[usize], want: &[usize]) -> Result<()> {
        if got == want {
            Ok(())
        } else {
            Err(self.bad(
                name,
                format!("shape {got:?} is inconsistent with the other tensors, expected {want:?}"),
            ))
        }
    }
}

/// The flat index of the first non-finite value, checked in parallel blocks.
fn first_non_finite(values: &[f64]) -> Option<usize> {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 16;
    values
        .par_chunks(BLOCK)
        .enumerate()
        .filter_map(|(n, block)| {
            block
                .iter()
                .position(|v| !v.is_finite())
                .map(|p| n * BLOCK + p)
        })
        .min()
}

/// Little-endian f64s from `bytes` (a multiple of 8 long), decoded in parallel blocks.
fn le_f64s(bytes: &[u8]) -> Vec<f64> {
    use rayon::prelude::*;
    const BLOCK: usize = 1 << 16;
    let mut out = vec![0.0; bytes.len() / 8];
    out.par_chunks_mut(BLOCK)
        .zip(bytes.par_chunks(8 * BLOCK))
        .for_each(|(dst, src)| {
            for (v, c) in dst.iter_mut().zip(src.chunks_exact(8)) {
                *v = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            }
        });
    out
}

fn write_f64_tensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, &[f64])],
    format: &str,
    mut metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            TensorView::new(Dtype::F64, shape.clone(), b)
                .map(|v| (name.clone(), v))
                .map_err(|e| CoreError::BadTensor {
                    path: path.into(),
                    tensor: name.clone(),
                    reason: e.to_string(),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    metadata.insert("format".into(), format.into());
    let out = safetensors::serialize(views, Some(metadata)).map_err(|e| CoreError::Malformed {
        path: path.into(),
        reason: e.to_string(),
    })?;
    crate::atomic::write_atomic(path, &out).map_err(|e| CoreError::Io {
        path: e.path,
        source: e.source,
    })
}
