//! One entry point for every method of the linear harness, so the CLI, the sweep and the
//! benchmarks treat AMHT-LRS and the baselines alike.

use std::time::Instant;

use faer::Mat;

use crate::amht_lrs::{amht_lrs, AmhtConfig, RoundTrace};
use crate::baselines::{global_model, oracle, per_task_least_squares, sparse_only};
use crate::error::{CoreError, Result};
use crate::metrics::{report, Report};
use crate::problem::{LrsParams, TaskData};

/// The methods of the harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// AMHT-LRS: shared low rank + per-task sparse.
    AmhtLrs,
    /// Low-rank only (AMHT-LRS with `k = 0`; FedRep/MLLAM).
    Lowrank,
    /// Sparse only, per task.
    Sparse,
    /// Per-task least squares.
    Lstsq,
    /// One global `θ`.
    Global,
    /// Knows `U*` and the supports.
    Oracle,
}

impl Method {
    /// Every method, in the order tables print them.
    pub const ALL: [Method; 6] = [
        Method::AmhtLrs,
        Method::Lowrank,
        Method::Sparse,
        Method::Lstsq,
        Method::Global,
        Method::Oracle,
    ];

    /// The name used on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            Method::AmhtLrs => "amht-lrs",
            Method::Lowrank => "lowrank",
            Method::Sparse => "sparse",
            Method::Lstsq => "lstsq",
            Method::Global => "global",
            Method::Oracle => "oracle",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        Method::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| CoreError::InvalidParameter {
            name: "method",
            reason: format!("unknown method `{s}`; expected one of amht-lrs, lowrank, sparse, lstsq, global, oracle"),
        })
    }
}

/// What a fit produced.
#[derive(Debug, Clone)]
pub struct Fit {
    /// The method.
    pub method: Method,
    /// `θ̂_i` stacked, `[t, d]` row-major.
    pub theta: Vec<f64>,
    /// Structured estimate when the method has one (`U`, `w`, `b`).
    pub params: Option<LrsParams>,
    /// Sparse parts of methods without a factor (sparse-only).
    pub sparse: Option<Vec<f64>>,
    /// Per-round trace of alternating methods.
    pub trace: Vec<RoundTrace>,
    /// Wall time of the fit alone, seconds.
    pub seconds: f64,
}

impl Fit {
    /// Metrics of this fit.
    pub fn report(
        &self,
        train: &TaskData,
        test: Option<&TaskData>,
        truth: Option<&LrsParams>,
    ) -> Report {
        let factor: Option<&Mat<f64>> = self.params.as_ref().map(|p| &p.u);
        let sparse = match (&self.params, &self.sparse, self.method) {
            (_, _, Method::Lowrank) => None,
            (Some(p), _, _) => Some(p.b.as_slice()),
            (None, Some(b), _) => Some(b.as_slice()),
            _ => None,
        };
        report(&self.theta, factor, sparse, train, test, truth)
    }
}

/// Fits `method` to `data`. `cfg` carries rank, sparsity and the AMHT-LRS settings; the
/// oracle needs `truth`, which otherwise only feeds the trace.
pub fn fit(
    method: Method,
    data: &TaskData,
    cfg: &AmhtConfig,
    truth: Option<&LrsParams>,
) -> Result<Fit> {
    let start = Instant::now();
    let mut fit = Fit {
        method,
        theta: Vec::new(),
        params: None,
        sparse: None,
        trace: Vec::new(),
        seconds: 0.0,
    };
    match method {
        Method::AmhtLrs | Method::Lowrank => {
            let mut c = cfg.clone();
            if method == Method::Lowrank {
                c.sparse.sparsity = 0;
            }
            let res = amht_lrs(data, &c, truth)?;
            fit.theta = res.params.theta();
            fit.trace = res.trace;
            fit.params = Some(res.params);
        }
        Method::Sparse => {
            let b = sparse_only(data, &cfg.sparse);
            fit.theta = b.clone();
            fit.sparse = Some(b);
        }
        Method::Lstsq => fit.theta = per_task_least_squares(data),
        Method::Global => fit.theta = global_model(data),
        Method::Oracle => {
            let truth = truth.ok_or(CoreError::InvalidParameter {
                name: "method",
                reason:
                    "the oracle needs the ground truth (u_star, w_star, b_star) in the data file"
                        .into(),
            })?;
            let p = oracle(data, truth);
            fit.theta = p.theta();
            fit.params = Some(p);
        }
    }
    fit.seconds = start.elapsed().as_secs_f64();
    Ok(fit)
}
