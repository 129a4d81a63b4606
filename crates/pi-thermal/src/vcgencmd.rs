//! The firmware's own view through `vcgencmd`: the throttle word, the real ARM clock
//! (cpufreq only shows what Linux asked for), and on a Pi 5 the PMIC's rail readings.
//!
//! vcgencmd absent is normal (any non-Pi): those fields are null. vcgencmd failing
//! (usually: the user is not in the `video` group) gives one note, not one per query.

use std::path::{Path, PathBuf};
use std::time::Duration;

use homelab_core::cmd::{self, CmdError};

use crate::sample::{Power, Rail};
use crate::throttle::{Throttle, parse_hex};

/// How long one vcgencmd call may take (it answers in milliseconds when healthy).
const LIMIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Vcgencmd {
    program: PathBuf,
}

/// Why a query gave nothing.
#[derive(Debug, PartialEq)]
pub enum QueryError {
    /// The firmware does not know the command (`pmic_read_adc` on a Pi 4): not a fault.
    Unsupported,
    /// vcgencmd ran and failed, or could not run: worth one note.
    Failed(String),
}

impl Vcgencmd {
    /// The vcgencmd to run: `explicit` (from --vcgencmd; missing is an error), else
    /// `vcgencmd` on PATH (missing is normal and silent).
    pub fn locate(explicit: Option<&Path>, errors: &mut Vec<String>) -> Option<Self> {
        match explicit {
            Some(p) if p.is_file() => Some(Vcgencmd {
                program: p.to_path_buf(),
            }),
            Some(p) => {
                errors.push(format!(
                    "vcgencmd {}: not found: check --vcgencmd (Raspberry Pi OS has /usr/bin/vcgencmd)",
                    p.display()
                ));
                None
            }
            None => cmd::which("vcgencmd").map(|program| Vcgencmd { program }),
        }
    }

    pub fn query(&self, args: &[&str]) -> Result<String, QueryError> {
        let what = || format!("vcgencmd {}", args.join(" "));
        match cmd::run(&self.program, args, LIMIT) {
            Ok(out) => {
                let text = format!("{}{}", out.stdout, out.stderr);
                if text.contains("Command not registered") {
                    return Err(QueryError::Unsupported);
                }
                if out.success() && !out.stdout.starts_with("error=") {
                    return Ok(out.stdout);
                }
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
                let code = out
                    .status
                    .code()
                    .map_or("killed by a signal".to_string(), |c| format!("exit status {c}"));
                Err(QueryError::Failed(format!(
                    "{} failed ({code}): {first}: vcgencmd needs /dev/vcio; add the user to the video group (sudo usermod -aG video $USER)",
                    what()
                )))
            }
            Err(e @ (CmdError::NotFound | CmdError::Io(_) | CmdError::TimedOut(_))) => {
                Err(QueryError::Failed(format!("{}: {e}", what())))
            }
        }
    }
}

/// What vcgencmd told us this round.
#[derive(Debug, Default, PartialEq)]
pub struct Firmware {
    pub throttled: Option<Throttle>,
    pub arm_clock_hertz: Option<f64>,
    pub power: Option<Power>,
}

/// Asks vcgencmd for the throttle word, the ARM clock and the PMIC readings. After a
/// failure the remaining queries are skipped: they would fail the same way.
pub fn read(vc: &Vcgencmd, errors: &mut Vec<String>) -> Firmware {
    let mut fw = Firmware::default();
    let ask = |args: &[&str], errors: &mut Vec<String>| -> Option<Option<String>> {
        match vc.query(args) {
            Ok(s) => Some(Some(s)),
            Err(QueryError::Unsupported) => Some(None),
            Err(QueryError::Failed(msg)) => {
                errors.push(msg);
                None
            }
        }
    };
    let Some(out) = ask(&["get_throttled"], errors) else {
        return fw;
    };
    if let Some(out) = out {
        match parse_throttled(&out) {
            Some(bits) => fw.throttled = Some(Throttle::decode(bits, "vcgencmd")),
            None => errors.push(unexpected("get_throttled", &out)),
        }
    }
    let Some(out) = ask(&["measure_clock", "arm"], errors) else {
        return fw;
    };
    if let Some(out) = out {
        match parse_clock(&out) {
            Some(hz) => fw.arm_clock_hertz = Some(hz),
            None => errors.push(unexpected("measure_clock arm", &out)),
        }
    }
    if let Some(Some(out)) = ask(&["pmic_read_adc"], errors) {
        match parse_pmic(&out) {
            Some(p) => fw.power = Some(p),
            None => errors.push(unexpected("pmic_read_adc", &out)),
        }
    }
    fw
}

