//! Synthetic shared and task files for a given model: random `U`, `V` and heads, random `w`
//! and random sparse `S` at a given density. For benchmarks and tests — the files are real
//! (hash-tied to the model, validated on load), only their numbers are random.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use lrs_nn::bert::binary_head::{HEAD_BIAS, HEAD_WEIGHT};
use lrs_nn::{
    BertModel, LayerDelta, LowRank, SharedFactor, SparseDelta, SparsePart, TaskDelta,
    TaskProvenance,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use lrs_serve::error::{Result, ServeError};

/// How synthetic task files look.
#[derive(Debug, Clone, Copy)]
pub struct TaskSpec {
    /// Fraction of each adapted `[out, in]` matrix that is non-zero in `S`.
    pub density: f64,
    /// Magnitude bound of the sparse values (uniform in `±value_scale`).
    pub value_scale: f32,
    /// Stored dtype of sparse values (F16, BF16 or F32).
    pub value_dtype: DType,
    /// Whether each task gets its own head.
    pub task_head: bool,
}

impl Default for TaskSpec {
    fn default() -> Self {
        Self {
            density: 0.01,
            value_scale: 0.05,
            value_dtype: DType::F16,
            task_head: true,
        }
    }
}

fn uniform(rng: &mut StdRng, n: usize, bound: f32, center: f32) -> Vec<f32> {
    (0..n)
        .map(|_| center + rng.gen_range(-bound..=bound))
        .collect()
}

fn tensor(values: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
    Ok(Tensor::from_vec(values, shape, &Device::Cpu)?)
}

/// A shared factor for `model` with random `U` (±0.1), `V` (±1/√in) and shared head, saved
/// to `path`. Returns it with its `sha256` set (task files record it).
pub fn write_shared(model: &BertModel, path: &Path, seed: u64) -> Result<SharedFactor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut shared = model.shared_factor(None)?;
    let rank = shared.rank;
    for (module, (out_dim, in_dim)) in model.adapted_modules() {
        let u = tensor(
            uniform(&mut rng, out_dim * rank, 0.1, 0.0),
            &[out_dim, rank],
        )?;
        let bound = 1.0 / (in_dim as f32).sqrt();
        let v = tensor(
            uniform(&mut rng, in_dim * rank, bound, 0.0),
            &[in_dim, rank],
        )?;
        shared
            .layers
            .insert(module, LowRank::new(u, v, shared.scale));
    }
    let h = model.config().hidden_size;
    let bound = 1.0 / (h as f32).sqrt();
    shared.head.insert(
        HEAD_WEIGHT.into(),
        tensor(uniform(&mut rng, h, bound, 0.0), &[1, h])?,
    );
    shared
        .head
        .insert(HEAD_BIAS.into(), tensor(vec![0.1], &[1])?);
    shared.save(path).map_err(lrs_nn::NnError::from)?;
    Ok(shared)
}

/// A random task for `model`: `w` around 1 and `density·out·in` random non-zeros of `S` in
/// every adapted layer, and a head if `spec.task_head`.
pub fn random_task(model: &BertModel, id: &str, spec: &TaskSpec, seed: u64) -> Result<TaskDelta> {
    if !(0.0..=1.0).contains(&spec.density) {
        return Err(ServeError::Config(format!(
            "density {} is not in [0, 1]",
            spec.density
        )));
    }
    let rank = model
        .lrs_options()
        .map(|o| o.rank)
        .ok_or_else(|| ServeError::Config("the model has no LRS adapters".into()))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut task = TaskDelta::new(id, rank);
    for (module, (out_dim, in_dim)) in model.adapted_modules() {
        let n = out_dim * in_dim;
        let nnz = ((n as f64) * spec.density).round() as usize;
        let mut indices: Vec<u32> = rand::seq::index::sample(&mut rng, n, nnz.min(n))
            .into_iter()
            .map(|i| i as u32)
            .collect();
        indices.sort_unstable();
        let values = tensor(
            uniform(&mut rng, indices.len(), spec.value_scale, 0.0),
            &[indices.len()],
        )?;
        let sparse = SparseDelta::new(out_dim, in_dim, indices, values)?;
        let mut layer = LayerDelta {
            w: Some(tensor(uniform(&mut rng, rank, 0.5, 1.0), &[rank])?),
            ..Default::default()
        };
        layer.sparse = SparsePart::Sparse(sparse);
        task.layers.insert(module, layer);
    }
    if spec.task_head {
        let h = model.config().hidden_size;
        task.head.insert(
            HEAD_WEIGHT.into(),
            tensor(uniform(&mut rng, h, 0.1, 0.0), &[1, h])?,
        );
        task.head.insert(
            HEAD_BIAS.into(),
            tensor(uniform(&mut rng, 1, 0.1, 0.0), &[1])?,
        );
    }
    Ok(task)
}

/// The provenance task files for `model` + `shared` must record.
pub fn provenance(model: &BertModel, shared: &SharedFactor) -> Result<TaskProvenance> {
    Ok(TaskProvenance {
        base_sha256: model.base_info().sha256.clone(),
        shared_sha256: shared
            .sha256
            .clone()
            .ok_or_else(|| ServeError::Config("the shared factor was never saved".into()))?,
    })
}

/// Writes `<id>.safetensors` for each id into `dir` (task `i` seeded with `seed + i`).
/// Returns the total bytes written.
pub fn write_tasks(
    model: &BertModel,
    shared: &SharedFactor,
    dir: &Path,
    ids: &[String],
    spec: &TaskSpec,
    seed: u64,
) -> Result<u64> {
    let prov = provenance(model, shared)?;
    std::fs::create_dir_all(dir).map_err(|source| ServeError::Io {
        file: dir.to_path_buf(),
        source,
    })?;
    let mut total = 0;
    for (i, id) in ids.iter().enumerate() {
        let task = random_task(model, id, spec, seed.wrapping_add(i as u64))?;
        let path = dir.join(format!("{id}.safetensors"));
        task.save(&path, &prov, spec.value_dtype)
            .map_err(lrs_nn::NnError::from)?;
        total += std::fs::metadata(&path)
            .map_err(|source| ServeError::Io { file: path, source })?
            .len();
    }
    Ok(total)
}
