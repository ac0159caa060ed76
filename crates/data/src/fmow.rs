//! FMoW (WILDS `fmow_v1.1`) in its official layout:
//!
//! ```text
//! rgb_metadata.csv           split,img_filename,img_path,spatial_reference,epsg,category,
//!                            visible,img_width,img_height,country_code,cloud_cover,timestamp,lat,lon
//! country_code_mapping.csv   alpha-3 code -> region (as WILDS ships it)
//! images/rgb_img_{idx}.png   idx = the row's position in rgb_metadata.csv
//! ```
//!
//! Rows whose `split` is `seq` are dropped (as WILDS does). Every image keeps
//! its year (from `timestamp`) and region (Africa, Americas, Asia, Europe,
//! Oceania, Other; codes missing from the mapping are Other), so task
//! sequences can follow time or geography and metrics can report the worst
//! region and year. Labels follow WILDS' 62 categories, in its order.
//!
//! Splits: `official` is WILDS' (`fmow_dataset.py`), which uses the CSV's
//! `split` column *and* the year: train = `train` rows before 2013; OOD val
//! = `val` rows of 2013–2015; OOD test = `test` rows of 2016 and later; ID
//! val / ID test = `val` / `test` rows before 2013. The test set is OOD test
//! unless `test:` names another. `random` puts a seeded fraction of every
//! (year, region) group into the test set, for sequences whose tasks are
//! year ranges (each task then has test images of its own period).
//!
//! The CSV is read as CSV: `spatial_reference` holds quoted WKT strings
//! with commas and doubled quotes (`"PROJCS[""WGS 84 / UTM zone 29N"",..]"`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use reusebench_seeds::{Purpose, Seeds};
use serde::{Deserialize, Serialize};

use crate::error::DataError;
use crate::image_file::decode_files;
use crate::image_set::{Domain, TrainTest};
use crate::transform::Normalization;

pub const REGIONS: [&str; 6] = ["Africa", "Americas", "Asia", "Europe", "Oceania", "Other"];

/// WILDS' category order (label = position).
pub const CATEGORIES: [&str; 62] = [
    "airport",
    "airport_hangar",
    "airport_terminal",
    "amusement_park",
    "aquaculture",
    "archaeological_site",
    "barn",
    "border_checkpoint",
    "burial_site",
    "car_dealership",
    "construction_site",
    "crop_field",
    "dam",
    "debris_or_rubble",
    "educational_institution",
    "electric_substation",
    "factory_or_powerplant",
    "fire_station",
    "flooded_road",
    "fountain",
    "gas_station",
    "golf_course",
    "ground_transportation_station",
    "helipad",
    "hospital",
    "impoverished_settlement",
    "interchange",
    "lake_or_pond",
    "lighthouse",
    "military_facility",
    "multi-unit_residential",
    "nuclear_powerplant",
    "office_building",
    "oil_or_gas_facility",
    "park",
    "parking_lot_or_garage",
    "place_of_worship",
    "police_station",
    "port",
    "prison",
    "race_track",
    "railway_bridge",
    "recreational_facility",
    "road_bridge",
    "runway",
    "shipyard",
    "shopping_mall",
    "single-unit_residential",
    "smokestack",
    "solar_farm",
    "space_facility",
    "stadium",
    "storage_tank",
    "surface_mine",
    "swimming_pool",
    "toll_booth",
    "tower",
    "tunnel_opening",
    "waste_disposal",
    "water_treatment_facility",
    "wind_farm",
    "zoo",
];

/// ImageNet statistics: FMoW models start from ImageNet weights.
pub const NORMALIZATION: Normalization = Normalization::IMAGENET;

pub const NATIVE_SIZE: usize = 224;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FmowSplit {
    /// WILDS' split: train = `train` rows before 2013; the test set is the
    /// evaluation split `test` names (OOD test by default).
    Official {
        #[serde(default)]
        test: FmowEval,
    },
    /// A seeded `test_fraction` of every (year, region) group is test.
    Random { test_fraction: f64, seed: u64 },
}

impl Default for FmowSplit {
    fn default() -> Self {
        FmowSplit::Official {
            test: FmowEval::OodTest,
        }
    }
}

