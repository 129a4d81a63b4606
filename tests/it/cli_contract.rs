//! The command-line contract every tool keeps (docs/conventions.md): --help and --version
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

/// Every argument of a command and its subcommands, as clap sees them after build
/// (global arguments propagated), with the command path they appear under.
fn all_args(cmd: &clap::Command) -> Vec<(String, clap::Arg)> {
    let mut cmd = cmd.clone();
    cmd.build();
    let mut out: Vec<(String, clap::Arg)> = cmd
        .get_arguments()
        .map(|a| (cmd.get_name().to_string(), a.clone()))
        .collect();
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        for a in sub.get_arguments() {
            out.push((format!("{} {}", cmd.get_name(), sub.get_name()), a.clone()));
        }
    }
    out
}

/// One grammar across the tools: the shared flags under one name everywhere and, in
/// a tool with subcommands, accepted before and after the subcommand; Docker's
/// address as --docker-host in every tool that talks to Docker; environment twins
/// under the tool's own prefix (or HOMELAB_ for the shared ones, DOCKER_HOST as
/// Docker's own). A new flag that drifts fails here.
#[test]
fn one_grammar_across_the_tools() {
    for t in homelab_docs::tools() {
        let name = t.command.get_name().to_string();
        let args = all_args(&t.command);
        let prefix = name.to_uppercase().replace('-', "_") + "_";
        for (at, a) in &args {
            if let Some(env) = a.get_env().map(|e| e.to_string_lossy().into_owned()) {
                assert!(
                    env.starts_with(&prefix) || env.starts_with("HOMELAB_") || env == "DOCKER_HOST",
                    "{at} --{}: environment variable {env} is not under {prefix} or HOMELAB_",
                    a.get_id()
                );
            }
            if a.get_env().is_some_and(|e| e == "DOCKER_HOST") {
                assert_eq!(a.get_long(), Some("docker-host"), "{at}: Docker's address flag");
            }
        }
        let has = |long: &str| args.iter().any(|(_, a)| a.get_long() == Some(long));
        // Containers are selected with --docker-filter KEY=VALUE (the name says what it
        // filters); --filter stays as an alias where it was the name.
        for (at, a) in &args {
            let aliases = a.get_all_aliases().unwrap_or_default();
            if a.get_long() == Some("filter") || aliases.contains(&"filter") {
                assert_eq!(
                    a.get_long(),
                    Some("docker-filter"),
                    "{at}: containers are selected with --docker-filter"
                );
            }
        }
        if has("docker-filter") || has("pg-dump") || has("docker") {
            assert!(
                has("docker-host"),
                "{name} talks to Docker but has no --docker-host"
            );
        }
        // Every tool that talks to Docker takes core's DockerArgs whole: the address
        // and the time limit, under one heading.
        if has("docker-host") {
            assert!(
                has("docker-timeout"),
                "{name} has --docker-host but no --docker-timeout"
            );
            for (at, a) in args
                .iter()
                .filter(|(_, a)| matches!(a.get_long(), Some("docker-host" | "docker-timeout")))
            {
                assert_eq!(
                    a.get_help_heading(),
                    Some("Docker options"),
                    "{at} --{}: not core's DockerArgs",
                    a.get_id()
                );
            }
        }
        for shared in ["format", "quiet", "textfile-dir"] {
            assert!(has(shared), "{name} has no --{shared}");
        }
        // Subcommands: the shared flags are global, so they parse on either side.
        let mut cmd = t.command.clone();
        cmd.build();
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            for shared in ["format", "quiet", "textfile-dir"] {
                let arg = cmd.get_arguments().find(|a| a.get_long() == Some(shared));
                assert!(
                    arg.is_some_and(|a| a.is_global_set()),
                    "{name} {}: --{shared} is not accepted before the subcommand",
                    sub.get_name()
                );
                assert!(
                    sub.get_arguments().any(|a| a.get_long() == Some(shared)),
                    "{name} {}: --{shared} is not accepted after the subcommand",
                    sub.get_name()
                );
            }
        }
    }
}

/// The flags before and after a subcommand mean the same thing, through the real
/// binaries: a missing repository is exit 66 either way, never a usage error.
#[test]
fn shared_flags_parse_before_and_after_a_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("none");
    let repo = repo.to_str().unwrap();
    for args in [
        vec!["--format", "text", "--repo", repo, "list"],
        vec!["list", "--format", "text", "--repo", repo],
        vec!["-q", "list", "--repo", repo],
        vec!["list", "-q", "--repo", repo],
    ] {
        let out = Command::new(tool("backup-snap")).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(66),
            "backup-snap {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for args in [
        vec!["--format", "jsonl", "show", "--pid", "1"],
        vec!["show", "--pid", "1", "--format", "jsonl"],
    ] {
        let out = Command::new(tool("cpu-pin")).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "cpu-pin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let first = String::from_utf8_lossy(&out.stdout);
        let line: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
        assert_eq!(line["tool"], "cpu-pin", "{args:?}");
    }
}

/// Examples a person can paste: every line of the examples in `--help` fits 80
/// columns, and a mistyped flag gets a suggestion.
#[test]
fn help_examples_fit_80_columns_and_typos_get_suggestions() {
    for name in tool_names() {
        let out = Command::new(tool(&name))
            .env("COLUMNS", "80")
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        let examples = &help[help.find("Examples:").expect("examples")..];
        for line in examples.lines() {
            assert!(
                line.chars().count() <= 80,
                "{name} --help: {line:?} is wider than 80 columns"
            );
        }
        let out = Command::new(tool(&name)).arg("-h").output().unwrap();
        let short = String::from_utf8_lossy(&out.stdout);
        assert!(short.contains("Examples"), "{name} -h shows no example");
        let out = Command::new(tool(&name))
            .arg("--formt")
            .arg("x")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("a similar argument exists: '--format'"),
            "{name} --formt: no suggestion"
        );
    }
}
