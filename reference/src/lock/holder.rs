//! Who holds a lock file, and whether that process still runs.
//!
//! Every SDK writes its pid first in the lock file: Python `msal-extensions` and this crate
//! write `"<pid> <program>"`, MSAL Node writes `"<pid>"`, MSAL.NET writes
//! `"<pid> <process name>"` (possibly after a UTF-8 byte-order mark). This module reads
//! that pid and judges whether the process can still be the holder. It never decides on
//! its own that a lock file is stale: the lock combines its answer with the OS lock
//! and the file's age.

use std::{fmt, time::SystemTime};

/// The pid written at the start of a lock file, if there is one.
///
/// - Leading whitespace and a UTF-8 byte-order mark are skipped (MSAL.NET's writer may
///   emit one).
/// - The pid is the run of ASCII digits that follows, ended by whitespace or the end of
///   the content; anything after it (the program name, a newline) is ignored.
/// - Empty content, a pid of 0, a pid that does not fit in `u32`, or anything else:
///   `None`, which callers treat as "holder unknown".
pub fn parse_pid(content: &[u8]) -> Option<u32> {
    let content = content.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(content);
    let start = content.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = &content[start..];
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let digits = &rest[..end];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pid: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (pid != 0).then_some(pid)
}

/// What is known about the process whose pid a lock file names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Liveness {
    /// A process with this pid runs (or the platform cannot tell, see `liveness`); it
    /// may be the holder.
    Alive,
    /// No process with this pid runs, or only a zombie: it holds nothing.
    Dead,
    /// A process with this pid runs, but it started after the lock file was last written,
    /// so it is a later process that was given the same pid, not the holder.
    Reused,
}

impl Liveness {
    /// Whether the named process may still hold the lock.
    pub fn may_hold(self) -> bool {
        matches!(self, Liveness::Alive)
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Liveness::Alive => "alive",
            Liveness::Dead => "not running",
            Liveness::Reused => "not running; its pid now belongs to a later process",
        })
    }
}

/// Whether process `pid` may be the process that wrote a lock file last modified at
/// `written`.
///
/// - Unix: `kill(pid, 0)`. `ESRCH`: [`Liveness::Dead`]. Success or `EPERM` (a process of
///   another user): the pid is in use. On Linux two more checks follow, from
///   `/proc/<pid>/stat`: a zombie (state `Z` or `X`) is [`Liveness::Dead`], since it can
///   neither hold nor release anything; and a process whose start time (field 22, plus
///   `btime` from `/proc/stat`) is more than a second after `written` cannot have written
///   the file, so the pid was reused: [`Liveness::Reused`]. The second of slack covers the
///   whole-second resolution of `btime`. When `/proc` cannot be read the answer stays
///   [`Liveness::Alive`]. Other Unixes have no start-time check.
/// - Elsewhere (Windows): always [`Liveness::Alive`]. Only std is used there, and std
///   cannot ask whether a pid runs, so a parseable pid blocks until its holder removes the
///   file; our own holders cannot leave such files behind on Windows, see the module
///   documentation of [`crate::lock`].
/// - Pids are those of this machine's pid namespace; a holder in another pid namespace
///   sharing the directory (a container) can be judged wrongly. Such setups need a
///   holder that takes the OS lock (this crate, portalocker, .NET), which is checked first.
pub fn liveness(pid: u32, written: SystemTime) -> Liveness {
    imp::liveness(pid, written)
}

#[cfg(unix)]
mod imp {
    use super::Liveness;
    use std::time::SystemTime;