/// WILDS' evaluation splits of FMoW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FmowEval {
    /// `test` rows of 2016 and later.
    #[default]
    OodTest,
    /// `val` rows of 2013–2015.
    OodVal,
    /// `test` rows before 2013.
    IdTest,
    /// `val` rows before 2013.
    IdVal,
}

impl FmowEval {
    fn holds(self, row: &FmowRow) -> bool {
        match self {
            FmowEval::OodTest => row.split == "test" && row.year >= 2016,
            FmowEval::OodVal => row.split == "val" && (2013..=2015).contains(&row.year),
            FmowEval::IdTest => row.split == "test" && row.year < 2013,
            FmowEval::IdVal => row.split == "val" && row.year < 2013,
        }
    }
}

/// One metadata row after parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct FmowRow {
    /// Position in rgb_metadata.csv (names the image file).
    pub index: usize,
    pub split: String,
    pub label: u32,
    pub year: u16,
    pub region: u8,
}

fn format_err(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The fields of one CSV line (RFC 4180): a field in double quotes may
/// hold commas, and `""` inside it is one quote. Spaces around unquoted
/// fields are trimmed.
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' if quoted => quoted = false,
            '"' if field.trim().is_empty() => {
                field.clear();
                quoted = true;
            }
            ',' if !quoted => out.push(std::mem::take(&mut field).trim().to_string()),
            c => field.push(c),
        }
    }
    out.push(field.trim().to_string());
    out
}

/// A CSV file's text and its header's fields.
struct Csv {
    path: PathBuf,
    text: String,
    header: Vec<String>,
}

impl Csv {
    fn read(path: PathBuf) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
        let header = csv_fields(text.lines().next().unwrap_or(""));
        Ok(Self { path, text, header })
    }

    /// The position of column `name`, or an error naming the file.
    fn column(&self, name: &str) -> Result<usize, DataError> {
        let position = self.header.iter().position(|h| h == name);
        position.ok_or_else(|| format_err(&self.path, format!("line 1: no `{name}` column")))
    }

    /// The lines after the header.
    fn rows(&self) -> impl Iterator<Item = &str> {
        self.text.lines().skip(1)
    }
}

fn regions(root: &Path) -> Result<HashMap<String, u8>, DataError> {
    let csv = Csv::read(root.join("country_code_mapping.csv"))?;
    let (code, region) = (csv.column("alpha-3")?, csv.column("region")?);
    let mut map = HashMap::new();
    for line in csv.rows().filter(|l| !l.trim().is_empty()) {
        let f = csv_fields(line);
        let (Some(c), Some(r)) = (f.get(code), f.get(region)) else {
            continue;
        };
        let idx = REGIONS
            .iter()
            .position(|x| x == r)
            .unwrap_or(REGIONS.len() - 1);
        map.insert(c.to_string(), idx as u8);
    }
    Ok(map)
}

/// Parses rgb_metadata.csv (dropping `seq` rows).
pub fn read_metadata(root: &Path) -> Result<Vec<FmowRow>, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingRoot {
            root: root.to_path_buf(),
            expected: "the fmow_v1.1 folder (rgb_metadata.csv, country_code_mapping.csv, images/)"
                .into(),
        });
    }
    let region_of = regions(root)?;
    let csv = Csv::read(root.join("rgb_metadata.csv"))?;
    let (path, header) = (&csv.path, &csv.header);
    let (split, category, country, timestamp) = (
        csv.column("split")?,
        csv.column("category")?,
        csv.column("country_code")?,
        csv.column("timestamp")?,
    );
    let mut rows = Vec::new();
    for (index, line) in csv.rows().enumerate() {
        let line_no = index + 2;
        if line.trim().is_empty() {
            continue;
        }
        let f = csv_fields(line);
        if f.len() != header.len() {
            return Err(format_err(
                path,
                format!(
                    "line {line_no}: {} fields where the header has {}",
                    f.len(),
                    header.len()
                ),
            ));
        }
        let get = |c: usize| {
            f.get(c)
                .map(String::as_str)
                .ok_or_else(|| format_err(path, format!("line {line_no}: too few columns")))
        };
        let s = get(split)?;
        if s == "seq" {
            continue;
        }
        let cat = get(category)?;
        let label = CATEGORIES
            .iter()
            .position(|c| *c == cat)
            .ok_or_else(|| format_err(path, format!("line {line_no}: unknown category `{cat}`")))?;
        let ts = get(timestamp)?;
        let year: u16 = ts.get(..4).and_then(|y| y.parse().ok()).ok_or_else(|| {
            format_err(
                path,
                format!("line {line_no}: timestamp `{ts}` has no year"),
            )
        })?;
        let region = region_of
            .get(get(country)?)
            .copied()
            .unwrap_or((REGIONS.len() - 1) as u8);
        rows.push(FmowRow {
            index,
            split: s.to_string(),
            label: label as u32,
            year,
            region,
        });
    }
    Ok(rows)
}

