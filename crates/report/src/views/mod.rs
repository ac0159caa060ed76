//! Protocol views: the tables and figures a protocol's readers expect,
//! beyond the generic ones every experiment gets (scalar table,
//! coordinate tables, training curves). One line per view in [`builtin`].

mod adaptation;
mod canonicalize;
mod continual;
mod curves;
mod debias;
mod performative;
mod resque;

use std::collections::BTreeMap;

use reusebench_results::StoredRow;

use crate::aggregate::{Summary, SummaryRow};
use crate::error::ReportError;
use crate::plot::Figures;
use crate::plot::Point;

pub use adaptation::accuracy_by_shots;
pub use canonicalize::CanonicalizeView;
pub use continual::ContinualView;
pub use curves::draw_curves;
pub use debias::DebiasView;
pub use performative::PerformativeView;
pub use resque::ResqueView;

/// One experiment as a view sees it: its name, its raw rows (every seed)
/// and the summary over seeds (its axis columns included).
#[derive(Clone, Copy)]
pub struct Experiment<'a> {
    pub name: &'a str,
    pub rows: &'a [&'a StoredRow],
    pub summary: &'a Summary,
    /// The method the grid compares every other with (`baseline:`).
    pub baseline: Option<&'a str>,
}

/// What drawing a view's figures gives back.
pub type Drawn = Result<(), ReportError>;

/// What a protocol adds to the report of one of its experiments.
pub trait View: Sync {
    /// Extra Markdown for `summary.md` after the experiment's scalar table.
    fn markdown(&self, _experiment: &Experiment) -> String {
        String::new()
    }
    /// The experiment's figures.
    fn figures(&self, _experiment: &Experiment, _figures: &mut Figures) -> Drawn {
        Ok(())
    }
}

/// A view with the protocol whose experiments it shows.
pub struct Registered {
    pub protocol: &'static str,
    /// Whether the view shows the experiment's coordinate metrics itself
    /// (then `summary.md` leaves out the generic tables of them).
    pub shows_coordinates: bool,
    pub view: Box<dyn View>,
}

impl Registered {
    fn new(protocol: &'static str, view: impl View + 'static) -> Self {
        let (shows_coordinates, view) = (false, Box::new(view));
        Self {
            protocol,
            shows_coordinates,
            view,
        }
    }

    fn showing_coordinates(mut self) -> Self {
        self.shows_coordinates = true;
        self
    }
}

/// Every view this build has: one line each.
pub fn builtin() -> Vec<Registered> {
    vec![
        Registered::new("continual", ContinualView).showing_coordinates(),
        Registered::new("performative", PerformativeView).showing_coordinates(),
        Registered::new("resque", ResqueView).showing_coordinates(),
        Registered::new("debias", DebiasView),
        Registered::new("canonicalize", CanonicalizeView).showing_coordinates(),
    ]
}

/// The view of `protocol`, if one is registered.
pub fn view_of<'a>(views: &'a [Registered], protocol: &str) -> Option<&'a Registered> {
    views.iter().find(|v| v.protocol == protocol)
}

/// The method plus the extra axis values: what a line or bar stands for.
pub type Group = String;

pub fn group_of(r: &StoredRow, axis_columns: &[String]) -> Group {
    let values: Vec<String> = axis_columns.iter().map(|a| r.axis(a)).collect();
    group_label(&r.method, axis_columns, &values)
}

/// `method a=v ...` for the axes with a value (`values` in `axis_columns`
/// order).
pub fn group_label(method: &str, axis_columns: &[String], values: &[String]) -> Group {
    let mut parts = vec![method.to_string()];
    for (a, v) in axis_columns.iter().zip(values) {
        if !v.is_empty() {
            parts.push(format!("{a}={v}"));
        }
    }
    parts.join(" ")
}

/// One line per group, a point per key at `x(key)` with the mean and std
/// of its values over seeds.
pub fn series_of<K>(
    by: &BTreeMap<Group, BTreeMap<K, Vec<f64>>>,
    x: impl Fn(&K) -> f64,
) -> Vec<crate::plot::Series> {
    by.iter()
        .map(|(group, points)| crate::plot::Series {
            name: group.clone(),
            points: points.iter().map(|(k, v)| Point::of(x(k), v)).collect(),
        })
        .collect()
}

/// A line figure of `by` (a line per group, x = `x(key)`) under `name`,
/// with integer-x axes fitted to it; nothing when `by` is empty.
pub fn draw_lines<K>(
    figures: &mut Figures,
    name: &str,
    size: (u32, u32),
    by: &BTreeMap<Group, BTreeMap<K, Vec<f64>>>,
    x: impl Fn(&K) -> f64,
    labels: [&str; 3],
) -> Drawn {
    if by.is_empty() {
        return Ok(());
    }
    let series = series_of(by, x);
    let [title, x_label, y_label] = labels;
    let axes = crate::plot::Axes::fitted(title.to_string(), x_label, y_label, &series);
    crate::plot::render_lines(figures, name, size, &axes, &series)
}

/// The summary's scalar rows (no coordinates) of experiment `exp`.
pub fn scalar_rows<'a>(summary: &'a Summary, exp: &'a str) -> impl Iterator<Item = &'a SummaryRow> {
    summary
        .rows
        .iter()
        .filter(move |r| r.experiment == exp && r.is_scalar())
}

/// `\nk=v, k2=v2\n` naming a table's setting of the other axes; empty when
/// the experiment has no other axes.
pub fn setting_line(axis_columns: &[String], values: &[String]) -> String {
    let setting: Vec<String> = axis_columns
        .iter()
        .zip(values)
        .map(|(a, v)| format!("{a}={v}"))
        .collect();
    if setting.is_empty() {
        String::new()
    } else {
        format!("\n{}\n", setting.join(", "))
    }
}

/// A Markdown table's header row and rule, after a blank line.
pub fn table_header<S: AsRef<str>>(columns: impl IntoIterator<Item = S>) -> String {
    let columns: Vec<S> = columns.into_iter().collect();
    let mut md = String::from("\n|");
    for c in &columns {
        md.push_str(&format!(" {} |", c.as_ref()));
    }
    md.push_str("\n|");
    md.push_str(&" --- |".repeat(columns.len()));
    md.push('\n');
    md
}

/// The values of `metric` over seeds, by group and by `key` (a point); rows
/// for which `key` is `None` are left out.
pub fn values_by<K: Ord>(
    rows: &[&StoredRow],
    metric: &str,
    axis_columns: &[String],
    key: impl Fn(&StoredRow) -> Option<K>,
) -> BTreeMap<Group, BTreeMap<K, Vec<f64>>> {
    let mut out: BTreeMap<Group, BTreeMap<K, Vec<f64>>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.metric == metric && r.value.is_finite())
    {
        if let Some(k) = key(r) {
            out.entry(group_of(r, axis_columns))
                .or_default()
                .entry(k)
                .or_default()
                .push(r.value);
        }
    }
    out
}
