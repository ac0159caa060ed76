//! Plot primitives: a line chart with a 95 % confidence band, bars with
//! confidence intervals as error bars,
//! a heatmap with a colour scale. Each takes its axes and ranges as
//! parameters and knows nothing of protocols; the views decide what to
//! draw. SVG always; PNG too, its text drawn with the bundled DejaVu Sans
//! (`assets/`, its licence beside it), skipped with a reason should that fail.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::ReportError;

pub type DrawResult = Result<(), String>;

/// Mean and sample standard deviation (0 for a single value).
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = if values.len() > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    (mean, std)
}

/// Mean and the half-width of its 95 % confidence interval (Student's t,
/// as the tables give it; 0 for a single value, which has none).
pub fn mean_ci(values: &[f64]) -> (f64, f64) {
    let (mean, std) = mean_std(values);
    let half = crate::stats::ci95_half_width(std, values.len());
    (mean, if half.is_finite() { half } else { 0.0 })
}

/// A point of a line: x, mean over seeds, and the half-width of the mean's
/// 95 % confidence interval over seeds.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub x: f64,
    pub mean: f64,
    pub half: f64,
}

impl Point {
    /// The point at `x` of `values` over seeds.
    pub fn of(x: f64, values: &[f64]) -> Self {
        let (mean, half) = mean_ci(values);
        Point { x, mean, half }
    }
}

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// Title, axis labels and ranges of a chart.
#[derive(Debug, Clone)]
pub struct Axes {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Range<f64>,
    pub y: Range<f64>,
    /// Integer ticks on x (task indices, epochs) instead of plotters' own.
    pub integer_x: bool,
}

impl Axes {
    /// Integer-x axes whose ranges hold every point of `series`.
    pub fn fitted(title: String, x_label: &str, y_label: &str, series: &[Series]) -> Self {
        Axes {
            title,
            x_label: x_label.into(),
            y_label: y_label.into(),
            x: Self::fit_x(series),
            y: Self::fit_y(series, y_label),
            integer_x: true,
        }
    }

    /// A y range that holds every mean and interval of `series`, with a
    /// margin, kept within the metric's own range: not below 0 when no
    /// mean is negative (losses, accuracies, costs), not above 100 for a
    /// percentage (`y_label` with `%`) whose means all are at most 100.
    pub fn fit_y(series: &[Series], y_label: &str) -> Range<f64> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut min_mean, mut max_mean) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in series.iter().flat_map(|s| &s.points) {
            lo = lo.min(p.mean - p.half);
            hi = hi.max(p.mean + p.half);
            min_mean = min_mean.min(p.mean);
            max_mean = max_mean.max(p.mean);
        }
        if !lo.is_finite() || !hi.is_finite() {
            return 0.0..1.0;
        }
        let pad = ((hi - lo) * 0.08).max(1e-6);
        let (mut lo, mut hi) = (lo - pad, hi + pad);
        if min_mean >= 0.0 {
            lo = lo.max(0.0);
        }
        if y_label.contains('%') && max_mean <= 100.0 {
            hi = hi.min(100.0);
        }
        lo..hi.max(lo + 1e-6)
    }

    pub fn fit_x(series: &[Series]) -> Range<f64> {
        let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.x));
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        if !lo.is_finite() {
            return 0.0..1.0;
        }
        lo..hi.max(lo + 1.0)
    }
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Width of the legend column right of the plot area.
const LEGEND: u32 = 190;

/// The legend beside the chart, never over it: a swatch and a name per entry.
fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, names: &[String]) -> DrawResult {
    legend_entries(area, &palette_entries(names.iter()))
}

/// Each name with the palette's colour of its position, as the series are drawn.
fn palette_entries<'a>(names: impl Iterator<Item = &'a String>) -> Vec<(String, RGBAColor)> {
    names
        .enumerate()
        .map(|(k, name)| (name.clone(), Palette99::pick(k).to_rgba()))
        .collect()
}

