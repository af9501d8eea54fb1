//! `lrs linear fit --dp-epsilon …` and `lrs linear sweep --privacy`: private AMHT-LRS
//! (user-level joint DP for the released `U`) from the command line.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use lrs_core::data_file::{read_instance, write_params};
use lrs_core::metrics::{relative_theta_error, report, subspace_distance};
use lrs_core::private_amht::{
    private_amht_lrs, Accountant, NoiseRng, NoiseSpec, PrivateConfig, PrivateResult,
};
use lrs_core::{fit, AmhtConfig, Init, Method, SyntheticSpec, TaskData};
use plotters::prelude::*;
use serde_json::json;

use crate::commands::linear::FitArgs;
use crate::commands::privacy::AccountantKind;
use crate::commands::sweep::SweepArgs;

/// Default number of private rounds `L`.
pub const DEFAULT_DP_ROUNDS: usize = 40;
/// Default Poisson sampling rate of users per round.
pub const DEFAULT_DP_SAMPLE_RATE: f64 = 1.0;
/// Default clip norm per sample: `C = DEFAULT_CLIP_PER_SAMPLE · m` (the contribution
/// `G_i = X_iᵀ r_i w_iᵀ` is a sum over the user's `m` samples).
pub const DEFAULT_CLIP_PER_SAMPLE: f64 = 1.0;

/// Settings of the private mechanism shared by `fit` and `sweep --privacy`.
#[derive(Debug, Args, Clone)]
pub struct MechanismArgs {
    /// Frobenius clip norm C of each user's contribution (default: m, one per sample).
    #[arg(long)]
    pub clip: Option<f64>,
    /// Number of private rounds L.
    #[arg(long, default_value_t = DEFAULT_DP_ROUNDS)]
    pub dp_rounds: usize,
    /// Poisson sampling rate q of users per round, in (0, 1].
    #[arg(long, default_value_t = DEFAULT_DP_SAMPLE_RATE)]
    pub dp_sample_rate: f64,
    /// Server step size η (default 1/m, the Newton step for isotropic features).
    #[arg(long)]
    pub dp_step: Option<f64>,
    /// Rounds at the full step before the averaging phase (steps η/j); default ⌈L/2⌉.
    #[arg(long)]
    pub dp_warm_rounds: Option<usize>,
    /// Accountant for calibration and the reported ε.
    #[arg(long, value_enum, default_value_t = AccountantKind::Rdp)]
    pub accountant: AccountantKind,
}

/// Differential-privacy flags of `lrs linear fit` (any of `--dp-epsilon` or
/// `--noise-multiplier` switches to private AMHT-LRS).
#[derive(Debug, Args, Clone)]
pub struct DpArgs {
    /// Target ε of user-level DP for the released U (σ is calibrated).
    #[arg(long)]
    pub dp_epsilon: Option<f64>,
    /// δ of the guarantee.
    #[arg(long, default_value_t = 1e-6)]
    pub dp_delta: f64,
    /// Fixed noise multiplier σ instead of a target ε (ε is then reported).
    #[arg(long, conflicts_with = "dp_epsilon")]
    pub noise_multiplier: Option<f64>,
    #[command(flatten)]
    pub mechanism: MechanismArgs,
    /// Seed user sampling and noise (reproducible, no privacy against the seed holder);
    /// without it both come from OS entropy.
    #[arg(long)]
    pub dp_seed: Option<u64>,
}

impl DpArgs {
    /// Whether any private option was given.
    pub fn enabled(&self) -> bool {
        self.dp_epsilon.is_some() || self.noise_multiplier.is_some()
    }
}

