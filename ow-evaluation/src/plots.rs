//! SVG plots of a run (plotters' SVG backend: no fonts or native libraries).

use crate::{ColdRow, ThroughputRow, WarmRow};
use plotters::prelude::*;
use std::path::Path;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// Latency CDF of warm /run per engine (log-scaled x).
pub fn warm_cdf(path: &Path, rows: &[WarmRow]) -> anyhow::Result<()> {
    let max = rows
        .iter()
        .flat_map(|r| r.cdf.iter().map(|p| p.0))
        .fold(10.0_f64, f64::max);
    let min = rows
        .iter()
        .flat_map(|r| r.cdf.iter().map(|p| p.0))
        .fold(max, f64::min)
        .max(1.0);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Warm /run of add: latency CDF", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((min..max * 1.1).log_scale(), 0.0..1.0)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency (us, log scale)")
        .y_desc("fraction of requests")
        .draw()
        .map_err(err)?;
    for (i, row) in rows.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                row.cdf.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(row.engine.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Activations per second against the number of closed-loop clients.
pub fn throughput(path: &Path, rows: &[ThroughputRow]) -> anyhow::Result<()> {
    let max_rps = rows.iter().map(|r| r.requests_per_s).fold(1.0, f64::max);
    let max_c = rows.iter().map(|r| r.clients).max().unwrap_or(1) as f64;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput of add vs concurrent clients",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_c * 1.05, 0.0..max_rps * 1.1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("clients (closed loop)")
        .y_desc("activations / s")
        .draw()
        .map_err(err)?;
    let mut targets: Vec<&str> = rows.iter().map(|r| r.target.as_str()).collect();
    targets.dedup();
    for (i, target) in targets.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.target == *target)
            .map(|r| (r.clients as f64, r.requests_per_s))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(*target)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Median cold start per engine and artifact kind (one line per kind).
pub fn cold_start(path: &Path, rows: &[ColdRow]) -> anyhow::Result<()> {
    let engines: Vec<&str> = {
        let mut e: Vec<&str> = rows.iter().map(|r| r.engine.as_str()).collect();
        e.sort();
        e.dedup();
        e
    };
    let max = rows
        .iter()
        .map(|r| r.cold_start.p50_us / 1e3)
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cold start of hash (/init + first /run), median",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(
            -0.5..engines.len() as f64 - 0.5,
            (0.1..max * 2.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(engines.len())
        .x_label_formatter(&|x| {
            engines
                .get(x.round() as usize)
                .map_or(String::new(), |e| (*e).to_owned())
        })
        .y_desc("ms (log scale)")
        .draw()
        .map_err(err)?;
    let mut kinds: Vec<&str> = rows.iter().map(|r| r.artifact.as_str()).collect();
    kinds.dedup();
    for (i, kind) in kinds.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.artifact == *kind)
            .filter_map(|r| {
                let x = engines.iter().position(|e| *e == r.engine)? as f64;
                Some((x, r.cold_start.p50_us / 1e3))
            })
            .collect();
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 6, color.filled())),
            )
            .map_err(err)?
            .label(*kind)
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Grouped bars on a log scale: a group per label, in each a bar per
/// series that has a value there (`None`: no bar).
pub fn bars(
    path: &Path,
    caption: &str,
    y_desc: &str,
    groups: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> anyhow::Result<()> {
    let values = || series.iter().flat_map(|s| s.1.iter().flatten().copied());
    let max = values().fold(f64::MIN_POSITIVE, f64::max);
    let floor = values().fold(max, f64::min) / 3.0;
    // Each group: a slot per series, then an empty one.
    let slots = series.len() as i32 + 1;
    let total = groups.len() as i32 * slots;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        // Headroom above the bars for the legend.
        .build_cartesian_2d((0..total).into_segmented(), (floor..max * 30.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(total as usize + 1)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % slots == (slots - 1) / 2 => groups
                .get((i / slots) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    for (s, (name, values)) in series.iter().enumerate() {
        let color = COLORS[s % COLORS.len()];
        chart
            .draw_series(values.iter().enumerate().filter_map(|(g, v)| {
                let x = g as i32 * slots + s as i32;
                v.map(|v| {
                    Rectangle::new(
                        [
                            (SegmentValue::Exact(x), floor),
                            (SegmentValue::Exact(x + 1), v),
                        ],
                        color.filled(),
                    )
                })
            }))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}
