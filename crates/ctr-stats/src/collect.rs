//! One round: find the containers, ask Docker about each, read each running one
//! from its cgroup or the stats API, and work out the CPU percentage from two
//! readings (across `--window` in a single run, across the interval in a loop).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use clap::ValueEnum;
use homelab_core::{Result, Root};

use crate::cgroup::{self, Hierarchy, Location};
use crate::engine::{Engine, Meta, Stats};
use crate::netdev::{self, NetError};
use crate::record::{ContainerRecord, From};
use crate::usage::{CpuPoint, Usage};
use crate::{api, usage};

/// Where the figures of a running container come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Source {
    /// The cgroup files where they can be read, the stats API for the others.
    #[default]
    Auto,
    /// The Docker stats API only.
    Api,
    /// The cgroup files only (a container whose cgroup is not found has null figures
    /// and an error).
    Cgroup,
}

/// Which containers to report.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Stopped containers too (the default).
    pub all: bool,
    /// Docker's list filters: `label`, `name`, `id`, `status`, ...
    pub filters: HashMap<String, Vec<String>>,
}

/// How a running container is read this round.
enum Reader {
    Cgroup(Location),
    Api,
    Nothing(String),
}

struct Target {
    meta: Meta,
    reader: Reader,
}

/// What Docker says about a container, its reading if it has one, and when it was read.
type Read = (Meta, Option<(From, Usage)>, Instant);

/// Collects rounds; keeps the previous CPU readings for the next round.
pub struct Collector {
    pub engine: Engine,
    root: Root,
    hierarchy: Hierarchy,
    source: Source,
    selection: Selection,
    /// The host's online CPUs, for a container whose cpuset is not restricted (API source).
    online_cpus: Option<String>,
    /// The host's memory: docker stats' denominator for an unlimited container.
    mem_total: Option<u64>,
    /// Last round's CPU reading per full id, with the start time it belongs to.
    prev: HashMap<String, (Option<SystemTime>, CpuPoint)>,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector")
            .field("hierarchy", &self.hierarchy)
            .field("source", &self.source)
            .finish()
    }
}

impl Collector {
    pub fn new(engine: Engine, root: Root, source: Source, selection: Selection) -> Collector {
        let hierarchy = Hierarchy::detect(&root);
        let online_cpus = root
            .read_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| usage::canonical_cpu_list(&s));
        let mem_total = root
            .read_string("/proc/meminfo")
            .ok()
            .and_then(|m| parse_mem_total(&m));
        Collector {
            engine,
            root,
            hierarchy,
            source,
            selection,
            online_cpus,
            mem_total,
            prev: HashMap::new(),
        }
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// One round. With a `window`, CPU use is measured across it; otherwise across
    /// the time since the previous round (nothing on the first).
    pub fn round(&mut self, window: Option<Duration>) -> Result<(Vec<ContainerRecord>, SystemTime)> {
        self.engine.begin_round()?;
        let summaries = self.engine.list(self.selection.all, &self.selection.filters)?;
        let metas = self.engine.inspect_all(&summaries)?;
        let targets: Vec<Target> = metas.into_iter().map(|m| self.target(m)).collect();

        let first = match window {
            Some(w) if !w.is_zero() => {
                let points = self.cpu_points(&targets);
                std::thread::sleep(w);
                self.engine.extend_round(w);
                Some(points)
            }
            _ => None,
        };

        let readings = self.read_all(targets);
        let now = SystemTime::now();
        let mut records = Vec::with_capacity(readings.len());
        let mut seen = HashMap::new();
        for (meta, reading, at) in readings {
            let point = reading.as_ref().and_then(|(_, u)| u.cpu_point(at));
            let baseline = match &first {
                Some(points) => points.get(&meta.full_id).copied(),
                None => self
                    .prev
                    .get(&meta.full_id)
                    .filter(|(started, _)| *started == meta.started_at)
                    .map(|(_, p)| *p),
            };
            let cpu_percent = match (point, baseline) {
                (Some(p), Some(b)) => p.percent_since(&b),
                _ => None,
            };
            if let Some(p) = point {
                seen.insert(meta.full_id.clone(), (meta.started_at, p));
            }
            records.push(ContainerRecord::new(
                meta,
                reading,
                cpu_percent,
                now,
                self.mem_total,
            ));
        }
        self.prev = seen;
        records.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
        Ok((records, now))
    }

    fn target(&self, meta: Meta) -> Target {
        if !meta.live() {
            return Target {
                meta,
                reader: Reader::Nothing(String::new()),
            };
        }
        let loc = match self.source {
            Source::Api => None,
            Source::Cgroup => cgroup::locate(&self.root, &self.hierarchy, meta.pid, &meta.full_id),
            // "Where readable": a cgroup whose CPU counter cannot be read goes to the API.
            Source::Auto => cgroup::locate(&self.root, &self.hierarchy, meta.pid, &meta.full_id)
                .filter(|l| cgroup::read_cpu(&self.root, l).is_some()),
        };
        let reader = match (loc, self.source) {
            (Some(l), _) => Reader::Cgroup(l),
            (None, Source::Cgroup) => Reader::Nothing(format!(
                "no readable cgroup found for the container (cgroup {}; pid {}): use --source api, \
                 or give --root the host's / with its /proc and /sys",
                self.hierarchy.name(),
                meta.pid
            )),
            (None, _) => Reader::Api,
        };
        Target { meta, reader }
    }

