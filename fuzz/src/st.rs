//! Well-formed safetensors files with fuzzed contents.
//!
//! Mutating a safetensors file byte by byte mostly breaks its JSON header (offsets must tile
//! the data exactly), so the loaders' own checks — names, dtypes, shapes, index order,
//! metadata — are rarely reached. This module instead draws tensor names from a
//! vocabulary of the names the loader knows, dtypes, shapes from a list of dimensions that
//! matter (rank, layer sizes, 0, 1) and data in a few shapes (raw bytes, one special value,
//! increasing integers), plus metadata from per-key candidates ([`arbitrary_tensors`],
//! [`arbitrary_meta`]), and [`serialize`] writes a valid file of them.

use std::collections::{BTreeMap, HashMap};

use arbitrary::{Result, Unstructured};
use safetensors::tensor::{Dtype, TensorView};

/// One tensor to write.
#[derive(Debug, Clone)]
pub struct TensorSpec {
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
    /// Little-endian bytes, `elements · size(dtype)` long.
    pub data: Vec<u8>,
}

/// What the fuzzer may choose from.
#[derive(Debug, Clone)]
pub struct Vocab {
    /// Tensor names the loader knows (any string is drawn now and then too).
    pub names: Vec<String>,
    /// Dimensions worth hitting exactly (any small number is drawn now and then too).
    pub dims: Vec<usize>,
    /// Metadata keys with their candidate values (a key is sometimes left out, sometimes
    /// given an arbitrary string).
    pub meta: Vec<(String, Vec<String>)>,
    /// Most tensors per file.
    pub max_tensors: usize,
    /// Most elements per tensor.
    pub max_elems: usize,
}

/// Dtypes offered, the loaders' usual ones first (they are picked more often).
const DTYPES: &[Dtype] = &[
    Dtype::F32,
    Dtype::U32,
    Dtype::F16,
    Dtype::BF16,
    Dtype::F64,
    Dtype::I64,
    Dtype::U8,
    Dtype::I32,
    Dtype::BOOL,
    Dtype::U16,
    Dtype::I16,
    Dtype::I8,
    Dtype::U64,
    Dtype::F8_E4M3,
    Dtype::F8_E5M2,
];

/// Bytes per element of `dtype` (all offered dtypes are whole bytes).
fn size_of(dtype: Dtype) -> usize {
    match dtype {
        Dtype::F64 | Dtype::I64 | Dtype::U64 => 8,
        Dtype::F32 | Dtype::U32 | Dtype::I32 => 4,
        Dtype::F16 | Dtype::BF16 | Dtype::U16 | Dtype::I16 => 2,
        _ => 1,
    }
}

/// Floating values that tend to break numeric code.
const SPECIAL: &[f64] = &[
    0.0,
    1.0,
    -1.0,
    0.5,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    65504.0,
    65520.0,
    1e30,
    f32::MAX as f64,
    f64::MAX,
    1e-45,
    -0.0,
];

/// `v` encoded as one element of `dtype` (integers saturate, as `as` casts do).
fn encode(dtype: Dtype, v: f64) -> Vec<u8> {
    match dtype {
        Dtype::F64 => v.to_le_bytes().to_vec(),
        Dtype::F32 => (v as f32).to_le_bytes().to_vec(),
        Dtype::F16 => half::f16::from_f64(v).to_le_bytes().to_vec(),
        Dtype::BF16 => half::bf16::from_f64(v).to_le_bytes().to_vec(),
        Dtype::I64 => (v as i64).to_le_bytes().to_vec(),
        Dtype::U64 => (v as u64).to_le_bytes().to_vec(),
        Dtype::U32 => (v as u32).to_le_bytes().to_vec(),
        Dtype::I32 => (v as i32).to_le_bytes().to_vec(),
        Dtype::U16 => (v as u16).to_le_bytes().to_vec(),
        Dtype::I16 => (v as i16).to_le_bytes().to_vec(),
        Dtype::I8 => vec![v as i8 as u8],
        _ => vec![v as u8],
    }
}

fn dim(u: &mut Unstructured, vocab: &Vocab) -> Result<usize> {
    if vocab.dims.is_empty() || u.ratio(1, 6)? {
        u.int_in_range(0..=70)
    } else {
        u.choose(&vocab.dims).copied()
    }
}

