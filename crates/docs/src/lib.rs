//! Man pages and shell completions for every tool, rendered from the same clap
//! `Command` that parses its arguments, plus each tool's hand-written sections
//! (OUTPUT, METRICS, ...), its examples, and the shared EXIT STATUS table.
//!
//! `cargo run -p homelab-docs -- man` rewrites `man/`; a test fails when it is stale.

use std::io::Write;

use homelab_core::Exit;
use homelab_core::args::{EXAMPLE_WIDTH, wrap_command};
use homelab_core::exit::EXIT_CODES;

/// Date on the man pages' title line; bump it with the version.
pub const DATE: &str = "2026-11-26";

/// What the docs need from a tool.
pub struct ToolDoc {
    pub command: clap::Command,
    pub examples: &'static [(&'static str, &'static str)],
    /// Hand-written roff: OUTPUT (every record kind and field), METRICS, and the like.
    pub sections: &'static str,
}

/// A tool's [`ToolDoc`], from the items every tool crate exports.
macro_rules! tool_doc {
    ($krate:ident) => {
        ToolDoc {
            command: $krate::command(),
            examples: $krate::EXAMPLES,
            sections: $krate::MAN_SECTIONS,
        }
    };
}

/// Every tool, in the order of the README.
pub fn tools() -> Vec<ToolDoc> {
    vec![
        tool_doc!(pi_thermal),
        tool_doc!(ctr_stats),
        tool_doc!(log_tail_ship),
        tool_doc!(cpu_pin),
        tool_doc!(backup_snap),
        tool_doc!(route_check),
    ]
}

