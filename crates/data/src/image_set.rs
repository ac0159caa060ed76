//! Images of a split in memory, and a dataset's train and test splits:
//! what every loader returns and every consumer reads.

use crate::transform::Normalization;

/// Images of one split, stored as `u8` in CHW order, one after another.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    /// Per-image domain (year, region) for datasets that have one (FMoW);
    /// empty otherwise.
    pub domains: Vec<Domain>,
    /// Per-image group index into [`TrainTest::group_names`] for datasets
    /// that give one (an image folder's `groups` file); empty otherwise.
    pub groups: Vec<u16>,
}

/// Where and when an image was taken (FMoW's metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Domain {
    pub year: u16,
    /// Index into [`crate::fmow::REGIONS`].
    pub region: u8,
}

impl ImageSet {
    pub fn empty(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
            pixels: Vec::new(),
            labels: Vec::new(),
            domains: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// Every image resized (bilinear, as the file loaders resize) to
    /// `size`x`size`; itself when already that size.
    pub fn resized(self, size: usize) -> ImageSet {
        if self.height == size && self.width == size {
            return self;
        }
        let mut pixels = Vec::with_capacity(self.len() * self.channels * size * size);
        for i in 0..self.len() {
            pixels.extend(crate::image_file::resize_chw(
                self.image(i),
                self.channels,
                (self.height, self.width),
                size,
            ));
        }
        ImageSet {
            height: size,
            width: size,
            pixels,
            ..self
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[index * n..(index + 1) * n]
    }

    pub fn push(&mut self, image: &[u8], label: u32) {
        debug_assert_eq!(image.len(), self.image_len());
        self.pixels.extend_from_slice(image);
        self.labels.push(label);
    }

    /// Appends image `i` of `other` (with its domain and group, if any).
    pub fn push_from(&mut self, other: &ImageSet, i: usize, label: u32) {
        self.push(other.image(i), label);
        if let Some(d) = other.domains.get(i) {
            self.domains.push(*d);
        }
        if let Some(g) = other.groups.get(i) {
            self.groups.push(*g);
        }
    }

    /// The images at `indices`, in that order, with their labels (and
    /// domains and groups).
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut out = self.empty_for(indices.len());
        for &i in indices {
            out.push_from(self, i, self.labels[i]);
        }
        out
    }

    /// The images `keep` returns a label for (index -> new label); order is kept.
    pub fn select(&self, keep: &dyn Fn(usize) -> Option<u32>) -> ImageSet {
        let kept: Vec<(usize, u32)> = (0..self.len())
            .filter_map(|i| keep(i).map(|label| (i, label)))
            .collect();
        let mut out = self.empty_for(kept.len());
        for (i, label) in kept {
            out.push_from(self, i, label);
        }
        out
    }

    /// An empty set of this one's shape with room for `n` of its images:
    /// a copy of a dataset is allocated once at its size, not grown by
    /// doubling (which left up to half of it unused and, while growing,
    /// held the old and the new buffer at once).
    fn empty_for(&self, n: usize) -> ImageSet {
        let mut out = ImageSet::empty(self.channels, self.height, self.width);
        out.pixels.reserve_exact(n * self.image_len());
        out.labels.reserve_exact(n);
        if !self.domains.is_empty() {
            out.domains.reserve_exact(n);
        }
        if !self.groups.is_empty() {
            out.groups.reserve_exact(n);
        }
        out
    }

    /// The images whose label is in `classes`, relabelled through `map`
    /// (original label -> new label); order is kept.
    pub fn select_classes(&self, map: &dyn Fn(u32) -> Option<u32>) -> ImageSet {
        self.select(&|i| map(self.labels[i]))
    }

    /// Keeps `per_class` images of each label chosen at random with
    /// `seed` (all of a label that has fewer), in their original order.
    /// One stream per class: a class's choice does not depend on the others.
    pub fn sample_per_class(&self, per_class: usize, seed: u64) -> ImageSet {
        use rand::seq::SliceRandom;
        use reusebench_seeds::{Purpose, Seeds};
        let mut by_class = std::collections::BTreeMap::<u32, Vec<usize>>::new();
        for (i, &l) in self.labels.iter().enumerate() {
            by_class.entry(l).or_default().push(i);
        }
        let mut keep = vec![false; self.len()];
        for (class, mut members) in by_class {
            members.shuffle(&mut Seeds::new(seed).rng(Purpose::Subset { class }));
            for &i in members.iter().take(per_class) {
                keep[i] = true;
            }
        }
        self.select(&|i| keep[i].then_some(self.labels[i]))
    }

    /// Keeps at most `per_class` images of each label (the first ones).
    pub fn cap_per_class(&self, per_class: usize) -> ImageSet {
        let mut counts = std::collections::HashMap::<u32, usize>::new();
        let mut out = ImageSet::empty(self.channels, self.height, self.width);
        for i in 0..self.len() {
            let c = counts.entry(self.labels[i]).or_default();
            if *c < per_class {
                *c += 1;
                out.push_from(self, i, self.labels[i]);
            }
        }
        out
    }
}

/// A dataset's train and test splits and what is needed to feed them.
#[derive(Debug, Clone)]
pub struct TrainTest {
    pub name: String,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    pub train: ImageSet,
    pub test: ImageSet,
    /// The validation split: the dataset's official one as a loader
    /// returns it (FMoW), or the hold-out [`crate::held_out::hold_out`] made.
    pub validation: Option<ImageSet>,
    pub normalization: Normalization,
    /// The names of the images' groups (`ImageSet::groups` indexes them);
    /// empty for datasets without groups.
    pub group_names: Vec<String>,
}

impl TrainTest {
    /// Every split's images resized to `size`x`size` ([`ImageSet::resized`]).
    pub fn resized(self, size: usize) -> TrainTest {
        TrainTest {
            train: self.train.resized(size),
            test: self.test.resized(size),
            validation: self.validation.map(|v| v.resized(size)),
            ..self
        }
    }
}
