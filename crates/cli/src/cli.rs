//! Command-line definitions.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "reusebench",
    version,
    about = "Reproduce and compare research on reusing pretrained models",
    after_help = "Devices: cpu (flex), cuda:N (feature `cuda`), wgpu:N (feature `wgpu`), tch-cpu / tch-cuda:N (feature `tch`)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every cell of a grid that is not done yet, then write the report.
    Run {
        #[command(flatten)]
        grid: GridArgs,
        /// Rerun cells that are already done.
        #[arg(long)]
        force: bool,
        /// Keep done cells that are stale (their config with its defaults,
        /// an input or the build changed since they ran) instead of
        /// running them again; the report marks them.
        #[arg(long)]
        keep_stale: bool,
        /// Skip the report after the run.
        #[arg(long)]
        no_report: bool,
        /// Write TensorBoard event files under RESULTS/tb/ (as the grid's
        /// `tracking: { tensorboard: true }`).
        #[arg(long)]
        tensorboard: bool,
        /// Run only the cells at positions I, I+N, I+2N, ... of the grid
        /// (`I/N`): N workers with shards 0..N-1 split a grid.
        #[arg(long, value_name = "I/N", conflicts_with = "cell")]
        shard: Option<reusebench_runner::Selection>,
        /// Run only this cell (its id or folder name; repeatable).
        #[arg(long, value_name = "ID")]
        cell: Vec<String>,
        /// Seconds without a heartbeat after which another host's claim on
        /// a cell counts as abandoned and is taken over.
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        claim_timeout: u64,
    },
    /// Submit a grid's cells not done yet as Slurm array jobs: one per
    /// experiment, chained with afterok, then a report job (afterany).
    Submit {
        /// The grid, its overrides, `{data}` and the device, for the tasks too.
        #[command(flatten)]
        grid: GridArgs,
        /// Submit to Slurm (sbatch), the scheduler this build knows.
        #[arg(long, required = true)]
        slurm: bool,
        #[command(flatten)]
        resources: SlurmResources,
        /// Print the scripts and the sbatch calls; submit nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Counts of done, failed, running and pending cells of a results
    /// folder; the reason of each failed cell, the host and latest rows of
    /// each running one (`--follow` keeps watching).
    Status {
        /// The results folder (the grid's `results`).
        results: PathBuf,
        /// Seconds without a heartbeat after which a running cell's claim
        /// counts as abandoned.
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        claim_timeout: u64,
        /// Print it again every `--interval` seconds, with each running
        /// cell's latest rows, until no cell runs or is pending.
        #[arg(long)]
        follow: bool,
        #[arg(long, value_name = "SECS", default_value_t = 2)]
        interval: u64,
    },
    /// Check a grid (keys, types, files, devices) without running anything.
    Validate {
        #[command(flatten)]
        grid: GridArgs,
    },
    /// Import torchvision-layout ResNet weights (.pth, .pt, .safetensors)
    /// and write them in the harness's checkpoint format (`backbone.checkpoint`).
    Convert {
        /// The torchvision checkpoint.
        weights: PathBuf,
        /// resnet18, resnet50, resnet18-cifar, vit-b-16, vit-tiny or vit.
        #[arg(long)]
        arch: String,
        /// Base width of a ResNet (torchvision's models: 64).
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// A ViT's shape (`arch vit`, or overriding a preset's value).
        #[command(flatten)]
        vit: VitShape,
        /// The dictionary inside a .pth file that holds the state dict (e.g. `state_dict`).
        #[arg(long)]
        weights_key: Option<String>,
        /// Write it even if tensors are missing, unused or mis-shaped.
        #[arg(long)]
        allow_partial: bool,
        /// Where to write the converted checkpoint (.safetensors).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Get an official dataset (checksummed, resumable) or check a copy.
    Data {
        #[command(subcommand)]
        action: DataCommand,
    },
    /// Write a small generated dataset in an official layout (for smoke runs
    /// and for trying a loader without the real files).
    MakeFixture {
        /// cifar10, tiny-imagenet, fmow or image-folder.
        dataset: String,
        /// The folder to write (the dataset's root).
        dir: PathBuf,
    },
    /// One comparison table (methods x benchmarks) over several results folders.
    Compare {
        /// Results folders, one per benchmark.
        #[arg(required = true)]
        results: Vec<PathBuf>,
        /// Where to write the Markdown table.
        #[arg(long, short, default_value = "comparison.md")]
        output: PathBuf,
    },
    /// Time the ResNet-18 (CIFAR) train step on a fixed batch and print
    /// images per second as JSON (what scripts/compare_pytorch.py runs).
    Bench {
        /// Time inference instead (evaluation mode, no autodiff graph): what
        /// evaluation and feature extraction run.
        #[arg(long)]
        inference: bool,
        /// resnet18-cifar (at `--width`) or vit-tiny.
        #[arg(long, default_value = "resnet18-cifar")]
        arch: String,
        #[arg(long, default_value_t = 20)]
        width: usize,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 2)]
        warmup: usize,
        #[arg(long, default_value_t = 10)]
        steps: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Aggregate a results folder into tables and plots.
    Report {
        /// The results folder (the grid's `results`).
        results: PathBuf,
        /// Also write `report.html`: one self-contained page (sortable
        /// tables, plots inlined, the grid, the environment).
        #[arg(long)]
        html: bool,
    },
}

