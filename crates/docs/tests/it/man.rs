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

/// The section of a roff page from `.SH NAME` to the next `.SH`.
fn section<'a>(page: &'a str, name: &str) -> &'a str {
    let start = page
        .find(&format!(".SH {name}\n"))
        .or_else(|| page.find(&format!(".SH \"{name}\"\n")))
        .unwrap_or_else(|| panic!("no {name} section"));
    let rest = &page[start + 4..];
    &rest[..rest.find("\n.SH ").map_or(rest.len(), |i| i + 1)]
}

#[test]
fn see_also_names_every_other_page() {
    let names: Vec<String> = homelab_docs::tools()
        .iter()
        .map(|t| t.command.get_name().to_string())
        .collect();
    let overview = std::fs::read_to_string(man_dir().join("homelab-tools.7")).unwrap();
    let see_also = section(&overview, "SEE ALSO");
    for n in &names {
        let wanted = format!(".BR {} (1)", n.replace('-', "\\-"));
        assert!(
            see_also.contains(&wanted),
            "homelab-tools(7) SEE ALSO lacks {n}(1)"
        );
    }
    for (file, text) in homelab_docs::render_all().unwrap() {
        let text = String::from_utf8(text).unwrap();
        let see_also = section(&text, "SEE ALSO");
        assert!(
            see_also.contains(".BR homelab\\-tools (7)"),
            "{file}: no homelab-tools(7)"
        );
        for n in names.iter().filter(|n| !file.starts_with(n.as_str())) {
            assert!(
                see_also.contains(&n.replace('-', "\\-")),
                "{file}: SEE ALSO lacks {n}"
            );
        }
    }
}

/// EXIT STATUS lists a tool's own codes: 1 and 2 only where there is something to
/// check (--check, or cpu-pin's check), and never a code from another tool's story.
#[test]
fn exit_status_lists_only_the_tools_own_codes() {
    for t in homelab_docs::tools() {
        let name = t.command.get_name().to_string();
        let checks = t.command.get_arguments().any(|a| a.get_long() == Some("check"))
            || t.command.get_subcommands().any(|s| s.get_name() == "check");
        let page = String::from_utf8(homelab_docs::render_man(&t).unwrap()).unwrap();
        let status = section(&page, "EXIT STATUS");
        let codes: Vec<u8> = status
            .lines()
            .filter_map(|l| l.strip_prefix(".B ")?.parse().ok())
            .collect();
        assert!(codes.contains(&0) && codes.contains(&64), "{name}: {codes:?}");
        assert_eq!(
            codes.contains(&1),
            checks,
            "{name}: exit 1 listed {codes:?}, check: {checks}"
        );
        if name != "cpu-pin" {
            assert_eq!(codes.contains(&2), checks, "{name}: exit 2 listed {codes:?}");
        }
        assert!(
            codes.windows(2).all(|w| w[0] < w[1]),
            "{name}: {codes:?} not in order"
        );
    }
}