/// Which part of the data a metadata row goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Train,
    /// WILDS' validation split that goes with the evaluation split.
    Validation,
    Test,
}

impl FmowEval {
    /// The WILDS validation split that selects models for this evaluation
    /// split: `val` (OOD) for the OOD test, `id_val` for the ID test. The
    /// validation splits themselves have none (a hold-out from training is
    /// used then).
    fn validation(self) -> Option<FmowEval> {
        match self {
            FmowEval::OodTest => Some(FmowEval::OodVal),
            FmowEval::IdTest => Some(FmowEval::IdVal),
            FmowEval::OodVal | FmowEval::IdVal => None,
        }
    }
}

/// Per row: its part, or left out. `random` shuffles every (year, region)
/// group with the seed and puts round(fraction × group size) of it into
/// the test set (no official validation part then).
pub fn assign(rows: &[FmowRow], split: FmowSplit) -> Vec<Option<Part>> {
    match split {
        FmowSplit::Official { test } => rows
            .iter()
            .map(|row| {
                if row.split == "train" && row.year < 2013 {
                    Some(Part::Train)
                } else if test.holds(row) {
                    Some(Part::Test)
                } else if test.validation().is_some_and(|v| v.holds(row)) {
                    Some(Part::Validation)
                } else {
                    None
                }
            })
            .collect(),
        FmowSplit::Random {
            test_fraction,
            seed,
        } => {
            use rand::seq::SliceRandom;
            let mut groups: std::collections::BTreeMap<(u16, u8), Vec<usize>> = Default::default();
            for (i, row) in rows.iter().enumerate() {
                groups.entry((row.year, row.region)).or_default().push(i);
            }
            let mut out = vec![Some(Part::Train); rows.len()];
            let mut rng = Seeds::new(seed).rng(Purpose::FmowRandomSplit);
            for members in groups.values_mut() {
                members.shuffle(&mut rng);
                let n_test = (test_fraction * members.len() as f64).round() as usize;
                for &i in &members[..n_test] {
                    out[i] = Some(Part::Test);
                }
            }
            out
        }
    }
}

pub fn image_path(root: &Path, index: usize) -> PathBuf {
    root.join("images").join(format!("rgb_img_{index}.png"))
}

/// A split's labelled image files and their domains.
type SplitFiles = (Vec<(PathBuf, u32)>, Vec<Domain>);

/// Loads FMoW from `root`, resized to `size` pixels a side.
pub fn load_fmow(root: &Path, size: usize, split: FmowSplit) -> Result<TrainTest, DataError> {
    if size == 0 || size > 1024 {
        return Err(DataError::Config(format!(
            "fmow image_size must be in 1..=1024, got {size}"
        )));
    }
    if let FmowSplit::Random { test_fraction, .. } = split
        && !(0.0..1.0).contains(&test_fraction)
    {
        return Err(DataError::Config(
            "fmow split.test_fraction must be in [0, 1)".into(),
        ));
    }
    let rows = read_metadata(root)?;
    // Files and domains of the training, validation and test parts, in metadata order.
    let mut parts: [SplitFiles; 3] = Default::default();
    for (row, part) in rows.iter().zip(assign(&rows, split)) {
        let Some(part) = part else {
            continue;
        };
        let (files, domains) = &mut parts[part as usize];
        files.push((image_path(root, row.index), row.label));
        domains.push(Domain {
            year: row.year,
            region: row.region,
        });
    }
    let has_validation = !parts[Part::Validation as usize].0.is_empty();
    let [train, validation, test] = parts.map(|(files, domains)| {
        decode_files(&files, size).map(|mut set| {
            set.domains = domains;
            set
        })
    });
    let (train, validation, test) = (train?, validation?, test?);
    Ok(TrainTest {
        name: "fmow".into(),
        num_classes: CATEGORIES.len(),
        class_names: CATEGORIES.iter().map(|c| c.to_string()).collect(),
        train,
        test,
        validation: has_validation.then_some(validation),
        normalization: NORMALIZATION,
        group_names: Vec::new(),
    })
}

