//! The continual view: the accuracy matrix as a heatmap per method, every
//! task's accuracy over the sequence, the first task's accuracy for every
//! method, and bars of average accuracy, forgetting and kNN accuracy.
//! Values are means over seeds; lines carry a 95 % confidence band, bars
//! confidence intervals as error bars.

use std::collections::BTreeMap;

use reusebench_results::{StoredRow, names};

use super::{Drawn, Experiment, View, values_by};
use crate::plot::{
    Axes, Bars, Figures, Point, Series, bar_chart, heatmap, mean_ci, mean_std, render_lines, slug,
};

pub struct ContinualView;

fn matrix_key(r: &StoredRow) -> Option<(usize, usize)> {
    Some((
        r.coords.index(names::AFTER_TASK)?,
        r.coords.index(names::TASK)?,
    ))
}

fn accuracy_axes(title: String, y_label: &str, tasks: usize) -> Axes {
    Axes {
        title,
        x_label: "after training task".into(),
        y_label: y_label.into(),
        x: 0.0..(tasks.max(2) - 1) as f64,
        y: 0.0..100.0,
        integer_x: true,
    }
}

impl View for ContinualView {
    fn markdown(&self, e: &Experiment) -> String {
        super::adaptation::markdown(e)
    }

    fn figures(&self, e: &Experiment, figures: &mut Figures) -> Drawn {
        let (exp, rows, axis_columns) = (e.name, e.rows, &e.summary.axis_columns[..]);
        let (setting, label) = if rows.iter().any(|r| r.metric == names::ACC_DOMAIN_IL) {
            ("domain_il", "domain-IL")
        } else {
            ("class_il", "class-IL")
        };
        let setting_names = names::setting(setting).expect("a setting");
        let matrices = values_by(rows, setting_names.matrix, axis_columns, matrix_key);
        let tasks = matrices
            .values()
            .flat_map(|m| m.keys().map(|(i, j)| i.max(j) + 1))
            .max()
            .unwrap_or(1);
        // The first task's accuracy after each task, one line per method.
        let first: Vec<Series> = matrices
            .iter()
            .map(|(group, m)| Series {
                name: group.clone(),
                points: m
                    .iter()
                    .filter(|((_, j), _)| *j == 0)
                    .map(|(&(i, _), v)| Point::of(i as f64, v))
                    .collect(),
            })
            .collect();
        if !first.is_empty() {
            let axes = accuracy_axes(
                format!("{exp}: accuracy on the first task ({label})"),
                "accuracy on task 0 (%)",
                tasks,
            );
            render_lines(
                figures,
                &format!("first-task-{}", slug(exp)),
                (860, 440),
                &axes,
                &first,
            )?;
        }
        for (group, m) in &matrices {
            let means: BTreeMap<(usize, usize), f64> =
                m.iter().map(|(&k, v)| (k, mean_std(v).0)).collect();
            let title = format!("{exp}: {group}, {label} accuracy R[i][j]");
            let name = format!("heatmap-{}-{}", slug(exp), slug(group));
            let (x_label, y_label) = ("evaluated task j", "after training task i");
            figures.render(
                &name,
                (560, 480),
                &|a| heatmap(a, &title, x_label, y_label, &means, 0.0..100.0),
                &|a| heatmap(a, &title, x_label, y_label, &means, 0.0..100.0),
            )?;
            let per_task: Vec<Series> = (0..tasks)
                .map(|j| Series {
                    name: format!("task {j}"),
                    points: (j..tasks)
                        .filter_map(|i| m.get(&(i, j)).map(|v| Point::of(i as f64, v)))
                        .collect(),
                })
                .collect();
            let axes = accuracy_axes(
                format!("{exp}: {group}, accuracy of each task ({label})"),
                "accuracy (%)",
                tasks,
            );
            render_lines(
                figures,
                &format!("tasks-{}-{}", slug(exp), slug(group)),
                (820, 420),
                &axes,
                &per_task,
            )?;
        }
        let scalar =
            |metric: &str| values_by(rows, metric, axis_columns, |r| r.is_scalar().then_some(()));
        let wanted = [
            ("average accuracy", scalar(setting_names.avg)),
            ("forgetting", scalar(setting_names.forgetting)),
            ("kNN accuracy", scalar(names::KNN_ACC)),
        ];
        let wanted: Vec<_> = wanted.into_iter().filter(|(_, m)| !m.is_empty()).collect();
        if !wanted.is_empty() {
            let mut groups: Vec<String> =
                wanted.iter().flat_map(|(_, m)| m.keys().cloned()).collect();
            groups.sort();
            groups.dedup();
            let series: Vec<Bars> = wanted
                .iter()
                .map(|(name, m)| {
                    (
                        name.to_string(),
                        groups
                            .iter()
                            .map(|g| m.get(g).and_then(|v| v.get(&())).map(|v| mean_ci(v)))
                            .collect(),
                    )
                })
                .collect();
            let title = format!("{exp}: per method (mean, 95% CI over seeds)");
            figures.render(
                &format!("summary-{}", slug(exp)),
                (900, 420),
                &|a| bar_chart(a, &title, "%", &groups, &series),
                &|a| bar_chart(a, &title, "%", &groups, &series),
            )?;
        }
        Ok(())
    }
}
