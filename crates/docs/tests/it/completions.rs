//! Shell completions, driven the way the shells drive them: bash through
//! `COMP_WORDS`/`COMP_CWORD` and the completion function, fish through `complete -C`,
//! zsh parsed by zsh itself. Each case is what a person types before pressing Tab.

use std::process::Command;

use clap_complete::Shell;

fn script(shell: Shell, tool: &str) -> tempfile::NamedTempFile {
    let (_, text) = homelab_docs::completions(shell)
        .into_iter()
        .find(|(file, _)| file.contains(tool))
        .unwrap_or_else(|| panic!("no {shell} completion for {tool}"));
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

/// What bash offers for the words typed so far (the last one is being completed).
fn bash_complete(tool: &str, words: &[&str]) -> Vec<String> {
    let f = script(Shell::Bash, tool);
    let func = format!("_{}", tool.replace('-', "__"));
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let prev = if cword > 0 { words[cword - 1] } else { "" };
    let program = format!(
        "source '{}'; COMP_WORDS=({}); COMP_CWORD={cword}; COMP_LINE='{}'; COMP_POINT=${{#COMP_LINE}}; \
         {func} '{tool}' '{}' '{prev}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        f.path().display(),
        quoted.join(" "),
        words.join(" "),
        words[cword],
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&program)
        .output()
        .expect("running bash");
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn fish_complete(tool: &str, line: &str) -> Vec<String> {
    let f = script(Shell::Fish, tool);
    let out = Command::new("fish")
        .arg("--no-config")
        .arg("-c")
        .arg(format!("source '{}'; complete -C '{line}'", f.path().display()))
        .output()
        .expect("running fish (scripts/test installs it)");
    assert!(
        out.status.success(),
        "fish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_string())
        .collect()
}

fn assert_offers(got: &[String], want: &[&str], what: &str) {
    for w in want {
        assert!(got.iter().any(|g| g == w), "{what}: {w} not offered; got {got:?}");
    }
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    let got = bash_complete("backup-snap", &["backup-snap", "cr"]);
    assert_eq!(got, ["create"], "backup-snap cr<TAB>");
    // After a subcommand: its own flags and the global ones.
    let got = bash_complete("backup-snap", &["backup-snap", "create", "--"]);
    assert_offers(
        &got,
        &["--job", "--exclude", "--repo", "--format"],
        "backup-snap create --<TAB>",
    );
    let got = bash_complete("backup-snap", &["backup-snap", "forget", "--keep-wi"]);
    assert_eq!(got, ["--keep-within"], "backup-snap forget --keep-wi<TAB>");
    let got = bash_complete("cpu-pin", &["cpu-pin", "apply", "--"]);
    assert_offers(
        &got,
        &["--interval", "--force", "--format", "--docker-host"],
        "cpu-pin apply --<TAB>",
    );
    let got = bash_complete("cpu-pin", &["cpu-pin", "set", "--cp"]);
    assert_eq!(got, ["--cpus"], "cpu-pin set --cp<TAB>");
    // Tools without subcommands, and a value list.
    let got = bash_complete("pi-thermal", &["pi-thermal", "--fo"]);
    assert_eq!(got, ["--format"], "pi-thermal --fo<TAB>");
    let got = bash_complete("route-check", &["route-check", "--format", ""]);
    assert_offers(&got, &["jsonl", "prom", "text"], "route-check --format <TAB>");
}

#[test]
fn fish_completes_after_a_subcommand() {
    assert_offers(
        &fish_complete("backup-snap", "backup-snap create --jo"),
        &["--job"],
        "fish: backup-snap create --jo",
    );
    assert_offers(
        &fish_complete("cpu-pin", "cpu-pin check --inter"),
        &["--interval"],
        "fish: cpu-pin check --inter",
    );
}

#[test]
fn zsh_scripts_parse() {
    for (file, text) in homelab_docs::completions(Shell::Zsh) {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), &text).unwrap();
        let out = Command::new("zsh")
            .arg("-n")
            .arg(f.path())
            .output()
            .expect("running zsh (scripts/test installs it)");
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The function zsh's compinit binds to the tool's name is the one defined.
        let name = file.trim_start_matches('_');
        let text = String::from_utf8_lossy(&text);
        assert!(text.starts_with(&format!("#compdef {name}")), "{file}");
        assert!(text.contains(&format!("_{name}() {{")), "{file}");
    }
}
