//! What the protocol end-to-end tests share: the binary, the shipped smoke
//! grids redirected into a temporary folder, a cell's stored rows, and the
//! check that `validate` refuses a broken grid at its file, line and key.

#![allow(dead_code)] // each test file uses its own share of these

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The binary, to run with arguments of the caller's.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reusebench"))
}

/// Runs the binary: exit code and stdout + stderr.
pub fn run(args: &[&str]) -> (i32, String) {
    let out = bin().args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// `reusebench make-fixture KIND DIR`, which must succeed.
pub fn make_fixture(kind: &str, dir: &Path) {
    let (code, out) = run(&["make-fixture", kind, dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
}

/// `experiments/smoke/{name}.yaml` with its results folder moved into `dir`.
pub fn smoke_grid_text(name: &str, dir: &Path) -> String {
    std::fs::read_to_string(repo().join(format!("experiments/smoke/{name}.yaml")))
        .unwrap()
        .replace(
            &format!("results: results/smoke-{name}"),
            &format!("results: {}", dir.join("results").display()),
        )
}

/// The folders of `results` whose names start with `experiment-`, sorted
/// (none while the results folder does not exist yet).
pub fn cell_dirs(results: &Path, experiment: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(results.join("cells")) else {
        return Vec::new();
    };
    let mut dirs: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{experiment}-"))
        })
        .collect();
    dirs.sort();
    dirs
}

/// Every cell of `experiment` in `results`, in folder order: its method
/// and its stored rows.
pub fn cell_rows(results: &Path, experiment: &str) -> Vec<(String, Vec<serde_json::Value>)> {
    cell_dirs(results, experiment)
        .iter()
        .map(|d| {
            let rows: Vec<serde_json::Value> =
                serde_json::from_str(&std::fs::read_to_string(d.join("rows.json")).unwrap())
                    .unwrap();
            let method = rows[0]["method"].as_str().unwrap().to_string();
            (method, rows)
        })
        // `debias-` is also the prefix of `debias-tint-`'s folders.
        .filter(|(_, rows)| rows[0]["experiment"] == experiment)
        .collect()
}

/// The rows without coordinates: (metric, value).
pub fn scalars(rows: &[serde_json::Value]) -> Vec<(String, f64)> {
    rows.iter()
        .filter(|r| {
            r.get("coords")
                .is_none_or(|c| c.as_object().is_some_and(|o| o.is_empty()))
        })
        .map(|r| {
            (
                r["metric"].as_str().unwrap().to_string(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// Every value of `metric` in `rows`, in order.
pub fn values(rows: &[serde_json::Value], metric: &str) -> Vec<f64> {
    rows.iter()
        .filter(|r| r["metric"] == metric)
        .map(|r| r["value"].as_f64().unwrap())
        .collect()
}

/// The rows with timing metrics left out, values as bits: what two runs of
/// the same cells must share exactly.
pub fn reproducible(cells: &[(String, Vec<serde_json::Value>)]) -> Vec<(String, Vec<String>)> {
    cells
        .iter()
        .map(|(m, rows)| {
            (
                m.clone(),
                rows.iter()
                    .filter(|r| {
                        !reusebench_results::names::TIMING.contains(&r["metric"].as_str().unwrap())
                    })
                    .map(|r| {
                        format!(
                            "{} {} {}",
                            r["metric"],
                            r["coords"],
                            r["value"].as_f64().unwrap().to_bits()
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// A broken variant of a grid and what `validate` must say of it.
pub struct Rejection<'a> {
    /// Text replaced in the grid...
    pub from: &'a str,
    /// ...by this.
    pub to: &'a str,
    /// The error names the line holding this text...
    pub line_of: &'a str,
    /// ...and this key and message.
    pub key: &'a str,
    pub message: &'a str,
}

/// [`assert_rejected`] on the shipped smoke grid `name`.
pub fn assert_smoke_rejects(name: &str, cases: &[Rejection]) {
    let tmp = tempfile::tempdir().unwrap();
    assert_rejected(tmp.path(), &smoke_grid_text(name, tmp.path()), cases);
}

/// Each rejection, applied alone to `text`, makes `validate` exit 2 naming
/// the file, the line and the key, and nothing runs.
pub fn assert_rejected(dir: &Path, text: &str, cases: &[Rejection]) {
    for (k, c) in cases.iter().enumerate() {
        let changed = text.replace(c.from, c.to);
        assert_ne!(changed, text, "case {k}: `{}` is not in the grid", c.from);
        let path = dir.join(format!("bad-{k}.yaml"));
        std::fs::write(&path, &changed).unwrap();
        let line = changed.lines().position(|l| l.contains(c.line_of)).unwrap() + 1;
        let (code, out) = run(&["validate", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{out}");
        assert!(
            out.contains(&format!("bad-{k}.yaml:{line}"))
                && out.contains(&format!("key `{}`", c.key))
                && out.contains(c.message),
            "case {k}: expected line {line}, key `{}`, {}:\n{out}",
            c.key,
            c.message
        );
    }
    assert!(!dir.join("results").exists(), "nothing ran");
}

/// Each cell's method with its scalars.
pub fn scalars_by_cell(
    cells: &[(String, Vec<serde_json::Value>)],
) -> Vec<(String, Vec<(String, f64)>)> {
    cells
        .iter()
        .map(|(m, rows)| (m.clone(), scalars(rows)))
        .collect()
}

/// The value of `metric` among a cell's scalars.
pub fn get(values: &[(String, f64)], metric: &str) -> Option<f64> {
    values.iter().find(|(m, _)| m == metric).map(|(_, v)| *v)
}

/// `convert` of the width-4 torchvision ResNet-18 fixture as `arch` into `output`.
pub fn convert_fixture(arch: &str, output: &Path) -> (i32, String) {
    let fixture = repo().join("crates/core/tests/fixtures/torchvision/resnet18_w4.pth");
    let (fixture, output) = (fixture.to_str().unwrap(), output.to_str().unwrap());
    run(&[
        "convert", fixture, "--arch", arch, "--width", "4", "-o", output,
    ])
}

/// The shipped smoke grid `name`, run once in a fresh folder: it must
/// succeed and run `cells` cells. Where it ran and what the binary printed.
pub struct SmokeRun {
    pub tmp: tempfile::TempDir,
    pub grid: PathBuf,
    pub results: PathBuf,
    pub out: String,
}

impl SmokeRun {
    pub fn new(name: &str, cells: usize) -> Self {
        let smoke = Self::any(name);
        assert!(
            smoke
                .out
                .contains(&format!("{cells} cell(s) run, 0 skipped")),
            "{}",
            smoke.out
        );
        smoke
    }

    /// The smoke grid `name` run in a temporary folder, whatever its cells.
    pub fn any(name: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let grid = tmp.path().join("grid.yaml");
        std::fs::write(&grid, smoke_grid_text(name, tmp.path())).unwrap();
        let results = tmp.path().join("results");
        let (code, out) = run(&["run", grid.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}");
        Self {
            tmp,
            grid,
            results,
            out,
        }
    }

    /// `summary.md` holds every one of `needles` and `plots/` every one of
    /// `plots`; the Markdown, for further checks.
    pub fn assert_report(&self, needles: &[&str], plots: &[&str]) -> String {
        let md = std::fs::read_to_string(self.results.join("summary.md")).unwrap();
        for needle in needles {
            assert!(md.contains(needle), "{needle}\n{md}");
        }
        for f in plots {
            assert!(self.results.join("plots").join(f).is_file(), "{f} missing");
        }
        md
    }

    /// Runs every cell again from scratch and checks that experiment
    /// `exp` gives `first` again, bit for bit (timing aside).
    pub fn assert_rerun_identical(&self, exp: &str, first: &[(String, Vec<serde_json::Value>)]) {
        let (code, out) = run(&["run", self.grid.to_str().unwrap(), "--force", "--no-report"]);
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            reproducible(&cell_rows(&self.results, exp)),
            reproducible(first),
            "the same rows, bit for bit"
        );
    }
}

/// The first cell folder of `results` whose name starts with `prefix`.
pub fn cell_dir_of(results: &Path, prefix: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results.join("cells"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    dirs.into_iter()
        .find(|p| name(p).starts_with(prefix))
        .unwrap()
}
