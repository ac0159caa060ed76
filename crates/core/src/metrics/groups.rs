//! Accuracy per data group (a dataset's own groups, e.g. Waterbirds'
//! bird × background from an image folder's groups file), the worst group's
//! and the mean over groups: what group-robustness work reports.

use reusebench_data::ImageSet;
use reusebench_results::{Coords, MetricRow, names};

/// Rows `acc_by_group` (coordinate `group`), `worst_group_acc` and
/// `mean_group_acc` for `predictions` on `set`; nothing when the set's
/// images carry no groups.
pub fn group_rows(predictions: &[u32], set: &ImageSet, group_names: &[String]) -> Vec<MetricRow> {
    group_rows_of(predictions, &set.labels, &set.groups, group_names)
}

/// [`group_rows`] from the labels and groups alone (several sets' test
/// images put together).
pub fn group_rows_of(
    predictions: &[u32],
    labels: &[u32],
    groups: &[u16],
    group_names: &[String],
) -> Vec<MetricRow> {
    let n = labels.len();
    if n == 0 || groups.len() != n || predictions.len() != n {
        return Vec::new();
    }
    let mut counts = vec![(0usize, 0usize); group_names.len()];
    for ((&p, &label), &g) in predictions.iter().zip(labels).zip(groups) {
        let c = &mut counts[g as usize];
        c.0 += (p == label) as usize;
        c.1 += 1;
    }
    let mut rows = Vec::new();
    let mut accs = Vec::new();
    for (name, (hit, n)) in group_names.iter().zip(counts) {
        // A group with no test image has no accuracy.
        if n == 0 {
            continue;
        }
        let acc = 100.0 * hit as f64 / n as f64;
        accs.push(acc);
        rows.push(MetricRow::at(
            names::ACC_BY_GROUP,
            acc,
            Coords::new().with(names::GROUP, name.as_str()),
        ));
    }
    rows.push(MetricRow::scalar(
        names::WORST_GROUP_ACC,
        accs.iter().copied().fold(f64::INFINITY, f64::min),
    ));
    rows.push(MetricRow::scalar(
        names::MEAN_GROUP_ACC,
        accs.iter().sum::<f64>() / accs.len() as f64,
    ));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_group_is_the_minority_the_model_gets_wrong() {
        // Six images: group a (4 images, 3 right), group b (2 images, 0
        // right): overall 50 %, worst group 0 %, mean over groups 37.5 %.
        let mut set = ImageSet::empty(1, 1, 1);
        for (label, group) in [(0, 0), (0, 0), (1, 0), (1, 0), (0, 1), (1, 1)] {
            set.push(&[0], label);
            set.groups.push(group);
        }
        let predictions = [0, 0, 1, 0, 1, 0];
        let names = ["a".to_string(), "b".to_string(), "unused".to_string()];
        let rows = group_rows(&predictions, &set, &names);
        let get = |m: &str| rows.iter().find(|r| r.metric == m).map(|r| r.value);
        assert_eq!(get(names::WORST_GROUP_ACC), Some(0.0));
        assert_eq!(get(names::MEAN_GROUP_ACC), Some(37.5));
        let by_group: Vec<f64> = rows
            .iter()
            .filter(|r| r.metric == names::ACC_BY_GROUP)
            .map(|r| r.value)
            .collect();
        assert_eq!(by_group, vec![75.0, 0.0], "the empty group is left out");
        set.groups.clear();
        assert!(group_rows(&predictions, &set, &names).is_empty());
    }
}
