//! Device names as grids and `--device` write them, mapped to burn devices.
//! A device whose backend feature is not compiled in is an error here,
//! before any work starts.

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// `cpu` (flex), `cuda:N`, `wgpu:N` (the N-th discrete GPU through
/// WebGPU: Vulkan, Metal or DX12), `tch-cpu`, `tch-cuda:N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
    Wgpu(usize),
    TchCpu,
    TchCuda(usize),
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Wgpu(i) => write!(f, "wgpu:{i}"),
            DeviceSpec::TchCpu => write!(f, "tch-cpu"),
            DeviceSpec::TchCuda(i) => write!(f, "tch-cuda:{i}"),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        let index = |rest: &str| {
            rest.parse::<usize>().map_err(|_| {
                CoreError::Device(s.into(), "the index after `:` must be a number".into())
            })
        };
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            "wgpu" => Ok(DeviceSpec::Wgpu(0)),
            "tch-cpu" => Ok(DeviceSpec::TchCpu),
            "tch-cuda" => Ok(DeviceSpec::TchCuda(0)),
            _ => {
                if let Some(rest) = s.strip_prefix("cuda:") {
                    Ok(DeviceSpec::Cuda(index(rest)?))
                } else if let Some(rest) = s.strip_prefix("wgpu:") {
                    Ok(DeviceSpec::Wgpu(index(rest)?))
                } else if let Some(rest) = s.strip_prefix("tch-cuda:") {
                    Ok(DeviceSpec::TchCuda(index(rest)?))
                } else {
                    Err(CoreError::Device(
                        s.into(),
                        "unknown device; use cpu, cuda:N, wgpu:N, tch-cpu or tch-cuda:N".into(),
                    ))
                }
            }
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, CoreError> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

fn not_compiled(spec: DeviceSpec, feature: &str) -> CoreError {
    CoreError::Device(
        spec.to_string(),
        format!(
            "this build has no `{feature}` backend; rebuild with `--features {feature}` \
             (see README, Backends)"
        ),
    )
}

/// How many NVIDIA GPUs the driver reports, asked of its management library
/// (NVML, loaded at run time: absent without the driver).
pub fn nvidia_gpus() -> Result<usize, String> {
    let nvml = nvml_wrapper::Nvml::init().map_err(|e| format!("no NVIDIA driver here ({e})"))?;
    let n = nvml
        .device_count()
        .map_err(|e| format!("the NVIDIA driver cannot count its GPUs ({e})"))?;
    Ok(n as usize)
}

impl DeviceSpec {
    /// Checks that the backend is compiled in and, for a GPU, that the
    /// machine has that GPU: a clear error before any work, where the
    /// backend would otherwise fail inside its first cell.
    pub fn check_available(self) -> Result<(), CoreError> {
        match self {
            DeviceSpec::Cpu if !cfg!(feature = "flex") => Err(not_compiled(self, "flex")),
            DeviceSpec::Cuda(_) if !cfg!(feature = "cuda") => Err(not_compiled(self, "cuda")),
            DeviceSpec::Wgpu(_) if !cfg!(feature = "wgpu") => Err(not_compiled(self, "wgpu")),
            DeviceSpec::TchCpu | DeviceSpec::TchCuda(_) if !cfg!(feature = "tch") => {
                Err(not_compiled(self, "tch"))
            }
            DeviceSpec::Cuda(i) | DeviceSpec::TchCuda(i) => self.check_gpu(i, nvidia_gpus()),
            DeviceSpec::Wgpu(_) => self.probe().map_err(|why| {
                CoreError::Device(
                    self.to_string(),
                    format!(
                        "no WebGPU adapter for it ({why}); `{self}` needs a discrete GPU with \
                         Vulkan, Metal or DX12 drivers; use `cpu` on this machine"
                    ),
                )
            }),
            _ => Ok(()),
        }
    }