/// The exit statuses `tool` can end with, each in the tool's own words: only its
/// own codes (the `--check` codes 1 and 2 only for the tools that check). Codes
/// listed in core's table but not here are never used by that tool.
pub fn exit_status(tool: &str) -> Vec<(Exit, &'static str)> {
    use Exit::*;
    let own: &[(Exit, &str)] = match tool {
        "pi-thermal" => &[
            (
                Ok,
                "success; with --check, every reading is within its thresholds",
            ),
            (Warning, "--check: a warning threshold was crossed"),
            (
                Critical,
                "--check: a critical threshold was crossed (throttling now is critical)",
            ),
        ],
        "ctr-stats" => &[
            (Ok, "success (also when some containers' records carry errors)"),
            (NoInput, "--root or a cgroup tree it needs does not exist"),
            (
                Unavailable,
                "the Docker engine is not running or did not answer in time",
            ),
            (
                NoPerm,
                "permission denied on the Docker socket or the cgroup files",
            ),
            (Config, "a bad --docker-host or Docker configuration"),
        ],
        "log-tail-ship" => &[
            (
                Ok,
                "success: --once shipped everything it read, or a signal stopped it with nothing left unacknowledged",
            ),
            (DataErr, "the positions file is corrupt"),
            (NoInput, "a --journal-dir does not exist"),
            (
                Unavailable,
                "Loki, journalctl or the Docker engine is unavailable, or the sink cannot work as configured",
            ),
            (
                IoErr,
                "an input/output error, or --once could not open every file",
            ),
            (
                TempFail,
                "lines were still unacknowledged when it stopped, or --once-timeout passed",
            ),
            (
                NoPerm,
                "permission denied on a log file, the positions file or the Docker socket",
            ),
            (
                Config,
                "a bad Loki URL, label, credentials given two ways, or other configuration",
            ),
        ],
        "cpu-pin" => &[
            (Ok, "success; check: the layout matches the plan"),
            (Warning, "check: the layout has drifted from the plan"),
            (DataErr, "a /proc or cgroup file could not be understood"),
            (
                NoInput,
                "a target (process, container, cgroup) or the plan file does not exist",
            ),
            (Unavailable, "the Docker engine is not running"),
            (IoErr, "an input/output error writing an affinity or a cpuset"),
            (
                TempFail,
                "the target changed under cpu-pin (a thread or container came and went); run again",
            ),
            (
                NoPerm,
                "permission denied: pinning others' threads or cgroups needs root",
            ),
            (
                Config,
                "a bad plan file, CPU list or cpuset (e.g. CPUs outside the parent cgroup's)",
            ),
        ],
        "backup-snap" => &[
            (Ok, "success"),
            (
                DataErr,
                "the repository or a snapshot is damaged (verify says which)",
            ),
            (
                NoInput,
                "the repository or the snapshot does not exist, or create could read none of its sources",
            ),
            (Unavailable, "Docker (for --pg-dump or --pause) is unavailable"),
            (
                CantCreate,
                "restore: the target holds files the snapshot would replace (see --overwrite)",
            ),
            (
                IoErr,
                "an input/output error, or some source files could not be read (a partial snapshot)",
            ),
            (
                TempFail,
                "the repository is locked by another backup-snap, or a file kept changing while it was read (the snapshot was written, with warnings)",
            ),
            (
                NoPerm,
                "permission denied on the repository, a source or the Docker socket",
            ),
            (
                Config,
                "a bad key file (or one given for an unencrypted repository), job name or retention rule",
            ),
        ],
        "route-check" => &[
            (
                Ok,
                "success; with --check, every route is up with a valid certificate",
            ),
            (
                Warning,
                "--check: a warning (a certificate expiring within --warn-days, a route that cannot be probed)",
            ),
            (
                Critical,
                "--check: a route is down, its certificate invalid, or a container bypasses the proxy",
            ),
            (
                DataErr,
                "the Traefik API or a routes file sent something that is not understood",
            ),
            (NoInput, "a --routes-file does not exist"),
            (Unavailable, "the Traefik API or the Docker engine is unavailable"),
        ],
        _ => &[],
    };
    // Every tool can also fail these ways (flags, output files, stdout, bugs).
    let shared = [Usage, Software, CantCreate];
    let mut codes: Vec<(Exit, &'static str)> = own.to_vec();
    for code in shared {
        if !codes.iter().any(|(c, _)| *c == code)
            && let Some((_, meaning)) = EXIT_CODES.iter().find(|(c, _)| *c == code)
        {
            codes.push((code, meaning));
        }
    }
    codes.sort_by_key(|(c, _)| c.code());
    codes
}

/// Escapes text for roff: backslashes, hyphens as minus signs, and a leading `.` or `'`.
pub fn roff_escape(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Renders one tool's man page (section 1).
pub fn render_man(doc: &ToolDoc) -> std::io::Result<Vec<u8>> {
    let mut cmd = doc.command.clone().disable_help_subcommand(true);
    cmd.build();
    let name = cmd.get_name().to_string();
    let version = cmd.get_version().unwrap_or("").to_string();
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("1")
        .date(DATE)
        .source(format!("homelab-tools {version}"))
        .manual("homelab-tools manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.has_subcommands() {
        render_commands(&mut out, &cmd)?;
    }
    out.extend_from_slice(doc.sections.as_bytes());
    if !doc.sections.ends_with('\n') {
        out.push(b'\n');
    }

    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (code, meaning) in exit_status(&name) {
        writeln!(out, ".TP\n.B {}\n{}", code.code(), roff_escape(meaning))?;
    }
    writeln!(
        out,
        ".PP\nA fatal error prints one line on standard error: \\fI{}: what went wrong: what to do\\fR.",
        roff_escape(&name)
    )?;

    let mut envs: Vec<(String, String)> = Vec::new();
    for a in cmd
        .get_arguments()
        .chain(cmd.get_subcommands().flat_map(|s| s.get_arguments()))
    {
        let Some(env) = a.get_env().map(|e| e.to_string_lossy().into_owned()) else {
            continue;
        };
        let flag = match a.get_long() {
            Some(l) => format!("\\fB\\-\\-{}\\fR", roff_escape(l)),
            None => format!("\\fI{}\\fR", roff_escape(a.get_id().as_str()).to_uppercase()),
        };
        if !envs.iter().any(|(e, _)| *e == env) {
            envs.push((env, flag));
        }
    }
    if !envs.is_empty() {
        writeln!(out, ".SH ENVIRONMENT")?;
        for (env, flag) in envs {
            writeln!(out, ".TP\n.B {env}\nThe default of {flag}.")?;
        }
    }

    writeln!(out, ".SH EXAMPLES")?;
    for (i, (what, command)) in doc.examples.iter().enumerate() {
        let para = if i > 0 { ".PP\n" } else { "" };
        writeln!(
            out,
            "{para}{}:\n.RS 4\n.nf\n{}\n.fi\n.RE",
            roff_escape(what),
            roff_escape(&wrap_command(command, EXAMPLE_WIDTH).join("\n"))
        )?;
    }

    let mut others: Vec<String> = tools()
        .iter()
        .map(|t| t.command.get_name().to_string())
        .filter(|n| *n != name)
        .map(|n| format!(".BR {} (1)", roff_escape(&n)))
        .collect();
    others.push(".BR homelab\\-tools (7)".to_string());
    writeln!(out, ".SH \"SEE ALSO\"")?;
    for (i, o) in others.iter().enumerate() {
        writeln!(out, "{o}{}", if i + 1 < others.len() { "," } else { "" })?;
    }
    let para = if others.is_empty() { "" } else { ".PP\n" };
    writeln!(
        out,
        "{para}The README of homelab\\-tools: how the tools feed node_exporter, Prometheus and Loki."
    )?;
    Ok(tidy(out))
}

/// A tool with subcommands: each one's synopsis, what it does and its options, as
/// subsections of COMMANDS (clap_mangen alone would point at a page per subcommand
/// that does not exist).
fn render_commands(out: &mut Vec<u8>, cmd: &clap::Command) -> std::io::Result<()> {
    writeln!(out, ".SH COMMANDS")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let full = format!("{} {}", cmd.get_name(), sub.get_name());
        let mut sub = sub.clone().bin_name(&full).disable_help_subcommand(true);
        sub.build();
        let man = clap_mangen::Man::new(sub.clone());
        let mut buf = Vec::new();
        man.render_synopsis_section(&mut buf)?;
        man.render_options_section(&mut buf)?;
        writeln!(out, ".SS \"{}\"", roff_escape(&full))?;
        if let Some(about) = sub.get_about() {
            writeln!(out, "{}.", roff_escape(about.to_string().trim_end_matches('.')))?;
        }
        for line in String::from_utf8_lossy(&buf).lines() {
            match line.strip_prefix(".SH ") {
                Some("SYNOPSIS") => writeln!(out, ".PP")?,
                Some(heading) => {
                    let heading = heading.trim_matches('"');
                    let mut h = heading.to_lowercase();
                    h[..1].make_ascii_uppercase();
                    writeln!(out, ".PP\n\\fI{}\\fR:", roff_escape(&h))?;
                }
                None => writeln!(out, "{line}")?,
            }
        }
    }
    Ok(())
}

/// Cleans what clap_mangen leaves for mandoc to warn about: the string definition it
/// repeats before every section, and an empty line between two line breaks.
fn tidy(roff: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&roff);
    let mut out = String::with_capacity(text.len());
    let mut seen_aq = false;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with(".ie \\n(.g .ds Aq") {
            if seen_aq {
                lines.next(); // its `.el` twin
                continue;
            }
            seen_aq = true;
        }
        if line.is_empty() && out.ends_with(".br\n") && lines.peek() == Some(&".br") {
            lines.next();
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// Every man page as `(file name, contents)`.
pub fn render_all() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    tools()
        .iter()
        .map(|t| Ok((format!("{}.1", t.command.get_name()), render_man(t)?)))
        .collect()
}

/// Every tool's completion script for `shell`, as `(file name, contents)`.
///
/// clap_complete's bash script names a hyphenated tool's subcommand cases
/// `backup__subcmd__snap__subcmd__create` but sets `cmd=backup__snap__subcmd__create`
/// while walking the words, so nothing completed after a subcommand (clap issue
/// #6421, open). The case labels are rewritten to the name the walk uses.
pub fn completions(shell: clap_complete::Shell) -> Vec<(String, Vec<u8>)> {
    tools()
        .into_iter()
        .map(|t| {
            let mut cmd = t.command;
            let name = cmd.get_name().to_string();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut buf);
            if shell == clap_complete::Shell::Bash && name.contains('-') {
                let wrong = name.replace('-', "__subcmd__");
                let right = name.replace('-', "__");
                let text = String::from_utf8_lossy(&buf).replace(&wrong, &right);
                buf = text.into_bytes();
            }
            let file = match shell {
                clap_complete::Shell::Bash => format!("{name}.bash"),
                clap_complete::Shell::Zsh => format!("_{name}"),
                clap_complete::Shell::Fish => format!("{name}.fish"),
                _ => name.clone(),
            };
            (file, buf)
        })
        .collect()
}
