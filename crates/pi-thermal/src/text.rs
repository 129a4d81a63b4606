//! `--format text`: a status panel a person reads at a glance. Units (°C, rpm, %, W, V,
//! GiB, days), states in words, problems marked with `!` (and in colour on a
//! terminal); no metric names, label strings or raw byte counts: those are what
//! `--format prom` and JSON lines are for.

use homelab_core::text::{Paint, Panel, human_bytes, human_duration, wrap};
use homelab_core::{Alert, Severity};

use crate::sample::{Sample, Temperature};

/// What the firmware's conditions are called in words.
fn condition_words(c: &str) -> &'static str {
    match c {
        "under_voltage" => "under-voltage",
        "arm_frequency_capped" => "ARM frequency capped",
        "throttled" => "throttled",
        _ => "soft temperature limit",
    }
}

/// A sensor as a person calls it: the SoC, the RP1 I/O chip, the NVMe drive.
fn sensor_words(t: &Temperature) -> String {
    match t.sensor.as_str() {
        "cpu-thermal" | "cpu_thermal" => "SoC".into(),
        "rp1_adc" => "RP1".into(),
        "nvme" => "NVMe".into(),
        s => match &t.label {
            Some(l) => format!("{s} {l}"),
            None => s.to_string(),
        },
    }
}

fn ghz(hz: f64) -> String {
    format!("{:.2} GHz", hz / 1e9)
}

fn mark(paint: Paint, sev: Severity, text: &str) -> String {
    match sev {
        Severity::Critical => paint.bad(&format!("{text} !")),
        Severity::Warning => paint.warn(&format!("{text} !")),
        Severity::Ok => text.to_string(),
    }
}