/// Flags of `lrs linear sweep --privacy`.
#[derive(Debug, Args, Clone)]
pub struct DpSweepArgs {
    /// Draw utility (relative error of Θ) vs ε for a fixed instance instead of the
    /// samples sweep (one curve per --dp-tasks value and --samples value).
    #[arg(long)]
    pub privacy: bool,
    /// Target ε values, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![0.5, 1.0, 2.0, 4.0, 8.0, 16.0])]
    pub epsilons: Vec<f64>,
    /// Numbers of users t, comma separated (default: --tasks). The smaller instances are
    /// the first t users of the largest.
    #[arg(long, value_delimiter = ',')]
    pub dp_tasks: Vec<usize>,
    /// δ of the guarantee.
    #[arg(long, default_value_t = 1e-6)]
    pub dp_delta: f64,
    #[command(flatten)]
    pub mechanism: MechanismArgs,
    /// Seed of the instance, the user sampling and the noise.
    #[arg(long, default_value_t = 0)]
    pub dp_seed: u64,
}

fn accountant(kind: AccountantKind) -> Accountant {
    match kind {
        AccountantKind::Rdp => Accountant::Rdp,
        AccountantKind::Pld => Accountant::Pld,
    }
}

/// The private configuration for `base` (its init is forced to random: the method of
/// moments would read every user's data unprotected).
#[allow(clippy::too_many_arguments)]
fn private_config(
    base: AmhtConfig,
    samples: usize,
    noise: NoiseSpec,
    delta: f64,
    mech: &MechanismArgs,
    rng: NoiseRng,
) -> PrivateConfig {
    PrivateConfig {
        base: AmhtConfig {
            init: Init::Random,
            ..base
        },
        rounds: mech.dp_rounds,
        sample_rate: mech.dp_sample_rate,
        clip: mech
            .clip
            .unwrap_or(DEFAULT_CLIP_PER_SAMPLE * samples as f64),
        noise,
        delta,
        step_size: mech.dp_step,
        warm_rounds: mech.dp_warm_rounds,
        accountant: accountant(mech.accountant),
        rng,
    }
}

/// Runs a private fit (called by `lrs linear fit` when [`DpArgs::enabled`]).
pub fn run_private_fit(a: &FitArgs) -> anyhow::Result<()> {
    let method: Method = a.method.parse()?;
    anyhow::ensure!(
        method == Method::AmhtLrs,
        "--dp-epsilon/--noise-multiplier: only --method amht-lrs has a private version, got {}",
        method.name()
    );
    let file = read_instance(&a.data)?;
    let inst = &file.instance;
    let dp = &a.dp;
    let noise = match (dp.dp_epsilon, dp.noise_multiplier) {
        (Some(epsilon), _) => NoiseSpec::Target {
            epsilon,
            delta: dp.dp_delta,
        },
        (None, Some(s)) => NoiseSpec::Multiplier(s),
        (None, None) => anyhow::bail!("give --dp-epsilon or --noise-multiplier"),
    };
    let rng = dp
        .dp_seed
        .map(NoiseRng::Seeded)
        .unwrap_or(NoiseRng::Entropy);
    let cfg = private_config(
        a.solver.config(a.rank, a.sparsity),
        inst.train.samples,
        noise,
        dp.dp_delta,
        &dp.mechanism,
        rng,
    );
    let start = Instant::now();
    let res = private_amht_lrs(&inst.train, &cfg, inst.truth.as_ref())?;
    let seconds = start.elapsed().as_secs_f64();
    let p = &res.params;
    let rep = report(
        &p.theta(),
        Some(&p.u),
        Some(&p.b),
        &inst.train,
        inst.test.as_ref(),
        inst.truth.as_ref(),
    );
    if let Some(out) = &a.out {
        let meta = HashMap::from([
            ("method".to_string(), "amht-lrs-dp".to_string()),
            ("data".to_string(), a.data.display().to_string()),
            ("dp".to_string(), serde_json::to_string(&res.privacy)?),
        ]);
        write_params(out, p, meta)?;
    }
    if a.json {
        let mut v = json!({
            "method": "amht-lrs",
            "private": true,
            "tasks": inst.train.tasks, "samples": inst.train.samples, "dim": inst.train.dim,
            "rank": a.rank, "sparsity": a.sparsity,
            "privacy": res.privacy,
            "step_size": res.step_size,
            "noise_rng": if dp.dp_seed.is_some() { "seeded" } else { "entropy" },
            "fit_seconds": seconds,
            "rounds": res.trace.len(),
            "metrics": rep,
        });
        if a.trace {
            v["trace"] = serde_json::to_value(&res.trace)?;
        }
        println!("{v}");
        return Ok(());
    }
    if a.trace {
        println!(
            "{:>5} {:>8} {:>8} {:>12} {:>12} {:>8}",
            "round", "sampled", "clipped", "step_norm", "subspace", "time_s"
        );
        for t in &res.trace {
            println!(
                "{:>5} {:>8} {:>8} {:>12.3e} {:>12} {:>8.3}",
                t.round,
                t.sampled_users,
                t.clipped_users,
                t.step_norm,
                t.subspace_distance
                    .map(|e| format!("{e:.3e}"))
                    .unwrap_or_else(|| "-".into()),
                t.elapsed_s
            );
        }
    }
    let pr = &res.privacy;
    println!("method            amht-lrs (private, user-level joint DP: U released)");
    println!(
        "instance          t={} m={} d={} (rank {}, sparsity {})",
        inst.train.tasks, inst.train.samples, inst.train.dim, a.rank, a.sparsity
    );
    println!("epsilon           {:.4}", pr.epsilon);
    println!("delta             {:e}", pr.delta);
    println!(
        "accountant        {}{}",
        pr.accountant,
        pr.order
            .map(|o| format!(" (order {o})"))
            .unwrap_or_default()
    );
    println!("noise multiplier  {:.4}", pr.noise_multiplier);
    println!("clip norm         {}", pr.clip_norm);
    println!("sample rate       {}", pr.sample_rate);
    println!("rounds            {}", pr.steps);
    println!("step size         {:.4e}", res.step_size);
    println!(
        "noise source      {}",
        if dp.dp_seed.is_some() {
            "seeded (reproducible; not for release)"
        } else {
            "OS entropy"
        }
    );
    crate::commands::linear::print_metrics(&rep);
    println!("fit time          {seconds:.3} s");
    Ok(())
}

