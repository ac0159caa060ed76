//! Figures for continual experiments: the accuracy matrix (class- or
//! domain-incremental) as a heatmap per method, every task's accuracy over
//! the sequence, the first task's accuracy over the sequence for every
//! method, and a bar chart of average accuracy and forgetting per method. Values are means
//! over seeds. SVG text needs no fonts; the PNG backend needs none to draw
//! shapes, and a PNG that fails is skipped with a reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::ReportError;
use crate::rows::StoredRow;

type Group = String; // method plus extra axis labels
/// (after task i, task j) -> value.
type Matrix<T> = BTreeMap<(usize, usize), T>;

fn group_of(r: &StoredRow, axis_columns: &[String]) -> Group {
    let mut parts = vec![r.method.clone()];
    for a in axis_columns {
        let v = r.axis(a);
        if !v.is_empty() {
            parts.push(format!("{a}={v}"));
        }
    }
    parts.join(" ")
}

/// Mean over seeds of a matrix metric: (group) -> (i, j) -> mean.
fn matrix_means(
    rows: &[&StoredRow],
    metric: &str,
    axis_columns: &[String],
) -> BTreeMap<Group, Matrix<f64>> {
    let mut acc: BTreeMap<Group, Matrix<(f64, usize)>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.metric == metric) {
        if let (Some(i), Some(j)) = (r.after_task, r.task) {
            let e = acc
                .entry(group_of(r, axis_columns))
                .or_default()
                .entry((i, j))
                .or_default();
            e.0 += r.value;
            e.1 += 1;
        }
    }
    acc.into_iter()
        .map(|(g, m)| {
            (
                g,
                m.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect(),
            )
        })
        .collect()
}

fn scalar_means(
    rows: &[&StoredRow],
    metric: &str,
    axis_columns: &[String],
) -> BTreeMap<Group, f64> {
    let mut acc: BTreeMap<Group, (f64, usize)> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.metric == metric && r.after_task.is_none() && r.value.is_finite())
    {
        let e = acc.entry(group_of(r, axis_columns)).or_default();
        e.0 += r.value;
        e.1 += 1;
    }
    acc.into_iter()
        .map(|(g, (s, n))| (g, s / n as f64))
        .collect()
}

fn slug(s: &str) -> String {
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

type DrawResult = Result<(), String>;

fn heatmap<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    m: &Matrix<f64>,
) -> DrawResult {
    let t = m.keys().map(|(i, j)| i.max(j) + 1).max().unwrap_or(1);
    let tf = t as f64;
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..tf, 0f64..tf)
        .map_err(|e| e.to_string())?;
    // Labels at cell centres; rows drawn top-down so task 0 is on top, like a printed matrix.
    let centre = |v: f64| {
        let k = (v - 0.5).round();
        ((v - 0.5 - k).abs() < 1e-6 && k >= 0.0 && k < tf).then_some(k as usize)
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * t + 1)
        .y_labels(2 * t + 1)
        .x_desc("evaluated task j")
        .y_desc("after training task i")
        .x_label_formatter(&|v| centre(*v).map(|k| k.to_string()).unwrap_or_default())
        .y_label_formatter(&|v| {
            centre(*v)
                .map(|k| (t - 1 - k).to_string())
                .unwrap_or_default()
        })
        .draw()
        .map_err(|e| e.to_string())?;
    for (&(i, j), &v) in m {
        let (x, y) = (j as f64, (t - 1 - i) as f64);
        let shade = (v / 100.0).clamp(0.0, 1.0);
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
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("{v:.1}"),
                (x + 0.38, y + 0.55),
                ("sans-serif", 15).into_font().color(&ink),
            )))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

fn task_curves<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    m: &Matrix<f64>,
) -> DrawResult {
    let t = m.keys().map(|(i, j)| i.max(j) + 1).max().unwrap_or(1);
    let series: Vec<(String, Vec<(f64, f64)>)> = (0..t)
        .map(|j| {
            let points = (j..t)
                .filter_map(|i| m.get(&(i, j)).map(|&v| (i as f64, v)))
                .collect();
            (format!("task {j}"), points)
        })
        .collect();
    line_chart(root, title, t, "accuracy (%)", &series)
}

fn first_task_curves<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    curves: &BTreeMap<Group, Vec<(usize, f64)>>,
) -> DrawResult {
    let t = curves
        .values()
        .flat_map(|c| c.iter().map(|p| p.0 + 1))
        .max()
        .unwrap_or(1);
    let series: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(group, points)| {
            (
                group.clone(),
                points.iter().map(|&(i, v)| (i as f64, v)).collect(),
            )
        })
        .collect();
    line_chart(root, title, t, "accuracy on task 0 (%)", &series)
}