/// The worst alert of `check` about `subject`.
fn severity(alerts: &[Alert], check: &str, subject: &str) -> Severity {
    alerts
        .iter()
        .filter(|a| a.check == check && a.subject == subject)
        .map(|a| a.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

/// The panel for one sample, within `width` columns where lines can wrap.
pub fn panel(s: &Sample, alerts: &[Alert], paint: Paint, width: Option<usize>) -> String {
    let mut p = Panel::new();

    let mut head = s.model.clone().unwrap_or_else(|| "This machine".into());
    if let Some(up) = s.uptime_seconds {
        head.push_str(&format!(", up {}", human_duration(up)));
    }
    let mut out = paint.head(&head);
    out.push('\n');

    // One figure per sensor (the SoC shows as a thermal zone and as a hwmon).
    let mut seen: Vec<String> = Vec::new();
    let mut temps: Vec<String> = Vec::new();
    for t in &s.temperatures {
        let name = sensor_words(t);
        if seen.contains(&name) {
            continue;
        }
        let sev = s
            .temperatures
            .iter()
            .filter(|o| sensor_words(o) == name)
            .map(|o| severity(alerts, "temperature", &o.sensor))
            .max()
            .unwrap_or(Severity::Ok);
        temps.push(mark(
            paint,
            sev,
            &format!("{name} {:.1} °C", t.temperature_celsius),
        ));
        seen.push(name);
    }
    if !temps.is_empty() {
        p.line("Temperature", temps.join(", "));
    }

    if let Some(th) = &s.throttled {
        let now: Vec<&str> = th
            .conditions()
            .iter()
            .filter(|c| c.1)
            .map(|c| condition_words(c.0))
            .collect();
        let since: Vec<&str> = th
            .conditions()
            .iter()
            .filter(|c| c.2)
            .map(|c| condition_words(c.0))
            .collect();
        let now = if now.is_empty() {
            paint.good("no")
        } else {
            paint.bad(&format!("{} !", now.join(", ")))
        };
        let since = if since.is_empty() {
            "no".to_string()
        } else {
            paint.warn(&since.join(", "))
        };
        p.line("Throttled", format!("now: {now}; since boot: {since}"));
    }

    let volts = s.power.as_ref().and_then(|pw| pw.input_voltage_volts);
    if volts.is_some() || s.under_voltage_alarm.is_some() {
        let mut parts = Vec::new();
        if let Some(v) = volts {
            parts.push(format!("{v:.2} V in"));
        }
        match s.under_voltage_alarm {
            Some(true) => parts.push(paint.bad("under-voltage alarm raised !")),
            Some(false) => parts.push("under-voltage alarm: no".into()),
            None => {}
        }
        p.line("Supply", parts.join(", "));
    }
    if let Some(pw) = &s.power {
        p.line("Power", format!("{:.1} W (the PMIC's rails)", pw.total_watts));
    }

    if s.fan.is_some() || !s.cooling_devices.is_empty() {
        let mut parts = Vec::new();
        if let Some(f) = &s.fan {
            match f.speed_rpm {
                Some(0.0) => parts.push("stopped".to_string()),
                Some(rpm) => parts.push(format!("{rpm:.0} rpm")),
                None => {}
            }
            if let Some(r) = f.pwm_ratio {
                parts.push(format!("{:.0} % duty", r * 100.0));
            }
        }
        for c in &s.cooling_devices {
            if let (Some(st), Some(max)) = (c.state, c.max_state) {
                parts.push(format!("cooling state {st} of {max}"));
            }
        }
        if !parts.is_empty() {
            p.line("Fan", parts.join(", "));
        }
    }

    let freqs: Vec<f64> = s.cpus.iter().filter_map(|c| c.frequency_hertz).collect();
    let max = s
        .cpus
        .iter()
        .filter_map(|c| c.max_frequency_hertz)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    if s.arm_clock_hertz.is_some() || !freqs.is_empty() {
        let mut parts = Vec::new();
        if let Some(hz) = s.arm_clock_hertz {
            parts.push(format!("{} (the firmware's)", ghz(hz)));
        }
        if !freqs.is_empty() {
            let lo = freqs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = freqs.iter().copied().fold(0.0, f64::max);
            let range = if (hi - lo).abs() < 1e6 {
                ghz(hi)
            } else {
                format!("{:.2}–{}", lo / 1e9, ghz(hi))
            };
            let of = max.map(|m| format!(" of {}", ghz(m))).unwrap_or_default();
            parts.push(format!("{} CPUs at {range}{of} (the kernel's)", freqs.len()));
        }
        p.line("Clock", parts.join("; "));
    }

    if let Some(m) = &s.memory {
        let mut line = match m.available_bytes {
            Some(a) if m.total_bytes > 0 => {
                let pct = a as f64 * 100.0 / m.total_bytes as f64;
                mark(
                    paint,
                    severity(alerts, "memory", "memory"),
                    &format!(
                        "{} available of {} ({pct:.0} %)",
                        human_bytes(a),
                        human_bytes(m.total_bytes)
                    ),
                )
            }
            _ => format!("{} in all", human_bytes(m.total_bytes)),
        };
        if m.swap_total_bytes > 0 {
            let used = m.swap_total_bytes.saturating_sub(m.swap_free_bytes);
            line.push_str(&format!(
                "; swap {} used of {}",
                human_bytes(used),
                human_bytes(m.swap_total_bytes)
            ));
        } else {
            line.push_str("; no swap");
        }
        p.line("Memory", line);
    }

    if let (Some(l1), Some(l5), Some(l15)) = (s.load1, s.load5, s.load15) {
        p.line("Load", format!("{l1:.2}, {l5:.2}, {l15:.2} (1, 5, 15 min)"));
    }
    if !s.pressure.is_empty() {
        let parts: Vec<String> = s
            .pressure
            .iter()
            .map(|r| format!("{} {:.1} %", r.resource, r.some_avg60_percent))
            .collect();
        p.line("Stalled", format!("{} of the last minute", parts.join(", ")));
    }
    out.push_str(&p.render());

    if !s.filesystems.is_empty() {
        out.push_str(&paint.head("Disks"));
        out.push('\n');
        let w = s
            .filesystems
            .iter()
            .map(|f| f.mountpoint.chars().count())
            .max()
            .unwrap_or(0);
        for f in &s.filesystems {
            let text = if f.size_bytes > 0 {
                let pct = f.avail_bytes as f64 * 100.0 / f.size_bytes as f64;
                format!(
                    "{} free of {} ({pct:.1} %)",
                    human_bytes(f.avail_bytes),
                    human_bytes(f.size_bytes)
                )
            } else {
                "empty".to_string()
            };
            let sev = severity(alerts, "disk", &f.mountpoint);
            out.push_str(&format!(
                "  {:<w$}  {}  {}\n",
                f.mountpoint,
                mark(paint, sev, &text),
                f.fstype
            ));
        }
    }

    let problems: Vec<(String, &str)> = alerts
        .iter()
        .map(|a| {
            let sev = if a.severity == Severity::Critical {
                paint.bad("! critical:")
            } else {
                paint.warn("! warning:")
            };
            (sev, a.message.as_str())
        })
        .chain(s.errors.iter().map(|e| (paint.bad("! error:"), e.as_str())))
        .collect();
    if !problems.is_empty() {
        out.push_str(&paint.head("Problems"));
        out.push('\n');
        for (sev, msg) in problems {
            // The first line after the severity word, the rest under it.
            let lead = "  ";
            let text = wrap(msg, width.map(|w| w.saturating_sub(14).max(30)), "");
            let mut lines = text.lines();
            out.push_str(&format!("{lead}{sev} {}\n", lines.next().unwrap_or("")));
            for l in lines {
                out.push_str(&format!("{lead}            {l}\n"));
            }
        }
    } else {
        out.push_str(&paint.good("No problems."));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::Throttle;

    #[test]
    fn throttling_in_words_and_marked() {
        let s = Sample {
            throttled: Some(Throttle::decode(0x50005, "vcgencmd")),
            ..Sample::default()
        };
        let text = panel(&s, &[], Paint { on: false }, None);
        assert!(
            text.contains("Throttled  now: under-voltage, throttled !; since boot: under-voltage, throttled"),
            "{text}"
        );
        let coloured = panel(&s, &[], Paint { on: true }, None);
        assert!(
            coloured.contains("\x1b[1m\x1b[31munder-voltage, throttled !"),
            "{coloured:?}"
        );
        let s = Sample {
            throttled: Some(Throttle::decode(0x0, "vcgencmd")),
            ..Sample::default()
        };
        let text = panel(&s, &[], Paint { on: false }, None);
        assert!(text.contains("now: no; since boot: no"), "{text}");
    }
}