/// Writes a small FMoW in the WILDS layout: `rows` metadata rows cycling
/// through categories, countries of every region and years 2002–2017 (one
/// code missing from the mapping, so "Other"), every seventh row `seq`;
/// 16x16 PNGs whose red channel encodes the category.
pub fn write_fmow_fixture(root: &Path, rows: usize) -> Result<Vec<FmowRow>, DataError> {
    let io = |p: &Path, e| DataError::io(p, e);
    std::fs::create_dir_all(root.join("images")).map_err(|e| io(root, e))?;
    let countries = [
        ("NGA", 0u8),
        ("USA", 1),
        ("BRA", 1),
        ("CHN", 2),
        ("FRA", 3),
        ("AUS", 4),
        ("ATA", 5),
        ("XKX", 5),
    ];
    let mapping = "alpha-2,alpha-3,region\nNG,NGA,Africa\nUS,USA,Americas\nBR,BRA,Americas\nCN,CHN,Asia\nFR,FRA,Europe\nAU,AUS,Oceania\nAQ,ATA,Antarctica\n";
    let path = root.join("country_code_mapping.csv");
    std::fs::write(&path, mapping).map_err(|e| io(&path, e))?;
    let mut csv = String::from(
        "split,img_filename,img_path,spatial_reference,epsg,category,visible,img_width,img_height,country_code,cloud_cover,timestamp,lat,lon\n",
    );
    let mut expected = Vec::new();
    for i in 0..rows {
        let label = (i * 5) % CATEGORIES.len();
        // Every country gets every year: region and time vary independently.
        let year = 2002 + ((i / countries.len()) % 16) as u16;
        let (code, region) = countries[i % countries.len()];
        let split = if i % 7 == 6 {
            "seq"
        } else {
            ["train", "val", "test"][i % 3]
        };
        csv.push_str(&format!(
            "{split},img_{i}.jpg,train/x/img_{i}.jpg,\"PROJCS[\"\"WGS 84 / UTM zone {}N\"\",GEOGCS[\"\"WGS 84\"\",DATUM[\"\"WGS_1984\"\"]]]\",4326,{},True,16,16,{code},0,{year}-0{}-1{}T10:00:00Z,1.0,2.0\n",
            29 + i % 3,
            CATEGORIES[label],
            1 + i % 9,
            i % 10
        ));
        let v = (label * 4) as u8;
        let img = image::RgbImage::from_pixel(16, 16, image::Rgb([v, 100, 200]));
        let p = image_path(root, i);
        img.save_with_format(&p, image::ImageFormat::Png)
            .map_err(|e| format_err(&p, e.to_string()))?;
        if split != "seq" {
            expected.push(FmowRow {
                index: i,
                split: split.to_string(),
                label: label as u32,
                year,
                region,
            });
        }
    }
    let path = root.join("rgb_metadata.csv");
    std::fs::write(&path, csv).map_err(|e| io(&path, e))?;
    Ok(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_keep_quoted_commas_and_quotes() {
        let f = csv_fields(
            r#"train,a.jpg,"PROJCS[""WGS 84 / UTM zone 29N"",GEOGCS[""WGS 84""]]",4326, x "#,
        );
        assert_eq!(
            f,
            [
                "train",
                "a.jpg",
                r#"PROJCS["WGS 84 / UTM zone 29N",GEOGCS["WGS 84"]]"#,
                "4326",
                "x"
            ]
        );
        assert_eq!(csv_fields("a,,b"), ["a", "", "b"]);
    }

    #[test]
    fn fixture_rows_have_the_right_split_region_and_year() {
        let tmp = tempfile::tempdir().unwrap();
        let expected = write_fmow_fixture(tmp.path(), 200).unwrap();
        let text = std::fs::read_to_string(tmp.path().join("rgb_metadata.csv")).unwrap();
        assert!(
            text.contains(r#""PROJCS[""WGS 84 / UTM zone 29N"",GEOGCS["#),
            "the fixture has quoted WKT fields with commas"
        );
        let rows = read_metadata(tmp.path()).unwrap();
        assert_eq!(rows, expected);
        assert_eq!(rows.len(), 172, "every seventh row is `seq` and dropped");
        assert!(rows.iter().any(|r| REGIONS[r.region as usize] == "Other"));

        // WILDS' split: the split column and the year together.
        let data = load_fmow(tmp.path(), 8, FmowSplit::default()).unwrap();
        let train: Vec<&FmowRow> = rows
            .iter()
            .filter(|r| r.split == "train" && r.year < 2013)
            .collect();
        let test: Vec<&FmowRow> = rows
            .iter()
            .filter(|r| r.split == "test" && r.year >= 2016)
            .collect();
        assert!(!train.is_empty() && !test.is_empty());
        // By year alone (the old split), train and test would be larger.
        assert!(rows.iter().filter(|r| r.year < 2013).count() > train.len());
        assert_eq!(data.train.len(), train.len());
        assert_eq!(data.test.len(), test.len());
        for (set, want) in [(&data.train, &train), (&data.test, &test)] {
            assert_eq!(set.domains.len(), set.len());
            for (i, row) in want.iter().enumerate() {
                assert_eq!(set.labels[i], row.label);
                assert_eq!(
                    set.domains[i],
                    Domain {
                        year: row.year,
                        region: row.region
                    }
                );
                // The pixels are the row's own image (red encodes the category).
                assert_eq!(set.image(i)[0], (row.label * 4) as u8);
            }
        }
        assert_eq!(data.train.height, 8);
        let id_test = load_fmow(
            tmp.path(),
            8,
            FmowSplit::Official {
                test: FmowEval::IdTest,
            },
        )
        .unwrap();
        let want = rows
            .iter()
            .filter(|r| r.split == "test" && r.year < 2013)
            .count();
        assert_eq!(id_test.test.len(), want);

        let random = FmowSplit::Random {
            test_fraction: 0.5,
            seed: 1,
        };
        let data = load_fmow(tmp.path(), 8, random).unwrap();
        assert_eq!(data.train.len() + data.test.len(), 172);
        // Stratified: every (year, region) group gives round(half) to test.
        let assigned = assign(&rows, random);
        let mut groups: std::collections::BTreeMap<(u16, u8), (usize, usize)> = Default::default();
        for (row, a) in rows.iter().zip(&assigned) {
            let g = groups.entry((row.year, row.region)).or_default();
            g.0 += 1;
            g.1 += (*a == Some(Part::Test)) as usize;
        }
        for ((year, region), (n, n_test)) in groups {
            assert_eq!(
                n_test,
                (0.5 * n as f64).round() as usize,
                "group ({year}, {region}) of {n}"
            );
        }
    }

    #[test]
    fn bad_rows_name_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        write_fmow_fixture(tmp.path(), 10).unwrap();
        let path = tmp.path().join("rgb_metadata.csv");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(",airport,", ",spaceport,");
        std::fs::write(&path, text).unwrap();
        let err = read_metadata(tmp.path()).unwrap_err().to_string();
        assert!(
            err.contains("rgb_metadata.csv") && err.contains("line 2") && err.contains("spaceport"),
            "{err}"
        );
        std::fs::remove_file(image_path(tmp.path(), 0)).unwrap();
        write_fmow_fixture(tmp.path(), 10).unwrap();
        // Row 3 is a training row (split `train`, 2002).
        std::fs::remove_file(image_path(tmp.path(), 3)).unwrap();
        let err = load_fmow(tmp.path(), 8, FmowSplit::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("rgb_img_3.png"), "{err}");
    }
}
