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
    idx.clear();
    idx.extend(0..v.len());
    let key = |&j: &usize| std::cmp::Reverse(OrdF64(v[j].abs()));
    idx.select_nth_unstable_by_key(k - 1, |j| (key(j), *j));
    out.extend_from_slice(&idx[..k]);
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
    fn ties_prefer_lower_index_and_nan_is_dropped() {
        assert_eq!(top_k_support(&[1.0, -1.0, 1.0], 2), vec![0, 1]);
        assert_eq!(top_k_support(&[f64::NAN, 0.5, 0.1], 1), vec![1]);
    }
}
