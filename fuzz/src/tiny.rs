//! The tiny seeded LRS model the file targets load into, and the serving forward pass.

use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use lrs_nn::bert::binary_head::binary_logits;
use lrs_nn::bert::model::pool;
use lrs_nn::{
    BertCheckpoint, BertInput, BertModel, LoadCheck, LrsOptions, Pooling, SharedFactor, TaskBatch,
    TaskDelta,
};

/// Rank of the tiny model's adapters.
pub const RANK: usize = 4;

/// The tiny model and what files must agree with to load into it.
pub struct Tiny {
    /// Tiny BERT (hidden 32, 2 layers) with rank-[`RANK`] adapters on the default targets.
    pub model: BertModel,
    /// Its shared factor as built (restored after a fuzzed one was installed).
    pub shared: SharedFactor,
    /// A shared head `([1, h], [1])`, as a trained shared file carries.
    pub head: (Tensor, Tensor),
    /// What a task file must agree with ([`crate::base_sha256`], [`crate::shared_sha256`]).
    pub task_check: LoadCheck,
    /// What a shared file must agree with.
    pub shared_check: LoadCheck,
}

/// The process-wide tiny model, built on first use.
pub fn tiny() -> &'static Tiny {
    static TINY: OnceLock<Tiny> = OnceLock::new();
    TINY.get_or_init(|| build().expect("build the tiny model"))
}

fn build() -> lrs_nn::Result<Tiny> {
    let dir = tempfile::tempdir().map_err(|e| lrs_nn::NnError::Invalid(e.to_string()))?;
    let cfg = lrs_nn::testing::tiny_config();
    lrs_nn::testing::write_seeded_checkpoint(dir.path(), &cfg, 7)?;
    let ckpt = BertCheckpoint::from_dir(dir.path())?;
    let model = BertModel::load(
        &ckpt,
        Some(&LrsOptions::bert_default(RANK)),
        &Device::Cpu,
        DType::F32,
    )?;
    let shared = model.shared_factor(None)?;
    let h = cfg.hidden_size;
    let w: Vec<f32> = (0..h).map(|i| (i as f32 - 16.0) / 64.0).collect();
    let head = (
        Tensor::from_vec(w, (1, h), &Device::Cpu)?,
        Tensor::new(&[0.25f32], &Device::Cpu)?,
    );
    let task_check = LoadCheck {
        base_sha256: crate::base_sha256(),
        shared_sha256: Some(crate::shared_sha256()),
        ..model.load_check(None)
    };
    let shared_check = LoadCheck {
        base_sha256: crate::base_sha256(),
        ..model.load_check(None)
    };
    Ok(Tiny {
        model,
        shared,
        head,
        task_check,
        shared_check,
    })
}

/// Token ids (`[CLS] … [SEP]`) and masks of two row patterns, padded to 6.
const ROWS: [[u32; 6]; 2] = [[1, 5, 17, 42, 99, 2], [1, 9, 2, 0, 0, 0]];
const MASKS: [[u32; 6]; 2] = [[1; 6], [1, 1, 1, 0, 0, 0]];

/// A batch of the given row patterns.
fn input(patterns: &[usize]) -> candle_core::Result<BertInput> {
    let ids: Vec<u32> = patterns.iter().flat_map(|&p| ROWS[p]).collect();
    let mask: Vec<u32> = patterns.iter().flat_map(|&p| MASKS[p]).collect();
    let n = patterns.len();
    let input_ids = Tensor::from_vec(ids, (n, 6), &Device::Cpu)?;
    Ok(BertInput {
        token_type_ids: input_ids.zeros_like()?,
        attention_mask: Tensor::from_vec(mask, (n, 6), &Device::Cpu)?,
        input_ids,
    })
}

/// Logits of rows `patterns` whose row `i` belongs to `tasks[row_task[i]]`, computed as
/// `lrs_serve::Engine::forward` does (mean pooling, shared `head`, task heads added).
fn logits(
    model: &BertModel,
    head: Option<(&Tensor, &Tensor)>,
    tasks: Vec<&TaskDelta>,
    row_task: &[usize],
    patterns: &[usize],
    inference: bool,
) -> Result<Vec<f32>, String> {
    let batch = TaskBatch::new(tasks, row_task, model.device()).map_err(|e| e.to_string())?;
    let batch = if inference {
        batch.for_inference()
    } else {
        batch
    };
    let run = || -> candle_core::Result<Vec<f32>> {
        let input = input(patterns)?;
        let hidden = model.forward_t(&input, Some(&batch), false)?;
        let pooled = pool(&hidden, &input.attention_mask, Pooling::Mean)?;
        binary_logits(&pooled, head, &batch, true)?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()
    };
    run().map_err(|e| e.to_string())
}

/// Equal up to batching round-off (NaN equals NaN, ±∞ itself).
fn close(a: f32, b: f32) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1.0)
}

/// Scores `task` as the server would and checks what batching promises. A three-row batch —
/// rows 0 and 2 of `task` (same tokens), row 1 of the empty task — is run with the inference
/// and the training kernels; every row must equal the same row scored alone with its own task.
/// Any error on a file the loader accepted, or a row that depends on the other rows of its
/// batch, is a validation gap (the server would answer 500, or one task's file would change
/// another task's scores).
pub fn score(
    model: &BertModel,
    head: Option<(&Tensor, &Tensor)>,
    task: &TaskDelta,
) -> Result<Vec<f32>, String> {
    let base = TaskDelta::new("", task.rank);
    let alone_task = logits(model, head, vec![task], &[0], &[0], true)?;
    let alone_base = logits(model, head, vec![&base], &[0], &[1], true)?;
    let mut out = Vec::new();
    for inference in [true, false] {
        let mixed = logits(
            model,
            head,
            vec![task, &base],
            &[0, 1, 0],
            &[0, 1, 0],
            inference,
        )?;
        let want = [alone_task[0], alone_base[0], alone_task[0]];
        if mixed.len() != 3 || !mixed.iter().zip(want).all(|(&a, b)| close(a, b)) {
            return Err(format!(
                "mixed batch (inference kernels: {inference}) gives {mixed:?}, rows alone {want:?}"
            ));
        }
        out.extend(mixed);
    }
    Ok(out)
}
