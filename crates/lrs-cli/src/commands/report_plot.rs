//! `lrs report --plot`: mean per-user test AUC against the number of training rows per user
//! `m`, one line per method, with ± 1 sd bars where several seeds ran. The x axis is
//! logarithmic (each doubling of `m` the same width), its ticks are the `m` of the runs, and
//! the legend sits in its own column right of the data.

use std::path::Path;

use plotters::prelude::*;

use super::train_plots::{draw_legend, integer_label, plot_err as err, LegendEntry, LEGEND_WIDTH};

/// One method's result at one `m`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShotsPoint {
    /// Training rows per user.
    pub shots: usize,
    /// Mean test AUC over seeds.
    pub mean: f64,
    /// Sample sd over seeds (0 with one seed).
    pub sd: f64,
    /// How many seeds ran.
    pub seeds: usize,
}

/// Line colours (Tableau 10): distinct, and none too pale on white.
const COLORS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// A method's line: its label and its points in increasing `m`.
pub type ShotsSeries = (String, Vec<ShotsPoint>);

/// The legend line of a series: its label and the seed count per `m`.
fn legend_label(label: &str, points: &[ShotsPoint]) -> String {
    let seeds: Vec<String> = points.iter().map(|p| format!("{}", p.seeds)).collect();
    format!("{label} (seeds: {})", seeds.join("/"))
}

/// Writes the chart of `series` into `path` (SVG).
pub fn auc_vs_shots(path: &Path, series: &[ShotsSeries]) -> anyhow::Result<()> {
    let points = || series.iter().flat_map(|(_, p)| p.iter());
    let mut shots: Vec<usize> = points().map(|p| p.shots).collect();
    shots.sort_unstable();
    shots.dedup();
    let (Some(&lo), Some(&hi)) = (shots.first(), shots.last()) else {
        anyhow::bail!("plot: no run has a test AUC");
    };
    let (lo, hi) = (lo as f64, hi as f64);
    // Margins, error-bar caps and the sideways offset between series (so that equal results
    // stay visible side by side) as factors of m: the axis is logarithmic.
    let (x_pad, cap, dodge) = (1.15, 1.012, 1.007f64);
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in points() {
        y_min = y_min.min(p.mean - p.sd);
        y_max = y_max.max(p.mean + p.sd);
    }
    let y_pad = ((y_max - y_min) * 0.08).max(1e-3);
    let root = SVGBackend::new(path, (720 + LEGEND_WIDTH + 60, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (plot_area, legend_area) = root.split_horizontally(720);
    let x_axis = ((lo / x_pad)..(hi * x_pad))
        .log_scale()
        .with_key_points(shots.iter().map(|&m| m as f64).collect());
    let mut chart = ChartBuilder::on(&plot_area)
        .caption(
            "mean per-user test AUC (bars: ± 1 sd over seeds; seeds per m in the legend)",
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(x_axis, (y_min - y_pad)..(y_max + y_pad))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("training rows per user (m)")
        .y_desc("AUC")
        .x_label_formatter(&integer_label)
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    let mut legend = Vec::new();
    for (n, (label, points)) in series.iter().enumerate() {
        let (r, g, b) = COLORS[n % COLORS.len()];
        let color = RGBColor(r, g, b).to_rgba();
        let shift = dodge.powf(n as f64 - (series.len() as f64 - 1.0) / 2.0);
        let x_of = |p: &ShotsPoint| p.shots as f64 * shift;
        let line: Vec<(f64, f64)> = points.iter().map(|p| (x_of(p), p.mean)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(err)?;
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
        // Error bars: a vertical line with short caps.
        for p in points.iter().filter(|p| p.seeds > 1) {
            let x = x_of(p);
            let (a, b) = (p.mean - p.sd, p.mean + p.sd);
            for path in [
                vec![(x, a), (x, b)],
                vec![(x / cap, a), (x * cap, a)],
                vec![(x / cap, b), (x * cap, b)],
            ] {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        path,
                        color.stroke_width(1),
                    )))
                    .map_err(err)?;
            }
        }
        legend.push(LegendEntry {
            label: legend_label(label, points),
            color,
            band: false,
        });
    }
    draw_legend(&legend_area, &legend, 60)?;
    root.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_the_runs_m_and_the_legend_is_right_of_the_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("auc.svg");
        let point = |shots, mean, seeds| ShotsPoint {
            shots,
            mean,
            sd: if seeds > 1 { 0.004 } else { 0.0 },
            seeds,
        };
        let series = vec![
            (
                "lrs".to_string(),
                vec![point(5, 0.60, 1), point(10, 0.63, 1), point(20, 0.645, 3)],
            ),
            (
                "global".to_string(),
                vec![point(10, 0.627, 1), point(20, 0.622, 1)],
            ),
        ];
        auc_vs_shots(&path, &series).expect("plot");
        let svg = std::fs::read_to_string(&path).expect("svg");
        let texts = super::super::train_plots::svg_texts(&svg);
        let has = |s: &str| texts.iter().any(|(_, t)| *t == s);
        assert!(
            has("5") && has("10") && has("20"),
            "m ticks missing: {texts:?}"
        );
        for bad in ["15", "7.5", "12.5"] {
            assert!(!has(bad), "tick {bad} is not an m of the runs: {texts:?}");
        }
        for label in ["lrs (seeds: 1/1/3)", "global (seeds: 1/1)"] {
            let x = texts
                .iter()
                .find(|(_, t)| *t == label)
                .map(|(x, _)| *x)
                .unwrap_or_else(|| panic!("legend {label} missing: {texts:?}"));
            assert!(x > 720.0, "legend at x = {x}, inside the chart");
        }
        assert!(auc_vs_shots(&path, &[]).is_err());
    }
}