/// Accuracy (0-100) against "after training task" 0..t, one line with
/// markers and a legend entry per series.
fn line_chart<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    t: usize,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> DrawResult {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..(t.max(2) - 1) as f64, 0f64..100f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_labels(t.max(2))
        .x_label_formatter(&|v| format!("{}", v.round() as usize))
        .x_desc("after training task")
        .y_desc(y_desc)
        .draw()
        .map_err(|e| e.to_string())?;
    for (k, (label, points)) in series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

fn bars<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    series: &[(&str, BTreeMap<Group, f64>)],
) -> DrawResult {
    let groups: Vec<Group> = {
        let mut g: Vec<Group> = series.iter().flat_map(|(_, m)| m.keys().cloned()).collect();
        g.sort();
        g.dedup();
        g
    };
    let max = series
        .iter()
        .flat_map(|(_, m)| m.values().cloned())
        .fold(1.0f64, f64::max)
        * 1.15;
    let min = series
        .iter()
        .flat_map(|(_, m)| m.values().cloned())
        .fold(0.0f64, f64::min)
        * 1.15;
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = groups.len().max(1);
    let k = series.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..n as f64, min..max)
        .map_err(|e| e.to_string())?;
    let labels = groups.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&move |x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 1e-6 {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("%")
        .draw()
        .map_err(|e| e.to_string())?;
    let width = 0.8 / k as f64;
    for (si, (name, values)) in series.iter().enumerate() {
        let color = Palette99::pick(si).to_rgba();
        chart
            .draw_series(groups.iter().enumerate().filter_map(|(gi, g)| {
                values.get(g).map(|&v| {
                    let x0 = gi as f64 + 0.1 + si as f64 * width;
                    Rectangle::new([(x0, 0.0), (x0 + width * 0.9, v)], color.filled())
                })
            }))
            .map_err(|e| e.to_string())?
            .label(name.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// Draws one figure as SVG (required) and PNG (best effort).
fn render(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    draw_svg: &dyn Fn(DrawingArea<SVGBackend, Shift>) -> DrawResult,
    draw_png: &dyn Fn(DrawingArea<BitMapBackend, Shift>) -> DrawResult,
    out: &mut Vec<PathBuf>,
    png_problem: &mut Option<String>,
) -> Result<(), ReportError> {
    let svg = dir.join(format!("{name}.svg"));
    draw_svg(SVGBackend::new(&svg, size).into_drawing_area()).map_err(|message| {
        ReportError::Plot {
            path: svg.clone(),
            message,
        }
    })?;
    out.push(svg);
    let png = dir.join(format!("{name}.png"));
    // Without a font the bitmap backend panics on text; keep that quiet and
    // report it once instead of printing a panic per figure.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        draw_png(BitMapBackend::new(&png, size).into_drawing_area())
    }));
    std::panic::set_hook(hook);
    match result {
        Ok(Ok(())) => out.push(png),
        Ok(Err(e)) => {
            let _ = std::fs::remove_file(&png);
            png_problem.get_or_insert(format!("PNG not rendered: {e}"));
        }
        Err(_) => {
            let _ = std::fs::remove_file(&png);
            png_problem.get_or_insert(
                "PNG not rendered: no font is available to the bitmap backend".into(),
            );
        }
    }
    Ok(())
}

pub fn draw_all(
    rows: &[StoredRow],
    axis_columns: &[String],
    dir: &Path,
) -> Result<(Vec<PathBuf>, Option<String>), ReportError> {
    std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
    let mut out = Vec::new();
    let mut png_problem = None;
    let mut experiments: Vec<&str> = rows
        .iter()
        .filter(|r| r.protocol == "continual")
        .map(|r| r.experiment.as_str())
        .collect();
    experiments.sort();
    experiments.dedup();
    for exp in experiments {
        let exp_rows: Vec<&StoredRow> = rows.iter().filter(|r| r.experiment == exp).collect();
        let (matrix_metric, setting) = if exp_rows.iter().any(|r| r.metric == "acc_domain_il") {
            ("acc_domain_il", "domain-IL")
        } else {
            ("acc_class_il", "class-IL")
        };
        let matrices = matrix_means(&exp_rows, matrix_metric, axis_columns);
        // The first task's accuracy after each task, one line per method.
        let first: BTreeMap<Group, Vec<(usize, f64)>> = matrices
            .iter()
            .map(|(g, m)| {
                let mut points: Vec<(usize, f64)> = m
                    .iter()
                    .filter(|((_, j), _)| *j == 0)
                    .map(|(&(i, _), &v)| (i, v))
                    .collect();
                points.sort_by_key(|p| p.0);
                (g.clone(), points)
            })
            .collect();
        if !first.is_empty() {
            let title = format!("{exp}: accuracy on the first task ({setting})");
            let name = format!("first-task-{}", slug(exp));
            render(
                dir,
                &name,
                (680, 440),
                &|a| first_task_curves(a, &title, &first),
                &|a| first_task_curves(a, &title, &first),
                &mut out,
                &mut png_problem,
            )?;
        }
        for (group, m) in matrices {
            let title = format!("{exp}: {group}, {setting} accuracy R[i][j]");
            let name = format!("heatmap-{}-{}", slug(exp), slug(&group));
            render(
                dir,
                &name,
                (560, 480),
                &|a| heatmap(a, &title, &m),
                &|a| heatmap(a, &title, &m),
                &mut out,
                &mut png_problem,
            )?;
            let title = format!("{exp}: {group}, accuracy of each task ({setting})");
            let name = format!("tasks-{}-{}", slug(exp), slug(&group));
            render(
                dir,
                &name,
                (640, 420),
                &|a| task_curves(a, &title, &m),
                &|a| task_curves(a, &title, &m),
                &mut out,
                &mut png_problem,
            )?;
        }
        let series = [
            (
                "average accuracy",
                scalar_means(&exp_rows, &format!("avg_{matrix_metric}"), axis_columns),
            ),
            (
                "forgetting",
                scalar_means(
                    &exp_rows,
                    &format!("forgetting_{}", &matrix_metric[4..]),
                    axis_columns,
                ),
            ),
            (
                "kNN accuracy",
                scalar_means(&exp_rows, "knn_acc", axis_columns),
            ),
        ];
        let series: Vec<(&str, BTreeMap<Group, f64>)> =
            series.into_iter().filter(|(_, m)| !m.is_empty()).collect();
        if !series.is_empty() {
            let title = format!("{exp}: per method (mean over seeds)");
            let name = format!("summary-{}", slug(exp));
            render(
                dir,
                &name,
                (720, 420),
                &|a| bars(a, &title, &series),
                &|a| bars(a, &title, &series),
                &mut out,
                &mut png_problem,
            )?;
        }
    }
    Ok((out, png_problem))
}
