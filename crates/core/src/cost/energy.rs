//! Energy of a stretch of work on the CPU: Linux RAPL counters where they
//! can be read, otherwise a model of the CPU's power.
//!
//! RAPL (`/sys/class/powercap/intel-rapl:N/energy_uj`, one directory per
//! package; AMD's packages appear under the same name on recent kernels)
//! counts microjoules for the whole package, whatever runs on it, and wraps
//! at `max_energy_range_uj`. Sub-domains (`intel-rapl:N:M`: cores, DRAM) are
//! inside their package's count and are not added again.
//!
//! On NVIDIA GPUs, NVML's cumulative energy counter of every device (Volta
//! and later; millijoules) is added where the library loads and the
//! counters read, and recorded apart (`gpu_joules`); elsewhere nothing is
//! added and nothing fails.
//!
//! The model, used where RAPL is missing or unreadable (virtual machines,
//! containers, counters readable only by root): power = TDP × utilisation,
//! with utilisation = this process's CPU time / (wall time × logical
//! cores), so energy = TDP × CPU seconds / logical cores. That is
//! CodeCarbon's CPU fallback in spirit (a TDP and the process's load);
//! idle power and the memory's are left out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Where a measurement came from: recorded with every energy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnergySource {
    Rapl,
    CpuModel,
}

impl EnergySource {
    pub fn name(self) -> &'static str {
        match self {
            EnergySource::Rapl => "rapl",
            EnergySource::CpuModel => "cpu-model",
        }
    }
}

/// Which source a grid asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnergyChoice {
    /// RAPL where readable, else the model.
    #[default]
    Auto,
    /// The model, even where RAPL is readable (comparable across machines).
    CpuModel,
}

/// One RAPL package counter.
#[derive(Debug, Clone, PartialEq)]
pub struct RaplDomain {
    pub energy_file: PathBuf,
    /// The counter wraps to 0 after this many microjoules.
    pub max_uj: u64,
}

/// The package domains under `root` (normally `/sys/class/powercap`)
/// whose counters can be read now; `None` when there are none.
pub fn rapl_domains(root: &Path) -> Option<Vec<RaplDomain>> {
    let mut domains = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for dir in entries {
        let name = dir.file_name()?.to_string_lossy().to_string();
        // Packages only: `intel-rapl:0`, not `intel-rapl:0:0`.
        let Some(rest) = name.strip_prefix("intel-rapl:") else {
            continue;
        };
        if rest.contains(':') {
            continue;
        }
        let energy_file = dir.join("energy_uj");
        if read_u64(&energy_file).is_none() {
            continue;
        }
        let max_uj = read_u64(&dir.join("max_energy_range_uj")).unwrap_or(u64::MAX);
        domains.push(RaplDomain {
            energy_file,
            max_uj,
        });
    }
    (!domains.is_empty()).then_some(domains)
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Microjoules from `before` to `after` on a counter that wraps at `max`.
pub fn counter_delta(before: u64, after: u64, max: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        (max - before) + after
    }
}

/// This process's CPU time (user + system) in seconds, from
/// `/proc/self/stat` (clock ticks of 1/100 s, Linux's fixed USER_HZ).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// NVML and every device's energy counter at the start (millijoules).
struct GpuCounters {
    nvml: nvml_wrapper::Nvml,
    start_mj: Vec<u64>,
}

impl std::fmt::Debug for GpuCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuCounters({} device(s))", self.start_mj.len())
    }
}

/// Each GPU's cumulative energy (mJ), or `None` when NVML or any counter
/// cannot be read.
fn gpu_energy(nvml: &nvml_wrapper::Nvml) -> Option<Vec<u64>> {
    let n = nvml.device_count().ok()?;
    (0..n)
        .map(|i| {
            nvml.device_by_index(i)
                .ok()?
                .total_energy_consumption()
                .ok()
        })
        .collect::<Option<Vec<u64>>>()
        .filter(|v| !v.is_empty())
}

fn gpu_counters() -> Option<GpuCounters> {
    let nvml = nvml_wrapper::Nvml::init().ok()?;
    let start_mj = gpu_energy(&nvml)?;
    Some(GpuCounters { nvml, start_mj })
}

/// Measures the energy of what runs between [`EnergyMeter::start`] and
/// [`EnergyMeter::stop`].
#[derive(Debug)]
pub struct EnergyMeter {
    rapl: Option<Vec<(RaplDomain, u64)>>,
    gpu: Option<GpuCounters>,
    cpu_start: f64,
    started: Instant,
    tdp_watts: f64,
    cores: usize,
}

/// What [`EnergyMeter::stop`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyReading {
    /// CPU (RAPL or the model) plus GPU where NVML reads.
    pub joules: f64,
    /// The GPUs' part, where NVML reads.
    pub gpu_joules: Option<f64>,
    pub source: EnergySource,
    pub seconds: f64,
    pub cpu_seconds: f64,
}