    pub(super) fn liveness(pid: u32, written: SystemTime) -> Liveness {
        // kill(0, ..) and negative pids address process groups: never send those.
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            return Liveness::Dead;
        };
        if raw <= 0 {
            return Liveness::Dead;
        }
        // SAFETY: signal 0 performs only the existence and permission checks.
        let rc = unsafe { libc::kill(raw, 0) };
        if rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return Liveness::Dead;
        }
        linux_refine(pid, written)
    }

    #[cfg(target_os = "linux")]
    fn linux_refine(pid: u32, written: SystemTime) -> Liveness {
        use std::time::Duration;
        let Some(stat) = super::proc_stat::read(pid) else {
            return Liveness::Alive;
        };
        if stat.zombie {
            return Liveness::Dead;
        }
        match stat.started {
            Some(started) if started > written + Duration::from_secs(1) => Liveness::Reused,
            _ => Liveness::Alive,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn linux_refine(_pid: u32, _written: SystemTime) -> Liveness {
        Liveness::Alive
    }
}

#[cfg(not(unix))]
mod imp {
    use super::Liveness;
    use std::time::SystemTime;

    pub(super) fn liveness(_pid: u32, _written: SystemTime) -> Liveness {
        Liveness::Alive
    }
}

/// The two facts read from `/proc/<pid>/stat`.
#[cfg(target_os = "linux")]
mod proc_stat {
    use std::time::{Duration, SystemTime};

    pub(super) struct ProcStat {
        pub(super) zombie: bool,
        /// Wall-clock start time; `None` when it cannot be computed.
        pub(super) started: Option<SystemTime>,
    }

    pub(super) fn read(pid: u32) -> Option<ProcStat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse(&text, boot_time(), clock_ticks())
    }

    /// Parses a `/proc/<pid>/stat` line. The command name (field 2) is in parentheses and
    /// may itself contain spaces and parentheses, so fields are counted after the last
    /// `)`: state is field 3, start time (clock ticks after boot) field 22.
    pub(super) fn parse(
        text: &str,
        boot: Option<SystemTime>,
        ticks: Option<u64>,
    ) -> Option<ProcStat> {
        let after = &text[text.rfind(')')? + 1..];
        let mut fields = after.split_ascii_whitespace();
        let state = fields.next()?;
        let zombie = state == "Z" || state == "X";
        // Fields 4..=21 come before the start time: skip 18 of them.
        let start_ticks: Option<u64> = fields.nth(18).and_then(|f| f.parse().ok());
        let started = match (boot, ticks, start_ticks) {
            (Some(boot), Some(ticks), Some(start)) if ticks > 0 => {
                let secs = start / ticks;
                let nanos = (start % ticks) * 1_000_000_000 / ticks;
                Some(boot + Duration::from_secs(secs) + Duration::from_nanos(nanos))
            }
            _ => None,
        };
        Some(ProcStat { zombie, started })
    }

    /// `btime` of `/proc/stat`: the boot time in whole seconds since the epoch.
    fn boot_time() -> Option<SystemTime> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let secs: u64 = text
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn clock_ticks() -> Option<u64> {
        // SAFETY: sysconf reads a constant; no memory is passed.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        u64::try_from(ticks).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_formats_of_every_sdk() {
        assert_eq!(parse_pid(b"1234 /usr/bin/python3"), Some(1234));
        assert_eq!(parse_pid(b"1234"), Some(1234));
        assert_eq!(parse_pid(b"\xEF\xBB\xBF77 dotnet\n"), Some(77));
        assert_eq!(parse_pid(b"  42\n\n\n"), Some(42));
        assert_eq!(parse_pid(b"42 x\n"), Some(42));
    }

    #[test]
    fn rejects_what_is_not_a_pid() {
        for bad in [
            &b""[..],
            b"   ",
            b"\n",
            b"0 x",
            b"-5 x",
            b"12a x",
            // `str::parse` would take the sign; no SDK writes one.
            b"+12 x",
            b"x 12",
            b"99999999999 x",
        ] {
            assert_eq!(parse_pid(bad), None, "{bad:?}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn this_process_is_alive_and_an_unused_pid_is_dead() {
        let now = SystemTime::now();
        assert_eq!(liveness(std::process::id(), now), Liveness::Alive);
        // Above the largest pid Linux hands out (4194304), so never in use.
        assert_eq!(liveness(4_194_305 + 7, now), Liveness::Dead);
        assert_eq!(liveness(u32::MAX, now), Liveness::Dead);
        // The failed `kill` above left ESRCH in errno, which a successful call does not
        // clear: only a failing call's errno may count.
        assert_eq!(liveness(std::process::id(), now), Liveness::Alive);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_process_started_after_the_file_was_written_is_a_reused_pid() {
        let long_ago = SystemTime::now() - std::time::Duration::from_secs(3600 * 24 * 365 * 30);
        assert_eq!(liveness(std::process::id(), long_ago), Liveness::Reused);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn proc_stat_lines_with_odd_command_names_parse() {
        use std::time::Duration;
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let line = "123 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 250 20 21";
        let stat = proc_stat::parse(line, Some(boot), Some(100)).expect("parses");
        assert!(!stat.zombie);
        assert_eq!(stat.started, Some(boot + Duration::from_millis(2500)));
        // A clock of 0 ticks a second (which sysconf never answers) gives no start time
        // rather than a division by zero.
        let unknown = proc_stat::parse(line, Some(boot), Some(0)).expect("parses");
        assert_eq!(unknown.started, None);
        let zombie = "9 (x) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 250";
        assert!(proc_stat::parse(zombie, None, None).expect("parses").zombie);
    }
}
