//! Class-incremental task splits.

use rand::seq::SliceRandom;
use reusebench_seeds::{Purpose, Seeds};

use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::image_set::ImageSet;

/// A sequence of tasks, each a set of original class labels. Inside the
/// sequence classes are renumbered `0..total` in task order, so task `t`
/// owns the contiguous label range [`TaskSplit::label_range`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSplit {
    pub tasks: Vec<Vec<u32>>,
}

impl TaskSplit {
    /// Splits `classes` (in the given order, or shuffled with `permute_seed`)
    /// into consecutive tasks of `classes_per_task`.
    pub fn new(
        classes: &[u32],
        classes_per_task: usize,
        permute_seed: Option<u64>,
    ) -> Result<Self, DataError> {
        if classes_per_task == 0
            || classes.is_empty()
            || !classes.len().is_multiple_of(classes_per_task)
        {
            return Err(DataError::Config(format!(
                "{} classes cannot be split into tasks of {classes_per_task}",
                classes.len()
            )));
        }
        let mut order = classes.to_vec();
        let mut dedup = order.clone();
        dedup.sort_unstable();
        dedup.dedup();
        if dedup.len() != order.len() {
            return Err(DataError::Config("a class is listed twice".into()));
        }
        if let Some(seed) = permute_seed {
            order.shuffle(&mut Seeds::new(seed).rng(Purpose::ClassOrder));
        }
        Ok(Self {
            tasks: order
                .chunks(classes_per_task)
                .map(<[u32]>::to_vec)
                .collect(),
        })
    }

    pub fn num_tasks(&self) -> usize {
        self.tasks.len()
    }

    pub fn num_classes(&self) -> usize {
        self.tasks.iter().map(Vec::len).sum()
    }

    /// The renumbered labels of task `t`.
    pub fn label_range(&self, t: usize) -> std::ops::Range<usize> {
        let start: usize = self.tasks[..t].iter().map(Vec::len).sum();
        start..start + self.tasks[t].len()
    }

    /// The renumbered label of an original class, if it is in the sequence.
    pub fn relabel(&self, original: u32) -> Option<u32> {
        self.tasks
            .iter()
            .flatten()
            .position(|&c| c == original)
            .map(|p| p as u32)
    }