/// One point of the privacy sweep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrivacyPoint {
    /// Users t.
    pub tasks: usize,
    /// Samples per user m.
    pub samples: usize,
    /// Target ε (`None` for the non-private reference).
    pub target_epsilon: Option<f64>,
    /// ε achieved (≤ target).
    pub epsilon: Option<f64>,
    /// Noise multiplier σ.
    pub noise_multiplier: Option<f64>,
    /// Relative error of Θ.
    pub theta_error: f64,
    /// Subspace distance of the released U.
    pub subspace_distance: f64,
    /// Fit wall time, seconds.
    pub seconds: f64,
}

/// Runs the privacy sweep (called by `lrs linear sweep --privacy`).
pub fn run_privacy_sweep(a: &SweepArgs) -> anyhow::Result<()> {
    let dp = &a.dp;
    anyhow::ensure!(!a.samples.is_empty(), "--samples: give at least one value");
    anyhow::ensure!(
        !dp.epsilons.is_empty(),
        "--epsilons: give at least one value"
    );
    let mut tasks = if dp.dp_tasks.is_empty() {
        vec![a.tasks]
    } else {
        dp.dp_tasks.clone()
    };
    tasks.sort_unstable();
    tasks.dedup();
    anyhow::ensure!(tasks[0] >= 1, "--dp-tasks: every value must be at least 1");
    let mut epsilons = dp.epsilons.clone();
    anyhow::ensure!(
        epsilons.iter().all(|e| e.is_finite() && *e > 0.0),
        "--epsilons: every value must be finite and > 0"
    );
    epsilons.sort_by(f64::total_cmp);
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let t_max = tasks[tasks.len() - 1];
    let mut points = Vec::new();
    for &m in &a.samples {
        let full = SyntheticSpec {
            dim: a.d,
            rank: a.r,
            sparsity: a.k,
            tasks: t_max,
            samples: m,
            test_samples: 0,
            noise: 0.0,
            sparse_magnitude: 1.0,
            seed: dp.dp_seed,
        }
        .generate()?;
        let truth_full = full
            .truth
            .as_ref()
            .context("synthetic instance without truth")?;
        for &t in &tasks {
            let (data, truth) = first_tasks(&full.train, truth_full, t);
            let base = a.solver.config(a.r, a.k);
            let reference = fit(Method::AmhtLrs, &data, &base, Some(&truth))?;
            let ref_params = reference
                .params
                .as_ref()
                .context("AMHT-LRS returned no parameters")?;
            points.push(PrivacyPoint {
                tasks: t,
                samples: m,
                target_epsilon: None,
                epsilon: None,
                noise_multiplier: None,
                theta_error: relative_theta_error(ref_params, &truth),
                subspace_distance: subspace_distance(&ref_params.u, &truth.u),
                seconds: reference.seconds,
            });
            for &eps in &epsilons {
                let noise = NoiseSpec::Target {
                    epsilon: eps,
                    delta: dp.dp_delta,
                };
                let cfg = private_config(
                    base.clone(),
                    m,
                    noise,
                    dp.dp_delta,
                    &dp.mechanism,
                    NoiseRng::Seeded(dp.dp_seed),
                );
                let start = Instant::now();
                let res: PrivateResult = private_amht_lrs(&data, &cfg, Some(&truth))?;
                let seconds = start.elapsed().as_secs_f64();
                let point = PrivacyPoint {
                    tasks: t,
                    samples: m,
                    target_epsilon: Some(eps),
                    epsilon: Some(res.privacy.epsilon),
                    noise_multiplier: Some(res.privacy.noise_multiplier),
                    theta_error: relative_theta_error(&res.params, &truth),
                    subspace_distance: subspace_distance(&res.params.u, &truth.u),
                    seconds,
                };
                if !a.json {
                    eprintln!(
                        "t={t} m={m} ε={eps}: σ={:.3} error {:.3e} ({seconds:.1} s)",
                        res.privacy.noise_multiplier, point.theta_error
                    );
                }
                points.push(point);
            }
        }
    }
    let csv = a.out_dir.join("privacy_sweep.csv");
    write_csv(&csv, &points)?;
    let svg = a.out_dir.join("privacy_sweep.svg");
    plot(&svg, &points, &epsilons, a)?;
    let setup = json!({
        "d": a.d, "r": a.r, "k": a.k, "delta": dp.dp_delta, "rounds": dp.mechanism.dp_rounds,
        "sample_rate": dp.mechanism.dp_sample_rate, "accountant": accountant(dp.mechanism.accountant).name(),
        "clip": dp.mechanism.clip.map(|c| c.to_string()).unwrap_or_else(|| format!("{DEFAULT_CLIP_PER_SAMPLE}·m")),
        "step_size": dp.mechanism.dp_step.map(|s| s.to_string()).unwrap_or_else(|| "1/m".into()),
        "warm_rounds": dp.mechanism.dp_warm_rounds.unwrap_or(dp.mechanism.dp_rounds.div_ceil(2)),
    });
    if a.json {
        println!(
            "{}",
            json!({ "setup": setup, "points": points, "csv": csv, "plot": svg })
        );
        return Ok(());
    }
    println!(
        "relative error of Θ vs ε (δ={:e}, L={}, q={}, {} accountant; d={}, r={}, k={})",
        dp.dp_delta,
        dp.mechanism.dp_rounds,
        dp.mechanism.dp_sample_rate,
        accountant(dp.mechanism.accountant).name(),
        a.d,
        a.r,
        a.k
    );
    print!("{:>7} {:>5} {:>12}", "t", "m", "non-private");
    for e in &epsilons {
        print!(" {:>10}", format!("ε={e}"));
    }
    println!();
    for &m in &a.samples {
        for &t in &tasks {
            let row: Vec<&PrivacyPoint> = points
                .iter()
                .filter(|p| p.tasks == t && p.samples == m)
                .collect();
            print!("{t:>7} {m:>5}");
            for p in row {
                if p.target_epsilon.is_none() {
                    print!(" {:>12.3e}", p.theta_error);
                } else {
                    print!(" {:>10.3e}", p.theta_error);
                }
            }
            println!();
        }
    }
    println!("wrote {} and {}", csv.display(), svg.display());
    Ok(())
}

