//! How many bytes a loaded [`TaskDelta`] holds in memory: what the task cache's budget counts.
//!
//! Per adapted layer: `w` (`r` values), the sparse part as `lrs_nn::SparseDelta` holds it
//! (its value and 4-byte flat index per non-zero, plus `out + 1` row offsets), a per-task
//! LoRA pair if any, and the per-task head. Allocator and map overheads are not counted (a
//! few hundred bytes per layer).

use lrs_nn::{SparsePart, TaskDelta};

/// Resident bytes of `task`'s tensors, as counted against the cache budget.
pub fn task_bytes(task: &TaskDelta) -> u64 {
    let tensor = |t: &candle_core::Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
    let mut bytes = 0u64;
    for layer in task.layers.values() {
        if let Some(w) = &layer.w {
            bytes += tensor(w);
        }
        match &layer.sparse {
            SparsePart::None => {}
            SparsePart::Sparse(s) => bytes += s.resident_bytes(),
            SparsePart::Dense(d) | SparsePart::RowScratch(d) => bytes += tensor(d),
        }
    }
    for lora in task.lora.values() {
        bytes += tensor(&lora.a) + tensor(&lora.b);
    }
    bytes + task.head.values().map(tensor).sum::<u64>()
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};
    use lrs_nn::{LayerDelta, SparseDelta};

    use super::*;

    #[test]
    fn counts_w_sparse_and_head() -> lrs_nn::Result<()> {
        let dev = Device::Cpu;
        let mut t = TaskDelta::new("a", 4);
        let s = SparseDelta::new(8, 8, vec![1, 5, 9], Tensor::new(&[1f32, 2.0, 3.0], &dev)?)?;
        // Field by field: `LayerDelta` may grow optional parts.
        let mut layer = LayerDelta {
            w: Some(Tensor::ones(4, candle_core::DType::F32, &dev)?),
            ..Default::default()
        };
        layer.sparse = SparsePart::Sparse(s);
        t.layers.insert("m".into(), layer);
        t.head.insert(
            "head.weight".into(),
            Tensor::zeros((1, 8), candle_core::DType::F32, &dev)?,
        );
        // w: 4 f32; sparse: 3 values + 3 indices + 9 row offsets (u32); head: 8 f32.
        assert_eq!(task_bytes(&t), 16 + 3 * (4 + 4) + 9 * 4 + 32);
        Ok(())
    }
}
