//! A result is reused only while what it was computed from holds: the
//! config with its defaults, the inputs it read, the build. A protocol of
//! the test's own (`relay`: a number read from a file, plus an offset,
//! written on to another file) shows which cells a change makes stale,
//! and that only those run again.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reusebench_core::metrics::MetricRow;
use reusebench_core::{CoreError, Protocol, RunEnv};
use reusebench_runner::Registry;

/// The offset a grid that names none gets: a default "in code" that the
/// test changes between runs (f64 bits).
static DEFAULT_OFFSET: AtomicU64 = AtomicU64::new(0);

fn default_offset() -> f64 {
    f64::from_bits(DEFAULT_OFFSET.load(Ordering::SeqCst))
}

struct Relay;

impl Protocol for Relay {
    const NAME: &'static str = "relay";
    type Config = RelayConfig;
    const OBJECTIVE: &'static str = "relayed";

    fn inputs(config: &RelayConfig) -> Vec<PathBuf> {
        vec![config.input.clone()]
    }

    fn outputs(config: &RelayConfig) -> Vec<PathBuf> {
        config.output.iter().cloned().collect()
    }

    fn run(config: &RelayConfig, _: &RunEnv) -> Result<Vec<MetricRow>, CoreError> {
        let text = std::fs::read_to_string(&config.input).unwrap();
        let value = text.trim().parse::<f64>().unwrap() + config.offset;
        if let Some(out) = &config.output {
            std::fs::write(out, value.to_string()).unwrap();
        }
        let name = config.input.file_name().unwrap().to_string_lossy();
        let mut log = std::fs::read_to_string(&config.log).unwrap_or_default();
        log.push_str(&format!("{name}\n"));
        std::fs::write(&config.log, log).unwrap();
        Ok(vec![MetricRow::scalar("relayed", value)])
    }
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayConfig {
    seed: u64,
    input: PathBuf,
    #[serde(default)]
    output: Option<PathBuf>,
    #[serde(default = "default_offset")]
    offset: f64,
    /// Every run appends the input's name here: which cells ran.
    log: PathBuf,
}

/// `source` reads a.txt and writes mid.txt, which `sink` reads; `explicit`
/// and `defaulted` read b.txt, the first naming the offset, the second
/// leaving it to the default.
fn grid(dir: &Path) -> PathBuf {
    let d = dir.display();
    let exp = |name: &str, input: &str, more: &str| {
        format!(
            "  - name: {name}\n    protocol: relay\n    base: {{ seed: 0, input: {d}/{input}, log: {d}/runs.log{more} }}\n"
        )
    };
    let text = format!(
        "name: relay\nresults: {d}/results\nexperiments:\n{}{}{}{}",
        exp(
            "source",
            "a.txt",
            &format!(", output: {d}/mid.txt, offset: 0")
        ),
        exp("sink", "mid.txt", ", offset: 0"),
        exp("explicit", "b.txt", ", offset: 0"),
        exp("defaulted", "b.txt", ""),
    );
    let path = dir.join("grid.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `reusebench run GRID ARGS…` with `relay` registered; the inputs of the
/// cells that ran, sorted.
fn run(grid: &Path, args: &[&str]) -> Vec<String> {
    let log = grid.with_file_name("runs.log");
    let _ = std::fs::remove_file(&log);
    let argv = ["reusebench", "run", grid.to_str().unwrap(), "--no-report"];
    let code = reusebench::main_with(
        &Registry::builtin().with::<Relay>(),
        argv.iter().chain(args).map(Into::into),
    );
    assert_eq!(code, ExitCode::SUCCESS);
    let mut ran: Vec<String> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    ran.sort();
    ran
}

/// Writes `text` to `path`, a moment after the last write.
fn rewrite(path: &Path, text: &str) {
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(path, text).unwrap();
}

#[test]
fn only_the_cells_whose_config_inputs_or_upstream_changed_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.txt"), tmp.path().join("b.txt"));
    std::fs::write(&a, "1").unwrap();
    std::fs::write(&b, "2").unwrap();
    let grid = grid(tmp.path());
    let results = tmp.path().join("results");

    assert_eq!(run(&grid, &[]), ["a.txt", "b.txt", "b.txt", "mid.txt"]);
    assert!(run(&grid, &[]).is_empty(), "nothing changed: all reused");
    for cell in std::fs::read_dir(results.join("cells")).unwrap() {
        assert!(cell.unwrap().path().join("identity.json").is_file());
    }

    // A dataset file changes: the two cells that read it, and only those.
    rewrite(&b, "3");
    let status = reusebench_runner::status::of(&results, Duration::from_secs(600)).unwrap();
    let stale: Vec<&str> = status.stale.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(stale.len(), 2, "{stale:?}");
    assert!(
        stale
            .iter()
            .all(|c| c.starts_with("explicit-") || c.starts_with("defaulted-"))
    );
    assert!(
        status.stale[0].1.contains("b.txt changed"),
        "{:?}",
        status.stale
    );
    assert!(status.to_string().contains("stale    2"), "{status}");
    assert_eq!(run(&grid, &[]), ["b.txt", "b.txt"]);

    // A default changes in code: the cell that left it to the default.
    DEFAULT_OFFSET.store(10f64.to_bits(), Ordering::SeqCst);
    assert_eq!(run(&grid, &[]), ["b.txt"]);
    let defaulted = crate::common::cell_dir_of(&results, "defaulted-");
    let rows = std::fs::read_to_string(defaulted.join("rows.json")).unwrap();
    assert!(rows.contains("13.0") || rows.contains(": 13"), "{rows}");

    // An upstream input changes: the producer runs, and so does the cell
    // that reads what it wrote (its input's digest changed with it).
    rewrite(&a, "5");
    assert_eq!(run(&grid, &[]), ["a.txt", "mid.txt"]);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("mid.txt")).unwrap(),
        "5"
    );

    // --keep-stale keeps them, and the report says so.
    rewrite(&b, "4");
    assert!(run(&grid, &["--keep-stale"]).is_empty());
    let report = reusebench::main_with(
        &Registry::builtin(),
        ["reusebench", "report", results.to_str().unwrap()].map(Into::into),
    );
    assert_eq!(report, ExitCode::SUCCESS);
    let md = std::fs::read_to_string(results.join("summary.md")).unwrap();
    assert!(
        md.contains("**Stale results included**") && md.contains("b.txt changed"),
        "{md}"
    );
    assert!(defaulted.join("stale.json").is_file());
    // The input as it was: current again, and unmarked.
    rewrite(&b, "3");
    assert!(run(&grid, &["--keep-stale"]).is_empty());
    assert!(!defaulted.join("stale.json").exists());
    // Changed again, and run without --keep-stale: they run.
    rewrite(&b, "4");
    assert_eq!(run(&grid, &[]), ["b.txt", "b.txt"]);
    assert!(!defaulted.join("stale.json").exists());
}
