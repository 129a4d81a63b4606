//! The `kind: sample` record: everything one round learns about the machine. Every
//! field a source could not give is `null` (or an empty list), never a made-up 0, and
//! what went wrong is in `errors`.

use serde::Serialize;

use crate::throttle::Throttle;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Sample {
    /// Board model from the device tree, e.g. "Raspberry Pi 5 Model B Rev 1.0".
    pub model: Option<String>,
    pub temperatures: Vec<Temperature>,
    pub cpus: Vec<CpuFrequency>,
    /// The ARM clock as the firmware runs it (vcgencmd measure_clock arm).
    pub arm_clock_hertz: Option<f64>,
    pub throttled: Option<Throttle>,
    /// Under-voltage alarm of the `rpi_volt` hwmon.
    pub under_voltage_alarm: Option<bool>,
    pub fan: Option<Fan>,
    pub cooling_devices: Vec<CoolingDevice>,
    pub power: Option<Power>,
    pub memory: Option<Memory>,
    pub filesystems: Vec<Filesystem>,
    pub load1: Option<f64>,
    pub load5: Option<f64>,
    pub load15: Option<f64>,
    pub pressure: Vec<Pressure>,
    pub uptime_seconds: Option<f64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Temperature {
    /// Thermal zone type (`cpu-thermal`) or hwmon name (`cpu_thermal`, `rp1_adc`, `nvme`).
    pub sensor: String,
    /// Which input of it: `thermal_zone0`, or a hwmon channel such as `temp1`.
    pub input: String,
    /// The hwmon channel's label (`Composite` for an NVMe drive), when it has one.
    pub label: Option<String>,
    pub temperature_celsius: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuFrequency {
    pub cpu: u32,
    /// What the kernel requested (scaling_cur_freq); firmware throttling is not visible here.
    pub frequency_hertz: Option<f64>,
    pub max_frequency_hertz: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fan {
    pub speed_rpm: Option<f64>,
    /// pwm1 / 255.
    pub pwm_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CoolingDevice {
    pub device: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: Option<u64>,
    pub max_state: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Power {
    /// Sum of volts × amps over the PMIC rails that have both.
    pub total_watts: f64,
    /// EXT5V_V: the 5 V input as the PMIC sees it.
    pub input_voltage_volts: Option<f64>,
    pub rails: Vec<Rail>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rail {
    pub rail: String,
    pub volts: f64,
    pub amps: f64,
    pub watts: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Memory {
    pub total_bytes: u64,
    pub available_bytes: Option<u64>,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Filesystem {
    pub mountpoint: String,
    pub device: String,
    pub fstype: String,
    pub size_bytes: u64,
    pub avail_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Pressure {
    /// `cpu`, `memory` or `io`.
    pub resource: String,
    pub some_avg10_percent: f64,
    pub some_avg60_percent: f64,
    pub some_avg300_percent: f64,
    pub some_stall_seconds_total: f64,
    pub full_avg10_percent: Option<f64>,
    pub full_avg60_percent: Option<f64>,
    pub full_avg300_percent: Option<f64>,
    pub full_stall_seconds_total: Option<f64>,
}
