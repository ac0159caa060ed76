//! The `reusebench` command, as a library: the binary runs it with the
//! built-in protocols, and a test can run it with a protocol of its own
//! added to the registry.

mod cli;
mod ui;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use reusebench_core::DeviceSpec;
use reusebench_core::backbone::BackboneConfig;
use reusebench_core::checkpoint::convert_torchvision;
use std::time::Duration;

use reusebench_runner::slurm::SlurmOptions;
use reusebench_runner::{Grid, Registry, RunOptions, Selection, load_grid_with_data, run_grid};

use crate::cli::{Cli, Command, DataCommand};

/// Set by the binary's SIGUSR1 handler (the signal Slurm sends before it
/// preempts a job or its time runs out, with `submit`'s `--signal`): a
/// `run` then releases its claims and exits with [`EXIT_LEFT`], and the
/// job script requeues it.
pub static LEAVE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The exit status of a `run` that left on SIGUSR1: the running cell is not
/// done (it resumes from its last checkpoint when the job is requeued; the
/// cells done before are kept).
pub const EXIT_LEFT: u8 = 3;

/// The longest a leaving `run` waits for the training stage to save its
/// state after its current batch (Slurm's grace is longer: `submit
/// --grace`, 120 s by default).
const SAVE_WAIT: Duration = Duration::from_secs(60);

/// Watches [`LEAVE`]; once set, lets the running training stage checkpoint
/// after its current batch, then releases this process's claims and exits.
fn leave_on_signal() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            if LEAVE.load(std::sync::atomic::Ordering::SeqCst) {
                use reusebench_core::resume;
                resume::request_stop();
                let asked = std::time::Instant::now();
                // Outside a stage (evaluating, loading), the last stage's
                // checkpoint is already the cell's latest state.
                while resume::training() && !resume::parked() && asked.elapsed() < SAVE_WAIT {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let saved = if resume::parked() {
                    "checkpointed after its current batch"
                } else {
                    "kept at its last checkpoint"
                };
                let released = reusebench_runner::claim::release_all_held();
                eprintln!(
                    "SIGUSR1: leaving; {released} running cell(s) released, {saved}, to \
                     resume from there when the job is requeued (cells done are kept)"
                );
                std::process::exit(i32::from(EXIT_LEFT));
            }
        }
    });
}

/// What the binary runs after each grid cell to hand back memory the cell
/// no longer needs (its allocator's collection); set once by `main`.
static AFTER_CELL: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Registers `hook` to run after every grid cell, after the kernels' kept
/// buffers are freed. Later calls are ignored.
pub fn set_after_cell(hook: fn()) {
    let _ = AFTER_CELL.set(hook);
}

/// Between cells: a cell's buffers are sized for its own shapes and
/// batches, not the next one's, so they go, and the allocator may return
/// the freed memory to the OS.
pub(crate) fn after_cell() {
    reusebench_kernels::release_buffers();
    if let Some(hook) = AFTER_CELL.get() {
        hook();
    }
}

