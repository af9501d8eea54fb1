//! Initialisation of the shared factor `U₀`.

use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::reborrow::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{CoreError, Result};
use crate::linalg::par_chunked_sum;
use crate::problem::TaskData;
use crate::synthetic::random_orthonormal;

/// How `U₀` is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Init {
    /// Top-`r` eigenvectors of `M = (1/tm) Σ_ij y_ij² x_ij x_ijᵀ`.
    MethodOfMoments,
    /// A uniformly random orthonormal `[d, r]` matrix.
    Random,
}

/// Computes `U₀` (`seed` is used by [`Init::Random`] only).
pub fn initial_factor(data: &TaskData, rank: usize, init: Init, seed: u64) -> Result<Mat<f64>> {
    match init {
        Init::Random => Ok(random_orthonormal(data.dim, rank, &mut init_rng(seed))),
        Init::MethodOfMoments => method_of_moments(data, rank),
    }
}

/// The stream of the random initialisation: a ChaCha stream of its own, so that a fit with
/// seed `s` never starts from the `U*` that [`crate::SyntheticSpec`] draws with the same seed.
fn init_rng(seed: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(INIT_STREAM);
    rng
}

/// Stream id of [`init_rng`] (task streams of the generator are `1..=t`, `U*` uses stream 0).
const INIT_STREAM: u64 = u64::MAX;

/// `E[y² x xᵀ] = ‖θ‖² I + 2 θ θᵀ` for Gaussian `x`, so the top eigenvectors of the empirical
/// moment span the dominant directions of the `θ_i`.
fn method_of_moments(data: &TaskData, rank: usize) -> Result<Mat<f64>> {
    if data.dim > DENSE_MOMENT_MAX_DIM {
        return Ok(moment_subspace_iteration(data, rank, 50));
    }
    let (d, m) = (data.dim, data.samples);
    // Σ y² x xᵀ = Σ (|y| x)(|y| x)ᵀ: scaled rows of a few tasks at a time, then one
    // triangular GEMM per block into the lower triangle.
    let flat = par_chunked_sum(data.tasks, d * d, |range, acc| {
        let mut scaled = vec![0.0; MOMENT_BLOCK_TASKS * m * d];
        let mut at = range.start;
        while at < range.end {
            let n = MOMENT_BLOCK_TASKS.min(range.end - at);
            let rows = &data.x[at * m * d..(at + n) * m * d];
            let ys = &data.y[at * m..(at + n) * m];
            for ((dst, src), y) in scaled.chunks_exact_mut(d).zip(rows.chunks_exact(d)).zip(ys) {
                let c = y.abs();
                for (o, v) in dst.iter_mut().zip(src) {
                    *o = c * v;
                }
            }
            let xs = MatRef::from_row_major_slice(&scaled[..n * m * d], n * m, d);
            triangular::matmul(
                MatMut::from_row_major_slice_mut(acc, d, d),
                BlockStructure::TriangularLower,
                Accum::Add,
                xs.transpose(),
                BlockStructure::Rectangular,
                xs,
                BlockStructure::Rectangular,
                1.0,
                Par::Seq,
            );
            at += n;
        }
    });
    let scale = 1.0 / (data.tasks * m) as f64;
    let moment = Mat::<f64>::from_fn(d, d, |p, q| {
        let (hi, lo) = if p >= q { (p, q) } else { (q, p) };
        flat[hi * d + lo] * scale
    });
    let evd = moment
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| CoreError::Numerical {
            step: "method-of-moments eigendecomposition",
            reason: format!("{e:?}"),
        })?;
    // Eigenvalues come in non-decreasing order: the last `rank` columns are the top ones.
    let vecs = evd.U();
    Ok(Mat::from_fn(d, rank, |p, a| vecs[(p, d - 1 - a)]))
}

/// Tasks whose scaled samples form one block of the moment's GEMM.
const MOMENT_BLOCK_TASKS: usize = 16;

