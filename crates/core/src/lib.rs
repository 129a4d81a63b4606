//! The shared library of homelab-tools: what every tool's output, errors, paths,
//! flags and run loop have in common, so that no tool implements them twice.
//!
//! A tool parses its arguments (with [`args::CommonArgs`] flattened in), runs its
//! rounds through [`run::run_rounds`], and hands records and a Prometheus
//! [`prom::Page`] to an [`output::Output`], which renders them as the user asked.
//! Its `main` is [`exit::main`].

pub mod args;
pub mod check;
pub mod cmd;
pub mod cpulist;
#[cfg(feature = "docker")]
pub mod docker;
pub mod exit;
pub mod fs;
pub mod output;
pub mod proc;
pub mod prom;
pub mod root;
pub mod run;
pub mod text;

pub use args::{CommonArgs, Format, LoopArgs, OutputArgs};
pub use check::{Alert, Severity};
pub use exit::{Error, Exit, Result};
pub use output::Output;
pub use prom::Page;
pub use root::Root;

/// Version of the JSON-lines schema, the `v` field of every record.
pub const SCHEMA_VERSION: u32 = 1;

/// Seconds since the Unix epoch, as Prometheus wants timestamps in sample values.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
