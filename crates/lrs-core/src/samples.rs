//! [`Samples`]: the storage of a data set's features, either owned or a read-only view of a
//! mapped data file (a large instance is then not copied out of the page cache).

use std::ops::Deref;
use std::sync::Arc;

/// `f64` values, owned or borrowed from a memory-mapped file; reads as a `[f64]`.
#[derive(Clone)]
pub struct Samples(Storage);

#[derive(Clone)]
enum Storage {
    Owned(Vec<f64>),
    /// `len` values at byte `offset` of the map (8-aligned, little-endian, checked).
    Mapped {
        map: Arc<memmap2::Mmap>,
        offset: usize,
        len: usize,
    },
}

impl Samples {
    /// A view of `len` values at byte `offset` of `map`, or `None` when they are not 8-aligned
    /// there, run past its end, or the machine is not little-endian (the file's byte order).
    pub(crate) fn mapped(map: Arc<memmap2::Mmap>, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len.checked_mul(8)?)?;
        let bytes = map.get(offset..end)?;
        if cfg!(target_endian = "big") || bytemuck::try_cast_slice::<u8, f64>(bytes).is_err() {
            return None;
        }
        Some(Self(Storage::Mapped { map, offset, len }))
    }

    /// Whether the values are a view of a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Storage::Mapped { .. })
    }
}

impl Deref for Samples {
    type Target = [f64];

    fn deref(&self) -> &[f64] {
        match &self.0 {
            Storage::Owned(v) => v,
            Storage::Mapped { map, offset, len } => {
                bytemuck::cast_slice(&map[*offset..*offset + *len * 8])
            }
        }
    }
}

impl From<Vec<f64>> for Samples {
    fn from(v: Vec<f64>) -> Self {
        Self(Storage::Owned(v))
    }
}

impl PartialEq for Samples {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Samples {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.is_mapped() { "mapped" } else { "owned" };
        write!(f, "Samples({kind}, {} values)", self.len())
    }
}