/// `reusebench data …`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Download a dataset from its official source into DIR, check the
    /// archive's size and SHA-256 against the repository's manifest,
    /// unpack it and verify the files. An interrupted download resumes.
    Fetch {
        /// cifar10, cifar100, tiny-imagenet or fmow.
        name: String,
        /// Where to put it (the folder `{data}` names: `datasets` by default).
        #[arg(long, value_name = "DIR", default_value = "datasets")]
        to: PathBuf,
        /// Another manifest (a mirror's URLs), same format as datasets/manifest.json.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Check a copy on disk: file counts, record sizes and checksums (a
    /// sampled decode for trees of images). Exit 0 for the official files,
    /// 1 otherwise.
    Verify {
        /// cifar10, cifar100, tiny-imagenet or fmow.
        name: String,
        /// The dataset's folder, or the folder that holds it.
        dir: PathBuf,
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Exit 0 for a well-formed subset too (such as the CPU grids' cut-down copies).
        #[arg(long)]
        subset_ok: bool,
    },
}

/// Which grid a command reads, and how: what `run`, `validate` and
/// `submit` share.
#[derive(Debug, clap::Args)]
pub struct GridArgs {
    /// The grid file (YAML).
    pub grid: PathBuf,
    /// Override a config value: `[EXPERIMENT:]key.path=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Where `{data}` in the grid points (default: $REUSEBENCH_DATA, else `datasets`).
    #[arg(long, value_name = "DIR")]
    pub data_root: Option<PathBuf>,
    /// Device: cpu, cuda:N, wgpu:N, tch-cpu, tch-cuda:N (default: the grid's, else cpu).
    #[arg(long)]
    pub device: Option<String>,
}

/// What each Slurm task asks for.
#[derive(Debug, clap::Args)]
pub struct SlurmResources {
    #[arg(long)]
    pub partition: Option<String>,
    /// Wall time per task (`HH:MM:SS`, `D-HH:MM`).
    #[arg(long)]
    pub time: Option<String>,
    /// Generic resources per task, e.g. `gpu:1`.
    #[arg(long)]
    pub gres: Option<String>,
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Memory per task, e.g. `16G`.
    #[arg(long)]
    pub mem: Option<String>,
    /// At most this many tasks of an array at once (`%N`).
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
    /// Seconds before preemption or the time limit at which Slurm warns a
    /// task (SIGUSR1): its worker checkpoints the running cell after the
    /// current batch, releases it, and the task requeues itself; the cell
    /// resumes from that checkpoint.
    #[arg(long, value_name = "SECS", default_value_t = reusebench_runner::slurm::DEFAULT_GRACE_SECS)]
    pub grace: u32,
    /// A further `#SBATCH` argument, e.g. `--sbatch=--account=abc` (repeatable).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch: Vec<String>,
}

/// A ViT's shape on the command line; `--image-size` other than the
/// checkpoint's resamples its position embeddings (as torchvision does).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct VitShape {
    #[arg(long)]
    pub patch: Option<usize>,
    #[arg(long)]
    pub dim: Option<usize>,
    #[arg(long)]
    pub depth: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    #[arg(long)]
    pub mlp_ratio: Option<usize>,
    #[arg(long)]
    pub image_size: Option<usize>,
}
