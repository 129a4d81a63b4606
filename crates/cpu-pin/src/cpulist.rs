//! The set of online CPUs and the checks of a wanted CPU list; the lists themselves
//! are homelab-core's ([`CpuList`]).

use homelab_core::Root;
pub use homelab_core::cpulist::{CpuList, MAX_CPUS};

/// The online CPUs, from `/sys/devices/system/cpu/online` under the root.
pub fn online(root: &Root) -> Result<CpuList, String> {
    let path = "/sys/devices/system/cpu/online";
    let text = root.read_string(path).map_err(|e| e.to_string())?;
    let list = CpuList::parse(&text).map_err(|e| format!("{path}: {e}"))?;
    if list.is_empty() {
        return Err(format!("{path}: no CPU is listed"));
    }
    Ok(list)
}

/// Checks a wanted list: not empty, and every CPU online. The message says what to
/// give instead.
pub fn check_wanted(wanted: &CpuList, online: &CpuList) -> Result<(), String> {
    if wanted.is_empty() {
        return Err(format!(
            "the CPU list is empty: a target needs at least one CPU (online: {online})"
        ));
    }
    let offline = wanted.difference(online);
    if !offline.is_empty() {
        return Err(format!(
            "CPU {offline} of {wanted} is not online (online: {online})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wanted_must_be_online_and_not_empty() {
        let online = CpuList::parse("0-3").unwrap();
        assert!(check_wanted(&CpuList::parse("0-2").unwrap(), &online).is_ok());
        let e = check_wanted(&CpuList::parse("3-5").unwrap(), &online).unwrap_err();
        assert_eq!(e, "CPU 4-5 of 3-5 is not online (online: 0-3)");
        assert!(
            check_wanted(&CpuList::default(), &online)
                .unwrap_err()
                .contains("empty")
        );
    }
}
