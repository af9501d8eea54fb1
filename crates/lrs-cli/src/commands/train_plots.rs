//! Plots of a run's `metrics.jsonl`: losses per round (`loss.svg`) and per-task test AUC per
//! round, mean with the interquartile band (`auc.svg`).

use std::path::Path;

use lrs_train::run::RoundRecord;
use plotters::prelude::*;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// One line chart of `series` (name, points) into `path`.
fn lines(
    path: &Path,
    title: &str,
    y_desc: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    band: Option<&[(f64, f64, f64)]>,
) -> anyhow::Result<()> {
    let all = series.iter().flat_map(|(_, s)| s.iter());
    let (mut x_min, mut x_max) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_min = y_min.min(y);
        y_max = y_max.max(y);
    }
    for &(_, lo, hi) in band.unwrap_or(&[]) {
        y_min = y_min.min(lo);
        y_max = y_max.max(hi);
    }
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    if !x_min.is_finite() {
        (x_min, x_max) = (1.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.08).max(1e-3);
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d((x_min - 0.2)..(x_max + 0.2), (y_min - pad)..(y_max + pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    if let Some(band) = band {
        let color = Palette99::pick(0).mix(0.2);
        let mut poly: Vec<(f64, f64)> = band.iter().map(|&(x, lo, _)| (x, lo)).collect();
        poly.extend(band.iter().rev().map(|&(x, _, hi)| (x, hi)));
        chart
            .draw_series(std::iter::once(Polygon::new(poly, color.filled())))
            .map_err(err)?
            .label("test AUC, middle 50 % of tasks")
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
    }
    for (n, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(n).to_rgba();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Writes `loss.svg` and `auc.svg` into `dir` from `records`.
pub fn plot_run(dir: &Path, records: &[RoundRecord], title: &str) -> anyhow::Result<()> {
    let x = |r: &RoundRecord| (r.round + 1) as f64;
    let opt = |f: fn(&RoundRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter_map(|r| f(r).map(|v| (x(r), v)))
            .collect()
    };
    // The task phase's final loss is the training loss after the round: one line for both.
    let losses = [
        ("shared phase (mean minibatch)", opt(|r| r.shared_loss)),
        ("train, after the task phase", opt(|r| Some(r.train_loss))),
    ];
    let losses: Vec<_> = losses.into_iter().filter(|(_, s)| !s.is_empty()).collect();
    lines(
        &dir.join("loss.svg"),
        &format!("{title}: logistic loss"),
        "mean loss",
        &losses,
        None,
    )?;
    let band: Vec<(f64, f64, f64)> = records
        .iter()
        .filter_map(|r| r.test_auc_quartiles.map(|(lo, hi)| (x(r), lo, hi)))
        .collect();
    lines(
        &dir.join("auc.svg"),
        &format!("{title}: per-task ROC AUC"),
        "AUC",
        &[
            ("test (mean over tasks)", opt(|r| r.test_auc)),
            ("train (mean over tasks)", opt(|r| r.train_auc)),
        ],
        Some(&band),
    )
}
