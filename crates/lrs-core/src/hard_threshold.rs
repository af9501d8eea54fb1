//! Hard thresholding `H_k`: keep the `k` largest magnitudes.

/// Indices of the `k` largest `|v_j|`, sorted increasingly. Ties go to the lower index, so
/// the result is deterministic.
pub fn top_k_support(v: &[f64], k: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(k.min(v.len()));
    top_k_support_into(v, k, &mut Vec::with_capacity(v.len()), &mut out);
    out
}

/// [`top_k_support`] into `out`, with `idx` as scratch: no allocation once both have their
/// capacity (`v.len()` and `k`).
pub fn top_k_support_into(v: &[f64], k: usize, idx: &mut Vec<usize>, out: &mut Vec<usize>) {
    out.clear();
    let k = k.min(v.len());
    if k == 0 {
        return;
    }
    if k <= SMALL_K {
        top_k_by_insertion(v, k, out);
        return;
    }
    idx.clear();
    idx.extend(0..v.len());
    let key = |&j: &usize| std::cmp::Reverse(OrdF64(v[j].abs()));
    idx.select_nth_unstable_by_key(k - 1, |j| (key(j), *j));
    out.extend_from_slice(&idx[..k]);
    out.sort_unstable();
}

/// Largest `k` for which [`top_k_support_into`] keeps a sorted buffer of the best `k` while
/// scanning `v` once (one comparison per entry once the buffer is full), instead of a
/// selection over all indices.
const SMALL_K: usize = 16;

/// The scan of [`top_k_support_into`] for small `k`: `out` holds the best so far by magnitude
/// (NaN lowest), ties kept by the earlier index, which the scan meets first.
fn top_k_by_insertion(v: &[f64], k: usize, out: &mut Vec<usize>) {
    let key = |x: f64| if x.is_nan() { -1.0 } else { x.abs() };
    let mut floor = f64::NEG_INFINITY;
    for (j, &x) in v.iter().enumerate() {
        let kj = key(x);
        if out.len() == k {
            if kj <= floor {
                continue;
            }
            out.pop();
        }
        let mut p = out.len();
        while p > 0 && key(v[out[p - 1]]) < kj {
            p -= 1;
        }
        out.insert(p, j);
        if out.len() == k {
            floor = key(v[out[k - 1]]);
        }
    }
    out.sort_unstable();
}

/// `H_k(v)`: `v` with all but its `k` largest magnitudes set to zero.
pub fn hard_threshold(v: &[f64], k: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for j in top_k_support(v, k) {
        out[j] = v[j];
    }
    out
}

/// Indices of the non-zeros of `v`.
pub fn support_of(v: &[f64]) -> Vec<usize> {
    v.iter()
        .enumerate()
        .filter(|(_, x)| **x != 0.0)
        .map(|(j, _)| j)
        .collect()
}

/// Total order on f64 magnitudes (NaN sorts lowest, so it is never kept over a number).
#[derive(Clone, Copy)]
struct OrdF64(f64);

impl PartialEq for OrdF64 {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.0.is_nan(), other.0.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            _ => self
                .0
                .partial_cmp(&other.0)
                .unwrap_or(std::cmp::Ordering::Equal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_largest_magnitudes() {
        let v = [0.1, -3.0, 2.0, 0.0, -2.5];
        assert_eq!(top_k_support(&v, 2), vec![1, 4]);
        assert_eq!(hard_threshold(&v, 3), vec![0.0, -3.0, 2.0, 0.0, -2.5]);
        assert_eq!(top_k_support(&v, 0), Vec::<usize>::new());
        assert_eq!(top_k_support(&v, 9).len(), 5);
    }

    #[test]
    fn the_small_k_scan_matches_the_selection() {
        let v: Vec<f64> = (0..200u64)
            .map(|i| match i % 17 {
                3 => f64::NAN,
                5 => 0.25,
                _ => ((i * 7919) % 101) as f64 / 13.0 - 3.5,
            })
            .collect();
        for k in [1, 2, 5, 9, 16] {
            let mut idx: Vec<usize> = (0..v.len()).collect();
            let key = |&j: &usize| (std::cmp::Reverse(OrdF64(v[j].abs())), j);
            idx.sort_by_key(key);
            let mut want = idx[..k].to_vec();
            want.sort_unstable();
            assert_eq!(top_k_support(&v, k), want, "k = {k}");
        }
    }

    #[test]
    fn ties_prefer_lower_index_and_nan_is_dropped() {
        assert_eq!(top_k_support(&[1.0, -1.0, 1.0], 2), vec![0, 1]);
        assert_eq!(top_k_support(&[f64::NAN, 0.5, 0.1], 1), vec![1]);
    }
}
