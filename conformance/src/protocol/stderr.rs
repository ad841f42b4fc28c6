//! What plugin processes write to stderr: passed through to the suite's own stderr, as
//! before, and kept for the case that started them, so that it can check it (a plugin
//! process must not log the blob any more than a Rust plugin may;
//! `security::blob_not_in_logs`).
//!
//! A case sees the lines of exactly the processes it started inside [`collect`], on the
//! thread that runs it: never those of other cases running at the same time. Cases of
//! different runs can share a secret (the same seed gives the same blob), so a shared log
//! filtered by content would blame one plugin for what another wrote.

use std::{
    cell::RefCell,
    io::{self, BufRead, Write as _},
    process::ChildStderr,
    sync::{Arc, Condvar, Mutex, PoisonError},
    thread,
    time::{Duration, Instant},
};

use super::lock;

/// Lines kept per collection, later ones dropped: bounded for plugins that log a lot.
const KEPT_LINES: usize = 100_000;
/// A longer line is kept cut to this many bytes (whole, it still goes to the suite's
/// stderr): a secret in it is at its start or the cut keeps enough of it to be found.
const KEPT_LINE_BYTES: usize = 64 * 1024;

/// The stderr lines of the processes started during one [`collect`].
#[derive(Clone, Default)]
pub struct Collected(Arc<Mutex<Vec<String>>>);

impl Collected {
    /// The lines read so far, joined with newlines. A process's lines are all here once
    /// its reader finished, which dropping its last handle waits for.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for line in lock(&self.0).iter() {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    fn push(&self, line: String) {
        let mut lines = lock(&self.0);
        if lines.len() < KEPT_LINES {
            lines.push(line);
        }
    }
}

thread_local! {
    /// Where the stderr of processes started on this thread goes, inside [`collect`].
    static COLLECTING: RefCell<Option<Collected>> = const { RefCell::new(None) };
}

/// Runs `f`, collecting the stderr of every plugin process started on this thread meanwhile
/// (for as long as the process runs). Nested calls collect into their own set only.
pub fn collect<T>(f: impl FnOnce() -> T) -> (T, Collected) {
    /// Puts back the outer collection, also when `f` panics.
    struct Restore(Option<Collected>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            COLLECTING.with(|c| *c.borrow_mut() = outer);
        }
    }
    let collected = Collected::default();
    let _restore = Restore(COLLECTING.with(|c| c.replace(Some(collected.clone()))));
    (f(), collected)
}

/// The reader of one process's stderr: [`Reader::finish`] waits until it has read to the
/// end of the pipe.
pub struct Reader {
    done: Arc<(Mutex<bool>, Condvar)>,
}

impl Reader {
    /// Reads `stderr` of plugin `pid` on a thread of its own until the pipe closes, keeping
    /// its lines for the [`collect`] running on this thread, if any.
    pub fn start(pid: u32, stderr: ChildStderr) -> io::Result<Reader> {
        let collected = COLLECTING.with(|c| c.borrow().clone());
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
                    if let Some(collected) = &collected {
                        let text =
                            String::from_utf8_lossy(&line[..line.len().min(KEPT_LINE_BYTES)]);
                        collected.push(text.trim_end_matches(['\n', '\r']).to_owned());
                    }
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

    /// Starts `sh -c script` with its stderr read, and waits until all of it is read.
    fn run(script: &str) {
        let mut child = std::process::Command::new("sh")
            .args(["-c", script])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let stderr = child.stderr.take().expect("piped");
        let reader = Reader::start(child.id(), stderr).expect("reader");
        child.wait().expect("wait");
        assert!(reader.finish(Duration::from_secs(5)));
    }

    #[test]
    fn a_collection_holds_the_lines_of_the_processes_started_inside_it() {
        let ((), collected) = collect(|| run("echo first >&2; echo second >&2"));
        assert_eq!(collected.text(), "first\nsecond\n");
    }

    #[test]
    fn processes_started_outside_or_on_other_threads_are_not_collected() {
        run("echo before >&2");
        let ((), collected) = collect(|| {
            thread::spawn(|| run("echo elsewhere >&2"))
                .join()
                .expect("thread");
            let ((), inner) = collect(|| run("echo nested >&2"));
            assert_eq!(inner.text(), "nested\n");
            run("echo mine >&2");
        });
        assert_eq!(collected.text(), "mine\n");
    }
}
