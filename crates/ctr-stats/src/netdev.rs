//! Network counters from `/proc/<pid>/net/dev`: the container's own network
//! namespace, seen through its main process. Network traffic is not in any cgroup.

use homelab_core::Root;

use crate::usage::Interface;

/// Interfaces cAdvisor leaves out (lib/container/libcontainer/handler.go): loopback
/// and the host-side ends of container links.
fn skipped(name: &str) -> bool {
    name == "lo" || ["veth", "docker", "nerdctl"].iter().any(|p| name.starts_with(p))
}

/// Parses the kernel's `net/dev` table. `None` when it is not that table.
pub fn parse(text: &str) -> Option<Vec<Interface>> {
    let mut lines = text.lines();
    let h1 = lines.next()?;
    let h2 = lines.next()?;
    if !h1.starts_with("Inter-|") || !h2.contains("bytes") {
        return None;
    }
    let mut out = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (name, rest) = line.split_once(':')?;
        let name = name.trim();
        let fields: Vec<u64> = rest
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        if fields.len() < 16 || name.is_empty() {
            return None;
        }
        if skipped(name) {
            continue;
        }
        out.push(Interface {
            name: name.to_string(),
            rx_bytes: fields[0],
            tx_bytes: fields[8],
        });
    }
    Some(out)
}

/// Why the interfaces could not be read, said for the record's `errors`.
#[derive(Debug, PartialEq, Eq)]
pub enum NetError {
    /// No such file: the process has exited (a zombie's namespaces are gone too), or
    /// /proc is another PID namespace's.
    Missing(String),
    /// Anything else.
    Failed(String),
}

/// Reads the interfaces of `pid`'s network namespace.
pub fn read(root: &Root, pid: u32) -> Result<Vec<Interface>, NetError> {
    let path = format!("/proc/{pid}/net/dev");
    let text = root.read_string(&path).map_err(|e| {
        if e.is_not_found() {
            NetError::Missing(e.to_string())
        } else {
            NetError::Failed(e.to_string())
        }
    })?;
    parse(&text).ok_or_else(|| NetError::Failed(format!("{path}: not the kernel's format")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     840      10    0    0    0     0          0         0      840      10    0    0    0     0       0          0
  eth0: 1234567    1000    0    0    0     0          0         0   765432     900    0    0    0     0       0          0
veth12ab:     5       1    0    0    0     0          0         0        5       1    0    0    0     0       0          0
";

    #[test]
    fn parses_and_skips_loopback_and_veth() {
        let ifs = parse(NET_DEV).unwrap();
        assert_eq!(
            ifs,
            [Interface {
                name: "eth0".into(),
                rx_bytes: 1_234_567,
                tx_bytes: 765_432
            }]
        );
    }

    #[test]
    fn only_loopback_is_an_empty_list() {
        let only_lo: String = NET_DEV.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse(&only_lo).unwrap(), []);
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("hello\nworld\n"), None);
        let truncated = NET_DEV.replace("765432     900    0    0    0     0       0          0", "");
        assert_eq!(parse(&truncated), None);
        let words = NET_DEV.replace("1234567", "lots");
        assert_eq!(parse(&words), None);
    }
}
