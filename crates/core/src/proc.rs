//! `/proc/PID/stat`, parsed one way for every tool (cpu-pin's process tree,
//! backup-snap's lock holder).

/// `PF_KTHREAD` in field 9 (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of `/proc/PID/stat` the tools read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z`, ...
    pub state: char,
    /// Field 4.
    pub ppid: u32,
    /// Field 9, the kernel's `PF_*` flags.
    pub flags: u64,
    /// Field 22, the start time in clock ticks after boot (absent in a short line).
    pub start_ticks: Option<u64>,
}

impl Stat {
    pub fn is_kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }

    /// A zombie (killed, not yet reaped) or dead process: it holds nothing.
    pub fn is_gone(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses `/proc/PID/stat`. The name (field 2) may hold spaces and parentheses, so
/// the fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    let mut state = f.next()?.chars();
    let (Some(state), None) = (state.next(), state.next()) else {
        return None;
    };
    let ppid = f.next()?.parse().ok()?;
    // pgrp, session, tty_nr, tpgid, then flags.
    let flags = f.nth(4)?.parse().ok()?;
    // minflt, cminflt, majflt, cmajflt, utime, stime, cutime, cstime, priority,
    // nice, num_threads, itrealvalue, then starttime.
    let start_ticks = f.nth(12).and_then(|t| t.parse().ok());
    Some(Stat {
        state,
        ppid,
        flags,
        start_ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_count_from_the_last_parenthesis() {
        let line = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                state: 'S',
                ppid: 1,
                flags: 4194560,
                start_ticks: Some(98765),
            })
        );
        let kthread = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0";
        assert!(parse_stat(kthread).unwrap().is_kernel_thread());
        assert!(parse_stat(&line.replace(") S ", ") Z ")).unwrap().is_gone());
        assert_eq!(parse_stat("9 (x) S 1 9 9 0 -1 0").unwrap().start_ticks, None);
        for bad in [
            "",
            "garbage",
            "1 (x) S",
            "1 (x) S one 2 3 4 5 6",
            "1 (x) SS 1 1 1 0 -1 0",
        ] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }
}
