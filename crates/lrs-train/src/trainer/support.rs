//! Where a per-task sparse part may be non-zero: the support chosen each round.
//!
//! A round keeps `k − g` of the current support by *keep score* (what removing the entry
//! would cost) and grows `g` new positions by *gain* (what adding one would win). In a task's
//! first round the support is empty and all `k` positions are grown; `g = max(k − |current|,
//! round(regrow · k))`, so an annealed budget shrinks the support by dropping its least useful
//! entries and `regrow > 0` lets it move (SpIEL's drop-and-grow cycle).

/// The support of `k` positions for the next fit. `current` are the sorted flat indices of
/// the current support with their `keep` scores; `gain[i]` is what growing position `i`
/// would win. Ties go to the lower index, so the result is deterministic. Returns sorted
/// indices, at most `min(k, gain.len())` of them.
pub fn choose_support(
    current: &[u32],
    keep: &[f32],
    gain: &[f32],
    k: usize,
    regrow: f64,
) -> Vec<u32> {
    let k = k.min(gain.len());
    let grown_min = ((regrow * k as f64).round() as usize).min(k);
    let kept_count = current.len().min(k - grown_min);
    let mut kept = top(current.len(), kept_count, |j| keep[j], |_| true);
    let mut taken = vec![false; gain.len()];
    let mut support: Vec<u32> = kept.drain(..).map(|j| current[j]).collect();
    for &i in &support {
        taken[i as usize] = true;
    }
    let grow = k - support.len();
    support.extend(
        top(gain.len(), grow, |i| gain[i], |i| !taken[i])
            .into_iter()
            .map(|i| i as u32),
    );
    support.sort_unstable();
    support
}

/// The budget of stage `stage` (0-based) of `stages` when a support of `current` entries
/// grows to `k` ([`TaskPhaseConfig::support_stages`]): each stage adds an equal share of the
/// `k − current` missing entries (rounded up), the last reaches `k`. A support at or above `k`
/// goes to `k` in the first stage (an annealed budget drops entries at once).
///
/// [`TaskPhaseConfig::support_stages`]: super::TaskPhaseConfig::support_stages
pub fn stage_budget(current: usize, k: usize, stage: usize, stages: usize) -> usize {
    if k <= current {
        return k;
    }
    let stages = stages.max(1);
    current + ((k - current) * (stage.min(stages - 1) + 1)).div_ceil(stages)
}

/// The `count` indices in `0..n` passing `allowed` with the largest `key` (lower index first
/// on ties). Non-finite keys rank lowest.
fn top(
    n: usize,
    count: usize,
    key: impl Fn(usize) -> f32,
    allowed: impl Fn(usize) -> bool,
) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).filter(|&i| allowed(i)).collect();
    let count = count.min(idx.len());
    if count == 0 {
        return Vec::new();
    }
    let rank = |i: usize| {
        let v = key(i);
        if v.is_finite() {
            v
        } else {
            f32::NEG_INFINITY
        }
    };
    let order = |a: &usize, b: &usize| rank(*b).total_cmp(&rank(*a)).then_with(|| a.cmp(b));
    if count < idx.len() {
        idx.select_nth_unstable_by(count - 1, order);
        idx.truncate(count);
    }
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_support_grows_the_top_scores() {
        let score = [0.1, 5.0, 0.0, 3.0, 3.0, 0.2];
        assert_eq!(choose_support(&[], &[], &score, 3, 0.0), [1, 3, 4]);
        // Ties go to the lower index.
        assert_eq!(choose_support(&[], &[], &score, 2, 0.0), [1, 3]);
        // k beyond the size is capped.
        assert_eq!(choose_support(&[], &[], &score, 9, 0.0).len(), 6);
    }

    #[test]
    fn a_shrinking_budget_drops_the_least_useful_entries() {
        let score = [9.0; 6];
        // Current support {0, 2, 5} with keep scores 0.5, 2, 1: k = 2 keeps 2 and 5.
        assert_eq!(
            choose_support(&[0, 2, 5], &[0.5, 2.0, 1.0], &score, 2, 0.0),
            [2, 5]
        );
    }

    #[test]
    fn regrowth_replaces_part_of_the_support_by_score() {
        let score = [0.0, 0.0, 0.0, 7.0, 0.0, 1.0];
        // Keep 1 of 2 by value (index 2), grow 1 by score outside it (index 3).
        assert_eq!(choose_support(&[0, 2], &[0.1, 4.0], &score, 2, 0.5), [2, 3]);
        // Without regrowth the support stays.
        assert_eq!(choose_support(&[0, 2], &[0.1, 4.0], &score, 2, 0.0), [0, 2]);
        // A growing budget adds by score.
        assert_eq!(
            choose_support(&[0, 2], &[0.1, 4.0], &score, 4, 0.0),
            [0, 2, 3, 5]
        );
    }

    #[test]
    fn stages_grow_equal_shares_up_to_the_budget() {
        // From empty to 8 in 4 stages: 2, 4, 6, 8; in 3 stages: 3, 6, 8.
        let four: Vec<usize> = (0..4).map(|s| stage_budget(0, 8, s, 4)).collect();
        assert_eq!(four, [2, 4, 6, 8]);
        let three: Vec<usize> = (0..3).map(|s| stage_budget(0, 8, s, 3)).collect();
        assert_eq!(three, [3, 6, 8]);
        // From 5 to 8 in 2 stages; more stages than missing entries end at k.
        assert_eq!([stage_budget(5, 8, 0, 2), stage_budget(5, 8, 1, 2)], [7, 8]);
        assert_eq!(stage_budget(7, 8, 0, 4), 8);
        // A shrinking budget drops at once; one stage grows everything.
        assert_eq!(stage_budget(12, 8, 0, 4), 8);
        assert_eq!(stage_budget(0, 8, 0, 1), 8);
    }

    #[test]
    fn non_finite_scores_rank_last() {
        let score = [f32::NAN, 1.0, f32::INFINITY, 0.5];
        assert_eq!(choose_support(&[], &[], &score, 2, 0.0), [1, 3]);
    }
}
