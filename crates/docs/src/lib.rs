//! Man pages and shell completions for every tool, rendered from the same clap
//! `Command` that parses its arguments, plus each tool's hand-written sections
//! (OUTPUT, METRICS, ...), its examples, and the shared EXIT STATUS table.
//!
//! `cargo run -p homelab-docs -- man` rewrites `man/`; a test fails when it is stale.

use std::io::Write;

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

/// Every tool, in the order of the README.
pub fn tools() -> Vec<ToolDoc> {
    vec![
        ToolDoc {
            command: pi_thermal::command(),
            examples: pi_thermal::EXAMPLES,
            sections: pi_thermal::MAN_SECTIONS,
        },
        ToolDoc {
            command: backup_snap::command(),
            examples: backup_snap::EXAMPLES,
            sections: backup_snap::MAN_SECTIONS,
        },
    ]
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
        render_commands(&mut cmd, &mut out)?;
    }
    out.extend_from_slice(doc.sections.as_bytes());
    if !doc.sections.ends_with('\n') {
        out.push(b'\n');
    }

    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (code, meaning) in EXIT_CODES {
        writeln!(out, ".TP\n.B {}\n{}", code.code(), roff_escape(meaning))?;
    }
    writeln!(
        out,
        ".PP\nA fatal error prints one line on standard error: \\fI{}: what went wrong: what to do\\fR.",
        roff_escape(&name)
    )?;

    let envs: Vec<(String, String)> = cmd
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            Some((env, a.get_long()?.to_string()))
        })
        .collect();
    if !envs.is_empty() {
        writeln!(out, ".SH ENVIRONMENT")?;
        for (env, long) in envs {
            writeln!(
                out,
                ".TP\n.B {env}\nThe default of \\fB\\-\\-{}\\fR.",
                roff_escape(&long)
            )?;
        }
    }

    writeln!(out, ".SH EXAMPLES")?;
    for (i, (what, command)) in doc.examples.iter().enumerate() {
        let para = if i > 0 { ".PP\n" } else { "" };
        writeln!(
            out,
            "{para}{}:\n.RS 4\n.nf\n{}\n.fi\n.RE",
            roff_escape(what),
            roff_escape(command)
        )?;
    }

    let others: Vec<String> = tools()
        .iter()
        .map(|t| t.command.get_name().to_string())
        .filter(|n| *n != name)
        .map(|n| format!(".BR {} (1)", roff_escape(&n)))
        .collect();
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

/// A COMMANDS section for a tool with subcommands: each one's usage, description and
/// options in this page (clap_mangen would only point at pages that do not exist).
fn render_commands(cmd: &mut clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    writeln!(out, ".SH COMMANDS")?;
    let tool = cmd.get_name().to_string();
    for sub in cmd.get_subcommands_mut().filter(|s| !s.is_hide_set()) {
        let usage = sub.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        writeln!(
            out,
            ".SS \"{} {}\"",
            roff_escape(&tool),
            roff_escape(sub.get_name())
        )?;
        writeln!(out, ".nf\n\\fB{}\\fR\n.fi", roff_escape(usage))?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(out, ".PP\n{}", roff_escape(&about.to_string()))?;
        }
        for arg in sub.get_arguments() {
            if arg.is_hide_set() || arg.is_global_set() || arg.get_id() == "help" {
                continue;
            }
            let value = arg
                .get_value_names()
                .map(|v| v.iter().map(|n| format!("<{n}>")).collect::<Vec<_>>().join(" "));
            let head = match arg.get_long() {
                Some(long) => {
                    let takes = arg.get_action().takes_values();
                    match (&value, takes) {
                        (Some(v), true) => format!("\\fB\\-\\-{}\\fR {}", roff_escape(long), roff_escape(v)),
                        _ => format!("\\fB\\-\\-{}\\fR", roff_escape(long)),
                    }
                }
                None => roff_escape(&value.unwrap_or_else(|| arg.get_id().to_string().to_uppercase())),
            };
            writeln!(out, ".TP\n{head}")?;
            let mut help = arg
                .get_long_help()
                .or(arg.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() && arg.get_action().takes_values() {
                help.push_str(&format!(" (default: {})", defaults.join(", ")));
            }
            if let Some(env) = arg.get_env() {
                help.push_str(&format!(" [env: {}]", env.to_string_lossy()));
            }
            writeln!(out, "{}", roff_escape(help.trim()))?;
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
