//! The committed man pages match what the code renders, and mandoc finds nothing
//! to complain about.

use std::path::{Path, PathBuf};
use std::process::Command;

fn man_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../man")
}

#[test]
fn committed_man_pages_are_fresh() {
    let mut stale = Vec::new();
    for (name, text) in homelab_docs::render_all().unwrap() {
        let committed = std::fs::read(man_dir().join(&name)).unwrap_or_default();
        if committed != text {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "man pages out of date: {stale:?}; run `cargo run -p homelab-docs -- man` and commit man/"
    );
}

#[test]
fn every_tool_has_a_page_and_no_page_is_orphaned() {
    let rendered: Vec<String> = homelab_docs::render_all()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    for entry in std::fs::read_dir(man_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".1") {
            assert!(rendered.contains(&name), "man/{name} belongs to no tool");
        }
    }
}

#[test]
fn mandoc_lint_is_clean() {
    let pages: Vec<PathBuf> = std::fs::read_dir(man_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "1" || e == "7"))
        .collect();
    assert!(!pages.is_empty());
    let out = Command::new("mandoc")
        .args(["-T", "lint", "-W", "warning"])
        .args(&pages)
        .output()
        .expect("mandoc is needed for this test (Debian package mandoc; scripts/test installs it)");
    let report = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && report.trim().is_empty(),
        "mandoc -T lint:\n{report}"
    );
}

#[test]
fn every_page_has_the_required_sections() {
    for (name, text) in homelab_docs::render_all().unwrap() {
        let text = String::from_utf8(text).unwrap();
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH OUTPUT",
            ".SH \"EXIT STATUS\"",
            ".SH EXAMPLES",
        ] {
            let n = text.lines().filter(|l| *l == section).count();
            assert_eq!(n, 1, "{name} has {section} {n} times");
        }
    }
}
