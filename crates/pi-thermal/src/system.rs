//! The kernel's general view: board model, memory, load, uptime and pressure stall
//! information, from /proc (procfs's parsers where they fit).

use homelab_core::Root;
use homelab_core::root::ReadError;
use procfs::FromRead;

use crate::sample::{Memory, Pressure};

/// The board model from the device tree (`Raspberry Pi 5 Model B Rev 1.0`), NULs and
/// whitespace stripped. None on machines without a device tree.
pub fn read_model(root: &Root, errors: &mut Vec<String>) -> Option<String> {
    match root.read("/proc/device-tree/model") {
        Ok(bytes) => parse_model(&bytes),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    }
}

pub fn parse_model(bytes: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// Reads a /proc file and runs a procfs parser on it. Only ASCII reaches the parser:
/// the kernel writes nothing else there, and anything else is garbage to report.
fn parse_proc<T: FromRead>(root: &Root, path: &str, errors: &mut Vec<String>) -> Option<T> {
    let bytes = match root.read(path) {
        Ok(b) => b,
        Err(e) => {
            errors.push(e.to_string());
            return None;
        }
    };
    if !bytes.is_ascii() {
        errors.push(format!("{path}: not the kernel's format (non-ASCII bytes)"));
        return None;
    }
    match T::from_read(&bytes[..]) {
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(format!("{path}: not the kernel's format"));
            None
        }
    }
}

pub fn read_memory(root: &Root, errors: &mut Vec<String>) -> Option<Memory> {
    let m: procfs::Meminfo = parse_proc(root, "/proc/meminfo", errors)?;
    Some(Memory {
        total_bytes: m.mem_total,
        available_bytes: m.mem_available,
        swap_total_bytes: m.swap_total,
        swap_free_bytes: m.swap_free,
    })
}

/// Load averages over 1, 5 and 15 minutes.
pub fn read_load(root: &Root, errors: &mut Vec<String>) -> Option<[f64; 3]> {
    let l: procfs::LoadAverage = parse_proc(root, "/proc/loadavg", errors)?;
    // f32 in procfs; round back to the kernel's two decimals.
    let r = |x: f32| (x as f64 * 100.0).round() / 100.0;
    Some([r(l.one), r(l.five), r(l.fifteen)])
}

pub fn read_uptime(root: &Root, errors: &mut Vec<String>) -> Option<f64> {
    let u: procfs::Uptime = parse_proc(root, "/proc/uptime", errors)?;
    Some(u.uptime)
}

/// PSI from /proc/pressure/{cpu,memory,io}. Absent is normal: Raspberry Pi OS kernels
/// have it compiled in but off unless `psi=1` is on the kernel command line.
pub fn read_pressure(root: &Root, errors: &mut Vec<String>) -> Vec<Pressure> {
    let mut out = Vec::new();
    for resource in ["cpu", "memory", "io"] {
        let path = format!("/proc/pressure/{resource}");
        match root.read_string(&path) {
            Ok(text) => match parse_pressure(resource, &text) {
                Some(p) => out.push(p),
                None => errors.push(format!("{path}: not the kernel's format")),
            },
            Err(e) if e.is_not_found() => {}
            // With psi=0 the files exist but reading them fails with EOPNOTSUPP.
            Err(ReadError {
                kind: homelab_core::root::ReadErrorKind::Io(e),
                ..
            }) if e.raw_os_error() == Some(nix::errno::Errno::EOPNOTSUPP as i32) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    out
}

/// Parses one PSI file:
/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and an optional `full` line
/// (the cpu file has none before Linux 5.13).
pub fn parse_pressure(resource: &str, text: &str) -> Option<Pressure> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let slot = match words.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => return None,
        };
        let mut avg = [None; 3];
        let mut total = None;
        for w in words {
            let (k, v) = w.split_once('=')?;
            match k {
                "avg10" => avg[0] = v.parse::<f64>().ok(),
                "avg60" => avg[1] = v.parse::<f64>().ok(),
                "avg300" => avg[2] = v.parse::<f64>().ok(),
                "total" => total = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        *slot = Some(([avg[0]?, avg[1]?, avg[2]?], total? as f64 / 1e6));
    }
    let (s, s_total) = some?;
    Some(Pressure {
        resource: resource.to_string(),
        some_avg10_percent: s[0],
        some_avg60_percent: s[1],
        some_avg300_percent: s[2],
        some_stall_seconds_total: s_total,
        full_avg10_percent: full.map(|f| f.0[0]),
        full_avg60_percent: full.map(|f| f.0[1]),
        full_avg300_percent: full.map(|f| f.0[2]),
        full_stall_seconds_total: full.map(|f| f.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_strips_nul() {
        assert_eq!(
            parse_model(b"Raspberry Pi 5 Model B Rev 1.0\0").as_deref(),
            Some("Raspberry Pi 5 Model B Rev 1.0")
        );
        assert_eq!(parse_model(b"\0\n"), None);
    }

    #[test]
    fn pressure_with_and_without_full() {
        let p = parse_pressure(
            "cpu",
            "some avg10=0.05 avg60=0.04 avg300=0.00 total=95654990\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert_eq!(p.some_avg10_percent, 0.05);
        assert_eq!(p.some_stall_seconds_total, 95.65499);
        assert_eq!(p.full_avg10_percent, Some(0.0));
        let p = parse_pressure("cpu", "some avg10=1.50 avg60=0.04 avg300=0.00 total=10\n").unwrap();
        assert_eq!(p.full_avg10_percent, None);
        assert_eq!(p.some_avg10_percent, 1.5);
    }

    #[test]
    fn pressure_garbage_is_none() {
        for bad in [
            "",
            "some",
            "some avg10=x avg60=0 avg300=0 total=0",
            "bogus avg10=0",
            "some avg10=0.1 total=5",
            "some é",
        ] {
            assert_eq!(parse_pressure("io", bad), None, "{bad:?}");
        }
    }
}
