//! Token packing: the real (unpadded) tokens of a `[batch, seq]` batch gathered into
//! `[tokens, h]`, so the per-token work of an encoder layer (the attention output block and
//! the feed-forward block) skips the padding. Only attention needs the `[batch, seq]` layout.
//!
//! Packing is exact: every per-token op computes each real token from that token alone, and
//! padded positions are masked out of attention and pooling. Unpacked states are zero at the
//! padded positions.

use candle_core::{DType, Tensor, D};

/// Where a batch's real tokens sit in its flattened `[batch · seq]` positions.
#[derive(Debug, Clone)]
pub struct TokenPacking {
    /// `[tokens]` u32: flattened positions of the real tokens, in order.
    index: Tensor,
    rows: usize,
    seq: usize,
}

impl TokenPacking {
    /// The packing of `attention_mask` (`[batch, seq]`, 1 for real tokens); `None` when the
    /// batch has no padding (nothing to skip).
    pub fn from_mask(attention_mask: &Tensor) -> candle_core::Result<Option<Self>> {
        let (rows, seq) = attention_mask.dims2()?;
        let flags = attention_mask
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let index: Vec<u32> = flags
            .iter()
            .enumerate()
            .filter(|(_, &m)| m != 0.0)
            .map(|(i, _)| i as u32)
            .collect();
        if index.len() == flags.len() {
            return Ok(None);
        }
        let tokens = index.len();
        Ok(Some(Self {
            index: Tensor::from_vec(index, tokens, attention_mask.device())?,
            rows,
            seq,
        }))
    }

    /// Real tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.index.elem_count()
    }

    /// `[batch, seq, h]` → `[tokens, h]`: the real tokens' rows.
    pub fn pack(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = x.dim(D::Minus1)?;
        x.contiguous()?
            .reshape((self.rows * self.seq, h))?
            .index_select(&self.index, 0)
    }

    /// `[tokens, h]` → `[batch, seq, h]`, zero at the padded positions.
    pub fn unpack(&self, y: &Tensor) -> candle_core::Result<Tensor> {
        let h = y.dim(D::Minus1)?;
        Tensor::zeros((self.rows * self.seq, h), y.dtype(), y.device())?
            .index_add(&self.index, &y.contiguous()?, 0)?
            .reshape((self.rows, self.seq, h))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor, Var};

    use super::TokenPacking;

    #[test]
    fn pack_then_unpack_keeps_real_tokens_zeroes_padding_and_passes_gradients() {
        let dev = Device::Cpu;
        let mask = Tensor::new(&[[1u32, 1, 0], [1, 0, 0]], &dev).unwrap();
        let p = TokenPacking::from_mask(&mask).unwrap().unwrap();
        assert_eq!(p.tokens(), 3);
        let data: Vec<f32> = (0..12).map(|v| v as f32 + 1.0).collect();
        let x = Var::from_tensor(&Tensor::from_vec(data, (2, 3, 2), &dev).unwrap()).unwrap();
        let packed = p.pack(x.as_tensor()).unwrap();
        assert_eq!(
            packed.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.0], vec![7.0, 8.0]]
        );
        let back = p.unpack(&(packed * 2.0).unwrap()).unwrap();
        assert_eq!(
            back.to_vec3::<f32>().unwrap(),
            vec![
                vec![vec![2.0, 4.0], vec![6.0, 8.0], vec![0.0, 0.0]],
                vec![vec![14.0, 16.0], vec![0.0, 0.0], vec![0.0, 0.0]],
            ]
        );
        let grads = back.sum_all().unwrap().backward().unwrap();
        let g = grads.get(x.as_tensor()).unwrap().to_vec3::<f32>().unwrap();
        assert_eq!(
            g,
            vec![
                vec![vec![2.0, 2.0], vec![2.0, 2.0], vec![0.0, 0.0]],
                vec![vec![2.0, 2.0], vec![0.0, 0.0], vec![0.0, 0.0]],
            ]
        );
    }

    #[test]
    fn a_batch_without_padding_needs_no_packing() {
        let mask = Tensor::new(&[[1u32, 1], [1, 1]], &Device::Cpu).unwrap();
        assert!(TokenPacking::from_mask(&mask).unwrap().is_none());
        let bad = Tensor::new(&[1u32, 1], &Device::Cpu).unwrap();
        assert!(TokenPacking::from_mask(&bad).is_err());
    }
}
