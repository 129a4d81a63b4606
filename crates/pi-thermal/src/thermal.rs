//! Thermal zones and cooling devices: /sys/class/thermal.

use homelab_core::Root;

use crate::sample::{CoolingDevice, Temperature};

const DIR: &str = "/sys/class/thermal";

/// Every thermal zone's temperature, labelled by its type.
pub fn read_zones(root: &Root, errors: &mut Vec<String>) -> Vec<Temperature> {
    let mut out = Vec::new();
    for zone in root
        .list(DIR)
        .into_iter()
        .filter(|n| n.starts_with("thermal_zone"))
    {
        let dir = format!("{DIR}/{zone}");
        let sensor = match root.read_trimmed(format!("{dir}/type")) {
            Ok(t) if !t.is_empty() => t,
            Ok(_) => zone.clone(),
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        match root.read_value::<i64>(format!("{dir}/temp")) {
            Ok(m) => out.push(Temperature {
                sensor,
                input: zone,
                label: None,
                temperature_celsius: millidegrees(m),
            }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    out
}

/// Every cooling device (on a Pi 5, `pwm-fan` is the fan's) and its state.
pub fn read_cooling_devices(root: &Root, errors: &mut Vec<String>) -> Vec<CoolingDevice> {
    let mut out = Vec::new();
    for dev in root
        .list(DIR)
        .into_iter()
        .filter(|n| n.starts_with("cooling_device"))
    {
        let dir = format!("{DIR}/{dev}");
        let kind = match root.read_trimmed(format!("{dir}/type")) {
            Ok(t) => t,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let mut state = |name: &str| match root.read_value::<u64>(format!("{dir}/{name}")) {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };
        let cur = state("cur_state");
        let max = state("max_state");
        out.push(CoolingDevice {
            device: dev,
            kind,
            state: cur,
            max_state: max,
        });
    }
    out
}

/// Millidegrees Celsius (the kernel's unit) to degrees.
pub fn millidegrees(m: i64) -> f64 {
    m as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_millidegrees() {
        assert_eq!(millidegrees(59300), 59.3);
        assert_eq!(millidegrees(-5150), -5.15);
    }
}