/// The legend's column: a swatch of each entry's colour and its name.
fn legend_entries<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBAColor)],
) -> DrawResult {
    for (k, (name, color)) in entries.iter().enumerate() {
        let y = 40 + 20 * k as i32;
        area.draw(&Rectangle::new([(6, y - 5), (18, y + 5)], color.filled()))
            .map_err(err)?;
        area.draw(&Text::new(
            name.clone(),
            (24, y - 7),
            ("sans-serif", 13).into_font(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// A drawing area of a whole figure or a part of it.
type Area<DB> = DrawingArea<DB, Shift>;

/// `root` cleared to white and split: the plot area, and the legend's
/// column on the right.
fn with_legend<DB: DrawingBackend>(root: &Area<DB>) -> Result<(Area<DB>, Area<DB>), String> {
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    Ok(root.split_horizontally(w.saturating_sub(LEGEND)))
}

/// A chart on `plot` with `axes`' title and ranges.
fn xy_chart<'a, DB: DrawingBackend>(
    plot: &'a DrawingArea<DB, Shift>,
    axes: &Axes,
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>, String> {
    ChartBuilder::on(plot)
        .caption(&axes.title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(axes.x.clone(), axes.y.clone())
        .map_err(err)
}

/// Lines with markers, each with its 95 % confidence band over seeds,
/// clipped to the axes. Grid lines at the labelled ticks only.
pub fn line_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    axes: &Axes,
    series: &[Series],
) -> DrawResult {
    let (plot, side) = with_legend(&root)?;
    let mut chart = xy_chart(&plot, axes)?;
    let span = (axes.x.end - axes.x.start).max(1.0);
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(&axes.x_label)
        .y_desc(&axes.y_label)
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.12))
        .y_labels(6);
    let int_fmt = |v: &f64| format!("{}", v.round() as i64);
    if axes.integer_x {
        mesh.x_labels((span as usize + 1).min(21))
            .x_label_formatter(&int_fmt);
    }
    mesh.draw().map_err(err)?;
    for (k, s) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        if s.points.iter().any(|p| p.half > 0.0) {
            let clip = |y: f64| y.clamp(axes.y.start, axes.y.end);
            let mut band: Vec<(f64, f64)> = s
                .points
                .iter()
                .map(|p| (p.x, clip(p.mean + p.half)))
                .collect();
            band.extend(s.points.iter().rev().map(|p| (p.x, clip(p.mean - p.half))));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    band,
                    color.mix(0.18).filled(),
                )))
                .map_err(err)?;
        }
        let line: Vec<(f64, f64)> = s.points.iter().map(|p| (p.x, p.mean)).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(err)?;
        if line.len() <= 40 {
            chart
                .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(err)?;
        }
    }
    legend(
        &side,
        &series.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
    )?;
    root.present().map_err(err)
}

/// One series of a bar chart: its name and, per group, (mean, CI half-width) where it has a value.
pub type Bars = (String, Vec<Option<(f64, f64)>>);

/// Grouped bars: a group per x label, a bar per series, each with an error
/// bar of its 95 % confidence interval over seeds.
pub fn bar_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    groups: &[String],
    series: &[Bars],
) -> DrawResult {
    let all = series.iter().flat_map(|(_, v)| v.iter().flatten());
    let (lo, hi, min_mean, max_mean) = all.fold(
        (0.0f64, 1.0f64, f64::INFINITY, f64::NEG_INFINITY),
        |(a, b, c, d), &(m, s)| (a.min(m - s), b.max(m + s), c.min(m), d.max(m)),
    );
    // Within the metric's range, as line charts (Axes::fit_y).
    let lo = if min_mean >= 0.0 { 0.0 } else { lo * 1.1 };
    let hi = if y_label.contains('%') && max_mean <= 100.0 {
        (hi * 1.1).min(100.0)
    } else {
        hi * 1.1
    };
    let y = lo..hi;
    let (plot, side) = with_legend(&root)?;
    let n = groups.len().max(1);
    let k = series.len().max(1);
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n as f64, y)
        .map_err(err)?;
    let labels = groups.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .bold_line_style(BLACK.mix(0.12))
        .y_labels(6)
        .x_labels(n * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    let width = 0.8 / k as f64;
    for (si, (_, values)) in series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        for (gi, v) in values.iter().enumerate() {
            let Some((mean, std)) = *v else { continue };
            let x0 = gi as f64 + 0.1 + si as f64 * width;
            let mid = x0 + width * 0.45;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, mean)],
                    color.filled(),
                )))
                .map_err(err)?;
            if std > 0.0 {
                chart
                    .draw_series(std::iter::once(ErrorBar::new_vertical(
                        mid,
                        mean - std,
                        mean,
                        mean + std,
                        BLACK.stroke_width(1),
                        6,
                    )))
                    .map_err(err)?;
            }
        }
    }
    legend(
        &side,
        &series.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
    )?;
    root.present().map_err(err)
}