    /// The first CPU reading of a window, per full id.
    fn cpu_points(&self, targets: &[Target]) -> HashMap<String, CpuPoint> {
        let mut points = HashMap::new();
        let api: Vec<&Target> = targets
            .iter()
            .filter(|t| matches!(t.reader, Reader::Api))
            .collect();
        for t in targets {
            if let Reader::Cgroup(loc) = &t.reader
                && let Some(ns) = cgroup::read_cpu(&self.root, loc)
            {
                let p = CpuPoint {
                    total_ns: ns,
                    at: Instant::now(),
                    system: None,
                };
                points.insert(t.meta.full_id.clone(), p);
            }
        }
        let ids: Vec<&str> = api.iter().map(|t| t.meta.full_id.as_str()).collect();
        let at = Instant::now();
        for (t, s) in api.iter().zip(self.engine.stats_all(&ids)) {
            if let Stats::Reading(r) = s
                && let Some(u) = api::usage(&r, self.api_config(&t.meta))
                && let Some(p) = u.cpu_point(at)
            {
                points.insert(t.meta.full_id.clone(), p);
            }
        }
        points
    }

    /// The network interfaces of a container's own network namespace; `None` on the
    /// host's network, whose traffic is not the container's. `Err` when the main
    /// process has exited since the container was listed: the container stopped.
    fn interfaces(
        &self,
        meta: &Meta,
        loc: &Location,
        errors: &mut Vec<String>,
    ) -> std::result::Result<Option<Vec<usage::Interface>>, cgroup::Gone> {
        if meta.network_mode == "host" || meta.pid == 0 {
            return Ok(None);
        }
        match netdev::read(&self.root, meta.pid) {
            Ok(ifs) => Ok(Some(ifs)),
            Err(NetError::Missing(_)) if cgroup::main_process_exited(&self.root, loc) => Err(cgroup::Gone),
            Err(NetError::Missing(why) | NetError::Failed(why)) => {
                errors.push(why);
                Ok(None)
            }
        }
    }

    fn api_config<'a>(&'a self, meta: &'a Meta) -> api::Config<'a> {
        api::Config {
            memory_limit: meta.memory_limit,
            network_mode: &meta.network_mode,
            cpuset: meta.cpuset.as_deref().or(self.online_cpus.as_deref()),
        }
    }

    /// Reads every target. A container that vanished meanwhile is left out; one that
    /// stopped is reported as Docker now sees it.
    fn read_all(&self, targets: Vec<Target>) -> Vec<Read> {
        let api_ids: Vec<&str> = targets
            .iter()
            .filter(|t| matches!(t.reader, Reader::Api))
            .map(|t| t.meta.full_id.as_str())
            .collect();
        let api_at = Instant::now();
        let mut api_stats = self.engine.stats_all(&api_ids).into_iter();
        let mut out = Vec::with_capacity(targets.len());
        for t in targets {
            let (src, at) = match t.reader {
                Reader::Api => (From::Api, api_at),
                _ => (From::Cgroup, Instant::now()),
            };
            let with_error = |why: String| Usage {
                errors: vec![why],
                ..Usage::default()
            };
            // Ok(reading), or Err(why) when it failed in a way that may mean the
            // container is gone (`None`: nothing worth saying if it is).
            let result: std::result::Result<Option<Usage>, Option<String>> = match &t.reader {
                Reader::Nothing(why) if why.is_empty() => Ok(None),
                // No cgroup: the container may have exited since it was listed.
                Reader::Nothing(why) => Err(Some(why.clone())),
                // A cgroup outlives its processes for a moment, so a main process
                // that has left /proc is the surer sign that the container stopped.
                Reader::Cgroup(loc) => cgroup::read(&self.root, &self.hierarchy, loc)
                    .and_then(|mut u| {
                        u.interfaces = self.interfaces(&t.meta, loc, &mut u.errors)?;
                        Ok(Some(u))
                    })
                    .map_err(|_| None),
                Reader::Api => match api_stats.next() {
                    Some(Stats::Reading(r)) => api::usage(&r, self.api_config(&t.meta)).map(Some).ok_or(None),
                    Some(Stats::Failed(why)) => Err(Some(why)),
                    Some(Stats::Gone) | None => Err(None),
                },
            };
            match result {
                Ok(reading) => out.push((t.meta, reading.map(|u| (src, u)), at)),
                Err(why) => match self.engine.inspect(&t.meta) {
                    None => {} // removed: left out without a word
                    Some(m) => match why {
                        // A real failure for a container that is still up: say so.
                        Some(why) if m.live() => out.push((m, Some((src, with_error(why))), at)),
                        // Stopped meanwhile (Docker may not have noticed yet): as Docker sees it.
                        _ => out.push((m, None, at)),
                    },
                },
            }
        }
        out
    }
}

/// `MemTotal` from /proc/meminfo, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total() {
        assert_eq!(
            parse_mem_total("MemTotal:        8052372 kB\nMemFree: 1 kB\n"),
            Some(8_245_628_928)
        );
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(parse_mem_total("MemTotal: lots kB\n"), None);
    }
}
