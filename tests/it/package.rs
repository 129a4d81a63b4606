//! The amd64 Debian package, installed for real with dpkg on this machine (scripts/test
//! builds it and exports HLT_DEB_AMD64): every tool runs from /usr/bin, nothing is
//! enabled or started, removing it leaves no file behind and purging removes its
//! settings.

use std::path::Path;
use std::process::Command;

use homelab_e2e::{tool_names, workspace};
use homelab_testkit::service_env;

const PACKAGE: &str = "homelab-tools";

fn dpkg(args: &[&str]) -> String {
    let out = Command::new("dpkg").args(args).output().expect("running dpkg");
    assert!(
        out.status.success(),
        "dpkg {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Purges the package however the test ends.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", PACKAGE]).output();
    }
}

/// Enablement links of our units under /etc/systemd/system.
fn enabled_units() -> Vec<String> {
    let mut found = Vec::new();
    let Ok(dirs) = std::fs::read_dir("/etc/systemd/system") else {
        return found;
    };
    for d in dirs.flatten().filter(|d| d.path().is_dir()) {
        for e in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if tool_names().iter().any(|t| name.starts_with(t.as_str())) || name.starts_with("homelab-") {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

#[test]
fn amd64_package_installs_runs_and_removes_cleanly() {
    // While our tools are in /usr/bin, the glue's tests would find them on PATH.
    let _alone = homelab_testkit::alone();
    let deb = service_env("HLT_DEB_AMD64", "the amd64 package that scripts/test builds");
    assert!(Path::new(&deb).is_file(), "{deb} is missing");
    let _purge = Purge;
    let enabled_before = enabled_units();

    dpkg(&["--install", &deb]);
    let files: Vec<String> = dpkg(&["--listfiles", PACKAGE])
        .lines()
        .map(String::from)
        .collect();
    for name in tool_names() {
        let bin = format!("/usr/bin/{name}");
        assert!(files.contains(&bin), "{bin} is not in the package");
        let out = Command::new(&bin).arg("--version").output().unwrap();
        assert!(out.status.success(), "{bin} --version");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{name} ")));
        assert!(
            files.contains(&format!("/usr/share/man/man1/{name}.1.gz")),
            "man page of {name}"
        );
    }
    for f in [
        "/usr/bin/homelab-collect",
        "/usr/bin/homelab-offsite",
        "/usr/share/man/man7/homelab-tools.7.gz",
        "/lib/systemd/system/pi-thermal.timer",
        "/lib/systemd/system/backup-snap-drill.service",
        "/lib/systemd/system/backup-snap-drill.timer",
        "/etc/default/homelab-tools",
    ] {
        assert!(files.iter().any(|l| l == f), "{f} is not in the package");
    }
    let out = Command::new("/usr/bin/pi-thermal")
        .args([
            "--root",
            workspace()
                .join("crates/pi-thermal/tests/fixtures/pi5")
                .to_str()
                .unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"model\":\"Raspberry Pi 5 Model B Rev 1.0\""));
    assert_eq!(enabled_units(), enabled_before, "installing enabled a unit");

    dpkg(&["--remove", PACKAGE]);
    let left: Vec<&String> = files
        .iter()
        .filter(|f| Path::new(f).is_file() && f.as_str() != "/etc/default/homelab-tools")
        .collect();
    assert!(left.is_empty(), "files left after dpkg --remove: {left:?}");
    assert!(
        Path::new("/etc/default/homelab-tools").is_file(),
        "the settings stay until purge"
    );
    dpkg(&["--purge", PACKAGE]);
    assert!(
        !Path::new("/etc/default/homelab-tools").exists(),
        "purge removes the settings"
    );
    let status = Command::new("dpkg").args(["--status", PACKAGE]).output().unwrap();
    assert!(
        !status.status.success(),
        "the package is still known to dpkg after purge"
    );
}
