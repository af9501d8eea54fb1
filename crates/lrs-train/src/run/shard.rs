//! [`Shard`]: one of `N` disjoint parts of the task ids, for running personalization as `N`
//! independent workers (`lrs personalize --shard I/N`: Kubernetes indexed Jobs, Slurm arrays).
//!
//! A task belongs to shard `fnv1a64(id) mod N` ([`fnv1a64`]): a fixed hash of the id's bytes,
//! the same on every machine, process and release (not std's randomly seeded hasher), so the
//! `N` workers agree on the split without talking to each other, and each task is fitted
//! exactly once.
//!
//! ```
//! use lrs_train::run::Shard;
//!
//! let shards: Vec<Shard> = (0..3).map(|i| format!("{i}/3").parse().unwrap()).collect();
//! for id in ["alice", "bob", "carol", "u17"] {
//!     assert_eq!(shards.iter().filter(|s| s.owns(id)).count(), 1);
//! }
//! assert!("3/3".parse::<Shard>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use crate::stable_hash::fnv1a64;

/// Shard `index` of `count` (`0 ≤ index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl Shard {
    /// Shard `index` of `count`; `None` unless `index < count`.
    pub fn new(index: u64, count: u64) -> Option<Self> {
        (index < count).then_some(Self { index, count })
    }

    /// The whole set as one shard.
    pub fn all() -> Self {
        Self { index: 0, count: 1 }
    }

    /// This shard's index.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// How many shards there are.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The shard task `id` belongs to.
    pub fn of(id: &str, count: u64) -> u64 {
        fnv1a64(id.as_bytes()) % count.max(1)
    }

    /// Whether task `id` belongs to this shard.
    pub fn owns(&self, id: &str) -> bool {
        Self::of(id, self.count) == self.index
    }
}

impl Default for Shard {
    /// [`Shard::all`].
    fn default() -> Self {
        Self::all()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    /// `I/N` with `0 ≤ I < N` (shards are numbered from 0, as Kubernetes' job completion
    /// index and Slurm's default array ids are).
    fn from_str(s: &str) -> Result<Self, String> {
        let usage = || format!("{s:?}: expected I/N with 0 ≤ I < N, e.g. 0/4 … 3/4");
        let (i, n) = s.trim().split_once('/').ok_or_else(usage)?;
        let i: u64 = i.trim().parse().map_err(|_| usage())?;
        let n: u64 = n.trim().parse().map_err(|_| usage())?;
        if n == 0 {
            return Err(format!("{s:?}: the shard count N must be at least 1"));
        }
        Self::new(i, n).ok_or_else(|| {
            format!(
                "{s:?}: shard index {i} out of range: shards of {n} are numbered 0 to {}",
                n - 1
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_shards_and_explains_bad_ones() {
        assert_eq!("0/1".parse(), Ok(Shard::all()));
        assert_eq!(
            "2/5".parse::<Shard>().map(|s| (s.index(), s.count())),
            Ok((2, 5))
        );
        assert_eq!(
            " 1 / 2 ".parse::<Shard>().map(|s| s.to_string()),
            Ok("1/2".into())
        );
        let err = |s: &str| s.parse::<Shard>().unwrap_err();
        assert!(err("0/0").contains("at least 1"), "{}", err("0/0"));
        assert!(err("3/2").contains("numbered 0 to 1"), "{}", err("3/2"));
        assert!(err("2/2").contains("out of range"));
        for junk in ["", "1", "a/b", "1/2/3", "-1/2", "1/-2", "1.5/2"] {
            assert!(err(junk).contains("expected I/N"), "{junk}: {}", err(junk));
        }
    }

    #[test]
    fn shards_are_disjoint_and_cover_every_task() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
        for count in [1, 2, 3, 7, 16] {
            let shards: Vec<Shard> = (0..count).filter_map(|i| Shard::new(i, count)).collect();
            let mut sizes = vec![0usize; count as usize];
            for id in &ids {
                let owners: Vec<_> = shards.iter().filter(|s| s.owns(id)).collect();
                assert_eq!(owners.len(), 1, "{id} in {count} shards: {owners:?}");
                sizes[owners[0].index() as usize] += 1;
            }
            // Well spread: every shard within 10 % of its fair share.
            let fair = ids.len() as f64 / count as f64;
            for (i, &n) in sizes.iter().enumerate() {
                assert!(
                    (n as f64 - fair).abs() < 0.1 * fair,
                    "shard {i}/{count}: {n}"
                );
            }
        }
    }
}
