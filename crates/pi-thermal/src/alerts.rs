//! Thresholds: which values of a sample call for a person.

use homelab_core::{Alert, Severity};

use crate::sample::Sample;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub warn_temp: f64,
    pub crit_temp: f64,
    /// Available memory, percent of total.
    pub warn_mem: f64,
    pub crit_mem: f64,
    /// Free space, percent of size.
    pub warn_disk: f64,
    pub crit_disk: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warn_temp: 75.0,
            crit_temp: 80.0,
            warn_mem: 10.0,
            crit_mem: 5.0,
            warn_disk: 10.0,
            crit_disk: 5.0,
        }
    }
}

impl Thresholds {
    /// Checks that warning comes before critical.
    pub fn validate(&self) -> Result<(), String> {
        if self.warn_temp > self.crit_temp {
            return Err(format!(
                "--warn-temp {} is above --crit-temp {}",
                self.warn_temp, self.crit_temp
            ));
        }
        if self.warn_mem < self.crit_mem {
            return Err(format!(
                "--warn-mem {} is below --crit-mem {} (they are percentages available)",
                self.warn_mem, self.crit_mem
            ));
        }
        if self.warn_disk < self.crit_disk {
            return Err(format!(
                "--warn-disk {} is below --crit-disk {} (they are percentages free)",
                self.warn_disk, self.crit_disk
            ));
        }
        Ok(())
    }
}

/// The power supply to recommend for a board, by its device-tree model: each
/// generation has its own official supply (Raspberry Pi documentation, "Power
/// supply"); naming the Pi 5's 27 W one to a Pi 4 owner sends them shopping for the
/// wrong thing.
pub fn supply_advice(model: Option<&str>) -> &'static str {
    let m = model.unwrap_or("");
    let is = |prefixes: &[&str]| prefixes.iter().any(|p| m.starts_with(p));
    if is(&[
        "Raspberry Pi 5 ",
        "Raspberry Pi 500",
        "Raspberry Pi Compute Module 5",
    ]) {
        "the official 27 W supply (5.1 V 5 A, USB-C)"
    } else if is(&["Raspberry Pi 4 ", "Raspberry Pi 400"]) {
        "the official 15 W supply (5.1 V 3 A, USB-C)"
    } else if is(&["Raspberry Pi 3 ", "Raspberry Pi Zero 2"]) {
        "the official 12.5 W supply (5.1 V 2.5 A, micro-USB)"
    } else {
        "the official supply for this board (see the Raspberry Pi documentation on power supplies)"
    }
}

