//! The Prometheus page of a sample. The names are pinned: dashboards, alert rules
//! and checks depend on them. A metric whose source is missing is omitted, never 0.

use homelab_core::Page;

use crate::sample::Sample;

pub fn page(s: &Sample, now: f64) -> Page {
    let mut p = Page::new();
    let temps = p.gauge(
        "pi_temperature_celsius",
        "Temperature in degrees Celsius, by thermal zone type or hwmon name (sensor) and input.",
    );
    for t in &s.temperatures {
        temps.sample(
            &[("sensor", &t.sensor), ("input", &t.input)],
            t.temperature_celsius,
        );
    }

    for c in &s.cpus {
        let cpu = c.cpu.to_string();
        p.gauge(
            "pi_cpu_frequency_hertz",
            "CPU frequency the kernel requested (scaling_cur_freq); firmware throttling is not visible here, see pi_arm_clock_hertz.",
        )
        .maybe(&[("cpu", &cpu)], c.frequency_hertz);
        p.gauge(
            "pi_cpu_max_frequency_hertz",
            "Maximum CPU frequency (cpuinfo_max_freq).",
        )
        .maybe(&[("cpu", &cpu)], c.max_frequency_hertz);
    }
    p.gauge(
        "pi_arm_clock_hertz",
        "ARM clock as the firmware runs it (vcgencmd measure_clock arm).",
    )
    .maybe(&[], s.arm_clock_hertz);

    if let Some(t) = &s.throttled {
        for (condition, now_set, occurred) in t.conditions() {
            p.gauge(
                "pi_throttled",
                "1 when the firmware reports the condition now (vcgencmd get_throttled bits 0-3).",
            )
            .sample(&[("condition", condition)], f64::from(u8::from(now_set)));
            p.gauge(
                "pi_throttled_occurred",
                "1 when the condition has occurred since the firmware last cleared it (bits 16-19).",
            )
            .sample(&[("condition", condition)], f64::from(u8::from(occurred)));
        }
    }
    p.gauge(
        "pi_under_voltage_alarm",
        "1 when the rpi_volt hwmon raises its under-voltage alarm (in0_lcrit_alarm).",
    )
    .maybe(&[], s.under_voltage_alarm.map(|b| f64::from(u8::from(b))));

    if let Some(f) = &s.fan {
        p.gauge(
            "pi_fan_speed_rpm",
            "Fan speed in revolutions per minute (pwmfan fan1_input).",
        )
        .maybe(&[], f.speed_rpm);
        p.gauge(
            "pi_fan_pwm_ratio",
            "Fan duty cycle as a ratio 0-1 (pwmfan pwm1 / 255).",
        )
        .maybe(&[], f.pwm_ratio);
    }
    for c in &s.cooling_devices {
        p.gauge(
            "pi_cooling_device_state",
            "Current state of a thermal cooling device (a Pi 5 fan: 0-4).",
        )
        .maybe(
            &[("device", &c.device), ("type", &c.kind)],
            c.state.map(|v| v as f64),
        );
        p.gauge(
            "pi_cooling_device_max_state",
            "Highest state of a thermal cooling device.",
        )
        .maybe(
            &[("device", &c.device), ("type", &c.kind)],
            c.max_state.map(|v| v as f64),
        );
    }

    if let Some(pw) = &s.power {
        p.gauge(
            "pi_power_watts",
            "Board power: sum of volts times amps over the PMIC rails (vcgencmd pmic_read_adc); excludes USB and HAT 5V loads.",
        )
        .sample(&[], pw.total_watts);
        for r in &pw.rails {
            p.gauge("pi_power_rail_watts", "Power of one PMIC rail in watts.")
                .sample(&[("rail", &r.rail)], r.watts);
        }
        p.gauge(
            "pi_input_voltage_volts",
            "5V input voltage as the PMIC reads it (EXT5V_V).",
        )
        .maybe(&[], pw.input_voltage_volts);
    }

    if let Some(m) = &s.memory {
        p.gauge("pi_memory_total_bytes", "Total usable memory (MemTotal).")
            .sample(&[], m.total_bytes as f64);
        p.gauge(
            "pi_memory_available_bytes",
            "Memory available for new work without swapping (MemAvailable).",
        )
        .maybe(&[], m.available_bytes.map(|v| v as f64));
        p.gauge("pi_swap_total_bytes", "Total swap (SwapTotal).")
            .sample(&[], m.swap_total_bytes as f64);
        p.gauge("pi_swap_free_bytes", "Free swap (SwapFree).")
            .sample(&[], m.swap_free_bytes as f64);
    }

    for f in &s.filesystems {
        let labels = [
            ("mountpoint", f.mountpoint.as_str()),
            ("device", &f.device),
            ("fstype", &f.fstype),
        ];
        p.gauge("pi_filesystem_size_bytes", "Filesystem size in bytes.")
            .sample(&labels, f.size_bytes as f64);
        p.gauge(
            "pi_filesystem_avail_bytes",
            "Filesystem space available to unprivileged users, in bytes.",
        )
        .sample(&labels, f.avail_bytes as f64);
    }

    p.gauge("pi_load1", "Load average over 1 minute.")
        .maybe(&[], s.load1);
    p.gauge("pi_load5", "Load average over 5 minutes.")
        .maybe(&[], s.load5);
    p.gauge("pi_load15", "Load average over 15 minutes.")
        .maybe(&[], s.load15);

    for ps in &s.pressure {
        let some = [
            ("10s", ps.some_avg10_percent),
            ("60s", ps.some_avg60_percent),
            ("300s", ps.some_avg300_percent),
        ];
        for (window, pct) in some {
            p.gauge(
                "pi_pressure_some_ratio",
                "Share of time some tasks stalled on the resource (PSI avg10/60/300 as a ratio 0-1).",
            )
            .sample(&[("resource", &ps.resource), ("window", window)], ratio(pct));
        }
        let full = [
            ("10s", ps.full_avg10_percent),
            ("60s", ps.full_avg60_percent),
            ("300s", ps.full_avg300_percent),
        ];
        for (window, pct) in full {
            p.gauge(
                "pi_pressure_full_ratio",
                "Share of time all non-idle tasks stalled on the resource (PSI, ratio 0-1).",
            )
            .maybe(&[("resource", &ps.resource), ("window", window)], pct.map(ratio));
        }
    }

    p.gauge("pi_uptime_seconds", "Seconds since boot.")
        .maybe(&[], s.uptime_seconds);
    if let Some(model) = &s.model {
        p.gauge("pi_info", "Board information; the value is always 1.")
            .sample(&[("model", model)], 1.0);
    }
    p.gauge(
        "pi_errors",
        "Number of problems reading sources in the last run (see the JSON errors).",
    )
    .sample(&[], s.errors.len() as f64);
    p.gauge(
        "pi_last_run_timestamp_seconds",
        "Unix time of pi-thermal's last run.",
    )
    .sample(&[], now);
    p
}

/// A PSI percentage (two decimals) as a ratio, without float noise.
fn ratio(percent: f64) -> f64 {
    (percent * 10_000.0).round() / 1_000_000.0
}
