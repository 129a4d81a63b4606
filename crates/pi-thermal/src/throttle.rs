//! The firmware's throttle word, decoded bit by bit (vcgencmd.1):
//! bit 0 under-voltage, 1 ARM frequency capped, 2 throttled, 3 soft temperature limit,
//! each "now"; bits 16–19 the same "has occurred".
//!
//! Sources: `vcgencmd get_throttled` (`throttled=0x50005`), or else the firmware's
//! deprecated `get_throttled` sysfs file (hex without `0x`), which the kernel answers
//! with a WARN once per boot, so it is only read when vcgencmd is not there.

use homelab_core::Root;
use serde::Serialize;

/// The four conditions, in bit order, with their metric label.
pub const CONDITIONS: [&str; 4] = [
    "under_voltage",
    "arm_frequency_capped",
    "throttled",
    "soft_temp_limit",
];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Throttle {
    /// `vcgencmd` or `sysfs`.
    pub source: &'static str,
    /// The raw word.
    pub bits: u32,
    pub under_voltage: bool,
    pub arm_frequency_capped: bool,
    pub throttled: bool,
    pub soft_temp_limit: bool,
    pub under_voltage_occurred: bool,
    pub arm_frequency_capped_occurred: bool,
    pub throttled_occurred: bool,
    pub soft_temp_limit_occurred: bool,
}

impl Throttle {
    pub fn decode(bits: u32, source: &'static str) -> Self {
        let bit = |n: u32| bits & (1 << n) != 0;
        Throttle {
            source,
            bits,
            under_voltage: bit(0),
            arm_frequency_capped: bit(1),
            throttled: bit(2),
            soft_temp_limit: bit(3),
            under_voltage_occurred: bit(16),
            arm_frequency_capped_occurred: bit(17),
            throttled_occurred: bit(18),
            soft_temp_limit_occurred: bit(19),
        }
    }

    /// `(condition, now, occurred)` for each of the four conditions.
    pub fn conditions(&self) -> [(&'static str, bool, bool); 4] {
        [
            (CONDITIONS[0], self.under_voltage, self.under_voltage_occurred),
            (
                CONDITIONS[1],
                self.arm_frequency_capped,
                self.arm_frequency_capped_occurred,
            ),
            (CONDITIONS[2], self.throttled, self.throttled_occurred),
            (CONDITIONS[3], self.soft_temp_limit, self.soft_temp_limit_occurred),
        ]
    }

    /// Whether any condition holds now.
    pub fn any_now(&self) -> bool {
        self.bits & 0xf != 0
    }
}

/// Parses a hex word with or without `0x` (`50005`, `0x50005`).
pub fn parse_hex(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if digits.is_empty() {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Finds the firmware's `get_throttled` file: Pi 4 and earlier under
/// `soc/soc:firmware`, Pi 5 under `soc@107c000000/...:firmware`, or wherever the
/// raspberrypi-firmware driver is bound.
pub fn find_sysfs_file(root: &Root) -> Option<String> {
    let mut candidates = vec!["/sys/devices/platform/soc/soc:firmware/get_throttled".to_string()];
    for soc in root
        .list("/sys/devices/platform")
        .into_iter()
        .filter(|n| n.starts_with("soc@"))
    {
        candidates.push(format!(
            "/sys/devices/platform/{soc}/{soc}:firmware/get_throttled"
        ));
    }
    let drv = "/sys/bus/platform/drivers/raspberrypi-firmware";
    for dev in root.list(drv) {
        candidates.push(format!("{drv}/{dev}/get_throttled"));
    }
    candidates.into_iter().find(|c| root.exists(c))
}

/// Reads the sysfs file, if there is one.
pub fn read_sysfs(root: &Root, errors: &mut Vec<String>) -> Option<Throttle> {
    let path = find_sysfs_file(root)?;
    match root.read_trimmed(&path) {
        Ok(s) => match parse_hex(&s) {
            Some(bits) => Some(Throttle::decode(bits, "sysfs")),
            None => {
                errors.push(format!("{path}: unexpected content {s:?}"));
                None
            }
        },
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_bit() {
        let t = Throttle::decode(0x50005, "vcgencmd");
        assert!(t.under_voltage && t.throttled && !t.arm_frequency_capped && !t.soft_temp_limit);
        assert!(t.under_voltage_occurred && t.throttled_occurred);
        assert!(!t.arm_frequency_capped_occurred && !t.soft_temp_limit_occurred);
        assert!(t.any_now());
        let t = Throttle::decode(0xa0002, "sysfs");
        assert!(t.arm_frequency_capped && t.arm_frequency_capped_occurred && t.soft_temp_limit_occurred);
        assert!(!t.throttled);
        let t = Throttle::decode(0x80000, "sysfs");
        assert!(!t.any_now() && t.soft_temp_limit_occurred);
        let t = Throttle::decode(0x8, "sysfs");
        assert!(t.soft_temp_limit && t.any_now());
    }

    #[test]
    fn parses_hex_both_ways() {
        assert_eq!(parse_hex("50005\n"), Some(0x50005));
        assert_eq!(parse_hex("0x50005"), Some(0x50005));
        assert_eq!(parse_hex("0"), Some(0));
        assert_eq!(parse_hex(""), None);
        assert_eq!(parse_hex("0x"), None);
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex("123456789"), None);
    }
}
