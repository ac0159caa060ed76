//! Protocol views: the tables and figures a protocol's readers expect,
//! beyond the generic ones every experiment gets (scalar table,
//! coordinate tables, training curves). One line per view in [`builtin`].

mod canonicalize;
mod continual;
mod curves;
mod debias;
mod performative;
mod resque;

use std::collections::BTreeMap;

use reusebench_results::StoredRow;

use crate::aggregate::Summary;
use crate::error::ReportError;
use crate::plot::Figures;

pub use canonicalize::CanonicalizeView;
pub use continual::ContinualView;
pub use curves::draw_curves;
pub use debias::DebiasView;
pub use performative::PerformativeView;
pub use resque::ResqueView;

/// What a protocol adds to the report of one of its experiments.
pub trait View: Sync {
    /// The protocol whose experiments this view shows.
    fn protocol(&self) -> &'static str;
    /// Whether the view shows the experiment's coordinate metrics itself
    /// (then `summary.md` leaves out the generic tables of them).
    fn shows_coordinates(&self) -> bool {
        false
    }
    /// Extra Markdown for `summary.md` after the experiment's scalar table,
    /// from the aggregated summary or the experiment's raw rows.
    fn markdown(&self, _summary: &Summary, _rows: &[&StoredRow], _experiment: &str) -> String {
        String::new()
    }
    /// The experiment's figures.
    fn figures(
        &self,
        _rows: &[&StoredRow],
        _experiment: &str,
        _axis_columns: &[String],
        _figures: &mut Figures,
    ) -> Result<(), ReportError> {
        Ok(())
    }
}

/// Every view this build has: one line each.
pub fn builtin() -> Vec<Box<dyn View>> {
    vec![
        Box::new(ContinualView),
        Box::new(PerformativeView),
        Box::new(ResqueView),
        Box::new(DebiasView),
        Box::new(CanonicalizeView),
    ]
}

/// The view of `protocol`, if one is registered.
pub fn view_of<'a>(views: &'a [Box<dyn View>], protocol: &str) -> Option<&'a dyn View> {
    views
        .iter()
        .find(|v| v.protocol() == protocol)
        .map(|v| v.as_ref())
}

/// The method plus the extra axis values: what a line or bar stands for.
pub type Group = String;

pub fn group_of(r: &StoredRow, axis_columns: &[String]) -> Group {
    let mut parts = vec![r.method.clone()];
    for a in axis_columns {
        let v = r.axis(a);
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
            points: points
                .iter()
                .map(|(k, v)| {
                    let (mean, std) = crate::plot::mean_std(v);
                    crate::plot::Point { x: x(k), mean, std }
                })
                .collect(),
        })
        .collect()
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
