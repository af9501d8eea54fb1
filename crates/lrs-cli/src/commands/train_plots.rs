//! Plots of a run's `metrics.jsonl`: losses per round (`loss.svg`) and per-task test AUC per
//! round, mean with the interquartile band (`auc.svg`). Rounds are whole numbers on the x
//! axis, and the legend sits in its own column right of the data.

use std::path::Path;

use lrs_train::run::RoundRecord;
use plotters::coord::Shift;
use plotters::prelude::*;

/// A plotting error as an `anyhow` error.
pub fn plot_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// Width of the legend column right of a chart, in pixels.
pub const LEGEND_WIDTH: u32 = 250;

/// One legend line: a label and its mark (a line with a dot, or a filled band).
pub struct LegendEntry {
    /// The text.
    pub label: String,
    /// The series colour.
    pub color: RGBAColor,
    /// A filled band rather than a line.
    pub band: bool,
}

/// Draws `entries` one under another in `area` (a column beside the chart), from `top`.
pub fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    top: i32,
) -> anyhow::Result<()> {
    for (i, e) in entries.iter().enumerate() {
        let y = top + 24 * i as i32;
        if e.band {
            area.draw(&Rectangle::new([(8, y - 6), (32, y + 6)], e.color.filled()))
                .map_err(plot_err)?;
        } else {
            area.draw(&PathElement::new(
                vec![(8, y), (32, y)],
                e.color.stroke_width(2),
            ))
            .map_err(plot_err)?;
            area.draw(&Circle::new((20, y), 3, e.color.filled()))
                .map_err(plot_err)?;
        }
        area.draw(&Text::new(
            e.label.clone(),
            (40, y - 7),
            ("sans-serif", 14).into_font().color(&BLACK),
        ))
        .map_err(plot_err)?;
    }
    Ok(())
}

/// How many x labels to ask plotters for on `lo..hi` so that every label is a whole number:
/// at most the count of integers in the range (capped at 10), so its "nice" label step is
/// never below 1.
pub fn integer_labels(lo: f64, hi: f64) -> usize {
    let n = (hi.floor() - lo.ceil() + 1.0).max(1.0) as usize;
    n.min(10)
}

/// A tick label: the whole number, or the value as is if it is not one.
pub fn integer_label(x: &f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
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
    let root = SVGBackend::new(path, (720 + LEGEND_WIDTH, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (plot_area, legend_area) = root.split_horizontally(720);
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(title, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d((x_min - 0.2)..(x_max + 0.2), (y_min - pad)..(y_max + pad))
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc(y_desc)
        .x_labels(integer_labels(x_min - 0.2, x_max + 0.2))
        .x_label_formatter(&integer_label)
        .draw()
        .map_err(plot_err)?;
    let mut legend = Vec::new();
    if let Some(band) = band {
        let color = Palette99::pick(0).mix(0.2);
        let mut poly: Vec<(f64, f64)> = band.iter().map(|&(x, lo, _)| (x, lo)).collect();
        poly.extend(band.iter().rev().map(|&(x, _, hi)| (x, hi)));
        chart
            .draw_series(std::iter::once(Polygon::new(poly, color.filled())))
            .map_err(plot_err)?;
        legend.push(LegendEntry {
            label: "test AUC, middle 50 % of tasks".into(),
            color,
            band: true,
        });
    }
    for (n, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(n).to_rgba();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(plot_err)?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(plot_err)?;
        legend.push(LegendEntry {
            label: name.to_string(),
            color,
            band: false,
        });
    }
    draw_legend(&legend_area, &legend, 60)?;
    root.present().map_err(plot_err)?;
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

/// Every text element of an SVG chart with its x position (tests: where ticks and legend
/// labels landed).
#[cfg(test)]
pub fn svg_texts(svg: &str) -> Vec<(f64, &str)> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let x = t.split("x=\"").nth(1)?.split('"').next()?.parse().ok()?;
            Some((x, t.split('>').nth(1)?.split('<').next()?.trim()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_ticks_are_whole_numbers_and_the_legend_is_right_of_the_data() {
        assert_eq!(integer_labels(0.8, 2.2), 2);
        assert_eq!(integer_labels(0.8, 1.2), 1);
        assert_eq!(integer_labels(0.8, 50.2), 10);
        assert_eq!(
            (integer_label(&2.0), integer_label(&2.5)),
            ("2".into(), "2.5".into())
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let record = |round, auc| RoundRecord {
            round,
            shared_loss: Some(0.7),
            task_loss: None,
            train_loss: 0.6,
            train_auc: Some(auc + 0.1),
            test_auc: Some(auc),
            test_auc_quartiles: Some((auc - 0.1, auc + 0.05)),
            test_accuracy: 0.5,
            validation_loss: None,
            validation_auc: None,
            round_s: 1.0,
        };
        plot_run(dir.path(), &[record(0, 0.6), record(1, 0.7)], "lrs m=5").expect("plots");
        let svg = std::fs::read_to_string(dir.path().join("auc.svg")).expect("auc.svg");
        let texts = svg_texts(&svg);
        let has = |s: &str| texts.iter().any(|(_, t)| *t == s);
        // Round ticks are whole numbers (the y labels here lie in 0.5 … 0.8).
        assert!(has("1") && has("2"), "no round ticks among {texts:?}");
        for bad in ["1.2", "1.4", "1.6", "1.8", "2.2"] {
            assert!(!has(bad), "tick {bad} in auc.svg: {texts:?}");
        }
        // The legend text starts right of the 720-pixel chart.
        let x = texts
            .iter()
            .find(|(_, t)| *t == "test (mean over tasks)")
            .map(|(x, _)| *x)
            .expect("legend label");
        assert!(x > 720.0, "legend at x = {x}, inside the chart");
    }
}