/// Largest `d` for which the `d × d` moment is formed and eigendecomposed; above it the
/// top eigenvectors come from subspace iteration on the implicit moment.
pub const DENSE_MOMENT_MAX_DIM: usize = 512;

/// Orthogonal iteration on `V ↦ (M − c I) V` with `M V = (1/tm) Σ y² x (xᵀ V)` applied
/// without forming `M` (`O(tmdr)` per iteration). The shift `c = mean(y²)` removes the
/// isotropic `‖θ‖² I` part of `E[y² x xᵀ]`, which leaves the eigenvectors unchanged and makes
/// the spectral gap large enough for a few dozen iterations.
fn moment_subspace_iteration(data: &TaskData, rank: usize, iters: usize) -> Mat<f64> {
    let (d, m) = (data.dim, data.samples);
    let n_total = (data.tasks * m) as f64;
    let shift = data.y.iter().map(|y| y * y).sum::<f64>() / n_total;
    let mut v = random_orthonormal(d, rank, &mut ChaCha8Rng::seed_from_u64(0x6d6f6d));
    // Blocks of about 256 KiB of samples, so that the second product reads them from cache.
    let block = (SUBSPACE_BLOCK_VALUES / (m * d)).clamp(1, MOMENT_BLOCK_TASKS);
    for _ in 0..iters {
        // Per block of tasks: X V (GEMM), rows scaled by y²/n, then Xᵀ (that) (GEMM).
        let flat = par_chunked_sum(data.tasks, d * rank, |range, acc| {
            let mut xv = Mat::<f64>::zeros(block * m, rank);
            let mut at = range.start;
            while at < range.end {
                let n = block.min(range.end - at);
                let rows =
                    MatRef::from_row_major_slice(&data.x[at * m * d..(at + n) * m * d], n * m, d);
                let mut part = xv.as_mut().subrows_mut(0, n * m);
                matmul(
                    part.rb_mut(),
                    Accum::Replace,
                    rows,
                    v.as_ref(),
                    1.0,
                    Par::Seq,
                );
                for (s, y) in data.y[at * m..(at + n) * m].iter().enumerate() {
                    let c = y * y / n_total;
                    for a in 0..rank {
                        part[(s, a)] *= c;
                    }
                }
                matmul(
                    MatMut::from_row_major_slice_mut(acc, d, rank),
                    Accum::Add,
                    rows.transpose(),
                    part.rb(),
                    1.0,
                    Par::Seq,
                );
                at += n;
            }
        });
        let mv = Mat::<f64>::from_fn(d, rank, |p, a| flat[p * rank + a] - shift * v[(p, a)]);
        let next = crate::synthetic::orthonormalize(&mv).0;
        // Stop once the subspace no longer moves: ‖V' − V Vᵀ V'‖_F.
        let overlap = v.transpose() * &next;
        let moved = (&next - &v * &overlap).norm_l2();
        v = next;
        if moved < SUBSPACE_TOL {
            break;
        }
    }
    v
}

/// Values of `X` per block of the subspace iteration (256 KiB of f64).
const SUBSPACE_BLOCK_VALUES: usize = 1 << 15;

/// Subspace movement below which the subspace iteration stops.
const SUBSPACE_TOL: f64 = 1e-9;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SyntheticSpec;

    #[test]
    fn random_init_is_not_the_generators_truth_for_the_same_seed() {
        let spec = SyntheticSpec {
            dim: 20,
            rank: 2,
            sparsity: 1,
            tasks: 3,
            samples: 4,
            seed: 7,
            ..Default::default()
        };
        let inst = spec.generate().unwrap();
        let u0 = initial_factor(&inst.train, 2, Init::Random, 7).unwrap();
        let dist = crate::metrics::subspace_distance(&u0, &inst.truth.unwrap().u);
        assert!(dist > 0.1, "random init landed on U* (distance {dist})");
    }
}