    /// Task `t`'s images of `set`, relabelled into the sequence's numbering.
    pub fn task_images(&self, set: &ImageSet, t: usize) -> ImageSet {
        let classes = &self.tasks[t];
        let offset = self.label_range(t).start as u32;
        set.select_classes(&|label| {
            classes
                .iter()
                .position(|&c| c == label)
                .map(|p| offset + p as u32)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_splits_and_relabels() {
        let s = TaskSplit::new(&[5, 6, 7, 8, 9, 4], 2, None).unwrap();
        assert_eq!(s.tasks, vec![vec![5, 6], vec![7, 8], vec![9, 4]]);
        assert_eq!(s.label_range(2), 4..6);
        assert_eq!(s.relabel(4), Some(5));
        assert_eq!(s.relabel(0), None);
        let mut set = ImageSet::empty(1, 1, 1);
        for l in [4u32, 5, 9, 0, 9] {
            set.push(&[l as u8], l);
        }
        let t2 = s.task_images(&set, 2);
        assert_eq!(t2.labels, vec![5, 4, 4]);
        assert_eq!(t2.pixels, vec![4, 9, 9]);
    }

    #[test]
    fn permutation_is_seeded_and_complete() {
        let classes: Vec<u32> = (0..10).collect();
        let a = TaskSplit::new(&classes, 2, Some(1)).unwrap();
        let b = TaskSplit::new(&classes, 2, Some(1)).unwrap();
        let c = TaskSplit::new(&classes, 2, Some(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut all: Vec<u32> = a.tasks.concat();
        all.sort();
        assert_eq!(all, classes);
    }

    #[test]
    fn uneven_split_is_an_error() {
        let err = TaskSplit::new(&[0, 1, 2], 2, None).unwrap_err();
        assert!(
            err.to_string()
                .contains("3 classes cannot be split into tasks of 2")
        );
        assert!(TaskSplit::new(&[0, 0], 1, None).is_err());
    }
}

/// Domain-incremental tasks: every task has all classes, drawn from one
/// period (a year range) or one region (datasets with per-image domains,
/// FMoW).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DomainTasks {
    /// One task per inclusive year range, in the given order.
    Year { ranges: Vec<[u16; 2]> },
    /// One task per region (names from [`crate::fmow::REGIONS`]), in the given order.
    Region { order: Vec<String> },
}

impl DomainTasks {
    pub fn num_tasks(&self) -> usize {
        match self {
            DomainTasks::Year { ranges } => ranges.len(),
            DomainTasks::Region { order } => order.len(),
        }
    }

    pub fn validate(&self) -> Result<(), DataError> {
        match self {
            DomainTasks::Year { ranges } => {
                if ranges.is_empty() || ranges.iter().any(|[a, b]| a > b) {
                    return Err(DataError::Config(
                        "domains.ranges: give [first, last] year ranges, first <= last".into(),
                    ));
                }
            }
            DomainTasks::Region { order } => {
                if order.is_empty() {
                    return Err(DataError::Config("domains.order: no regions".into()));
                }
                if let Some(bad) = order
                    .iter()
                    .find(|r| !crate::fmow::REGIONS.contains(&r.as_str()))
                {
                    return Err(DataError::Config(format!(
                        "domains.order: unknown region `{bad}` (use {})",
                        crate::fmow::REGIONS.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Task `t` in words, for messages.
    pub fn describe(&self, t: usize) -> String {
        match self {
            DomainTasks::Year { ranges } => format!("years {}-{}", ranges[t][0], ranges[t][1]),
            DomainTasks::Region { order } => format!("region {}", order[t]),
        }
    }

    fn matches(&self, t: usize, d: &crate::image_set::Domain) -> bool {
        match self {
            DomainTasks::Year { ranges } => (ranges[t][0]..=ranges[t][1]).contains(&d.year),
            DomainTasks::Region { order } => crate::fmow::REGIONS[d.region as usize] == order[t],
        }
    }
}

/// The task structure a continual run follows.
#[derive(Debug, Clone)]
pub enum TaskSequence {
    /// Class-incremental: each task brings new classes.
    Classes(TaskSplit),
    /// Domain-incremental: each task has every class of `classes`
    /// (renumbered 0..n in that order), from its own domain.
    Domains {
        tasks: DomainTasks,
        classes: Vec<u32>,
    },
}

impl TaskSequence {
    pub fn num_tasks(&self) -> usize {
        match self {
            TaskSequence::Classes(s) => s.num_tasks(),
            TaskSequence::Domains { tasks, .. } => tasks.num_tasks(),
        }
    }

    /// Size of the shared head.
    pub fn num_classes(&self) -> usize {
        match self {
            TaskSequence::Classes(s) => s.num_classes(),
            TaskSequence::Domains { classes, .. } => classes.len(),
        }
    }

    /// Labels task `t` trains (renumbered).
    pub fn label_range(&self, t: usize) -> std::ops::Range<usize> {
        match self {
            TaskSequence::Classes(s) => s.label_range(t),
            TaskSequence::Domains { classes, .. } => 0..classes.len(),
        }
    }

    /// Logit columns that earlier tasks trained (what distillation keeps).
    pub fn old_classes(&self, t: usize) -> usize {
        match self {
            TaskSequence::Classes(s) => s.label_range(t).start,
            TaskSequence::Domains { classes, .. } => {
                if t == 0 {
                    0
                } else {
                    classes.len()
                }
            }
        }
    }

    /// Task `t`'s images of `set`, labels renumbered.
    pub fn task_images(&self, set: &ImageSet, t: usize) -> Result<ImageSet, DataError> {
        match self {
            TaskSequence::Classes(s) => Ok(s.task_images(set, t)),
            TaskSequence::Domains { tasks, classes } => {
                if set.domains.len() != set.len() {
                    return Err(DataError::Config(
                        "domains: this dataset has no per-image year or region (only fmow has)"
                            .into(),
                    ));
                }
                Ok(set.select(&|i| {
                    if !tasks.matches(t, &set.domains[i]) {
                        return None;
                    }
                    classes
                        .iter()
                        .position(|&c| c == set.labels[i])
                        .map(|p| p as u32)
                }))
            }
        }
    }

    /// `"class_il"` or `"domain_il"`: the setting metric names carry.
    pub fn setting(&self) -> &'static str {
        match self {
            TaskSequence::Classes(_) => "class_il",
            TaskSequence::Domains { .. } => "domain_il",
        }
    }
}
