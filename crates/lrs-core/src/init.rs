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
    /// Top-`r` eigenvectors of a moment whose mean is `(1/t) Σ θ_i θ_iᵀ` (the pair moment over
    /// distinct samples of a task; see `method_of_moments`).
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

/// The top eigenvectors of a moment whose mean is `(1/t) Σ θ_i θ_iᵀ`. With `m ≥ 2` samples per
/// task it is the pair moment `(1/(t m (m−1))) Σ_i Σ_{j≠l} y_ij y_il x_ij x_ilᵀ =
/// (1/(t m (m−1))) Σ_i (S_i S_iᵀ − Σ_j y_ij² x_ij x_ijᵀ)`, `S_i = X_iᵀ y_i`: an unbiased
/// estimate of `(1/t) Σ θ θᵀ` for isotropic `x`, without the `‖θ‖² I` term that the
/// single-sample moment `E[y² x xᵀ] = ‖θ‖² I + 2 θ θᵀ` (Gaussian `x`) carries, and whose noise
/// that term inflates. On d=100, r=5, k=5, t=500 the start's subspace distance to `U*` is
/// about 0.4 at m = 30–40, against about 0.9 for the single-sample moment. With one sample
/// per task, the single-sample moment.
fn method_of_moments(data: &TaskData, rank: usize) -> Result<Mat<f64>> {
    if data.dim > DENSE_MOMENT_MAX_DIM {
        return Ok(moment_block_krylov(data, rank, KRYLOV_MAX_BLOCKS));
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
    // Pairs: Σ_{j≠l} y_j y_l x_j x_lᵀ = S Sᵀ − Σ_j y_j² x_j x_jᵀ per task, S = Xᵀ y.
    let pairs = (m >= 2).then(|| {
        let sums = task_response_sums(data);
        let st = MatRef::from_row_major_slice(&sums, data.tasks, d);
        st.transpose() * st
    });
    let scale = 1.0 / (data.tasks * m * (m - 1).max(1)) as f64;
    let moment = Mat::<f64>::from_fn(d, d, |p, q| {
        let (hi, lo) = if p >= q { (p, q) } else { (q, p) };
        match &pairs {
            Some(sst) => (sst[(p, q)] - flat[hi * d + lo]) * scale,
            None => flat[hi * d + lo] * scale,
        }
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

/// Every task's `S_i = X_iᵀ y_i`, `[t, d]` row-major.
fn task_response_sums(data: &TaskData) -> Vec<f64> {
    use rayon::prelude::*;
    let d = data.dim;
    let mut sums = vec![0.0; data.tasks * d];
    sums.par_chunks_mut(d).enumerate().for_each(|(i, s)| {
        crate::linalg::gemv(s, data.x_task(i).transpose(), data.y_task(i), 1.0, false);
    });
    sums
}

/// Tasks whose scaled samples form one block of the moment's GEMM.
const MOMENT_BLOCK_TASKS: usize = 16;

/// Largest `d` for which the `d × d` moment is formed and eigendecomposed; above it the
/// top eigenvectors come from block Krylov on the implicit moment.
pub const DENSE_MOMENT_MAX_DIM: usize = 512;

/// The moment's product `V ↦ M V`, applied without forming `M` (`O(tmdr)`, one read of `X`
/// from memory: the second product of each block of tasks reads it from cache). With two or
/// more samples per task it is the pair moment of [`method_of_moments`]; with one, the
/// shifted `(1/tm) Σ y² x xᵀ − c I`, where `c = mean(y²)` removes the isotropic `‖θ‖² I` part
/// of `E[y² x xᵀ]` (the eigenvectors are unchanged).
struct ImplicitMoment<'a> {
    data: &'a TaskData,
    correction: Correction,
    /// Tasks per block: about 256 KiB of samples.
    block: usize,
}

/// What [`ImplicitMoment`] makes of `(1/tm) Σ y² x xᵀ V`.
enum Correction {
    /// The pair moment, from every task's `S_i = X_iᵀ y_i` (`[t, d]`).
    Pairs(Mat<f64>),
    /// One sample per task: the shift `c = mean(y²)`.
    Shift(f64),
}

impl<'a> ImplicitMoment<'a> {
    fn new(data: &'a TaskData) -> Self {
        let (d, m) = (data.dim, data.samples);
        let correction = if m >= 2 {
            let flat = task_response_sums(data);
            Correction::Pairs(crate::linalg::mat_from_row_major(&flat, data.tasks, d))
        } else {
            let n_total = (data.tasks * m) as f64;
            Correction::Shift(data.y.iter().map(|y| y * y).sum::<f64>() / n_total)
        };
        Self {
            data,
            correction,
            block: (SUBSPACE_BLOCK_VALUES / (m * d)).clamp(1, MOMENT_BLOCK_TASKS),
        }
    }

    fn apply(&self, v: MatRef<'_, f64>) -> Mat<f64> {
        let (data, block, rank) = (self.data, self.block, v.ncols());
        let (d, m) = (data.dim, data.samples);
        let n_total = (data.tasks * m) as f64;
        // Per block of tasks: X V (GEMM), rows scaled by y²/n, then Xᵀ (that) (GEMM).
        let flat = par_chunked_sum(data.tasks, d * rank, |range, acc| {
            let mut xv = Mat::<f64>::zeros(block * m, rank);
            let mut at = range.start;
            while at < range.end {
                let n = block.min(range.end - at);
                let rows =
                    MatRef::from_row_major_slice(&data.x[at * m * d..(at + n) * m * d], n * m, d);
                let mut part = xv.as_mut().subrows_mut(0, n * m);
                matmul(part.rb_mut(), Accum::Replace, rows, v, 1.0, Par::Seq);
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
        match &self.correction {
            // (S Sᵀ V − Σ y² x xᵀ V) / (t m (m − 1)); `flat` holds the second term over tm.
            Correction::Pairs(sums) => {
                let pairs = sums.transpose() * (sums * v);
                let (t, mm) = (data.tasks as f64, m as f64);
                Mat::<f64>::from_fn(d, rank, |p, a| {
                    pairs[(p, a)] / (t * mm * (mm - 1.0)) - flat[p * rank + a] / (mm - 1.0)
                })
            }
            Correction::Shift(shift) => {
                Mat::<f64>::from_fn(d, rank, |p, a| flat[p * rank + a] - shift * v[(p, a)])
            }
        }
    }
}

/// Top-`rank` eigenvectors of the implicit moment by block Krylov (block Lanczos with full
/// reorthogonalisation and Rayleigh–Ritz): the basis `[V, MV, M²V, …]` is grown one block of
/// `rank` columns per product and the Ritz vectors of `Qᵀ M Q` are taken, which converges in
/// about the square root of the products that orthogonal iteration `V ← MV` needs when the
/// moment's spectral gap is small (many dimensions, few samples). Stops when the Ritz subspace
/// moves less than [`SUBSPACE_TOL`], after `max_blocks` products, or when the Krylov space is
/// exhausted.
fn moment_block_krylov(data: &TaskData, rank: usize, max_blocks: usize) -> Mat<f64> {
    let d = data.dim;
    let moment = ImplicitMoment::new(data);
    let mut block = random_orthonormal(d, rank, &mut ChaCha8Rng::seed_from_u64(0x6d6f6d));
    // Orthonormal basis `Q` (column blocks) and `M Q`, column for column.
    let mut basis = Mat::<f64>::zeros(d, 0);
    let mut images = Mat::<f64>::zeros(d, 0);
    let mut ritz: Option<Mat<f64>> = None;
    let max_blocks = max_blocks.min(d / rank).max(1);
    for _ in 0..max_blocks {
        let image = moment.apply(block.as_ref());
        basis = concat_columns(&basis, &block);
        images = concat_columns(&images, &image);
        // Rayleigh–Ritz on span(Q): the top eigenvectors of the symmetrised `Qᵀ M Q`.
        let t = basis.transpose() * &images;
        let n = t.ncols();
        let t = Mat::<f64>::from_fn(n, n, |i, j| 0.5 * (t[(i, j)] + t[(j, i)]));
        let Ok(evd) = t.self_adjoint_eigen(Side::Lower) else {
            break;
        };
        let top = Mat::<f64>::from_fn(n, rank, |i, a| evd.U()[(i, n - 1 - a)]);
        let next_ritz = &basis * &top;
        let moved = ritz.as_ref().map(|prev| {
            let overlap = prev.transpose() * &next_ritz;
            (&next_ritz - prev * &overlap).norm_l2()
        });
        ritz = Some(next_ritz);
        if moved.is_some_and(|m| m < SUBSPACE_TOL) || basis.ncols() + rank > d {
            break;
        }
        // The next block: M Q_j with the whole basis projected out (twice, for stability).
        let image_norm = image.norm_l2();
        let mut fresh = image;
        for _ in 0..2 {
            let coef = basis.transpose() * &fresh;
            fresh -= &basis * &coef;
        }
        let kept = fresh.norm_l2();
        if kept.is_nan() || kept <= KRYLOV_BREAKDOWN * image_norm {
            break;
        }
        block = crate::synthetic::orthonormalize(&fresh).0;
    }
    ritz.unwrap_or(block)
}

/// `[a, b]`.
fn concat_columns(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    let k = a.ncols();
    Mat::from_fn(a.nrows(), k + b.ncols(), |i, j| {
        if j < k {
            a[(i, j)]
        } else {
            b[(i, j - k)]
        }
    })
}

/// A new Krylov block that keeps less than this fraction of `M Q_j` once the basis is
/// projected out means the space is (numerically) invariant: nothing new to add.
const KRYLOV_BREAKDOWN: f64 = 1e-12;

/// Products of the implicit moment (Krylov blocks) at most. Where the moment's gap is wide the
/// Ritz subspace settles in a few blocks; where it is narrow (many dimensions, few samples)
/// the moment itself is a noisy estimate, and more blocks refine the noise: on d = 1 000,
/// t = 1 000, m = 60 (measured on the single-sample moment, before the pair moment), 12 and
/// 30 blocks started fits that tracked each other round for round, and each block reads all
/// of `X` once.
pub const KRYLOV_MAX_BLOCKS: usize = 12;

/// Values of `X` per block of the implicit moment's products (256 KiB of f64).
const SUBSPACE_BLOCK_VALUES: usize = 1 << 15;

/// Subspace movement below which the block Krylov iteration stops.
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

    /// The pair moment starts near `U*` where the single-sample moment `Σ y² x xᵀ` does not
    /// (about 0.9 on this instance): the start the m = 30–35 fits need.
    #[test]
    fn pair_moment_starts_near_the_truth() {
        let spec = SyntheticSpec {
            samples: 30,
            seed: 0,
            ..Default::default()
        };
        let inst = spec.generate().unwrap();
        let u0 = initial_factor(&inst.train, 5, Init::MethodOfMoments, 0).unwrap();
        let dist = crate::metrics::subspace_distance(&u0, &inst.truth.unwrap().u);
        assert!(dist < 0.5, "moment start at subspace distance {dist}");
    }

    /// The block Krylov path (used above `DENSE_MOMENT_MAX_DIM`) finds the same top
    /// eigenvectors as the dense moment's eigendecomposition.
    #[test]
    fn block_krylov_matches_the_dense_moment() {
        let spec = SyntheticSpec {
            dim: 60,
            rank: 3,
            sparsity: 2,
            tasks: 200,
            samples: 20,
            seed: 11,
            ..Default::default()
        };
        let inst = spec.generate().unwrap();
        let dense = method_of_moments(&inst.train, 3).unwrap();
        let krylov = moment_block_krylov(&inst.train, 3, 20);
        let dist = crate::metrics::subspace_distance(&krylov, &dense);
        assert!(
            dist < 1e-8,
            "Krylov and dense moment subspaces differ by {dist}"
        );
        // Few blocks already land near it; one block is just the random start pushed once.
        let few =
            crate::metrics::subspace_distance(&moment_block_krylov(&inst.train, 3, 4), &dense);
        let one =
            crate::metrics::subspace_distance(&moment_block_krylov(&inst.train, 3, 1), &dense);
        assert!(few < one, "4 blocks ({few}) no closer than 1 ({one})");
    }
}