fn unexpected(query: &str, out: &str) -> String {
    let shown: String = out.trim().chars().take(60).collect();
    format!("vcgencmd {query}: unexpected output {shown:?}")
}

/// `throttled=0x50005` → 0x50005.
pub fn parse_throttled(out: &str) -> Option<u32> {
    parse_hex(out.trim().strip_prefix("throttled=")?)
}

/// `frequency(0)=2400023808` → 2400023808 Hz (the id in parentheses varies by model).
pub fn parse_clock(out: &str) -> Option<f64> {
    let rest = out.trim().strip_prefix("frequency(")?;
    let (_, hz) = rest.split_once(")=")?;
    hz.parse::<u64>().ok().map(|v| v as f64)
}

/// Parses `pmic_read_adc`: lines such as `  VDD_CORE_A current(7)=0.56259000A` and
/// `  VDD_CORE_V volt(15)=0.76798460V`, in any order. Rails with both a current and a
/// voltage make the power sum; `EXT5V_V` is the input voltage. None when no line parses.
pub fn parse_pmic(out: &str) -> Option<Power> {
    let mut amps: Vec<(String, f64)> = Vec::new();
    let mut volts: Vec<(String, f64)> = Vec::new();
    for line in out.lines() {
        let Some((name, rest)) = line.trim().split_once(char::is_whitespace) else {
            continue;
        };
        let Some((_, value)) = rest.trim().split_once('=') else {
            continue;
        };
        let (rail, unit) = match name.rsplit_once('_') {
            Some((rail, u @ ("A" | "V"))) => (rail, u),
            _ => continue,
        };
        let Some(v) = value.strip_suffix(unit).and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        if !v.is_finite() {
            continue;
        }
        let list = if unit == "A" { &mut amps } else { &mut volts };
        list.push((rail.to_string(), v));
    }
    if amps.is_empty() && volts.is_empty() {
        return None;
    }
    let mut rails: Vec<Rail> = amps
        .iter()
        .filter_map(|(rail, a)| {
            let (_, v) = volts.iter().find(|(r, _)| r == rail)?;
            Some(Rail {
                rail: rail.clone(),
                volts: *v,
                amps: *a,
                watts: round6(v * a),
            })
        })
        .collect();
    rails.sort_by(|a, b| a.rail.cmp(&b.rail));
    let total_watts = round6(rails.iter().map(|r| r.volts * r.amps).sum());
    let input_voltage_volts = volts.iter().find(|(r, _)| r == "EXT5V").map(|(_, v)| *v);
    Some(Power {
        total_watts,
        input_voltage_volts,
        rails,
    })
}

/// Microwatt precision: what the ADC can resolve, without float noise in the output.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from a real Pi 5 (shared/reference/pi-metrics.md §2.4).
    pub const PMIC: &str = include_str!("../tests/fixtures/vcgencmd/pmic_read_adc.txt");

    #[test]
    fn parses_throttled_and_clock() {
        assert_eq!(parse_throttled("throttled=0x50005\n"), Some(0x50005));
        assert_eq!(parse_throttled("throttled=0x0"), Some(0));
        assert_eq!(parse_throttled("temp=59.3'C"), None);
        assert_eq!(parse_clock("frequency(0)=2400023808\n"), Some(2400023808.0));
        assert_eq!(parse_clock("frequency(48)=1500345728"), Some(1500345728.0));
        assert_eq!(parse_clock("frequency(48)=fast"), None);
        assert_eq!(parse_clock("error=1 error_msg=\"x\""), None);
    }

    #[test]
    fn parses_the_real_pmic_capture() {
        let p = parse_pmic(PMIC).unwrap();
        assert_eq!(p.rails.len(), 12);
        assert_eq!(p.input_voltage_volts, Some(5.14158));
        let core = p.rails.iter().find(|r| r.rail == "VDD_CORE").unwrap();
        assert_eq!(core.amps, 0.56259);
        assert_eq!(core.volts, 0.7679846);
        assert_eq!(core.watts, 0.43206);
        // The sum over the 12 paired rails of the capture, computed by hand.
        assert_eq!(p.total_watts, 1.766707);
        assert!(p.rails.iter().all(|r| r.rail != "EXT5V" && r.rail != "BATT"));
    }

    #[test]
    fn pmic_garbage_is_none() {
        assert_eq!(parse_pmic(""), None);
        assert_eq!(parse_pmic("error=1 error_msg=\"Command not registered\""), None);
        assert_eq!(parse_pmic("X_A current(1)=NaNA\n"), None);
    }
}
