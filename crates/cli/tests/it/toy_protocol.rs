//! A protocol written here, in the test tree, added through the registry
//! alone: it runs through the command, and its rows reach `summary.md`,
//! the CSV and the Parquet with their coordinates and the grid's axes.

use std::process::ExitCode;

use polars::prelude::*;
use reusebench_core::metrics::{Coords, MetricRow};
use reusebench_core::{Checks, CoreError, Protocol, RunEnv};
use reusebench_runner::Registry;

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ToyConfig {
    seed: u64,
    rounds: usize,
    scale: f64,
}

/// `value = scale * round + seed` at every round, and their sum.
struct Toy;

impl Protocol for Toy {
    const NAME: &'static str = "toy";
    type Config = ToyConfig;
    const OBJECTIVE: &'static str = "toy_total";

    fn validate(config: &ToyConfig, _: &Checks) -> Result<(), CoreError> {
        if config.scale < 0.0 {
            return Err(CoreError::config("scale", "must be >= 0"));
        }
        Ok(())
    }

    fn run(config: &ToyConfig, _env: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        let mut rows: Vec<MetricRow> = (0..config.rounds)
            .map(|round| {
                MetricRow::at(
                    "toy_value",
                    config.scale * round as f64 + config.seed as f64,
                    Coords::new().with("round", round),
                )
            })
            .collect();
        let total = rows.iter().map(|r| r.value).sum();
        rows.push(MetricRow::scalar("toy_total", total));
        Ok(rows)
    }
}

