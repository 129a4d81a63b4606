//! Thresholds and `--check`: severities, the `kind: alert` record, and the Nagios
//! exit status (0 fine, 1 warning, 2 critical) so cron can mail on trouble.

use serde::Serialize;

use crate::exit::Exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Ok,
    Warning,
    Critical,
}

impl Severity {
    /// The `--check` exit status for this severity.
    pub fn exit(self) -> Exit {
        match self {
            Severity::Ok => Exit::Ok,
            Severity::Warning => Exit::Warning,
            Severity::Critical => Exit::Critical,
        }
    }

    /// Severity of a value that is bad when high (a temperature).
    pub fn of_high(value: f64, warn: f64, crit: f64) -> Severity {
        if value >= crit {
            Severity::Critical
        } else if value >= warn {
            Severity::Warning
        } else {
            Severity::Ok
        }
    }

    /// The threshold a value of this severity crossed: `crit` when critical, else `warn`.
    pub fn limit(self, warn: f64, crit: f64) -> f64 {
        if self == Severity::Critical { crit } else { warn }
    }

    /// Severity of a value that is bad when low (free space, days left).
    pub fn of_low(value: f64, warn: f64, crit: f64) -> Severity {
        if value < crit {
            Severity::Critical
        } else if value < warn {
            Severity::Warning
        } else {
            Severity::Ok
        }
    }
}

/// A crossed threshold, written as a `kind: alert` record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// `warning` or `critical`.
    pub severity: Severity,
    /// What was checked: `temperature`, `memory`, `disk`, `throttling`, ...
    pub check: String,
    /// Which thing: a sensor, a mount point, a route.
    pub subject: String,
    /// The measured value, in the unit of the check.
    pub value: Option<f64>,
    /// The threshold it crossed.
    pub threshold: Option<f64>,
    /// One sentence for a person: what is wrong and what to do.
    pub message: String,
}

/// The worst severity among alerts (Ok when there are none).
pub fn worst<'a>(alerts: impl IntoIterator<Item = &'a Alert>) -> Severity {
    alerts
        .into_iter()
        .map(|a| a.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(Severity::of_high(74.9, 75.0, 80.0), Severity::Ok);
        assert_eq!(Severity::of_high(75.0, 75.0, 80.0), Severity::Warning);
        assert_eq!(Severity::of_high(80.0, 75.0, 80.0), Severity::Critical);
        assert_eq!(Severity::of_low(9.9, 10.0, 5.0), Severity::Warning);
        assert_eq!(Severity::of_low(4.0, 10.0, 5.0), Severity::Critical);
        assert_eq!(Severity::Critical.exit(), Exit::Critical);
        assert!(Severity::Critical > Severity::Warning);
    }
}