/// A matrix of values as coloured cells with their numbers; `range` maps
/// to the colour scale (light to dark), row 0 on top like a printed matrix.
pub fn heatmap<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    cells: &BTreeMap<(usize, usize), f64>,
    range: Range<f64>,
) -> DrawResult {
    let rows = cells.keys().map(|(i, _)| i + 1).max().unwrap_or(1);
    let cols = cells.keys().map(|(_, j)| j + 1).max().unwrap_or(1);
    let t = rows.max(cols);
    let tf = t as f64;
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..tf, 0f64..tf)
        .map_err(err)?;
    let centre = |v: f64| {
        let k = (v - 0.5).round();
        ((v - 0.5 - k).abs() < 1e-6 && k >= 0.0 && k < tf).then_some(k as usize)
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * t + 1)
        .y_labels(2 * t + 1)
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|v| centre(*v).map(|k| k.to_string()).unwrap_or_default())
        .y_label_formatter(&|v| {
            centre(*v)
                .map(|k| (t - 1 - k).to_string())
                .unwrap_or_default()
        })
        .draw()
        .map_err(err)?;
    let span = (range.end - range.start).max(1e-12);
    for (&(i, j), &v) in cells {
        let (x, y) = (j as f64, (t - 1 - i) as f64);
        let shade = ((v - range.start) / span).clamp(0.0, 1.0);
        let color = RGBColor(
            (255.0 - 225.0 * shade) as u8,
            (255.0 - 160.0 * shade) as u8,
            (255.0 - 75.0 * shade) as u8,
        );
        let ink = if shade > 0.55 { WHITE } else { BLACK };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                color.filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{v:.1}"),
                (x + 0.38, y + 0.55),
                ("sans-serif", 15).into_font().color(&ink),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)
}

pub fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The bitmap backend's "sans-serif": the bundled DejaVu Sans, registered
/// once per process.
fn register_bundled_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        // A failure leaves PNGs to the fallback below (reported, not fatal).
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// Where figures go, and what came of the PNG attempts.
pub struct Figures<'a> {
    pub dir: &'a Path,
    pub written: Vec<PathBuf>,
    pub png_problem: Option<String>,
}

impl<'a> Figures<'a> {
    pub fn new(dir: &'a Path) -> Result<Self, ReportError> {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
        register_bundled_font();
        Ok(Self {
            dir,
            written: Vec::new(),
            png_problem: None,
        })
    }

    /// Draws one figure as SVG (required) and PNG (best effort). `draw` is
    /// called once per backend.
    pub fn render(
        &mut self,
        name: &str,
        size: (u32, u32),
        draw_svg: &dyn Fn(DrawingArea<SVGBackend, Shift>) -> DrawResult,
        draw_png: &dyn Fn(DrawingArea<BitMapBackend, Shift>) -> DrawResult,
    ) -> Result<(), ReportError> {
        let svg = self.dir.join(format!("{name}.svg"));
        draw_svg(SVGBackend::new(&svg, size).into_drawing_area()).map_err(|message| {
            ReportError::Plot {
                path: svg.clone(),
                message,
            }
        })?;
        self.written.push(svg);
        let png = self.dir.join(format!("{name}.png"));
        // Without a font the bitmap backend panics on text; keep that quiet
        // and report it once instead of printing a panic per figure.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            draw_png(BitMapBackend::new(&png, size).into_drawing_area())
        }));
        std::panic::set_hook(hook);
        match result {
            Ok(Ok(())) => self.written.push(png),
            Ok(Err(e)) => {
                let _ = std::fs::remove_file(&png);
                self.png_problem
                    .get_or_insert(format!("PNG not rendered: {e}"));
            }
            Err(_) => {
                let _ = std::fs::remove_file(&png);
                self.png_problem.get_or_insert(
                    "PNG not rendered: no font is available to the bitmap backend".into(),
                );
            }
        }
        Ok(())
    }
}

/// Points of one group of a scatter plot.
pub type Scatter = (String, Vec<(f64, f64)>);