/// The first `t` users of an instance (data and truth).
fn first_tasks(
    data: &TaskData,
    truth: &lrs_core::LrsParams,
    t: usize,
) -> (TaskData, lrs_core::LrsParams) {
    let (m, d, r) = (data.samples, data.dim, truth.rank());
    let sub = TaskData {
        tasks: t,
        samples: m,
        dim: d,
        x: data.x[..t * m * d].to_vec(),
        y: data.y[..t * m].to_vec(),
    };
    let tr = lrs_core::LrsParams {
        u: truth.u.clone(),
        w: truth.w[..t * r].to_vec(),
        b: truth.b[..t * d].to_vec(),
    };
    (sub, tr)
}

fn write_csv(path: &Path, points: &[PrivacyPoint]) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "tasks,samples,private,target_epsilon,epsilon,noise_multiplier,theta_error,subspace_distance,seconds")?;
    let o = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for p in points {
        writeln!(
            f,
            "{},{},{},{},{},{},{:e},{:e},{}",
            p.tasks,
            p.samples,
            p.target_epsilon.is_some(),
            o(p.target_epsilon),
            o(p.epsilon),
            o(p.noise_multiplier),
            p.theta_error,
            p.subspace_distance,
            p.seconds
        )?;
    }
    Ok(())
}

