//! The shell glue: the collector runner (scripts/collect, installed as
//! homelab-collect) and scripts/install.
//!
//! Every test holds `homelab_testkit::shared()`: they find tools on a PATH that ends
//! in /usr/bin, where the package test installs ours while it holds `alone()`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use homelab_e2e::{tool, workspace};
use homelab_testkit::{series, wait_until};

/// A directory to put on PATH holding only the named tools (links to the built
/// binaries) and any fake tools a test writes.
fn bin_dir_with(tools: &[&str]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for t in tools {
        std::os::unix::fs::symlink(tool(t), d.path().join(t)).unwrap();
    }
    d
}

fn fake_tool(dir: &Path, name: &str, script: &str) {
    homelab_testkit::write_executable(&dir.join(name), &format!("#!/bin/sh\n{script}\n"));
}

fn collect(bin: &Path, textfile: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(workspace().join("scripts/collect"));
    c.args(args)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOMELAB_TEXTFILE_DIR", textfile)
        .env("HOMELAB_LOCK_DIR", textfile.join("locks"))
        .env_remove("PI_THERMAL_ARGS");
    c
}

fn reports(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn pi5() -> PathBuf {
    workspace().join("crates/pi-thermal/tests/fixtures/pi5")
}

#[test]
fn collect_runs_a_tool_into_the_textfile_dir_and_reports_it() {
    let _machine = homelab_testkit::shared();
    let bin = bin_dir_with(&["pi-thermal"]);
    let textfile = tempfile::tempdir().unwrap();
    let out = collect(bin.path(), textfile.path(), &["pi-thermal"])
        .env("PI_THERMAL_ARGS", format!("--root {}", pi5().display()))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = reports(&out);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["tool"], "homelab-collect");
    assert_eq!(r[0]["kind"], "run");
    assert_eq!(r[0]["collector"], "pi-thermal");
    assert_eq!(r[0]["status"], "ok");
    assert_eq!(r[0]["exit_code"], 0);
    assert!(r[0]["duration_seconds"].as_f64().unwrap() >= 0.0);
    assert!(r[0]["ts"].as_str().unwrap().ends_with('Z'));
    let page = fs::read_to_string(textfile.path().join("pi-thermal.prom")).unwrap();
    assert_eq!(
        series(&page, "pi_load1"),
        Some(0.42),
        "PI_THERMAL_ARGS reached the tool"
    );

    // Explicit arguments win over PI_THERMAL_ARGS.
    let out = collect(
        bin.path(),
        textfile.path(),
        &["pi-thermal", "--root", "/nonexistent"],
    )
    .env("PI_THERMAL_ARGS", format!("--root {}", pi5().display()))
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert_eq!(reports(&out)[0]["status"], "failed");
}

#[test]
fn collect_never_overlaps_runs_of_one_tool() {
    let _machine = homelab_testkit::shared();
    let bin = tempfile::tempdir().unwrap();
    let textfile = tempfile::tempdir().unwrap();
    let started = textfile.path().join("started");
    fake_tool(
        bin.path(),
        "slowtool",
        &format!("touch {}; sleep 20", started.display()),
    );
    let mut first = collect(bin.path(), textfile.path(), &["slowtool"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "the first run to start", || {
        started.exists()
    });
    let out = collect(bin.path(), textfile.path(), &["slowtool"])
        .output()
        .unwrap();
    first.kill().unwrap();
    let _ = first.wait();
    assert_eq!(out.status.code(), Some(75));
    let r = reports(&out);
    assert_eq!(
        (r[0]["status"].as_str(), r[0]["collector"].as_str()),
        (Some("skipped"), Some("slowtool"))
    );
}

#[test]
fn collect_kills_a_run_at_its_time_limit() {
    let _machine = homelab_testkit::shared();
    let bin = tempfile::tempdir().unwrap();
    let textfile = tempfile::tempdir().unwrap();
    fake_tool(bin.path(), "hangs", "sleep 60");
    let t = std::time::Instant::now();
    let out = collect(bin.path(), textfile.path(), &["--timeout", "1s", "hangs"])
        .output()
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(75));
    let r = reports(&out);
    assert_eq!(r[0]["status"], "timed_out");
    assert_eq!(r[0]["error"], "killed after 1s");
}