impl EnergyMeter {
    /// Starts measuring: from RAPL under `rapl_root` when `choice` allows
    /// and a counter is readable, otherwise with the model at `tdp_watts`.
    pub fn start(choice: EnergyChoice, rapl_root: &Path, tdp_watts: f64) -> Self {
        let rapl = match choice {
            EnergyChoice::Auto => rapl_domains(rapl_root).map(|domains| {
                domains
                    .into_iter()
                    .filter_map(|d| read_u64(&d.energy_file).map(|v| (d, v)))
                    .collect::<Vec<_>>()
            }),
            EnergyChoice::CpuModel => None,
        }
        .filter(|d| !d.is_empty());
        let gpu = match choice {
            EnergyChoice::Auto => gpu_counters(),
            EnergyChoice::CpuModel => None,
        };
        Self {
            rapl,
            gpu,
            cpu_start: process_cpu_seconds().unwrap_or(0.0),
            started: Instant::now(),
            tdp_watts,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    pub fn source(&self) -> EnergySource {
        if self.rapl.is_some() {
            EnergySource::Rapl
        } else {
            EnergySource::CpuModel
        }
    }

    pub fn stop(&self) -> EnergyReading {
        let seconds = self.started.elapsed().as_secs_f64();
        let cpu_seconds = (process_cpu_seconds().unwrap_or(0.0) - self.cpu_start).max(0.0);
        let rapl = self.rapl.as_ref().and_then(|domains| {
            domains
                .iter()
                .map(|(d, before)| {
                    read_u64(&d.energy_file).map(|after| counter_delta(*before, after, d.max_uj))
                })
                .sum::<Option<u64>>()
        });
        let gpu_joules = self.gpu.as_ref().and_then(|g| {
            let now = gpu_energy(&g.nvml)?;
            Some(
                now.iter()
                    .zip(&g.start_mj)
                    .map(|(a, b)| a.saturating_sub(*b))
                    .sum::<u64>() as f64
                    / 1e3,
            )
        });
        let (cpu_joules, source) = match rapl {
            Some(uj) => (uj as f64 / 1e6, EnergySource::Rapl),
            None => (
                self.tdp_watts * cpu_seconds / self.cores as f64,
                EnergySource::CpuModel,
            ),
        };
        EnergyReading {
            joules: cpu_joules + gpu_joules.unwrap_or(0.0),
            gpu_joules,
            source,
            seconds,
            cpu_seconds,
        }
    }
}

/// Grams of CO₂ for `joules` at `grams_per_kwh`.
pub fn carbon_grams(joules: f64, grams_per_kwh: f64) -> f64 {
    joules / 3.6e6 * grams_per_kwh
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(root: &Path, name: &str, energy: &str, max: Option<&str>) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("energy_uj"), energy).unwrap();
        if let Some(m) = max {
            std::fs::write(dir.join("max_energy_range_uj"), m).unwrap();
        }
    }

    #[test]
    fn reads_package_counters_from_a_powercap_fixture() {
        let tmp = tempfile::tempdir().unwrap();
        domain(tmp.path(), "intel-rapl:0", "1000\n", Some("262143328850\n"));
        domain(tmp.path(), "intel-rapl:0:0", "400\n", None); // a sub-domain
        domain(tmp.path(), "intel-rapl:1", "5\n", None);
        domain(tmp.path(), "intel-rapl-mmio:0", "9\n", None);
        let d = rapl_domains(tmp.path()).unwrap();
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[0].max_uj, 262_143_328_850);
        assert_eq!(d[1].max_uj, u64::MAX);

        let meter = EnergyMeter::start(EnergyChoice::Auto, tmp.path(), 85.0);
        assert_eq!(meter.source(), EnergySource::Rapl);
        std::fs::write(tmp.path().join("intel-rapl:0/energy_uj"), "3001000").unwrap();
        std::fs::write(tmp.path().join("intel-rapl:1/energy_uj"), "1000005").unwrap();
        let r = meter.stop();
        assert_eq!(r.source, EnergySource::Rapl);
        assert!((r.joules - 4.0).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn a_wrapped_counter_counts_across_the_wrap() {
        assert_eq!(counter_delta(90, 10, 100), 20);
        assert_eq!(counter_delta(10, 90, 100), 80);
    }

    #[test]
    fn falls_back_to_the_model_when_rapl_is_missing_or_unreadable() {
        let tmp = tempfile::tempdir().unwrap();
        // Missing root.
        let m = EnergyMeter::start(EnergyChoice::Auto, &tmp.path().join("none"), 85.0);
        assert_eq!(m.source(), EnergySource::CpuModel);
        // A domain whose counter is not a number (unreadable in effect).
        domain(tmp.path(), "intel-rapl:0", "permission denied", None);
        assert!(rapl_domains(tmp.path()).is_none());
        let m = EnergyMeter::start(EnergyChoice::Auto, tmp.path(), 85.0);
        assert_eq!(m.source(), EnergySource::CpuModel);
        // Work, then the model: TDP x CPU seconds / cores.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let r = m.stop();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        assert!(
            (r.joules - 85.0 * r.cpu_seconds / cores).abs() < 1e-9,
            "{r:?}"
        );
        // Asked for the model, the model even where RAPL reads.
        domain(tmp.path(), "intel-rapl:1", "7", None);
        let m = EnergyMeter::start(EnergyChoice::CpuModel, tmp.path(), 85.0);
        assert_eq!(m.source(), EnergySource::CpuModel);
    }

    #[test]
    fn carbon_is_energy_times_intensity() {
        assert!((carbon_grams(3.6e6, 475.0) - 475.0).abs() < 1e-9);
        assert!(process_cpu_seconds().is_some());
    }
}
