//! CPU lists in the kernel's syntax (`0-2`, `0,3`, `1-3,5`, and the stride form
//! `0-7:2/4`), as `/sys/devices/system/cpu/online`, `cpuset.cpus`, `taskset -c` and
//! `docker update --cpuset-cpus` write them: parsed and shown one way in every tool.

use std::collections::BTreeSet;
use std::fmt;

use nix::sched::CpuSet;

/// The highest CPU number a mask can hold (glibc's `cpu_set_t` has 1024 bits).
pub const MAX_CPUS: usize = CpuSet::count();

/// A set of CPU numbers. Displays in the kernel's canonical form (`0-2,5`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct CpuList(BTreeSet<usize>);

impl CpuList {
    /// Parses the kernel's list syntax. An empty or blank string is the empty set
    /// (cgroup files hold that); callers that need CPUs check [`CpuList::is_empty`].
    pub fn parse(s: &str) -> Result<CpuList, String> {
        let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        let mut set = BTreeSet::new();
        if s.is_empty() {
            return Ok(CpuList(set));
        }
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!("{s:?}: an empty item between commas"));
            }
            let (range, stride) = match item.split_once(':') {
                Some((r, g)) => (r, Some(g)),
                None => (item, None),
            };
            let (first, last) = match range.split_once('-') {
                Some((a, b)) => (cpu_number(s, a)?, cpu_number(s, b)?),
                None if stride.is_some() => {
                    return Err(format!(
                        "{s:?}: the :used/group form needs a range, as in 0-7:2/4"
                    ));
                }
                None => {
                    let n = cpu_number(s, range)?;
                    (n, n)
                }
            };
            if last < first {
                return Err(format!("{s:?}: the range {range} runs backwards"));
            }
            let (used, group) = match stride {
                None => (last - first + 1, last - first + 1),
                Some(g) => {
                    let (u, g) = g
                        .split_once('/')
                        .ok_or_else(|| format!("{s:?}: expected used/group after ':' in {item}"))?;
                    let (u, g) = (count(s, u)?, count(s, g)?);
                    if u == 0 || g == 0 || u > g {
                        return Err(format!(
                            "{s:?}: in {item}, used and group must be 1 or more, used at most group"
                        ));
                    }
                    (u, g)
                }
            };
            let mut start = first;
            while start <= last {
                for cpu in start..start.saturating_add(used).min(last + 1) {
                    set.insert(cpu);
                }
                let Some(next) = start.checked_add(group) else {
                    break;
                };
                start = next;
            }
        }
        Ok(CpuList(set))
    }

    pub fn from_cpus(cpus: impl IntoIterator<Item = usize>) -> CpuList {
        CpuList(cpus.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn contains(&self, cpu: usize) -> bool {
        self.0.contains(&cpu)
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().copied()
    }

    pub fn is_subset(&self, other: &CpuList) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The CPUs of `self` that are not in `other`.
    pub fn difference(&self, other: &CpuList) -> CpuList {
        CpuList(self.0.difference(&other.0).copied().collect())
    }

    pub fn union_with(&mut self, other: &CpuList) {
        self.0.extend(other.0.iter().copied());
    }

    /// The mask for `sched_setaffinity`. Parsing already refused CPUs beyond
    /// [`MAX_CPUS`], so every bit fits.
    pub fn to_cpuset(&self) -> CpuSet {
        let mut set = CpuSet::new();
        for &cpu in &self.0 {
            let _ = set.set(cpu);
        }
        set
    }

    /// The CPUs of a mask `sched_getaffinity` returned.
    pub fn from_cpuset(set: &CpuSet) -> CpuList {
        CpuList(
            (0..MAX_CPUS)
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect(),
        )
    }
}

fn cpu_number(whole: &str, s: &str) -> Result<usize, String> {
    let s = s.trim();
    let n: usize = s.parse().map_err(|_| {
        format!("{whole:?}: {s:?} is not a CPU number (expected a list such as 0-2, 0,3 or 1-3,5)")
    })?;
    if n >= MAX_CPUS {
        return Err(format!(
            "{whole:?}: CPU {n} is beyond the {MAX_CPUS} CPUs a mask can hold"
        ));
    }
    Ok(n)
}

fn count(whole: &str, s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{whole:?}: {s:?} is not a number"))
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut iter = self.0.iter().copied().peekable();
        while let Some(start) = iter.next() {
            let mut end = start;
            while iter.peek() == Some(&(end + 1)) {
                end = iter.next().unwrap_or(end);
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for CpuList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<usize> {
        CpuList::parse(s).unwrap().iter().collect()
    }

    #[test]
    fn parses_the_kernel_syntax() {
        assert_eq!(p("0-2"), [0, 1, 2]);
        assert_eq!(p("0,3"), [0, 3]);
        assert_eq!(p("1-3,5"), [1, 2, 3, 5]);
        assert_eq!(p("3,1,1-2"), [1, 2, 3]);
        assert_eq!(p("0-7:2/4"), [0, 1, 4, 5]);
        assert_eq!(p(" 0-1\n"), [0, 1]);
        assert_eq!(p(""), Vec::<usize>::new());
        assert_eq!(p("\n"), Vec::<usize>::new());
    }

    #[test]
    fn refuses_what_is_not_a_list() {
        for bad in [
            "x", "1-", "-1", "2-1", "0,,1", "0,", "1.5", "0-3:2", "0-3:0/2", "0-3:3/2", "5:1/2", "1024",
            "0-99999",
        ] {
            assert!(CpuList::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let e = CpuList::parse("2-1").unwrap_err();
        assert!(e.contains("backwards"), "{e}");
    }

    /// Found while writing the fuzz targets (fuzz/fuzz_targets/cpu_pin_proc.rs): a
    /// used/group count near the top of usize overflowed (a panic in test builds; in
    /// release builds `1-2:1/<max>` wrapped around to CPU 0, outside its range).
    #[test]
    fn huge_used_and_group_counts_stay_in_the_range() {
        let max = usize::MAX;
        assert_eq!(p(&format!("1-2:{max}/{max}")), [1, 2]);
        assert_eq!(p(&format!("1-2:1/{max}")), [1]);
        assert_eq!(p(&format!("0-3:1/{max}")), [0]);
        assert_eq!(p(&format!("1023-1023:{max}/{max}")), [1023]);
    }

    #[test]
    fn displays_canonically() {
        for (input, shown) in [
            ("0,1,2", "0-2"),
            ("5,1-3", "1-3,5"),
            ("0,2,4", "0,2,4"),
            ("7", "7"),
            ("", ""),
        ] {
            assert_eq!(CpuList::parse(input).unwrap().to_string(), shown);
        }
    }

    #[test]
    fn cpuset_round_trip() {
        let l = CpuList::parse("0,2-3,1023").unwrap();
        assert_eq!(CpuList::from_cpuset(&l.to_cpuset()), l);
    }
}