fn data(u: &mut Unstructured, dtype: Dtype, elems: usize) -> Result<Vec<u8>> {
    let len = elems * size_of(dtype);
    Ok(match u.int_in_range(0..=3u8)? {
        // Raw bytes (zero-padded when the input runs out).
        0 => {
            let mut b = u.bytes(len.min(u.len()))?.to_vec();
            b.resize(len, 0);
            b
        }
        // One special value everywhere.
        1 => {
            let v = *u.choose(SPECIAL)?;
            encode(dtype, v).repeat(elems)
        }
        // Strictly increasing from a small start (valid sparse indices, mostly).
        2 => {
            let mut at = f64::from(u.int_in_range(0..=64u32)?);
            let mut out = Vec::with_capacity(len);
            for _ in 0..elems {
                out.extend(encode(dtype, at));
                at += f64::from(u.int_in_range(1..=40u8)?);
            }
            out
        }
        // Small random values, with an occasional special one.
        _ => {
            let mut out = Vec::with_capacity(len);
            for _ in 0..elems {
                let v = if u.ratio(1, 16)? {
                    *u.choose(SPECIAL)?
                } else {
                    f64::from(u.int_in_range(-64..=64i8)?) / 16.0
                };
                out.extend(encode(dtype, v));
            }
            out
        }
    })
}

/// Draws up to `vocab.max_tensors` tensors, keyed by name.
pub fn arbitrary_tensors(
    u: &mut Unstructured,
    vocab: &Vocab,
) -> Result<BTreeMap<String, TensorSpec>> {
    let mut out = BTreeMap::new();
    let n = u.int_in_range(0..=vocab.max_tensors)?;
    for _ in 0..n {
        let name = if vocab.names.is_empty() || u.ratio(1, 10)? {
            let s: String = u.arbitrary()?;
            s.chars().take(64).collect()
        } else {
            u.choose(&vocab.names)?.clone()
        };
        let dtype = if u.ratio(3, 4)? {
            *u.choose(&DTYPES[..4])?
        } else {
            *u.choose(DTYPES)?
        };
        let ndim = match u.int_in_range(0..=7u8)? {
            0 => 0,
            1..=3 => 1,
            4..=6 => 2,
            _ => 3,
        };
        let mut shape = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            shape.push(dim(u, vocab)?);
        }
        // Keep tensors small: clamp the last dimensions until they fit.
        while shape.iter().product::<usize>() > vocab.max_elems {
            if let Some(d) = shape.iter_mut().rev().find(|d| **d > 1) {
                *d /= 2;
            }
        }
        let elems = shape.iter().product();
        let data = data(u, dtype, elems)?;
        out.insert(name, TensorSpec { dtype, shape, data });
    }
    Ok(out)
}

/// Draws metadata: per key, absent (1 in 12), an arbitrary string (1 in 12) or a candidate.
pub fn arbitrary_meta(u: &mut Unstructured, vocab: &Vocab) -> Result<HashMap<String, String>> {
    let mut meta = HashMap::new();
    for (key, candidates) in &vocab.meta {
        let value = match u.int_in_range(0..=11u8)? {
            0 => continue,
            1 => u.arbitrary::<String>()?,
            _ if candidates.is_empty() => u.arbitrary::<String>()?,
            _ => u.choose(candidates)?.clone(),
        };
        meta.insert(key.clone(), value);
    }
    Ok(meta)
}

/// A safetensors file of `tensors` and `meta` (`None` only if safetensors refuses them).
pub fn serialize(
    tensors: &BTreeMap<String, TensorSpec>,
    meta: HashMap<String, String>,
) -> Option<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(name, t)| {
            TensorView::new(t.dtype, t.shape.clone(), &t.data).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .ok()?;
    safetensors::serialize(views, Some(meta)).ok()
}

/// Sum of the element counts of the tensors whose name ends with `suffix` (a `nnz`-style
/// metadata value that agrees with the file, so the checks after it are reached).
pub fn elements_with_suffix(tensors: &BTreeMap<String, TensorSpec>, suffix: &str) -> usize {
    tensors
        .iter()
        .filter(|(n, _)| n.ends_with(suffix))
        .map(|(_, t)| t.shape.iter().product::<usize>())
        .sum()
}
