//! [`ByteLru`]: a least-recently-used map bounded by the sum of its entries' sizes in bytes.
//!
//! Invariant: `used() <= budget()` after every call. Recency is a monotone tick per access;
//! `order` maps tick → key, so the least recently used entry is `order`'s first.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// An entry the cache let go of (evicted, replaced or removed), with its size.
#[derive(Debug)]
pub struct Evicted<K, V> {
    /// Its key.
    pub key: K,
    /// Its value.
    pub value: V,
    /// Its size in bytes.
    pub bytes: u64,
}

struct Slot<V> {
    value: V,
    bytes: u64,
    tick: u64,
}

/// A map of at most `budget` bytes (as the caller sizes entries) that evicts the least
/// recently used entries first.
pub struct ByteLru<K, V> {
    budget: u64,
    used: u64,
    tick: u64,
    map: HashMap<K, Slot<V>>,
    order: BTreeMap<u64, K>,
}

impl<K: Eq + Hash + Clone, V> ByteLru<K, V> {
    /// An empty cache holding at most `budget` bytes.
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            used: 0,
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value for `key`, marking it most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        self.tick += 1;
        let tick = self.tick;
        let slot = self.map.get_mut(key)?;
        self.order.remove(&slot.tick);
        slot.tick = tick;
        self.order.insert(tick, key.clone());
        Some(&slot.value)
    }

    /// The value for `key` without touching its recency.
    pub fn peek(&self, key: &K) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    /// The size recorded for `key`.
    pub fn bytes_of(&self, key: &K) -> Option<u64> {
        self.map.get(key).map(|s| s.bytes)
    }

    /// Inserts `value` of `bytes` as most recently used, replacing any entry under `key`, then
    /// evicts least recently used entries until the budget holds. Returns what left the cache
    /// (the replaced entry first, if any). A value larger than the whole budget is not
    /// inserted: it comes back as `Err`.
    pub fn insert(&mut self, key: K, value: V, bytes: u64) -> Result<Vec<Evicted<K, V>>, V> {
        if bytes > self.budget {
            return Err(value);
        }
        let mut gone = Vec::new();
        if let Some(old) = self.remove(&key) {
            gone.push(old);
        }
        while self.used + bytes > self.budget {
            let Some((_, lru)) = self.order.pop_first() else {
                break;
            };
            if let Some(slot) = self.map.remove(&lru) {
                self.used -= slot.bytes;
                gone.push(Evicted {
                    key: lru,
                    value: slot.value,
                    bytes: slot.bytes,
                });
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(
            key,
            Slot {
                value,
                bytes,
                tick: self.tick,
            },
        );
        self.used += bytes;
        Ok(gone)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &K) -> Option<Evicted<K, V>> {
        let slot = self.map.remove(key)?;
        self.order.remove(&slot.tick);
        self.used -= slot.bytes;
        Some(Evicted {
            key: key.clone(),
            value: slot.value,
            bytes: slot.bytes,
        })
    }

    /// Keys from least to most recently used.
    pub fn keys_lru_first(&self) -> impl Iterator<Item = &K> {
        self.order.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let mut c = ByteLru::new(100);
        assert!(c.insert("a", 1, 40).is_ok_and(|g| g.is_empty()));
        assert!(c.insert("b", 2, 40).is_ok_and(|g| g.is_empty()));
        // Touch `a`: `b` is now the least recently used.
        assert_eq!(c.get(&"a"), Some(&1));
        let gone = c.insert("c", 3, 40).ok().unwrap_or_default();
        assert_eq!(gone.iter().map(|e| e.key).collect::<Vec<_>>(), vec!["b"]);
        assert_eq!(c.used(), 80);
        // A 90-byte entry needs both others out.
        let gone = c.insert("d", 4, 90).ok().unwrap_or_default();
        assert_eq!(
            gone.iter().map(|e| e.key).collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        assert_eq!((c.used(), c.len()), (90, 1));
    }

    #[test]
    fn never_exceeds_budget_and_refuses_oversize() {
        let mut c = ByteLru::new(50);
        for i in 0..200u64 {
            let _ = c.insert(i % 17, i, 1 + (i * 7) % 23);
            assert!(c.used() <= c.budget());
            let sum: u64 = c
                .keys_lru_first()
                .filter_map(|k| c.bytes_of(k))
                .sum::<u64>();
            assert_eq!(sum, c.used());
        }
        assert_eq!(c.insert(99, 0, 51).err(), Some(0));
    }

    #[test]
    fn replacing_a_key_frees_its_old_size() {
        let mut c = ByteLru::new(100);
        let _ = c.insert("a", 1, 60);
        let gone = c.insert("a", 2, 70).ok().unwrap_or_default();
        assert_eq!(gone.len(), 1);
        assert_eq!((c.used(), c.peek(&"a")), (70, Some(&2)));
        assert!(c.remove(&"a").is_some());
        assert_eq!(c.used(), 0);
    }
}