/// Parses `args` (the program name first) and runs the command with the
/// protocols of `registry`. Exit codes: 0 done, 1 some cells failed, 2 an
/// error before or outside the cells (printed to stderr), 3 a `run` left on
/// SIGUSR1 ([`EXIT_LEFT`]).
pub fn main_with(registry: &Registry, args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(registry, cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(registry: &Registry, cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            grid,
            force,
            keep_stale,
            no_report,
            tensorboard,
            shard,
            cell,
            claim_timeout,
        } => {
            let mut grid = load(registry, &grid)?;
            grid.tensorboard |= tensorboard;
            leave_on_signal();
            let select = match (shard, cell.is_empty()) {
                (Some(shard), _) => shard,
                (None, false) => Selection::Cells(cell),
                (None, true) => Selection::All,
            };
            let options = RunOptions {
                force,
                keep_stale,
                select,
                claim_timeout: Duration::from_secs(claim_timeout),
                ..RunOptions::default()
            };
            run_cells(&grid, &options, !no_report)
        }
        Command::Validate { grid } => validate(&load(registry, &grid)?),
        Command::Convert {
            weights,
            arch,
            width,
            vit,
            weights_key,
            allow_partial,
            output,
        } => {
            let config = BackboneConfig {
                arch: arch.parse()?,
                width,
                weights: Some(weights.clone()),
                weights_key,
                allow_partial,
                patch: vit.patch,
                dim: vit.dim,
                depth: vit.depth,
                heads: vit.heads,
                mlp_ratio: vit.mlp_ratio,
                image_size: vit.image_size,
                ..Default::default()
            };
            convert(&config, &weights, &output)
        }
        Command::MakeFixture { dataset, dir } => make_fixture(&dataset, &dir),
        Command::Data { action } => data(action),
        Command::Compare { results, output } => {
            reusebench_report::write_comparison(&results, &output)
                .with_context(|| format!("comparing {} results folder(s)", results.len()))?;
            println!("wrote {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            inference,
            arch,
            width,
            batch,
            warmup,
            steps,
            device,
        } => {
            let backbone = BackboneConfig {
                arch: arch.parse()?,
                width,
                ..Default::default()
            };
            backbone.validate()?;
            if let Some(vit) = backbone.vit_spec()?
                && vit.image_size != 32
            {
                anyhow::bail!(
                    "bench runs 32 px images; {arch} is for {} px",
                    vit.image_size
                );
            }
            bench(inference, &backbone, batch, warmup, steps, &device)
        }
        Command::Submit {
            grid: args,
            resources: r,
            dry_run,
            ..
        } => {
            let grid = load(registry, &args)?;
            let options = SlurmOptions {
                partition: r.partition,
                time: r.time,
                gres: r.gres,
                cpus_per_task: r.cpus_per_task,
                mem: r.mem,
                parallelism: r.parallelism,
                sbatch: r.sbatch,
                grace: r.grace,
                binary: std::env::current_exe().context("locating the reusebench binary")?,
                device: args.device,
                sets: args.set,
                data_root: args.data_root,
            };
            submit(&grid, &options, dry_run)
        }
        Command::Status {
            results,
            claim_timeout,
            follow,
            interval,
        } => loop {
            let status =
                reusebench_runner::status::of(&results, Duration::from_secs(claim_timeout))
                    .with_context(|| format!("reading {}", results.display()))?;
            print!("{status}");
            if !follow || (status.running.is_empty() && status.pending.is_empty()) {
                break Ok(ExitCode::SUCCESS);
            }
            println!("---- again in {interval} s (Ctrl-C stops watching, not the run)");
            std::thread::sleep(Duration::from_secs(interval));
        },
        Command::Report { results, html } => {
            let (done, failed) = report(&results)?;
            if html {
                let page = reusebench_report::write_html(&results, done, failed)
                    .with_context(|| format!("writing the HTML report of {}", results.display()))?;
                println!("html: {}", page.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `run`: the selected cells with a progress display, what happened to
/// them, then the report. Exit code 1 when a cell failed.
fn run_cells(grid: &Grid, options: &RunOptions, with_report: bool) -> Result<ExitCode> {
    let ui = ui::Ui::new(grid.cells.len());
    ui.line(&format!(
        "grid `{}`: {} cell(s) on {}, results in {}",
        grid.name,
        grid.cells.len(),
        grid.device,
        grid.results.display()
    ));
    let summary = run_grid(grid, options, &ui)?;
    ui.finish();
    println!(
        "{} cell(s) run, {} skipped (already done), {} failed",
        summary.done,
        summary.skipped,
        summary.failed.len()
    );
    if !summary.elsewhere.is_empty() {
        println!("{} cell(s) left to other workers", summary.elsewhere.len());
    }
    for (cell, why) in &summary.took_over {
        println!("  took over {cell}: {why}");
    }
    for (cell, why) in &summary.stale_rerun {
        println!("  ran again, stale: {cell}: {why}");
    }
    for (cell, why) in &summary.stale_kept {
        println!("  kept though stale: {cell}: {why}");
    }
    for (cell, reason) in &summary.failed {
        println!("  failed {cell}: {reason}");
    }
    if with_report {
        report(&grid.results)?;
    }
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `validate`: the grid is valid (it loaded); its cells, one a line.
fn validate(grid: &Grid) -> Result<ExitCode> {
    println!(
        "{}: valid, {} cell(s) on {}",
        grid.path.display(),
        grid.cells.len(),
        grid.device
    );
    for cell in &grid.cells {
        println!("  {}  {}", cell.dir_name(), cell.label);
    }
    Ok(ExitCode::SUCCESS)
}

/// `convert`: torchvision weights into a harness checkpoint.
fn convert(config: &BackboneConfig, weights: &Path, output: &Path) -> Result<ExitCode> {
    // Any compiled backend does: converting is a copy, not a computation.
    let device: DeviceSpec = DeviceSpec::compiled()[0].replace(":N", ":0").parse()?;
    let report = convert_torchvision(config, output, &device.device()?)
        .with_context(|| format!("converting {}", weights.display()))?;
    println!("{}: {report}", weights.display());
    let shape = match config.vit_spec()? {
        Some(v) => format!(
            "patch {}, dim {}, depth {}, heads {}, mlp {}, image size {}",
            v.patch, v.dim, v.depth, v.heads, v.mlp_dim, v.image_size
        ),
        None => format!("width {}", config.width),
    };
    println!(
        "wrote {} (arch {}, {shape}); use it as `backbone.checkpoint`",
        output.display(),
        config.arch.name(),
    );
    Ok(ExitCode::SUCCESS)
}

/// `make-fixture`: a generated dataset in its official format.
/// `data fetch` and `data verify`.
fn data(action: DataCommand) -> Result<ExitCode> {
    use reusebench_fetch::{Manifest, Verdict};
    let manifest = |file: &Option<PathBuf>| match file {
        Some(f) => Manifest::from_file(f),
        None => Ok(Manifest::built_in()),
    };
    match action {
        DataCommand::Fetch {
            name,
            to,
            manifest: file,
            quiet,
        } => {
            let manifest = manifest(&file)?;
            let entry = manifest.get(&name)?;
            println!("fetching {name} from {} into {}", entry.url, to.display());
            let (folder, report) = reusebench_fetch::fetch(entry, &to, !quiet)
                .with_context(|| format!("fetching {name}"))?;
            println!("{report}");
            if report.verdict == Verdict::Broken {
                return Ok(ExitCode::from(1));
            }
            println!("ready: a grid's `root` for {name} is {}", folder.display());
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Verify {
            name,
            dir,
            manifest: file,
            subset_ok,
        } => {
            let manifest = manifest(&file)?;
            let report = reusebench_fetch::verify::verify(manifest.get(&name)?, &dir)
                .with_context(|| format!("verifying {name} at {}", dir.display()))?;
            println!("{report}");
            Ok(match report.verdict {
                Verdict::Official => ExitCode::SUCCESS,
                Verdict::Subset if subset_ok => ExitCode::SUCCESS,
                Verdict::Subset => {
                    println!("(--subset-ok accepts a subset)");
                    ExitCode::from(1)
                }
                Verdict::Broken => ExitCode::from(1),
            })
        }
    }
}

fn make_fixture(dataset: &str, dir: &Path) -> Result<ExitCode> {
    match dataset {
        "cifar10" => reusebench_data::cifar::write_cifar10_fixture(dir, 10, 0)?,
        "tiny-imagenet" => {
            reusebench_data::tiny_imagenet::write_tiny_imagenet_fixture(dir, 20, 10, 5)?
        }
        "fmow" => {
            reusebench_data::fmow::write_fmow_fixture(dir, 700)?;
        }
        "image-folder" => {
            reusebench_data::image_folder::write_image_folder_fixture(dir, 4, 12, true)?
        }
        other => anyhow::bail!(
            "unknown fixture `{other}`; use cifar10, tiny-imagenet, fmow or image-folder"
        ),
    }
    println!("wrote a generated {dataset} fixture to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `bench`: images per second of a train step or of inference, as JSON.
fn bench(
    inference: bool,
    backbone: &BackboneConfig,
    batch: usize,
    warmup: usize,
    steps: usize,
    device: &str,
) -> Result<ExitCode> {
    use reusebench_core::throughput::{inference_rate, train_step_rate};
    let spec: DeviceSpec = device.parse()?;
    let device = spec.device()?;
    let (workload, rate) = match inference {
        false => (
            "train_step",
            train_step_rate(backbone, batch, warmup, steps, &device.autodiff()),
        ),
        true => (
            "inference",
            inference_rate(backbone, batch, warmup, steps, &device),
        ),
    };
    let (arch, width) = (backbone.arch.name(), backbone.width);
    println!(
        "{{\"workload\":\"{workload}\",\"device\":\"{spec}\",\"arch\":\"{arch}\",\"width\":{width},\"batch\":{batch},\"steps\":{steps},\"images_per_second\":{rate:.2}}}"
    );
    Ok(ExitCode::SUCCESS)
}

/// The grid `args` names, with its overrides, `{data}` and device applied.
fn load(registry: &Registry, args: &crate::cli::GridArgs) -> Result<Grid> {
    Ok(load_grid_with_data(
        registry,
        &args.grid,
        &args.set,
        args.device.as_deref(),
        args.data_root.as_deref(),
    )?)
}

/// Writes the report; (cells done, cells failed).
fn report(results: &std::path::Path) -> Result<(usize, usize)> {
    let files = reusebench_report::write_report(results)
        .with_context(|| format!("writing the report of {}", results.display()))?;
    println!(
        "report: {} ({} done, {} failed cell(s)), {}, {}, {} plot file(s) in {}",
        files.markdown.display(),
        files.cells_done,
        files.cells_failed,
        files.csv.display(),
        files.parquet.display(),
        files.plots.len(),
        results.join("plots").display()
    );
    if let Some(why) = files.png_skipped {
        println!("note: {why}; the SVG plots are complete");
    }
    Ok((files.cells_done, files.cells_failed))
}

/// Writes and submits (or, dry, prints) the grid's array jobs.
fn submit(grid: &Grid, options: &SlurmOptions, dry_run: bool) -> Result<ExitCode> {
    let stages = reusebench_runner::slurm::stages(grid, options)?;
    if stages.is_empty() {
        println!("nothing to submit: every cell of `{}` is done", grid.name);
        return Ok(ExitCode::SUCCESS);
    }
    let report = reusebench_runner::slurm::report_script(grid, options)?;
    let folder = grid.results.join("slurm");
    if !dry_run {
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    let mut previous: Option<String> = None;
    let jobs = stages
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.cells.len(),
                s.script.as_str(),
                s.after_search,
            )
        })
        .chain(std::iter::once(("report", 0, report.as_str(), true)));
    for (name, cells, script, after_any) in jobs {
        let dependency = previous.as_ref().map(|job| {
            // The next experiment needs every cell of this one; the next
            // phase of a search (and the report) needs them ended.
            let kind = if after_any { "afterany" } else { "afterok" };
            format!("--dependency={kind}:{job}")
        });
        let path = folder.join(format!("{name}.sbatch"));
        let what = if cells > 0 {
            format!("{name}: {cells} cell(s)")
        } else {
            "report".into()
        };
        if dry_run {
            let dep = dependency
                .as_ref()
                .map(|d| format!(" {d}"))
                .unwrap_or_default();
            println!("# ---- {what}: sbatch --parsable{dep} {}", path.display());
            print!("{script}");
            previous = Some(format!("<{name}>"));
            continue;
        }
        std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        let mut cmd = std::process::Command::new("sbatch");
        cmd.arg("--parsable");
        if let Some(d) = &dependency {
            cmd.arg(d);
        }
        let out = cmd.arg(&path).output().with_context(|| {
            "running sbatch (is Slurm installed here? `--dry-run` prints the scripts)".to_string()
        })?;
        if !out.status.success() {
            anyhow::bail!(
                "sbatch {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let job = stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        println!("submitted {what}: job {job}");
        previous = Some(job);
    }
    Ok(ExitCode::SUCCESS)
}
