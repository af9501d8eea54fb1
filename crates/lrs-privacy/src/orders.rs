//! Grids of Rényi orders `α` at which RDP curves are evaluated.
//!
//! The (ε, δ) bound is a minimum over the grid, so a coarser grid only loosens it: any grid
//! gives a valid guarantee. The two standard grids are provided so results match the
//! libraries they come from.

use crate::error::{PrivacyError, Result};
use serde::{Deserialize, Serialize};

/// Largest finite order accepted. The integer expansion has `α + 1` terms; standard grids
/// stop at 512 (TF Privacy) or 1024 (dp_accounting), so this only rules out runaway input.
pub const MAX_FINITE_ORDER: f64 = 1e5;

/// Checks `order ∈ (1, MAX_FINITE_ORDER]` or `order = +∞`.
pub(crate) fn check_order(order: f64) -> Result<()> {
    if order == f64::INFINITY || (order > 1.0 && order <= MAX_FINITE_ORDER) {
        Ok(())
    } else {
        Err(PrivacyError::InvalidOrder { order })
    }
}

/// A validated, non-empty list of Rényi orders, each `> 1` (or `+∞`).
///
/// Serialises as a plain list; deserialising validates like [`Orders::custom`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<f64>", into = "Vec<f64>")]
pub struct Orders(Vec<f64>);

impl TryFrom<Vec<f64>> for Orders {
    type Error = PrivacyError;

    fn try_from(v: Vec<f64>) -> Result<Self> {
        Orders::custom(v)
    }
}

impl From<Orders> for Vec<f64> {
    fn from(o: Orders) -> Self {
        o.0
    }
}

impl Orders {
    /// Opacus's default grid: `[1 + x/10 for x in 1..100] + [12, 13, …, 63]` (151 orders).
    pub fn opacus() -> Self {
        let mut v: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
        v.extend((12..64).map(f64::from));
        Orders(v)
    }

    /// TF Privacy's grid (also `compute_dp_sgd_privacy`'s):
    /// `[1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5] + [5, …, 63] + [128, 256, 512]`.
    pub fn tf_privacy() -> Self {
        let mut v = vec![1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5];
        v.extend((5..64).map(f64::from));
        v.extend([128.0, 256.0, 512.0]);
        Orders(v)
    }

    /// A custom grid. Every order must be in `(1, MAX_FINITE_ORDER]` or `+∞`
    /// ([`MAX_FINITE_ORDER`]); the list must be non-empty.
    pub fn custom(orders: Vec<f64>) -> Result<Self> {
        if orders.is_empty() {
            return Err(PrivacyError::EmptyOrders);
        }
        for &a in &orders {
            check_order(a)?;
        }
        Ok(Orders(orders))
    }

    /// The orders, in the order given.
    pub fn as_slice(&self) -> &[f64] {
        &self.0
    }

    /// Number of orders.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false` (grids are validated non-empty); provided for API completeness.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Default for Orders {
    /// The Opacus grid.
    fn default() -> Self {
        Orders::opacus()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_grids_have_the_documented_shape() {
        let o = Orders::opacus();
        assert_eq!(o.len(), 99 + 52);
        assert!((o.as_slice()[0] - 1.1).abs() < 1e-15);
        assert!((o.as_slice()[98] - 10.9).abs() < 1e-12);
        assert_eq!(o.as_slice()[99], 12.0);
        assert_eq!(*o.as_slice().last().unwrap(), 63.0);
        let t = Orders::tf_privacy();
        assert_eq!(t.len(), 10 + 59 + 3);
        assert_eq!(t.as_slice()[10], 5.0);
        assert_eq!(*t.as_slice().last().unwrap(), 512.0);
    }

    #[test]
    fn custom_grid_is_validated() {
        assert_eq!(Orders::custom(vec![]), Err(PrivacyError::EmptyOrders));
        assert!(matches!(
            Orders::custom(vec![2.0, 1.0]),
            Err(PrivacyError::InvalidOrder { order }) if order == 1.0
        ));
        assert!(Orders::custom(vec![f64::NAN]).is_err());
        assert!(Orders::custom(vec![1.5, f64::INFINITY]).is_ok());
    }

    #[test]
    fn deserialisation_validates() {
        assert!(serde_json::from_str::<Orders>("[]").is_err());
        assert!(serde_json::from_str::<Orders>("[0.5, 2.0]").is_err());
        let o: Orders = serde_json::from_str("[1.5, 2.0]").unwrap();
        assert_eq!(o.as_slice(), &[1.5, 2.0]);
        assert_eq!(serde_json::to_string(&o).unwrap(), "[1.5,2.0]");
    }
}
