//! `lrs linear sweep`: the phase-transition picture. For every method and every number of
//! samples per task, the fraction of seeds on which the noiseless instance is recovered
//! (relative error of Θ below a threshold), written as CSV and drawn as an SVG plot. The
//! experiment is [`RecoverySweep`]; this module parses, prints and draws.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use lrs_core::recovery_sweep::{first_m_reaching, RecoverySweep, SweepPoint};
use lrs_core::Method;
use plotters::prelude::*;
use serde_json::json;

use super::dp_args::DpSweepArgs;
use super::solver_args::SolverArgs;
use crate::commands::train_plots::{
    draw_legend, integer_label, integer_labels, LegendEntry, LEGEND_WIDTH,
};

/// Arguments of `lrs linear sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Dimension d.
    #[arg(long, default_value_t = 100)]
    pub d: usize,
    /// Rank r.
    #[arg(long, default_value_t = 5)]
    pub r: usize,
    /// Sparsity k.
    #[arg(long, default_value_t = 5)]
    pub k: usize,
    /// Number of tasks t.
    #[arg(long, default_value_t = 500)]
    pub tasks: usize,
    /// Samples per task to try, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = vec![20, 25, 30, 35, 40, 50, 60, 80, 100, 120])]
    pub samples: Vec<usize>,
    /// Seeds per grid point.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Methods, comma separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// A fit succeeds when the relative error of Θ is below this.
    #[arg(long, default_value_t = 1e-3)]
    pub threshold: f64,
    #[command(flatten)]
    pub solver: SolverArgs,
    #[command(flatten)]
    pub dp: DpSweepArgs,
    /// Directory for `sweep.csv` and `sweep.svg`.
    #[arg(long, default_value = "sweep-out")]
    pub out_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `lrs linear sweep` (without `--privacy`).
pub fn run(a: SweepArgs) -> anyhow::Result<()> {
    let methods: Vec<Method> = if a.methods.is_empty() {
        Method::ALL.to_vec()
    } else {
        a.methods
            .iter()
            .map(|m| m.parse())
            .collect::<Result<_, _>>()?
    };
    anyhow::ensure!(!a.samples.is_empty(), "--samples: give at least one value");
    anyhow::ensure!(a.seeds >= 1, "--seeds must be at least 1");
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let sweep = RecoverySweep {
        dim: a.d,
        rank: a.r,
        sparsity: a.k,
        tasks: a.tasks,
        samples: a.samples.clone(),
        seeds: a.seeds,
        methods: methods.clone(),
        threshold: a.threshold,
        config: a.solver.config(a.r, a.k),
    };
    let bar = ProgressBar::new(sweep.fits()).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut started = false;
    let points = sweep.run(|method, m| {
        if std::mem::replace(&mut started, true) {
            bar.inc(1);
        }
        bar.set_message(format!("{} m={m}", method.name()));
    })?;
    bar.finish_and_clear();
    let csv = a.out_dir.join("sweep.csv");
    write_csv(&csv, &points)?;
    let svg = a.out_dir.join("sweep.svg");
    plot(&svg, &points, &methods, &a)?;
    let m95: Vec<_> = methods
        .iter()
        .map(|m| (m.name(), first_m_reaching(&points, m.name(), 0.95)))
        .collect();
    if a.json {
        println!(
            "{}",
            json!({ "points": points, "m95": m95.iter().map(|(n, v)| json!({"method": n, "m": v})).collect::<Vec<_>>(), "csv": csv, "plot": svg })
        );
    } else {
        println!(
            "{:<10} {}",
            "method",
            a.samples
                .iter()
                .map(|m| format!("{m:>6}"))
                .collect::<String>()
        );
        for &method in &methods {
            let row: String = a
                .samples
                .iter()
                .map(|&m| {
                    points
                        .iter()
                        .find(|p| p.method == method.name() && p.samples == m)
                        .map(|p| format!("{:>6.2}", p.success))
                        .unwrap_or_default()
                })
                .collect();
            println!("{:<10} {row}", method.name());
        }
        println!("\nsmallest m with ≥95 % success (and at every larger m of the grid):");
        for (name, m) in &m95 {
            println!(
                "  {name:<10} {}",
                m.map(|v| v.to_string())
                    .unwrap_or_else(|| "not reached".into())
            );
        }
        println!("wrote {} and {}", csv.display(), svg.display());
    }
    Ok(())
}

fn write_csv(path: &Path, points: &[SweepPoint]) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    writeln!(f, "method,samples,success,median_error,mean_seconds")?;
    for p in points {
        writeln!(
            f,
            "{},{},{},{:e},{}",
            p.method, p.samples, p.success, p.median_error, p.mean_seconds
        )?;
    }
    Ok(())
}

fn plot(
    path: &Path,
    points: &[SweepPoint],
    methods: &[Method],
    a: &SweepArgs,
) -> anyhow::Result<()> {
    let (min_m, max_m) = (
        a.samples.iter().min().copied().unwrap_or(0),
        a.samples.iter().max().copied().unwrap_or(1),
    );
    let root = SVGBackend::new(path, (800 + LEGEND_WIDTH, 500)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let (plot_area, legend_area) = root.split_horizontally(800);
    let title = format!(
        "Recovery (rel. error < {:.0e}) vs samples per task: d={}, r={}, k={}, t={}",
        a.threshold, a.d, a.r, a.k, a.tasks
    );
    let pad = ((max_m - min_m) as f64 * 0.03).max(0.5);
    let (x_lo, x_hi) = (min_m as f64 - pad, max_m as f64 + pad);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 16))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x_lo..x_hi, -0.02f64..1.02f64)
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("samples per task m")
        .y_desc("success probability")
        .x_labels(integer_labels(x_lo, x_hi))
        .x_label_formatter(&integer_label)
        .draw()
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let mut legend = Vec::new();
    for (n, method) in methods.iter().enumerate() {
        let color = Palette99::pick(n).to_rgba();
        let mut series: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.method == method.name())
            .map(|p| (p.samples as f64, p.success))
            .collect();
        series.sort_by(|x, y| x.0.total_cmp(&y.0));
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        chart
            .draw_series(
                series
                    .into_iter()
                    .map(|(x, y)| Circle::new((x, y), 3, color.filled())),
            )
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        legend.push(LegendEntry {
            label: method.name().to_string(),
            color,
            band: false,
        });
    }
    draw_legend(&legend_area, &legend, 60)?;
    root.present().map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    Ok(())
}
