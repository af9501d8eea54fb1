//! `lrs linear sweep --privacy`: the relative error of Θ against ε for private AMHT-LRS
//! beside the non-private fit, as a table, CSV and SVG plot. The experiment is
//! [`PrivacySweep`]; this module parses, prints and draws.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use lrs_core::privacy_sweep::{PrivacyPoint, PrivacySweep};
use lrs_core::private_amht::DEFAULT_CLIP_PER_SAMPLE;
use plotters::prelude::*;
use serde_json::json;

use super::sweep::SweepArgs;

/// Runs `lrs linear sweep --privacy`.
pub fn run(a: &SweepArgs) -> anyhow::Result<()> {
    let dp = &a.dp;
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let sweep = PrivacySweep {
        dim: a.d,
        rank: a.r,
        sparsity: a.k,
        tasks: if dp.dp_tasks.is_empty() {
            vec![a.tasks]
        } else {
            dp.dp_tasks.clone()
        },
        samples: a.samples.clone(),
        epsilons: dp.epsilons.clone(),
        delta: dp.dp_delta,
        config: a.solver.config(a.r, a.k),
        mechanism: dp.mechanism.settings(),
        seed: dp.dp_seed,
    }
    .normalized()?;
    let points = sweep.clone().run(|p| {
        if let (false, Some(eps), Some(sigma)) = (a.json, p.target_epsilon, p.noise_multiplier) {
            eprintln!(
                "t={} m={} ε={eps}: σ={sigma:.3} error {:.3e} ({:.1} s)",
                p.tasks, p.samples, p.theta_error, p.seconds
            );
        }
    })?;
    let csv = a.out_dir.join("privacy_sweep.csv");
    write_csv(&csv, &points)?;
    let svg = a.out_dir.join("privacy_sweep.svg");
    plot(&svg, &points, &sweep.epsilons, a)?;
    let setup = json!({
        "d": a.d, "r": a.r, "k": a.k, "delta": dp.dp_delta, "rounds": dp.mechanism.dp_rounds,
        "sample_rate": dp.mechanism.dp_sample_rate, "accountant": sweep.mechanism.accountant.name(),
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
        sweep.mechanism.accountant.name(),
        a.d,
        a.r,
        a.k
    );
    print!("{:>7} {:>5} {:>12}", "t", "m", "non-private");
    for e in &sweep.epsilons {
        print!(" {:>10}", format!("ε={e}"));
    }
    println!();
    for &m in &a.samples {
        for &t in &sweep.tasks {
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