/// Points per group (a colour each) and, if given, the line y = a + b x
/// across the x range.
pub fn scatter_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    axes: &Axes,
    groups: &[Scatter],
    line: Option<(f64, f64)>,
) -> DrawResult {
    let (plot, side) = with_legend(&root)?;
    let mut chart = xy_chart(&plot, axes)?;
    chart
        .configure_mesh()
        .x_desc(&axes.x_label)
        .y_desc(&axes.y_label)
        .draw()
        .map_err(err)?;
    for (k, (_, points)) in groups.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(err)?;
    }
    let mut entries = palette_entries(groups.iter().map(|(n, _)| n));
    if let Some((a, b)) = line {
        let (x0, x1) = (axes.x.start, axes.x.end);
        chart
            .draw_series(LineSeries::new(
                vec![(x0, a + b * x0), (x1, a + b * x1)],
                BLACK.stroke_width(2),
            ))
            .map_err(err)?;
        // Its swatch is the line's black, not the palette's next colour.
        entries.push(("least-squares line".into(), BLACK.to_rgba()));
    }
    legend_entries(&side, &entries)?;
    root.present().map_err(err)
}

/// Renders a scatter plot under `name`.
pub fn render_scatter(
    figures: &mut Figures,
    name: &str,
    axes: &Axes,
    groups: &[Scatter],
    line: Option<(f64, f64)>,
) -> Result<(), ReportError> {
    figures.render(
        name,
        (860, 480),
        &|a| scatter_chart(a, axes, groups, line),
        &|a| scatter_chart(a, axes, groups, line),
    )
}

/// Renders a line chart under `name`.
pub fn render_lines(
    figures: &mut Figures,
    name: &str,
    size: (u32, u32),
    axes: &Axes,
    series: &[Series],
) -> Result<(), ReportError> {
    figures.render(name, size, &|a| line_chart(a, axes, series), &|a| {
        line_chart(a, axes, series)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(f64, f64)]) -> Vec<Series> {
        vec![Series {
            name: "a".into(),
            points: points
                .iter()
                .enumerate()
                .map(|(i, &(mean, half))| Point {
                    x: i as f64,
                    mean,
                    half,
                })
                .collect(),
        }]
    }

    /// The band is the mean's 95 % interval (Student's t), not ± std.
    #[test]
    fn a_point_carries_the_confidence_interval_of_its_mean() {
        let p = Point::of(0.0, &[10.0, 20.0]);
        // std 7.07, t(1) = 12.71, / sqrt 2: 63.5
        assert!(
            (p.mean - 15.0).abs() < 1e-9 && (p.half - 63.53).abs() < 0.05,
            "{p:?}"
        );
        assert_eq!(Point::of(0.0, &[3.0]).half, 0.0);
    }

    /// Accuracy axes stay within 0..100 and a loss axis above 0, however
    /// wide the intervals; a metric with negative values keeps them.
    #[test]
    fn axes_stay_within_the_metrics_range() {
        let wide = series(&[(2.0, 30.0), (95.0, 30.0)]);
        let y = Axes::fit_y(&wide, "accuracy (%)");
        assert_eq!((y.start, y.end), (0.0, 100.0));
        let y = Axes::fit_y(&wide, "mean training loss");
        assert!(y.start == 0.0 && y.end > 125.0, "{y:?}");
        let signed = series(&[(-5.0, 1.0), (5.0, 1.0)]);
        assert!(Axes::fit_y(&signed, "forgetting (%)").start < -6.0);
    }

    /// The least-squares line's legend swatch is black, as the line; it
    /// was drawn in the palette's next colour (purple after five groups).
    #[test]
    fn the_scatter_legend_shows_the_line_in_its_own_colour() {
        let axes = Axes {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x: 0.0..1.0,
            y: 0.0..1.0,
            integer_x: false,
        };
        let groups: Vec<Scatter> = (0..5)
            .map(|k| (format!("g{k}"), vec![(0.1 * k as f64, 0.5)]))
            .collect();
        register_bundled_font();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (860, 480)).into_drawing_area();
            scatter_chart(root, &axes, &groups, Some((0.0, 1.0))).unwrap();
        }
        let swatch = |color: &RGBAColor| {
            let (r, g, b) = (color.0, color.1, color.2);
            format!("fill=\"#{r:02X}{g:02X}{b:02X}\"")
        };
        let black = swatch(&BLACK.to_rgba());
        let next = swatch(&Palette99::pick(5).to_rgba());
        // Swatches are the 12x10 rectangles of the legend's column.
        let rects: Vec<&str> = svg
            .split("<rect")
            .skip(1)
            .filter(|r| r.contains("width=\"12\"") && r.contains("height=\"10\""))
            .collect();
        assert_eq!(rects.len(), 6, "five groups and the line");
        assert!(rects[5].contains(&black), "{}", rects[5]);
        assert!(rects.iter().all(|r| !r.contains(&next)));
        assert!(svg.contains("least-squares line"));
    }
}