#[test]
fn collect_removes_files_of_tools_that_are_gone_and_nothing_else() {
    let _machine = homelab_testkit::shared();
    let bin = bin_dir_with(&["pi-thermal"]);
    let textfile = tempfile::tempdir().unwrap();
    fs::write(textfile.path().join("ctr-stats.prom"), "old 1\n").unwrap();
    fs::write(textfile.path().join("pi-thermal.prom"), "old 1\n").unwrap();
    fs::write(textfile.path().join("someone-else.prom"), "theirs 1\n").unwrap();
    let out = collect(
        bin.path(),
        textfile.path(),
        &["pi-thermal", "--root", pi5().to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let r = reports(&out);
    assert_eq!(r[0]["kind"], "removed");
    assert!(r[0]["file"].as_str().unwrap().ends_with("/ctr-stats.prom"));
    assert!(!textfile.path().join("ctr-stats.prom").exists());
    assert!(textfile.path().join("someone-else.prom").exists());
    let page = fs::read_to_string(textfile.path().join("pi-thermal.prom")).unwrap();
    assert!(
        page.contains("pi_load1"),
        "pi-thermal's own file was rewritten, not removed"
    );
}

#[test]
fn collect_usage_and_missing_directory() {
    let _machine = homelab_testkit::shared();
    let bin = tempfile::tempdir().unwrap();
    let textfile = tempfile::tempdir().unwrap();
    let out = collect(bin.path(), textfile.path(), &[]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = collect(bin.path(), textfile.path(), &["../../bin/sh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let out = collect(bin.path(), &textfile.path().join("nope"), &["pi-thermal"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(73));
    let r = reports(&out);
    assert!(
        r[0]["error"].as_str().unwrap().contains("does not exist"),
        "{r:?}"
    );
    let out = collect(bin.path(), textfile.path(), &["no-such-tool"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert_eq!(reports(&out)[0]["error"], "no-such-tool: command not found");
}

/// Every regular file under `root` with what identifies its content and inode change.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    (m.ino(), m.ctime(), m.ctime_nsec()),
                );
            }
        }
    }
    out
}

fn install(dest: &Path, extra: &[&str]) -> Output {
    let out = Command::new(workspace().join("scripts/install"))
        .args([
            "--destdir",
            dest.to_str().unwrap(),
            "--bin-dir",
            homelab_e2e::bin_dir().to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/install {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn install_is_idempotent_and_uninstall_removes_what_it_installed() {
    let _machine = homelab_testkit::shared();
    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), &["--cron"]);
    let d = dest.path();
    for name in homelab_e2e::tool_names() {
        let bin = d.join("usr/local/bin").join(&name);
        assert_eq!(
            fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
            0o755,
            "{name}"
        );
        assert!(d.join(format!("usr/local/share/man/man1/{name}.1")).is_file());
        assert!(
            d.join(format!("usr/local/share/bash-completion/completions/{name}"))
                .is_file()
        );
    }
    assert!(d.join("usr/local/bin/homelab-collect").is_file());
    assert!(d.join("etc/cron.d/homelab-tools").is_file());
    let unit = fs::read_to_string(d.join("etc/systemd/system/pi-thermal.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/homelab-collect pi-thermal"),
        "{unit}"
    );
    assert!(d.join("etc/default/homelab-tools").is_file());

    // A changed settings file is the user's: never overwritten.
    fs::write(
        d.join("etc/default/homelab-tools"),
        "PI_THERMAL_ARGS=\"--warn-temp 70\"\n",
    )
    .unwrap();
    let before = snapshot(d);
    install(dest.path(), &["--cron"]);
    assert_eq!(snapshot(d), before, "a second install changed files");
    assert_eq!(
        fs::read_to_string(d.join("etc/default/homelab-tools")).unwrap(),
        "PI_THERMAL_ARGS=\"--warn-temp 70\"\n"
    );

    install(dest.path(), &["--uninstall"]);
    let left: Vec<PathBuf> = snapshot(d).into_keys().collect();
    assert_eq!(
        left,
        [PathBuf::from("etc/default/homelab-tools")],
        "only the settings stay"
    );
    install(dest.path(), &["--purge"]);
    assert!(snapshot(d).is_empty());
}

/// Runs `systemd-analyze verify` on unit files; its status and what it printed.
fn verify_units(units: &[PathBuf]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(units)
        .output()
        .expect("systemd-analyze is needed (Debian package systemd; scripts/test installs it)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn installed_units_pass_systemd_analyze_verify() {
    let _machine = homelab_testkit::shared();
    let dest = tempfile::tempdir().unwrap();
    install(dest.path(), &[]);
    let d = dest.path();
    let staged = d.join("usr/local/bin");
    // The installed units name /usr/local/bin; copies point at the staged binaries,
    // since verify checks that every ExecStart= command exists and is executable.
    let units_dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for e in fs::read_dir(d.join("etc/systemd/system")).unwrap() {
        let p = e.unwrap().path();
        let text = fs::read_to_string(&p)
            .unwrap()
            .replace("/usr/local/bin/", &format!("{}/", staged.display()));
        let copy = units_dir.path().join(p.file_name().unwrap());
        fs::write(&copy, text).unwrap();
        units.push(copy);
    }
    assert!(units.len() >= 13, "{units:?}");
    let (ok, report) = verify_units(&units);
    assert!(
        ok && report.trim().is_empty(),
        "systemd-analyze verify:\n{report}"
    );

    // Every man page the units point to is installed, or belongs to a tool not here yet.
    let man = regex::Regex::new(r"man:([a-z-]+)\(([0-9])\)").unwrap();
    for u in &units {
        for c in man.captures_iter(&fs::read_to_string(u).unwrap()) {
            let page = d.join(format!("usr/local/share/man/man{}/{}.{}", &c[2], &c[1], &c[2]));
            assert!(page.is_file(), "{}: {} is not installed", u.display(), &c[0]);
        }
    }

    // The check can fail: a bad calendar spec, and an unknown key (a warning).
    let timer = units_dir.path().join("backup-snap.timer");
    let good = fs::read_to_string(&timer).unwrap();
    fs::write(
        &timer,
        good.replace("OnCalendar=*-*-* 03:30:00", "OnCalendar=tomorrow-ish"),
    )
    .unwrap();
    let (ok, report) = verify_units(std::slice::from_ref(&timer));
    assert!(!ok || !report.trim().is_empty(), "a bad OnCalendar passed");
    fs::write(&timer, good.replace("[Timer]", "[Timer]\nOnCalender=daily")).unwrap();
    let (_, report) = verify_units(&[timer]);
    assert!(report.contains("OnCalender"), "an unknown key passed: {report}");
}

/// One time field of a crontab line, checked against crontab(5): `*`, numbers or
/// names in range, ranges, lists and steps.
fn cron_field(field: &str, lo: u32, hi: u32, names: &[&str]) -> Result<(), String> {
    let value = |v: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            return Ok(i as u32 + lo);
        }
        let n: u32 = v.parse().map_err(|_| format!("{v:?} is not a number"))?;
        if n < lo || n > hi {
            return Err(format!("{n} is outside {lo}-{hi}"));
        }
        Ok(n)
    };
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(s) = step {
            let s: u32 = s.parse().map_err(|_| format!("step {s:?}"))?;
            if s == 0 || s > hi {
                return Err(format!("step {s}"));
            }
        }
        match range.split_once('-') {
            _ if range == "*" => {}
            Some((a, b)) => {
                if value(a)? > value(b)? {
                    return Err(format!("range {range}"));
                }
            }
            None if step.is_some() => return Err(format!("a step needs * or a range: {item}")),
            None => {
                value(range)?;
            }
        }
    }
    Ok(())
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A /etc/cron.d line: an environment assignment, or five time fields (or an @
/// nickname), a user and a command, whose shell syntax `sh -n` checks.
fn cron_line(line: &str) -> Result<Option<(String, String)>, String> {
    let l = line.trim();
    if l.is_empty() || l.starts_with('#') {
        return Ok(None);
    }
    if let Some((name, _)) = l.split_once('=')
        && !name.contains(char::is_whitespace)
    {
        return Ok(None);
    }
    let words: Vec<&str> = l.split_whitespace().collect();
    let (time_fields, rest) = if words[0].starts_with('@') {
        let nicknames = [
            "@reboot",
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
        ];
        if !nicknames.contains(&words[0]) {
            return Err(format!("unknown {}", words[0]));
        }
        (1, &words[1..])
    } else {
        if words.len() < 7 {
            return Err("five time fields, a user and a command".into());
        }
        cron_field(words[0], 0, 59, &[])?;
        cron_field(words[1], 0, 23, &[])?;
        cron_field(words[2], 1, 31, &[])?;
        cron_field(words[3], 1, 12, MONTHS)?;
        cron_field(words[4], 0, 7, DAYS)?;
        (5, &words[5..])
    };
    let user = rest.first().ok_or("no user")?.to_string();
    if !user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!("user {user:?}"));
    }
    // The command is the rest of the line as written (cron hands it to /bin/sh).
    let mut cmd = l;
    for _ in 0..=time_fields {
        cmd = cmd
            .trim_start()
            .split_once(char::is_whitespace)
            .ok_or("no command")?
            .1;
    }
    let cmd = cmd.trim().to_string();
    if cmd.is_empty() {
        return Err("no command".into());
    }
    if cmd.contains('%') {
        return Err("an unescaped % ends the command in cron".into());
    }
    let sh = Command::new("sh").args(["-n", "-c", &cmd]).output().unwrap();
    if !sh.status.success() {
        return Err(format!("sh -n: {}", String::from_utf8_lossy(&sh.stderr)));
    }
    Ok(Some((user, cmd)))
}

#[test]
fn the_crontab_is_valid_and_runs_what_the_timers_run() {
    let _machine = homelab_testkit::shared();
    let cron = fs::read_to_string(workspace().join("scripts/cron/homelab-tools")).unwrap();
    let settings = fs::read_to_string(workspace().join("scripts/homelab-tools.env")).unwrap();
    let mut commands = Vec::new();
    for (i, line) in cron.lines().enumerate() {
        match cron_line(line) {
            Ok(Some((user, cmd))) => {
                assert_eq!(user, "root", "line {}", i + 1);
                commands.push(cmd);
            }
            Ok(None) => {}
            Err(e) => panic!("scripts/cron/homelab-tools line {}: {e}: {line}", i + 1),
        }
    }
    // Every variable a command uses is set in /etc/default/homelab-tools.
    let var = regex::Regex::new(r"\$\{?([A-Z_][A-Z0-9_]*)").unwrap();
    for cmd in &commands {
        for c in var.captures_iter(cmd) {
            assert!(
                settings.lines().any(|l| l.starts_with(&format!("{}=", &c[1]))),
                "{} is not in homelab-tools.env: {cmd}",
                &c[1]
            );
        }
    }
    // Each timer's job has a cron line.
    let all = commands.join("\n");
    for e in fs::read_dir(workspace().join("scripts/systemd")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "timer") {
            let job = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(all.contains(&job), "no cron line runs {job}");
        }
    }
    // The parser rejects what cron rejects.
    for bad in [
        "61 * * * * root true",
        "* 24 * * * root true",
        "* * 0 * * root true",
        "* * * 13 * root true",
        "*/0 * * * * root true",
        "* * * * root true",
        "* * * * * root echo 50%",
        "* * * * * root if true; echo",
        "@sometimes root true",
    ] {
        assert!(cron_line(bad).is_err(), "accepted {bad:?}");
    }
    assert!(
        cron_line("*/5 1-5 * jan-mar mon,fri root true")
            .unwrap()
            .is_some()
    );
}

#[test]
fn collect_takes_durations_as_systemd_writes_them_and_refuses_others() {
    let _machine = homelab_testkit::shared();
    let bin = tempfile::tempdir().unwrap();
    let textfile = tempfile::tempdir().unwrap();
    fake_tool(bin.path(), "quick", "exit 0");
    for d in ["2min", "2m", "1h 30min", "1.5h", "90", "250ms", "1w"] {
        let out = collect(bin.path(), textfile.path(), &["--timeout", d, "quick"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "--timeout {d}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(reports(&out)[0]["status"], "ok", "--timeout {d}");
    }
    for d in ["2fortnights", "", "0", "0s", "-5s", "5 x", "1h garbage", "1e3s"] {
        let out = collect(bin.path(), textfile.path(), &["--timeout", d, "quick"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "--timeout {d:?}: {err}");
        assert!(
            err.starts_with(&format!("homelab-collect: --timeout {d} is not a duration: "))
                && err.contains("2min"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "the tool never ran");
    }
    let out = collect(bin.path(), textfile.path(), &["quick"])
        .env("HOMELAB_COLLECT_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOMELAB_COLLECT_TIMEOUT soon"));
}

/// systemd's EnvironmentFile= syntax as homelab-tools.env uses it: `KEY="value"` or
/// `KEY=value` lines, `#` comments.
fn environment_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

/// An ExecStart= line split and expanded as systemd.service(5) "Command lines" says:
/// quotes group words; `$VAR` as a word of its own becomes the value split at
/// whitespace (zero or more words); `${VAR}` becomes the value as one word; `$$` is a
/// dollar; the prefixes `-@:+!` before the program are dropped.
fn systemd_argv(line: &str, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut words: Vec<(String, bool)> = Vec::new(); // (text, quoted)
    let mut cur: Option<(String, bool)> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '"' | '\'' => {
                let w = cur.get_or_insert((String::new(), true));
                w.1 = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    w.0.push(q);
                }
            }
            '\\' => {
                let w = cur.get_or_insert((String::new(), false));
                if let Some(n) = chars.next() {
                    w.0.push(n);
                }
            }
            _ => cur.get_or_insert((String::new(), false)).0.push(c),
        }
    }
    words.extend(cur);
    let var = regex::Regex::new(r"^\$([A-Za-z_][A-Za-z0-9_]*)$").unwrap();
    let braced = regex::Regex::new(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}").unwrap();
    let mut argv = Vec::new();
    for (i, (w, quoted)) in words.into_iter().enumerate() {
        let w = if i == 0 {
            w.trim_start_matches(['-', '@', ':', '+', '!']).to_string()
        } else {
            w
        };
        if let (false, Some(c)) = (quoted, var.captures(&w)) {
            let v = env.get(&c[1]).cloned().unwrap_or_default();
            argv.extend(v.split_whitespace().map(str::to_string));
            continue;
        }
        let w = braced.replace_all(&w, |c: &regex::Captures| {
            env.get(&c[1]).cloned().unwrap_or_default()
        });
        argv.push(w.replace("$$", "$"));
    }
    argv
}

#[test]
fn systemd_command_lines_expand_as_systemd_does() {
    let env = BTreeMap::from([
        ("A".to_string(), "x  y".to_string()),
        ("E".to_string(), String::new()),
    ]);
    assert_eq!(
        systemd_argv("-/usr/bin/t $A ${A} \"q $A\" $E --p=${A}x $$", &env),
        ["/usr/bin/t", "x", "y", "x  y", "q $A", "--p=x  yx", "$"]
    );
}

/// Fake tools that log their argument vectors (one line each, arguments separated by
/// \x1f) to $FAKE_LOG and succeed.
fn fake_tools(dir: &Path, names: &[&str]) {
    for n in names {
        fake_tool(
            dir,
            n,
            &format!(
                "{{ printf '%s' {n}; for a in \"$@\"; do printf '\\037%s' \"$a\"; done; printf '\\n'; }} >>\"$FAKE_LOG\""
            ),
        );
    }
}

const RUN_BY_UNITS: &[&str] = &[
    "pi-thermal",
    "ctr-stats",
    "cpu-pin",
    "route-check",
    "backup-snap",
    "log-tail-ship",
    "homelab-hygiene",
    "homelab-offsite",
];

fn logged(log: &Path) -> Vec<Vec<String>> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\x1f').map(str::to_string).collect())
        .collect()
}

