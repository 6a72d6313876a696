//! The machine a simulation ran on, for the JSON result.

use serde::Serialize;
use std::fs;

/// What the JSON says about the machine.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// The CPU's model name (`/proc/cpuinfo`), when readable.
    pub cpu_model: Option<String>,
    /// Logical CPUs this process may run on.
    pub logical_cpus: usize,
    /// Operating system, e.g. `linux`.
    pub os: &'static str,
    /// Architecture, e.g. `x86_64`.
    pub arch: &'static str,
    /// The kernel release (`/proc/sys/kernel/osrelease`), when readable.
    pub kernel: Option<String>,
}

impl Machine {
    /// The machine this process runs on.
    pub fn detect() -> Self {
        Machine {
            cpu_model: fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|s| cpu_model(&s)),
            logical_cpus: logical_cpus(),
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        }
    }
}

/// Logical CPUs this process may run on (1 if unknown).
pub fn logical_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The first model name in a `/proc/cpuinfo` text (x86 `model name`, Arm `Model` or
/// `CPU part` lines are not all present everywhere, so only names are taken).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        let key = key.trim();
        (key == "model name" || key == "Model" || key == "cpu model")
            .then(|| value.trim().to_string())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_name_from_cpuinfo() {
        let text = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(text).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert!(Machine::detect().logical_cpus >= 1);
    }
}