/// Every crossed threshold in a sample. Temperatures are judged on the thermal zones
/// (on a Pi the SoC's `cpu-thermal`); NVMe and RP1 sensors have their own limits.
pub fn evaluate(s: &Sample, t: &Thresholds) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut push = |severity,
                    check: &str,
                    subject: &str,
                    value: Option<f64>,
                    threshold: Option<f64>,
                    message: String| {
        if severity != Severity::Ok {
            out.push(Alert {
                severity,
                check: check.into(),
                subject: subject.into(),
                value,
                threshold,
                message,
            });
        }
    };

    for z in s
        .temperatures
        .iter()
        .filter(|z| z.input.starts_with("thermal_zone"))
    {
        let sev = Severity::of_high(z.temperature_celsius, t.warn_temp, t.crit_temp);
        let limit = sev.limit(t.warn_temp, t.crit_temp);
        push(
            sev,
            "temperature",
            &z.sensor,
            Some(z.temperature_celsius),
            Some(limit),
            format!(
                "{} is at {:.1} °C (limit {limit} °C): check the fan and airflow; the firmware throttles from 80 °C",
                z.sensor, z.temperature_celsius
            ),
        );
    }

    if let Some(th) = &s.throttled {
        let now: Vec<&str> = th.conditions().iter().filter(|c| c.1).map(|c| c.0).collect();
        if !now.is_empty() {
            push(
                Severity::Critical,
                "throttling",
                &now.join(","),
                Some(f64::from(th.bits)),
                None,
                format!(
                    "the firmware reports {} now (throttled=0x{:x}): use {} and a short cable, and cool the board",
                    now.join(" and ").replace('_', " "),
                    th.bits,
                    supply_advice(s.model.as_deref())
                ),
            );
        }
    }
    if s.under_voltage_alarm == Some(true) {
        push(
            Severity::Critical,
            "under_voltage",
            "rpi_volt",
            Some(1.0),
            None,
            format!(
                "the rpi_volt under-voltage alarm is raised: the supply voltage dropped below the firmware's limit; use {} and a short cable",
                supply_advice(s.model.as_deref())
            ),
        );
    }

    if let Some(m) = &s.memory
        && let Some(avail) = m.available_bytes
        && m.total_bytes > 0
    {
        let pct = avail as f64 * 100.0 / m.total_bytes as f64;
        let sev = Severity::of_low(pct, t.warn_mem, t.crit_mem);
        let limit = sev.limit(t.warn_mem, t.crit_mem);
        push(
            sev,
            "memory",
            "memory",
            Some(round1(pct)),
            Some(limit),
            format!(
                "only {pct:.1} % of memory is available (limit {limit} %): find the biggest containers with ctr-stats and lower their limits"
            ),
        );
    }

    for f in s.filesystems.iter().filter(|f| f.size_bytes > 0) {
        let pct = f.avail_bytes as f64 * 100.0 / f.size_bytes as f64;
        let sev = Severity::of_low(pct, t.warn_disk, t.crit_disk);
        let limit = sev.limit(t.warn_disk, t.crit_disk);
        push(
            sev,
            "disk",
            &f.mountpoint,
            Some(round1(pct)),
            Some(limit),
            format!(
                "{} has {pct:.1} % free (limit {limit} %): prune old images and logs (docker system prune, journalctl --vacuum-size)",
                f.mountpoint
            ),
        );
    }
    out
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_generation_gets_its_own_supply() {
        let pi5 = supply_advice(Some("Raspberry Pi 5 Model B Rev 1.0"));
        assert!(pi5.contains("27 W") && pi5.contains("5 A"), "{pi5}");
        for m in ["Raspberry Pi 4 Model B Rev 1.1", "Raspberry Pi 400 Rev 1.0"] {
            let a = supply_advice(Some(m));
            assert!(
                a.contains("15 W") && a.contains("3 A") && !a.contains("27 W"),
                "{m}: {a}"
            );
        }
        let pi3 = supply_advice(Some("Raspberry Pi 3 Model B Plus Rev 1.3"));
        assert!(pi3.contains("12.5 W") && pi3.contains("micro-USB"), "{pi3}");
        for m in [
            None,
            Some("QEMU Virtual Machine"),
            Some("Raspberry Pi Model B Rev 2"),
        ] {
            let a = supply_advice(m);
            assert!(!a.contains(" W "), "{m:?}: {a}");
        }
    }
    use crate::sample::{Filesystem, Memory, Temperature};
    use crate::throttle::Throttle;

    fn temp(input: &str, c: f64) -> Temperature {
        Temperature {
            sensor: "cpu-thermal".into(),
            input: input.into(),
            label: None,
            temperature_celsius: c,
        }
    }

    #[test]
    fn temperature_thresholds_apply_to_thermal_zones() {
        let t = Thresholds::default();
        let mut s = Sample {
            temperatures: vec![temp("thermal_zone0", 76.0), temp("temp1", 90.0)],
            ..Default::default()
        };
        let a = evaluate(&s, &t);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].severity, Severity::Warning);
        assert_eq!(a[0].threshold, Some(75.0));
        s.temperatures[0].temperature_celsius = 80.0;
        assert_eq!(evaluate(&s, &t)[0].severity, Severity::Critical);
        s.temperatures[0].temperature_celsius = 74.9;
        assert!(evaluate(&s, &t).is_empty());
    }

    #[test]
    fn throttling_now_is_critical_occurred_is_not() {
        let t = Thresholds::default();
        let s = Sample {
            throttled: Some(Throttle::decode(0x50000, "vcgencmd")),
            ..Default::default()
        };
        assert!(evaluate(&s, &t).is_empty());
        let s = Sample {
            throttled: Some(Throttle::decode(0x50005, "vcgencmd")),
            ..Default::default()
        };
        let a = evaluate(&s, &t);
        assert_eq!(a[0].severity, Severity::Critical);
        assert_eq!(a[0].subject, "under_voltage,throttled");
        let s = Sample {
            under_voltage_alarm: Some(true),
            ..Default::default()
        };
        assert_eq!(evaluate(&s, &t)[0].check, "under_voltage");
    }

    #[test]
    fn memory_and_disk_percentages() {
        let t = Thresholds::default();
        let s = Sample {
            memory: Some(Memory {
                total_bytes: 1000,
                available_bytes: Some(80),
                swap_total_bytes: 0,
                swap_free_bytes: 0,
            }),
            filesystems: vec![Filesystem {
                mountpoint: "/".into(),
                device: "d".into(),
                fstype: "ext4".into(),
                size_bytes: 100,
                avail_bytes: 4,
            }],
            ..Default::default()
        };
        let a = evaluate(&s, &t);
        assert_eq!(
            (a[0].check.as_str(), a[0].severity),
            ("memory", Severity::Warning)
        );
        assert_eq!((a[1].check.as_str(), a[1].severity), ("disk", Severity::Critical));
        assert_eq!(a[1].value, Some(4.0));
    }

    #[test]
    fn thresholds_must_be_ordered() {
        assert!(Thresholds::default().validate().is_ok());
        assert!(
            Thresholds {
                warn_temp: 85.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Thresholds {
                crit_disk: 20.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }
}
