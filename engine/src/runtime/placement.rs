//! Which CPUs the executors are pinned to.

use crate::config::Cores;

/// CPUs for the data-plane executors and the control executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub data_cpus: Vec<usize>,
    pub control_cpu: usize,
    /// True when the control executor shares its CPU with the last data core.
    pub control_shared: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("no CPU is allowed for this process (sched_getaffinity returned an empty set)")]
    NoCpus,
    #[error("cores: {wanted} data cores configured but only {allowed} CPUs are allowed for this process ({cpus:?}); lower `cores` or widen the CPU affinity (taskset, systemd CPUAffinity=, container cpuset)")]
    TooManyCores {
        wanted: usize,
        allowed: usize,
        cpus: Vec<usize>,
    },
}

impl Placement {
    /// Plans executors on `allowed` CPUs (the process's affinity set, ascending).
    ///
    /// `auto` keeps one CPU for the control plane when there are at least three; with two or fewer
    /// every CPU carries data and the control executor shares the last one (it idles unless the
    /// API is used).
    pub fn plan(cores: Cores, allowed: &[usize]) -> Result<Placement, PlacementError> {
        if allowed.is_empty() {
            return Err(PlacementError::NoCpus);
        }
        let data = match cores {
            Cores::Auto if allowed.len() >= 3 => allowed.len() - 1,
            Cores::Auto => allowed.len(),
            Cores::Count(n) => usize::from(n),
        };
        if data > allowed.len() {
            return Err(PlacementError::TooManyCores {
                wanted: data,
                allowed: allowed.len(),
                cpus: allowed.to_vec(),
            });
        }
        let data_cpus = allowed[..data].to_vec();
        let (control_cpu, control_shared) = match allowed.get(data) {
            Some(&cpu) => (cpu, false),
            None => (allowed[data - 1], true),
        };
        Ok(Placement {
            data_cpus,
            control_cpu,
            control_shared,
        })
    }
}

/// The CPUs this process may run on, from `sched_getaffinity`, so `taskset`, systemd
/// `CPUAffinity=` and container cpusets are respected.
pub fn allowed_cpus() -> Vec<usize> {
    let mut cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    cpus.sort_unstable();
    cpus
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_keeps_a_control_core_when_there_are_three_or_more() {
        let p = Placement::plan(Cores::Auto, &[0, 1, 2, 3]).unwrap();
        assert_eq!(p.data_cpus, vec![0, 1, 2]);
        assert_eq!((p.control_cpu, p.control_shared), (3, false));
        let p = Placement::plan(Cores::Auto, &[4, 5]).unwrap();
        assert_eq!(p.data_cpus, vec![4, 5]);
        assert_eq!((p.control_cpu, p.control_shared), (5, true));
    }

    #[test]
    fn explicit_count_outside_the_allowed_set_is_an_error() {
        let err = Placement::plan(Cores::Count(4), &[0, 1]).unwrap_err();
        assert!(err
            .to_string()
            .contains("4 data cores configured but only 2 CPUs"));
        let p = Placement::plan(Cores::Count(1), &[0, 1]).unwrap();
        assert_eq!(
            (p.data_cpus, p.control_cpu, p.control_shared),
            (vec![0], 1, false)
        );
    }
}