#[test]
fn every_unit_and_cron_line_runs_as_written() {
    let _machine = homelab_testkit::shared();
    let settings_text = fs::read_to_string(workspace().join("scripts/homelab-tools.env")).unwrap();
    let settings = environment_file(&settings_text);
    let bin = tempfile::tempdir().unwrap();
    let textfile = tempfile::tempdir().unwrap();
    let log = textfile.path().join("calls.log");
    fake_tools(bin.path(), RUN_BY_UNITS);
    std::os::unix::fs::symlink(
        workspace().join("scripts/collect"),
        bin.path().join("homelab-collect"),
    )
    .unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let collect_args = |argv: &[String]| -> (String, Vec<String>) {
        // homelab-collect's own options, then the tool and its arguments.
        let mut i = 1;
        while i < argv.len() && argv[i].starts_with("--") {
            i += 2;
        }
        (argv[i].clone(), argv[i + 1..].to_vec())
    };
    let expected_args = |tool: &str, given: Vec<String>| -> Vec<String> {
        if !given.is_empty() {
            return given;
        }
        let var = format!("{}_ARGS", tool.to_ascii_uppercase().replace('-', "_"));
        settings
            .get(&var)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };

    // systemd: every ExecStart= of every service, with the EnvironmentFile= defaults.
    let mut ran = 0;
    for e in fs::read_dir(workspace().join("scripts/systemd")).unwrap() {
        let unit = e.unwrap().path();
        if unit.extension().is_none_or(|x| x != "service") {
            continue;
        }
        let text = fs::read_to_string(&unit).unwrap();
        let mut env = BTreeMap::new();
        for l in text.lines() {
            if let Some(f) = l.strip_prefix("EnvironmentFile=") {
                assert_eq!(
                    f.trim_start_matches('-'),
                    "/etc/default/homelab-tools",
                    "{}",
                    unit.display()
                );
                env.extend(settings.clone());
            }
            if let Some(v) = l.strip_prefix("Environment=") {
                for w in systemd_argv(v, &BTreeMap::new()) {
                    if let Some((k, v)) = w.split_once('=') {
                        env.insert(k.to_string(), v.to_string());
                    }
                }
            }
        }
        for l in text.lines() {
            let Some(cmd) = l.strip_prefix("ExecStart=") else {
                continue;
            };
            let argv = systemd_argv(cmd, &env);
            let program = Path::new(&argv[0])
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let _ = fs::remove_file(&log);
            let out = Command::new(bin.path().join(&program))
                .args(&argv[1..])
                .env_clear()
                .envs(&env)
                .env("PATH", &path)
                .env("HOMELAB_TEXTFILE_DIR", textfile.path())
                .env("HOMELAB_LOCK_DIR", textfile.path().join("locks"))
                .env("FAKE_LOG", &log)
                .output()
                .unwrap();
            let what = format!("{}: ExecStart={cmd}", unit.display());
            assert_eq!(
                out.status.code(),
                Some(0),
                "{what}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let calls = logged(&log);
            if program == "homelab-collect" {
                assert_eq!(reports(&out)[0]["status"], "ok", "{what}");
                let (tool, given) = collect_args(&argv);
                let mut want = vec![tool.clone()];
                want.extend(expected_args(&tool, given));
                assert_eq!(calls, [want], "{what}");
            } else {
                assert_eq!(
                    calls,
                    [argv.clone()].map(|mut a| {
                        a[0] = program.clone();
                        a
                    }),
                    "{what}"
                );
            }
            ran += 1;
        }
    }
    assert!(ran >= 9, "{ran} ExecStart lines");

    // cron: every line, with /etc/default/homelab-tools read from the settings file.
    let env_copy = textfile.path().join("homelab-tools.env");
    fs::write(
        &env_copy,
        settings_text.replace(
            "HOMELAB_TEXTFILE_DIR=\"/var/lib/prometheus/node-exporter\"",
            &format!("HOMELAB_TEXTFILE_DIR=\"{}\"", textfile.path().display()),
        ),
    )
    .unwrap();
    let cron = fs::read_to_string(workspace().join("scripts/cron/homelab-tools")).unwrap();
    let mut lines = 0;
    for line in cron.lines() {
        let Some((_, cmd)) = cron_line(line).unwrap() else {
            continue;
        };
        let cmd = cmd
            .replace("/etc/default/homelab-tools", &env_copy.display().to_string())
            .replace("sleep 30; ", "");
        let _ = fs::remove_file(&log);
        let out = Command::new("sh")
            .args(["-c", &cmd])
            .env_clear()
            .env("PATH", &path)
            .env("HOMELAB_LOCK_DIR", textfile.path().join("locks"))
            .env("FAKE_LOG", &log)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "cron: {line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!logged(&log).is_empty(), "cron: {line}: no tool ran");
        lines += 1;
    }
    assert!(lines >= 8, "{lines} cron lines");
}