    /// Makes one small tensor on the device: wgpu has no driver library to
    /// ask first, and its runtime fails on another thread (the caller
    /// then panics on a closed channel), so the failure is caught here and
    /// turned into an error, with the panic's own message silenced.
    fn probe(self) -> Result<(), String> {
        let device = self.device_unchecked();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let made = std::panic::catch_unwind(|| {
            burn::tensor::Tensor::<1>::zeros([1], &device).into_data();
        });
        std::panic::set_hook(hook);
        made.map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "its runtime failed to start".into())
        })
    }

    /// `self` (GPU `index`) against what the driver reported.
    fn check_gpu(self, index: usize, found: Result<usize, String>) -> Result<(), CoreError> {
        match found {
            Err(why) => Err(CoreError::Device(
                self.to_string(),
                format!(
                    "{why}: `{self}` needs an NVIDIA GPU and its driver; use `cpu` on this machine"
                ),
            )),
            Ok(0) => Err(CoreError::Device(
                self.to_string(),
                format!("the NVIDIA driver reports no GPU: `{self}` cannot run here; use `cpu`"),
            )),
            Ok(n) if index >= n => Err(CoreError::Device(
                self.to_string(),
                format!(
                    "this machine has {n} NVIDIA GPU(s), numbered 0 to {}",
                    n - 1
                ),
            )),
            Ok(_) => Ok(()),
        }
    }

    /// The device tests run on: `REUSEBENCH_TEST_DEVICE` (`cpu`, `cuda:0`,
    /// `tch-cpu`, ...), `cpu` when unset, so that the model and protocol
    /// tests run unchanged on any backend this build has. Panics on a
    /// device the build lacks: a test run on the wrong build should stop.
    pub fn for_tests() -> Device {
        let name = std::env::var("REUSEBENCH_TEST_DEVICE").unwrap_or_else(|_| "cpu".into());
        let spec: DeviceSpec = name
            .parse()
            .unwrap_or_else(|e| panic!("REUSEBENCH_TEST_DEVICE: {e}"));
        spec.device()
            .unwrap_or_else(|e| panic!("REUSEBENCH_TEST_DEVICE: {e}"))
    }

    /// The plain (inference) burn device.
    pub fn device(self) -> Result<Device, CoreError> {
        self.check_available()?;
        Ok(self.device_unchecked())
    }

    #[allow(unreachable_code, unused_variables)]
    fn device_unchecked(self) -> Device {
        match self {
            DeviceSpec::Cpu => {
                #[cfg(feature = "flex")]
                return Device::flex();
            }
            DeviceSpec::Cuda(i) => {
                #[cfg(feature = "cuda")]
                return Device::cuda(i);
            }
            DeviceSpec::Wgpu(i) => {
                #[cfg(feature = "wgpu")]
                return Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(i));
            }
            DeviceSpec::TchCpu => {
                #[cfg(feature = "tch")]
                return Device::libtorch();
            }
            DeviceSpec::TchCuda(i) => {
                #[cfg(feature = "tch")]
                return Device::libtorch_cuda(i);
            }
        }
        unreachable!("check_available rejects backends that are not compiled in")
    }

    /// Backends compiled into this build, for `--help` and error messages.
    pub fn compiled() -> Vec<&'static str> {
        let mut v = Vec::new();
        if cfg!(feature = "flex") {
            v.push("cpu");
        }
        if cfg!(feature = "cuda") {
            v.push("cuda:N");
        }
        if cfg!(feature = "wgpu") {
            v.push("wgpu:N");
        }
        if cfg!(feature = "tch") {
            v.push("tch-cpu");
            v.push("tch-cuda:N");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in ["cpu", "cuda:1", "wgpu:2", "tch-cpu", "tch-cuda:0"] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap().to_string(), s);
        }
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("wgpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Wgpu(0));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn a_missing_gpu_is_a_clear_error_naming_the_device() {
        let cuda = DeviceSpec::Cuda(1);
        let err = |found| cuda.check_gpu(1, found).unwrap_err().to_string();
        let none = err(Err(
            "no NVIDIA driver here (libnvidia-ml.so: not found)".into()
        ));
        assert!(
            none.contains("cuda:1") && none.contains("needs an NVIDIA GPU and its driver"),
            "{none}"
        );
        assert!(err(Ok(0)).contains("reports no GPU"));
        assert!(err(Ok(1)).contains("has 1 NVIDIA GPU(s), numbered 0 to 0"));
        assert!(cuda.check_gpu(1, Ok(2)).is_ok());
        // On a machine without the driver, what the probe finds says so.
        if let Err(why) = nvidia_gpus() {
            assert!(why.starts_with("no NVIDIA driver here"), "{why}");
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn missing_backend_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).device().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn missing_wgpu_backend_is_a_clear_error() {
        let err = DeviceSpec::Wgpu(0).device().unwrap_err().to_string();
        assert!(
            err.contains("wgpu:0") && err.contains("--features wgpu"),
            "{err}"
        );
    }

    /// A `wgpu` build where there is no adapter (machines without a GPU or
    /// Vulkan drivers, such as CI's): an error naming the device, no panic.
    #[cfg(feature = "wgpu")]
    #[test]
    fn a_missing_wgpu_adapter_is_a_clear_error() {
        match DeviceSpec::Wgpu(7).device() {
            Ok(_) => eprintln!("skipped: this machine has a WebGPU adapter for wgpu:7"),
            Err(e) => {
                let err = e.to_string();
                assert!(
                    err.contains("wgpu:7") && err.contains("no WebGPU adapter"),
                    "{err}"
                );
            }
        }
    }
}