fn plot(
    path: &Path,
    points: &[PrivacyPoint],
    epsilons: &[f64],
    a: &SweepArgs,
) -> anyhow::Result<()> {
    let err =
        |e: plotters::drawing::DrawingAreaErrorKind<std::io::Error>| anyhow::anyhow!("plot: {e}");
    // x is log2 ε on a linear axis, labelled with ε itself (plotters' log axis crowds its
    // labels on a short range).
    let (x_min, x_max) = (
        epsilons[0].log2() - 0.3,
        epsilons[epsilons.len() - 1].log2() + 0.3,
    );
    let private: Vec<f64> = points
        .iter()
        .filter(|p| p.target_epsilon.is_some())
        .map(|p| p.theta_error)
        .filter(|e| e.is_finite() && *e > 0.0)
        .collect();
    let y_hi = private.iter().copied().fold(1e-6f64, f64::max) * 2.0;
    let y_lo = private.iter().copied().fold(y_hi, f64::min) / 10.0;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let title = format!(
        "Private AMHT-LRS: rel. error of Θ vs ε (δ={:e}), d={}, r={}, k={}",
        a.dp.dp_delta, a.d, a.r, a.k
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_min..x_max, (y_lo..y_hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("ε (user-level, log scale)")
        .x_labels(((x_max - x_min).ceil() as usize + 1).max(2))
        .x_label_formatter(&|v| format!("{}", (2f64.powf(*v) * 100.0).round() / 100.0))
        .light_line_style(TRANSPARENT)
        .y_desc("‖Θ̂ − Θ*‖_F / ‖Θ*‖_F")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(err)?;
    let mut curves: Vec<(usize, usize)> = points.iter().map(|p| (p.tasks, p.samples)).collect();
    curves.dedup();
    for (n, &(t, m)) in curves.iter().enumerate() {
        let color = Palette99::pick(n).to_rgba();
        let series: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.tasks == t && p.samples == m)
            .filter_map(|p| {
                p.target_epsilon
                    .map(|e| (e.log2(), p.theta_error.max(y_lo)))
            })
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(format!("private, t={t}, m={m}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|(x, y)| Circle::new((x, y), 3, color.filled())),
            )
            .map_err(err)?;
        if let Some(r) = points
            .iter()
            .find(|p| p.tasks == t && p.samples == m && p.target_epsilon.is_none())
        {
            // The non-private error is often at machine precision, far below the private
            // curves: then it is drawn just above the axis floor and the legend says so.
            let below = r.theta_error < y_lo;
            let y = r.theta_error.clamp(y_lo * 1.3, y_hi);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x_min, y), (x_max, y)],
                    8,
                    5,
                    color.stroke_width(1),
                ))
                .map_err(err)?
                .label(format!(
                    "non-private, t={t}, m={m}: {:.1e}{}",
                    r.theta_error,
                    if below { " (below axis)" } else { "" }
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1))
                });
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
