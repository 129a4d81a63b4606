//! The command-line contract every tool keeps (CONVENTIONS.md): --help and --version
//! exit 0, a usage error exits 64 with clap's message on stderr and nothing on
//! stdout.

use std::process::Command;

use homelab_e2e::{tool, tool_names};

#[test]
fn help_and_version_exit_0() {
    for name in tool_names() {
        let out = Command::new(tool(&name)).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{name} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Usage:") && help.contains("Examples:"),
            "{name} --help teaches nothing:\n{help}"
        );
        let out = Command::new(tool(&name)).arg("--version").output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{name} --version");
        let version = String::from_utf8_lossy(&out.stdout);
        assert!(
            version.starts_with(&format!("{name} ")),
            "{name} --version printed {version:?}"
        );
    }
}

#[test]
fn usage_errors_exit_64() {
    for name in tool_names() {
        let out = Command::new(tool(&name)).arg("--no-such-flag").output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{name} --no-such-flag");
        assert!(out.stdout.is_empty(), "{name} wrote data on a usage error");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    }
}
