//! What plugin processes write to stderr: passed through to the suite's own stderr, as
//! before, and kept in one process-wide log so that cases can check it (a plugin process
//! must not log the blob any more than a Rust plugin may; `security::blob_not_in_logs`).
//!
//! The log is shared by every plugin process of the run. A case finds its own lines by a
//! [`mark`] taken before it starts its plugins, and by content: the secrets that cases
//! look for are unique to each case run, so lines of other cases running meanwhile
//! cannot make one fail.

use std::{
    collections::VecDeque,
    io::{self, BufRead, Write as _},
    process::ChildStderr,
    sync::{Arc, Condvar, Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use super::lock;

/// Lines kept, oldest dropped first: enough for every case of a run to find its own lines
/// (a case checks right after its plugins exit), bounded for plugins that log a lot.
const KEPT_LINES: usize = 100_000;
/// A longer line is kept cut to this many bytes (whole, it still goes to the suite's
/// stderr): a secret in it is at its start or the cut keeps enough of it to be found.
const KEPT_LINE_BYTES: usize = 64 * 1024;

struct Log {
    /// Lines appended since the run started, including those dropped from `lines`.
    appended: u64,
    lines: VecDeque<String>,
}

static LOG: Mutex<Log> = Mutex::new(Log {
    appended: 0,
    lines: VecDeque::new(),
});

fn log() -> std::sync::MutexGuard<'static, Log> {
    lock(&LOG)
}

/// A position in the log: [`since`] returns what was appended after it.
pub fn mark() -> u64 {
    log().appended
}

/// The lines appended after `mark` that are still kept, joined with newlines.
pub fn since(mark: u64) -> String {
    let log = log();
    let dropped = log.appended - log.lines.len() as u64;
    let skip = usize::try_from(mark.saturating_sub(dropped)).unwrap_or(usize::MAX);
    let mut text = String::new();
    for line in log.lines.iter().skip(skip) {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The reader of one process's stderr: [`Reader::finish`] waits until it has read to the
/// end of the pipe.
pub struct Reader {
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl Reader {
    /// Reads `stderr` of plugin `pid` on a thread of its own until the pipe closes.
    pub fn start(pid: u32, stderr: ChildStderr) -> io::Result<Reader> {
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&done);
        thread::Builder::new()
            .name(format!("plugin-{pid}-stderr"))
            .spawn(move || {
                let mut stderr = io::BufReader::new(stderr);
                let mut line = Vec::new();
                // A read error ends the pipe as EOF does: nothing more can come from it.
                while stderr.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                    let _ = io::stderr().lock().write_all(&line);
                    let text = String::from_utf8_lossy(&line[..line.len().min(KEPT_LINE_BYTES)]);
                    let mut log = log();
                    log.lines
                        .push_back(text.trim_end_matches(['\n', '\r']).to_owned());
                    log.appended += 1;
                    if log.lines.len() > KEPT_LINES {
                        log.lines.pop_front();
                    }
                    drop(log);
                    line.clear();
                }
                let (finished, wake) = &*signal;
                *lock(finished) = true;
                wake.notify_all();
            })?;
        Ok(Reader { done })
    }

    /// Waits up to `within` for the reader to reach the end of the pipe, which comes once
    /// the process (and any child it left holding the pipe) has exited. Returns whether it
    /// did; a reader still blocked is left to finish on its own.
    pub fn finish(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let (finished, wake) = &*self.done;
        let mut finished = lock(finished);
        while !*finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            finished = wake
                .wait_timeout(finished, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn lines_after_a_mark_are_returned_once_the_process_exits() {
        let before = mark();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "echo first >&2; echo second >&2"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let stderr = child.stderr.take().expect("piped");
        let reader = Reader::start(child.id(), stderr).expect("reader");
        child.wait().expect("wait");
        assert!(reader.finish(Duration::from_secs(5)));
        let text = since(before);
        assert!(
            text.contains("first\n") && text.contains("second\n"),
            "{text:?}"
        );
        assert!(!since(mark()).contains("first"));
    }
}
