//! Inner loops of the fused kernels, written so the compiler vectorizes them: fixed-width lane
//! accumulators for reductions and a branch-free `exp`. Kernels run their bodies inside
//! [`dispatch`], which compiles them for the widest instruction set the CPU has (AVX-512,
//! AVX2, …, chosen at run time by `pulp`), so the portable binary still uses wide vectors.

/// Lanes of the reduction accumulators (one AVX-512 register of f32).
const LANES: usize = 16;

/// Runs `f` compiled for the best instruction set this CPU supports.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// `Σ a_i b_i`.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// `Σ a_i`.
#[inline(always)]
pub fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let c = a.chunks_exact(LANES);
    let r = c.remainder();
    for x in c {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f32>() + r.iter().sum::<f32>()
}

/// `y += a · x`.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

/// `e^x` to within a few ulp for −87 ≤ x ≤ 88 (0 below, e^88 above), without a branch:
/// `n = round(x log2 e)`, `r = x − n ln 2` (ln 2 split in two, so `r` is exact),
/// `e^x = 2^n · e^r` with `e^r` from its degree-7 Taylor polynomial on |r| ≤ ln 2 / 2.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.0, 88.0);
    let n = (xc * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let y = p * f32::from_bits(((n as i32 + 127) << 23) as u32);
    if x < -87.0 {
        0.0
    } else {
        y
    }
}