fn grid(dir: &std::path::Path, scale: &str) -> std::path::PathBuf {
    let text = format!(
        "name: toy\nresults: {}\nexperiments:\n  - name: toy-exp\n    protocol: toy\n    base:\n      seed: 0\n      rounds: 3\n      scale: {scale}\n    axes:\n      scale: [1.0, 2.5]\n      seed: [0, 1]\n",
        dir.join("results").display()
    );
    let path = dir.join("grid.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn registry() -> Registry {
    Registry::builtin().with::<Toy>()
}

/// `load_grid`'s error for the grid at `path`.
fn load_error(registry: &Registry, path: &std::path::Path) -> String {
    let err = reusebench_runner::load_grid(registry, path, &[], None).unwrap_err();
    err.to_string()
}

/// `err` names `at` (file and line) and says `what`.
fn assert_error(err: &str, at: &str, what: &str) {
    assert!(err.contains(at) && err.contains(what), "{err}");
}

/// `reusebench run PATH` with the toy protocol registered.
fn run_toy(path: &std::path::Path) -> ExitCode {
    let args = ["reusebench", "run", path.to_str().unwrap()];
    reusebench::main_with(&registry(), args.map(Into::into))
}

#[test]
fn a_protocol_added_through_the_registry_runs_and_reports_its_coordinates() {
    let tmp = tempfile::tempdir().unwrap();
    let path = grid(tmp.path(), "1.0");
    let code = run_toy(&path);
    assert_eq!(code, ExitCode::SUCCESS);
    let results = tmp.path().join("results");

    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(md.contains("## toy-exp (toy)"), "{md}");
    // Scalars: mean over seeds 0 and 1 of sum(scale * r + seed) = 3 * scale + 1.5.
    assert!(
        md.contains("| toy | 1.0 | 4.50 ± 2.12 [-14.56, 23.56] | 2 |"),
        "{md}"
    );
    assert!(
        md.contains("| toy | 2.5 | 9.00 ± 2.12 [-10.06, 28.06] | 2 |"),
        "{md}"
    );
    // The coordinate metric: a row per round, a column per scale.
    assert!(md.contains("### toy_value"), "{md}");
    assert!(
        md.contains("| round | toy scale=1.0 | toy scale=2.5 |"),
        "{md}"
    );
    assert!(
        md.contains("| 2 | 2.50 ± 0.71 [-3.85, 8.85] | 5.50 ± 0.71 [-0.85, 11.85] |"),
        "{md}"
    );

    let csv = std::fs::read_to_string(results.join("summary.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "experiment,protocol,method,scale,metric,round,mean,std,n,ci95"
    );
    assert!(
        csv.contains("toy-exp,toy,toy,2.5,toy_value,2,5.5,"),
        "{csv}"
    );

    let file = std::fs::File::open(results.join("rows.parquet")).unwrap();
    let frame = ParquetReader::new(file).finish().unwrap();
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    for column in ["scale", "seed", "metric", "value", "round"] {
        assert!(names.contains(&column.to_string()), "{names:?}");
    }
    assert_eq!(
        frame.height(),
        2 * 2 * 4,
        "2 scales x 2 seeds x (3 rounds + total)"
    );
    assert_eq!(frame.column("scale").unwrap().dtype(), &DataType::Float64);
    assert_eq!(frame.column("round").unwrap().dtype(), &DataType::Int64);
    let rounds = frame.column("round").unwrap().null_count();
    assert_eq!(rounds, 4, "the scalar rows have no round");
}

#[test]
fn a_registered_protocol_validates_with_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = grid(tmp.path(), "-1.0");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("      scale: [1.0, 2.5]\n", "");
    std::fs::write(&path, text).unwrap();
    assert_error(
        &load_error(&registry(), &path),
        "grid.yaml:9",
        "key `scale`: must be >= 0",
    );
    // Without the registration the protocol is unknown, at its line.
    assert_error(
        &load_error(&Registry::builtin(), &path),
        "grid.yaml:5",
        "unknown protocol `toy`",
    );
}

#[test]
fn an_experiment_with_energy_meters_every_cell_whatever_its_protocol() {
    use reusebench_results::names;
    let tmp = tempfile::tempdir().unwrap();
    let path = grid(tmp.path(), "1.0");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "    protocol: toy\n",
        "    protocol: toy\n    energy: { tdp_watts: 60, grid_intensity: 100 }\n",
    );
    std::fs::write(&path, &text).unwrap();
    let code = run_toy(&path);
    assert_eq!(code, ExitCode::SUCCESS);
    let cells: Vec<_> = std::fs::read_dir(tmp.path().join("results/cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(cells.len(), 4);
    for cell in cells {
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(cell.join("rows.json")).unwrap())
                .unwrap();
        let value = |m: &str| {
            rows.iter()
                .find(|r| r["metric"] == m)
                .unwrap_or_else(|| panic!("{m} missing"))["value"]
                .as_f64()
                .unwrap()
        };
        let joules = value(names::CELL_ENERGY_JOULES);
        assert!(joules >= 0.0);
        assert!((value(names::CELL_CARBON_GRAMS) - joules / 3.6e6 * 100.0).abs() < 1e-12);
        assert!(value(names::CELL_CPU_SECONDS) >= 0.0);
        assert!([0.0, 1.0].contains(&value(names::CELL_ENERGY_FROM_RAPL)));
    }

    // A TDP that cannot be: rejected at its line, nothing run.
    let bad = tmp.path().join("bad.yaml");
    let text = text.replace("tdp_watts: 60", "tdp_watts: -5").replace(
        &tmp.path().join("results").display().to_string(),
        &tmp.path().join("bad-results").display().to_string(),
    );
    std::fs::write(&bad, &text).unwrap();
    assert_error(
        &load_error(&registry(), &bad),
        "bad.yaml:6",
        "key `energy.tdp_watts`: must be > 0",
    );
}

/// The summary a researcher reads first and `status`, as snapshots: the
/// toy's values are exact, so these hold on every machine.
#[test]
fn summary_and_status_read_as_they_did() {
    let tmp = tempfile::tempdir().unwrap();
    let path = grid(tmp.path(), "1.0");
    let code = run_toy(&path);
    assert_eq!(code, ExitCode::SUCCESS);
    let results = tmp.path().join("results");
    let dir = tmp.path().display().to_string();
    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    insta::assert_snapshot!("toy_summary", md.replace(&dir, "[DIR]"));
    let status = reusebench_runner::status::of(&results, std::time::Duration::from_secs(600))
        .unwrap()
        .to_string();
    insta::assert_snapshot!("toy_status", status.replace(&dir, "[DIR]"));
}
