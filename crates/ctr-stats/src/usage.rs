//! What one reading of a container's resource use holds, whichever source it came
//! from (the cgroup files or the Docker stats API). Every field a source could not
//! give is `None`, never a made-up 0.

use std::time::Instant;

use homelab_core::cpulist::CpuList;

/// A memory limit: unknown (no memory controller, no reading), unlimited, or bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Limit {
    #[default]
    Unknown,
    Unlimited,
    Bytes(u64),
}

impl Limit {
    /// The limit in bytes, `None` when unlimited or unknown.
    pub fn bytes(self) -> Option<u64> {
        match self {
            Limit::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// A network interface of the container's network namespace and its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// The CPU counter at one moment, with what is needed to turn two of them into a
/// percentage.
#[derive(Debug, Clone, Copy)]
pub struct CpuPoint {
    /// Cumulative CPU time of the container, nanoseconds.
    pub total_ns: u64,
    /// When it was read (our monotonic clock).
    pub at: Instant,
    /// The daemon's `system_cpu_usage` (ns, summed over CPUs) and `online_cpus`, when
    /// the reading came from the stats API: docker's own formula then applies.
    pub system: Option<(u64, u32)>,
}

impl CpuPoint {
    /// CPU use between `prev` and `self` in percent of one core (100 = one full core,
    /// as `docker stats`). `None` when the counter went backwards (the container
    /// restarted and its cgroup started again from 0) or the interval is too short to
    /// mean anything: never a negative or huge figure.
    pub fn percent_since(&self, prev: &CpuPoint) -> Option<f64> {
        let used = self.total_ns.checked_sub(prev.total_ns)? as f64;
        if let (Some((s0, _)), Some((s1, cpus))) = (prev.system, self.system)
            && s1 > s0
            && cpus > 0
        {
            return Some(round2(used / (s1 - s0) as f64 * f64::from(cpus) * 100.0));
        }
        let wall = self.at.checked_duration_since(prev.at)?.as_nanos() as f64;
        if wall < 1e6 {
            return None;
        }
        Some(round2(used / wall * 100.0))
    }
}

/// Rounds to two decimals: a percentage is for people.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// One reading of a running container.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub cpu_total_ns: Option<u64>,
    pub cpu_user_ns: Option<u64>,
    pub cpu_system_ns: Option<u64>,
    /// `system_cpu_usage` and `online_cpus` of an API reading (see [`CpuPoint`]).
    pub cpu_system_clock: Option<(u64, u32)>,
    pub mem_usage: Option<u64>,
    pub mem_working_set: Option<u64>,
    pub mem_rss: Option<u64>,
    pub mem_cache: Option<u64>,
    pub mem_limit: Limit,
    /// `None` when the container has no network namespace of its own to count
    /// (`--network host`) or the source gives no network figures; otherwise every
    /// interface but loopback (an empty list with `--network none`).
    pub interfaces: Option<Vec<Interface>>,
    pub blk_read: Option<u64>,
    pub blk_write: Option<u64>,
    pub pids: Option<u64>,
    /// The CPUs the container may run on, canonical list form (`0-1,3`).
    pub cpuset: Option<String>,
    /// Problems reading this container, for its record's `errors`.
    pub errors: Vec<String>,
}

impl Usage {
    pub fn cpu_point(&self, at: Instant) -> Option<CpuPoint> {
        Some(CpuPoint {
            total_ns: self.cpu_total_ns?,
            at,
            system: self.cpu_system_clock,
        })
    }

    /// Working set as docker stats and cAdvisor define it: usage minus the inactive
    /// file cache (which the kernel reclaims first), never below 0.
    pub fn set_working_set(&mut self, inactive_file: Option<u64>) {
        self.mem_working_set = match (self.mem_usage, inactive_file) {
            (Some(u), Some(i)) => Some(u.saturating_sub(i)),
            _ => None,
        };
    }

    pub fn net_rx(&self) -> Option<u64> {
        self.net_sum(|i| i.rx_bytes)
    }

    pub fn net_tx(&self) -> Option<u64> {
        self.net_sum(|i| i.tx_bytes)
    }

    /// The sum over interfaces; `None` when there is no interface to count.
    fn net_sum(&self, f: impl Fn(&Interface) -> u64) -> Option<u64> {
        let ifs = self.interfaces.as_ref()?;
        if ifs.is_empty() {
            return None;
        }
        Some(ifs.iter().map(f).fold(0, u64::saturating_add))
    }
}

/// Parses a CPU list (`0-3,5`, as in cpuset.cpus) into sorted CPU numbers.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let list = CpuList::parse(s).ok()?;
    list.iter().map(|c| u32::try_from(c).ok()).collect()
}

/// A CPU list in canonical form, or `None` when it is not a CPU list or is empty.
pub fn canonical_cpu_list(s: &str) -> Option<String> {
    CpuList::parse(s)
        .ok()
        .filter(|c| !c.is_empty())
        .map(|c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Found by the fuzz targets (fuzz/fuzz_targets/ctr_stats_docker_json.rs and
    /// ctr_stats_cgroup.rs): counters whose sum passes u64::MAX (from a misbehaving
    /// engine's stats, or net/dev) overflowed (a panic in test builds, a small wrapped
    /// figure in release builds). The sum now stops at the largest counter.
    #[test]
    fn network_sums_saturate() {
        let iface = |name: &str, rx: u64, tx: u64| Interface {
            name: name.into(),
            rx_bytes: rx,
            tx_bytes: tx,
        };
        let u = Usage {
            interfaces: Some(vec![iface("eth0", u64::MAX, 1), iface("eth1", 1, 2)]),
            ..Usage::default()
        };
        assert_eq!(u.net_rx(), Some(u64::MAX));
        assert_eq!(u.net_tx(), Some(3));
    }

    #[test]
    fn cpu_lists_round_trip_canonically() {
        assert_eq!(canonical_cpu_list("0,1").as_deref(), Some("0-1"));
        assert_eq!(canonical_cpu_list("3,0-1,1\n").as_deref(), Some("0-1,3"));
        assert_eq!(canonical_cpu_list("2").as_deref(), Some("2"));
        assert_eq!(canonical_cpu_list(""), None);
        assert_eq!(canonical_cpu_list("a-b"), None);
        assert_eq!(canonical_cpu_list("3-1"), None);
        assert_eq!(canonical_cpu_list("0-99999999"), None);
    }

    #[test]
    fn percent_uses_wall_time_or_the_daemons_clock() {
        let t0 = Instant::now();
        let a = CpuPoint {
            total_ns: 1_000_000_000,
            at: t0,
            system: None,
        };
        let b = CpuPoint {
            total_ns: 1_500_000_000,
            at: t0 + Duration::from_secs(1),
            system: None,
        };
        assert_eq!(b.percent_since(&a), Some(50.0));
        // docker's formula: cpu delta / system delta * online CPUs.
        let a = CpuPoint {
            system: Some((10_000_000_000, 2)),
            ..a
        };
        let b = CpuPoint {
            system: Some((12_000_000_000, 2)),
            ..b
        };
        assert_eq!(b.percent_since(&a), Some(50.0));
    }

    #[test]
    fn a_counter_going_backwards_is_a_reset_not_a_figure() {
        let t0 = Instant::now();
        let before = CpuPoint {
            total_ns: 9_000_000_000,
            at: t0,
            system: None,
        };
        let after_restart = CpuPoint {
            total_ns: 1_000,
            at: t0 + Duration::from_secs(1),
            system: None,
        };
        assert_eq!(after_restart.percent_since(&before), None);
        // Too short an interval says nothing.
        let same = CpuPoint { at: t0, ..before };
        assert_eq!(same.percent_since(&before), None);
    }

    #[test]
    fn working_set_never_goes_below_zero() {
        let mut u = Usage {
            mem_usage: Some(100),
            ..Usage::default()
        };
        u.set_working_set(Some(30));
        assert_eq!(u.mem_working_set, Some(70));
        u.set_working_set(Some(300));
        assert_eq!(u.mem_working_set, Some(0));
        u.set_working_set(None);
        assert_eq!(u.mem_working_set, None);
    }

    #[test]
    fn network_sums_are_null_without_interfaces() {
        let mut u = Usage::default();
        assert_eq!(u.net_rx(), None);
        u.interfaces = Some(vec![]);
        assert_eq!(u.net_rx(), None);
        u.interfaces = Some(vec![
            Interface {
                name: "eth0".into(),
                rx_bytes: 5,
                tx_bytes: 7,
            },
            Interface {
                name: "eth1".into(),
                rx_bytes: 1,
                tx_bytes: 1,
            },
        ]);
        assert_eq!((u.net_rx(), u.net_tx()), (Some(6), Some(8)));
    }
}
