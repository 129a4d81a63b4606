//! hwmon devices: /sys/class/hwmon/hwmonN, always matched by their `name` file (the
//! numbers change between boots and boards).
//!
//! Temperatures from every device; from `pwmfan` (the Pi 5 fan) the speed and duty;
//! from `rpi_volt` the under-voltage alarm.

use homelab_core::Root;

use crate::sample::{Fan, Temperature};
use crate::thermal::millidegrees;

const DIR: &str = "/sys/class/hwmon";

#[derive(Debug, Default, PartialEq)]
pub struct Hwmon {
    pub temperatures: Vec<Temperature>,
    pub fan: Option<Fan>,
    pub under_voltage_alarm: Option<bool>,
}

struct Device {
    dir: String,
    /// Where the attributes are: the hwmon directory, or (old drivers) its `device/`.
    attrs: String,
    name: String,
}

pub fn read(root: &Root, errors: &mut Vec<String>) -> Hwmon {
    let mut devices = Vec::new();
    for entry in root.list(DIR) {
        let dir = format!("{DIR}/{entry}");
        let (attrs, name) = match root.read_trimmed(format!("{dir}/name")) {
            Ok(n) => (dir.clone(), n),
            Err(e) if e.is_not_found() => match root.read_trimmed(format!("{dir}/device/name")) {
                Ok(n) => (format!("{dir}/device"), n),
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            },
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        devices.push(Device { dir, attrs, name });
    }

    let mut out = Hwmon::default();
    for d in &devices {
        // Two devices of the same name (two NVMe drives) need telling apart.
        let shared = devices.iter().filter(|o| o.name == d.name).count() > 1;
        read_temperatures(root, d, shared, &mut out.temperatures, errors);
        match d.name.as_str() {
            "pwmfan" => out.fan = Some(read_fan(root, d, errors)),
            "rpi_volt" => match root.read_value::<u8>(format!("{}/in0_lcrit_alarm", d.attrs)) {
                Ok(v) => out.under_voltage_alarm = Some(v != 0),
                Err(e) => errors.push(e.to_string()),
            },
            _ => {}
        }
    }
    out
}

fn read_temperatures(
    root: &Root,
    d: &Device,
    shared: bool,
    out: &mut Vec<Temperature>,
    errors: &mut Vec<String>,
) {
    for file in root.list(&d.attrs) {
        let Some(channel) = file
            .strip_suffix("_input")
            .filter(|c| c.starts_with("temp") && c[4..].chars().all(|ch| ch.is_ascii_digit()) && c.len() > 4)
        else {
            continue;
        };
        let value = match root.read_value::<i64>(format!("{}/{file}", d.attrs)) {
            Ok(v) => v,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let label = root
            .read_trimmed(format!("{}/{channel}_label", d.attrs))
            .ok()
            .filter(|l| !l.is_empty());
        let input = if shared {
            let owner = d.dir.rsplit('/').next().unwrap_or(&d.dir);
            format!("{owner}/{channel}")
        } else {
            channel.to_string()
        };
        out.push(Temperature {
            sensor: d.name.clone(),
            input,
            label,
            temperature_celsius: millidegrees(value),
        });
    }
}

fn read_fan(root: &Root, d: &Device, errors: &mut Vec<String>) -> Fan {
    let mut value = |name: &str| match root.read_value::<f64>(format!("{}/{name}", d.attrs)) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    let speed_rpm = value("fan1_input");
    let pwm = value("pwm1");
    Fan {
        speed_rpm,
        pwm_ratio: pwm.map(pwm_ratio),
    }
}

/// A 0–255 PWM duty as a 0–1 ratio.
pub fn pwm_ratio(pwm: f64) -> f64 {
    (pwm.clamp(0.0, 255.0) / 255.0 * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwm_is_a_ratio() {
        assert_eq!(pwm_ratio(255.0), 1.0);
        assert_eq!(pwm_ratio(0.0), 0.0);
        assert_eq!(pwm_ratio(75.0), 0.2941);
        assert_eq!(pwm_ratio(300.0), 1.0);
    }
}
