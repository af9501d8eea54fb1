//! Matrix products over the last dimension of a batched activation.

use candle_core::{Tensor, D};

/// `x [.., k] · m [k, n]` → `[.., n]`, as one 2-D matmul over the flattened leading dims.
pub(crate) fn matmul_last(x: &Tensor, m: &Tensor) -> candle_core::Result<Tensor> {
    let dims = x.dims();
    let k = x.dim(D::Minus1)?;
    let lead: usize = dims[..dims.len() - 1].iter().product();
    let mut out = dims.to_vec();
    let n = m.dim(1)?;
    if let Some(last) = out.last_mut() {
        *last = n;
    }
    x.contiguous()?.reshape((lead, k))?.matmul(m)?.reshape(out)
}
