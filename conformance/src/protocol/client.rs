//! The suite's side of the protocol: a plugin process seen as a `CachePersistence`.

use std::{
    fmt,
    io::{self, Write},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError},
    },
    thread,
    time::{Duration, Instant},
};

use identity_cache_persistence::{
    CachePersistence, ChangeToken, Description, Error, ErrorKind, HeldLock, LockGuard, Result,
};

use crate::factory::{Namespace, Worker};

use super::{
    lines::{LineRead, read_line},
    message::{
        HelloInfo, MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request, WireNamespace, parse_reply,
        parse_response, quote_line, truncate,
    },
    stderr,
};

/// How the suite talks to a plugin process.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long any request may take before the plugin counts as hanging, on top of the
    /// wait a `lock` request allows. A hanging plugin is a protocol violation and is killed.
    pub request_timeout: Duration,
    /// How long dropping the last handle waits for the process to exit after its stdin is
    /// closed, before killing it.
    pub exit_grace: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            // Generous: a 16 MiB save with fsync on a busy 2-core CI machine takes seconds.
            request_timeout: Duration::from_secs(20),
            exit_grace: Duration::from_secs(1),
        }
    }
}

/// A plugin process speaking protocol 1, usable wherever a [`CachePersistence`] is.
///
/// Contract:
/// - [`spawn`](ProcessPlugin::spawn) starts the command with piped stdin and stdout
///   (stderr is passed through to the suite's stderr, and kept for the cases that check
///   what a plugin logs: [`super::stderr`]), in a process group of its own on Unix so
///   that [`kill`](ProcessPlugin::kill) also reaches processes it started (`sh -c` lines),
///   and completes the `hello` handshake before returning.
/// - Each trait method is one request and one answer. Plugin errors come back with the
///   kind the plugin sent; `not_supported` stays [`ErrorKind::NotSupported`].
/// - Anything else the process does (ends its output, writes a line that is not a valid
///   answer to the request, answers with another id, or stays silent past the timeout) is
///   a protocol violation: an error of kind [`ErrorKind::Other`] that quotes the offending
///   line (truncated, long base64 runs replaced by their length), after which the process
///   is killed and every later request fails with the same message.
/// - Safe to share between threads; requests to one process are serialised.
/// - [`lock`](CachePersistence::lock) returns a guard whose release sends `unlock`.
/// - Dropping the last handle (guards keep the process alive) closes stdin, gives the
///   process [`ClientOptions::exit_grace`] to exit, then kills and reaps it.
/// - Blob bytes never appear in `Debug` output or error messages.
#[derive(Clone)]
pub struct ProcessPlugin {
    inner: Arc<Inner>,
}

struct Inner {
    /// The command, for messages.
    label: String,
    pid: u32,
    info: HelloInfo,
    options: ClientOptions,
    conn: Mutex<Conn>,
    child: Mutex<ChildState>,
    /// Set by `kill`, so that the failures it causes are not blamed on the plugin.
    killed: AtomicBool,
    stderr: stderr::Reader,
}

struct Conn {
    /// `None` once closed.
    stdin: Option<ChildStdin>,
    lines: Receiver<LineRead>,
    next_id: u64,
    /// The first violation; every later request fails with it.
    broken: Option<String>,
}

struct ChildState {
    child: Child,
    /// Whether the child was reaped: its pid (and process group id) may then belong to
    /// someone else, so it must not be signalled any more.
    status: Option<ExitStatus>,
}

impl ProcessPlugin {
    /// Starts `command` as a plugin on `namespace` and performs the handshake.
    ///
    /// Fails with kind [`ErrorKind::Other`] when the process cannot be started or breaks the
    /// protocol during the handshake, and with the plugin's own error when it refuses the
    /// namespace (for example `not_supported` for another protocol version).
    pub fn spawn(
        mut command: Command,
        namespace: &Namespace,
        options: ClientOptions,
    ) -> Result<ProcessPlugin> {
        let label = truncate(&format!("{command:?}"), 200);
        let Some(dir) = namespace.dir.to_str() else {
            return Err(Error::new(
                ErrorKind::InvalidName,
                format!(
                    "namespace directory {} is not UTF-8, which protocol {PROTOCOL_VERSION} cannot carry",
                    namespace.dir.display()
                ),
            ));
        };
        let namespace = WireNamespace {
            name: namespace.name.clone(),
            dir: dir.to_owned(),
        };
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|e| {
            Error::with_source(
                ErrorKind::Other,
                format!("could not start plugin {label}: {e}"),
                e,
            )
        })?;
        let pid = child.id();
        let (stdin, stdout, stderr) =
            match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
                (Some(stdin), Some(stdout), Some(stderr)) => (stdin, stdout, stderr),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(Error::new(
                        ErrorKind::Other,
                        format!("plugin {label}: no pipes to the process"),
                    ));
                }
            };
        let (sender, lines) = mpsc::channel();
        // A reader thread turns the blocking pipe into a channel the requester can wait on
        // with a timeout. It ends when the process closes its stdout.
        let spawned = thread::Builder::new()
            .name(format!("plugin-{pid}-stdout"))
            .spawn(move || {
                let mut stdout = io::BufReader::new(stdout);
                loop {
                    let read = match read_line(&mut stdout, MAX_LINE_BYTES) {
                        Ok(read) => read,
                        Err(_) => LineRead::Eof {
                            partial: Vec::new(),
                        },
                    };
                    let last = !matches!(read, LineRead::Line(_));
                    if sender.send(read).is_err() || last {
                        return;
                    }
                }
            });
        let mut state = ChildState {
            child,
            status: None,
        };
        let stderr = match spawned.and_then(|_| stderr::Reader::start(pid, stderr)) {
            Ok(reader) => reader,
            Err(e) => {
                state.kill_and_reap();
                return Err(Error::with_source(
                    ErrorKind::Other,
                    format!("plugin {label}: could not start a reader thread"),
                    e,
                ));
            }
        };
        let mut conn = Conn {
            stdin: Some(stdin),
            lines,
            next_id: 0,
            broken: None,
        };
        let child = Mutex::new(state);
        let killed = AtomicBool::new(false);
        let hello = Request::Hello {
            protocol: PROTOCOL_VERSION,
            namespace,
        };
        let context = Context {
            label: &label,
            pid,
            child: &child,
            killed: &killed,
        };
        let info = match conn.call(&context, &hello, options.request_timeout, &mut || {}) {
            Ok(Reply::Hello(info)) if info.protocol == PROTOCOL_VERSION => info,
            Ok(Reply::Hello(info)) => {
                lock(&child).kill_and_reap();
                return Err(context.violation(
                    &format!(
                        "it answered `hello` with protocol {}, the suite speaks {PROTOCOL_VERSION}",
                        info.protocol
                    ),
                    None,
                ));
            }
            Ok(other) => {
                lock(&child).kill_and_reap();
                return Err(context.violation(&format!("unexpected answer {other:?}"), None));
            }
            Err(e) => {
                lock(&child).kill_and_reap();
                return Err(e);
            }
        };
        Ok(ProcessPlugin {
            inner: Arc::new(Inner {
                label,
                pid,
                info,
                options,
                conn: Mutex::new(conn),
                child,
                killed,
                stderr,
            }),
        })
    }

    /// Starts `command_line` with `sh -c` (an `exec:<command>` plugin line).
    ///
    /// A simple command line (one command with arguments, no operators, redirections,
    /// substitutions or leading assignments) is run as `exec <line>`, so that the plugin
    /// itself is the process whose [`pid`](ProcessPlugin::pid) the suite knows; `sh` (dash)
    /// would otherwise keep running as its parent. Other lines run as given; killing the
    /// process group still reaches everything they start.
    pub fn spawn_shell(
        command_line: &str,
        namespace: &Namespace,
        options: ClientOptions,
    ) -> Result<ProcessPlugin> {
        let mut command = Command::new("sh");
        command.arg("-c").arg(shell_line(command_line));
        ProcessPlugin::spawn(command, namespace, options)
    }

    /// What the plugin said about itself in the handshake.
    pub fn hello(&self) -> &HelloInfo {
        &self.inner.info
    }

    /// The process id (on Unix also its process group id).
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The command, as shown in messages.
    pub fn command(&self) -> &str {
        &self.inner.label
    }

    /// Kills the process (on Unix its whole process group) with SIGKILL and reaps it.
    ///
    /// Requests in flight and later requests fail with kind [`ErrorKind::Other`] saying the
    /// suite killed the plugin. Killing a process that already exited does nothing.
    /// Does not wait for a request in flight: it is meant to interrupt one.
    pub fn kill(&self) {
        self.inner.killed.store(true, Ordering::SeqCst);
        lock(&self.inner.child).kill_and_reap();
    }

    /// Asks the plugin to shut down (`shutdown`) and waits for it to exit.
    ///
    /// Fails when the plugin does not answer properly or does not exit within
    /// [`ClientOptions::exit_grace`] (it is killed then).
    pub fn shutdown(&self) -> Result<ExitStatus> {
        self.inner.request(Request::Shutdown)?;
        let deadline = Instant::now() + self.inner.options.exit_grace;
        loop {
            let mut state = lock(&self.inner.child);
            if let Some(status) = state.try_reap() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                state.kill_and_reap();
                return Err(self.inner.context().violation(
                    &format!(
                        "it answered `shutdown` but had not exited after {:?}",
                        self.inner.options.exit_grace
                    ),
                    None,
                ));
            }
            drop(state);
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl fmt::Debug for ProcessPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPlugin")
            .field("command", &self.inner.label)
            .field("pid", &self.inner.pid)
            .field("plugin", &self.inner.info.name)
            .finish_non_exhaustive()
    }
}

impl CachePersistence for ProcessPlugin {
    fn describe(&self) -> Description {
        let info = &self.inner.info;
        Description::new(
            info.backend.clone(),
            info.location.clone(),
            info.capabilities,
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        match self.inner.request(Request::Load)? {
            Reply::Load(data) => Ok(data),
            other => Err(self.inner.unexpected(&other)),
        }
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        self.inner.request(Request::Save {
            data: data.to_vec(),
        })?;
        Ok(())
    }

    fn delete(&self) -> Result<bool> {
        match self.inner.request(Request::Delete)? {
            Reply::Delete(deleted) => Ok(deleted),
            other => Err(self.inner.unexpected(&other)),
        }
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        match self.inner.request(Request::Version)? {
            Reply::Version(token) => Ok(token.map(ChangeToken::new)),
            other => Err(self.inner.unexpected(&other)),
        }
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        match self.inner.request(Request::Lock { wait_ms })? {
            Reply::Lock(id) => Ok(LockGuard::new(ProcessLock {
                inner: Arc::clone(&self.inner),
                id,
            })),
            other => Err(self.inner.unexpected(&other)),
        }
    }
}

impl Worker for ProcessPlugin {
    fn pid(&self) -> u32 {
        ProcessPlugin::pid(self)
    }

    fn kill(&mut self) {
        ProcessPlugin::kill(self);
    }

    fn save_sent(&self, data: &[u8], sent: &mut dyn FnMut()) -> Result<()> {
        let request = Request::Save {
            data: data.to_vec(),
        };
        self.inner.request_sent(request, sent)?;
        Ok(())
    }
}

/// A lock held by a plugin process; releasing sends `unlock`.
struct ProcessLock {
    inner: Arc<Inner>,
    id: String,
}

impl HeldLock for ProcessLock {
    fn release(self: Box<Self>) -> Result<()> {
        self.inner
            .request(Request::Unlock {
                lock: self.id.clone(),
            })
            .map(drop)
    }
}

impl Inner {
    fn context(&self) -> Context<'_> {
        Context {
            label: &self.label,
            pid: self.pid,
            child: &self.child,
            killed: &self.killed,
        }
    }

    fn request(&self, request: Request) -> Result<Reply> {
        self.request_sent(request, &mut || {})
    }

    /// [`request`](Self::request), calling `sent` as soon as the request is written to the
    /// process, before its answer is awaited.
    fn request_sent(&self, request: Request, sent: &mut dyn FnMut()) -> Result<Reply> {
        let mut timeout = self.options.request_timeout;
        if let Request::Lock { wait_ms } = request {
            // Saturating: `lock(Duration::MAX)` means "wait forever", not a panic.
            timeout = timeout.saturating_add(Duration::from_millis(wait_ms));
        }
        lock(&self.conn).call(&self.context(), &request, timeout, sent)
    }

    /// `parse_reply` returns the variant of the request, so this is unreachable in
    /// practice; it is an error rather than a panic all the same.
    fn unexpected(&self, reply: &Reply) -> Error {
        self.context()
            .violation(&format!("unexpected answer {reply:?}"), None)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing stdin is the polite way to end a plugin: it exits at end of input,
        // releasing what it holds. A plugin that does not is killed after the grace time.
        lock(&self.conn).stdin = None;
        let deadline = Instant::now() + self.options.exit_grace;
        let mut state = lock(&self.child);
        while state.try_reap().is_none() {
            if Instant::now() >= deadline {
                state.kill_and_reap();
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        drop(state);
        // Everything the process wrote to stderr is in the log once this returns, for the
        // case that checks it. A child it left behind holding the pipe open is not waited
        // for longer than the grace time.
        self.stderr.finish(self.options.exit_grace);
    }
}

/// The cause of the error a request gets when the plugin process does not answer within
/// the request timeout: the plugin hangs. The suite reports that under its hang rule
/// rather than under the rule of the case that happened to be waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoAnswer {
    /// How long the request waited.
    pub timeout: Duration,
}

impl fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the plugin process did not answer within {:?}",
            self.timeout
        )
    }
}

impl std::error::Error for NoAnswer {}

impl NoAnswer {
    /// Whether `err` is a request that got no answer in time.
    pub fn caused(err: &Error) -> bool {
        std::error::Error::source(err).is_some_and(|source| source.is::<NoAnswer>())
    }
}

/// What a request needs to know to word its errors and to stop the process.
struct Context<'a> {
    label: &'a str,
    pid: u32,
    child: &'a Mutex<ChildState>,
    killed: &'a AtomicBool,
}

impl Context<'_> {
    /// A protocol violation: what went wrong and the offending line, if there was one.
    fn violation(&self, what: &str, line: Option<&[u8]>) -> Error {
        let mut message = format!(
            "plugin {} (pid {}) broke protocol {PROTOCOL_VERSION}: {what}",
            self.label, self.pid
        );
        if let Some(line) = line {
            message.push_str("; offending line: ");
            message.push_str(&quote_line(&String::from_utf8_lossy(line)));
        }
        Error::new(ErrorKind::Other, message)
    }

    /// Why the process is gone: killed by the suite, or exited by itself (with how).
    fn gone(&self) -> String {
        if self.killed.load(Ordering::SeqCst) {
            return "the suite killed it".into();
        }
        // Give a process that is closing its pipes a moment to finish exiting.
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            if let Some(status) = lock(self.child).try_reap() {
                return format!("it exited ({status})");
            }
            if Instant::now() >= deadline {
                return "it closed its output".into();
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Conn {
    /// Sends `request` and waits up to `timeout` for its answer.
    ///
    /// After a violation (or a kill) the process is stopped and the connection stays
    /// broken: the answers of a process that once broke the protocol cannot be trusted.
    fn call(
        &mut self,
        cx: &Context<'_>,
        request: &Request,
        timeout: Duration,
        sent: &mut dyn FnMut(),
    ) -> Result<Reply> {
        if let Some(broken) = &self.broken {
            return Err(Error::new(ErrorKind::Other, broken.clone()));
        }
        match self.exchange(cx, request, timeout, sent) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(answer)) => Err(answer),
            Err(broken) => {
                self.broken = Some(broken.message().to_owned());
                self.stdin = None;
                lock(cx.child).kill_and_reap();
                Err(broken)
            }
        }
    }

    /// One request and its answer. The outer `Err` breaks the connection (a violation or a
    /// kill); the inner one is the plugin's own error answer.
    fn exchange(
        &mut self,
        cx: &Context<'_>,
        request: &Request,
        timeout: Duration,
        sent: &mut dyn FnMut(),
    ) -> Result<Result<Reply>> {
        let id = self.next_id;
        self.next_id += 1;
        let op = request.op();
        if cx.killed.load(Ordering::SeqCst) {
            return Err(killed(cx, op));
        }
        let Some(stdin) = &mut self.stdin else {
            return Err(cx.violation("its input was already closed", None));
        };
        let mut line = request.to_line(id).into_bytes();
        line.push(b'\n');
        if let Err(e) = stdin.write_all(&line).and_then(|()| stdin.flush()) {
            if cx.killed.load(Ordering::SeqCst) {
                return Err(killed(cx, op));
            }
            return Err(cx.violation(
                &format!(
                    "no answer to `{op}` request {id}: could not send it ({e}); {}",
                    cx.gone()
                ),
                None,
            ));
        }
        sent();
        let read = match self.lines.recv_timeout(timeout) {
            Ok(read) => read,
            Err(RecvTimeoutError::Timeout) => {
                let violation = cx.violation(
                    &format!("no answer to `{op}` request {id} within {timeout:?}"),
                    None,
                );
                return Err(Error::with_source(
                    ErrorKind::Other,
                    violation.to_string(),
                    NoAnswer { timeout },
                ));
            }
            Err(RecvTimeoutError::Disconnected) => LineRead::Eof {
                partial: Vec::new(),
            },
        };
        let line = match read {
            LineRead::Line(line) => line,
            _ if cx.killed.load(Ordering::SeqCst) => return Err(killed(cx, op)),
            LineRead::Eof { partial } => {
                let what = format!("no answer to `{op}` request {id}: {}", cx.gone());
                let partial = (!partial.is_empty()).then_some(&partial[..]);
                return Err(cx.violation(&what, partial));
            }
            LineRead::TooLong { prefix } => {
                return Err(cx.violation(
                    &format!("answer to `{op}` request {id} is longer than {MAX_LINE_BYTES} bytes"),
                    Some(&prefix),
                ));
            }
        };
        let Ok(text) = std::str::from_utf8(&line) else {
            return Err(cx.violation(
                &format!("answer to `{op}` request {id} is not UTF-8"),
                Some(&line),
            ));
        };
        let (answer_id, answer) = parse_response(text).map_err(|what| {
            cx.violation(
                &format!("malformed answer to `{op}` request {id}: {what}"),
                Some(&line),
            )
        })?;
        if answer_id != id {
            return Err(cx.violation(
                &format!("answered id {answer_id} to `{op}` request {id}"),
                Some(&line),
            ));
        }
        match answer {
            Err(reply) => Ok(Err(Error::new(reply.kind, reply.message))),
            Ok(ok) => parse_reply(request, &ok).map(Ok).map_err(|what| {
                cx.violation(
                    &format!("malformed answer to `{op}` request {id}: {what}"),
                    Some(&line),
                )
            }),
        }
    }
}

fn killed(cx: &Context<'_>, op: &str) -> Error {
    Error::new(
        ErrorKind::Other,
        format!(
            "plugin {} (pid {}) was killed by the suite; `{op}` got no answer",
            cx.label, cx.pid
        ),
    )
}

impl ChildState {
    /// Reaps the child if it has exited.
    fn try_reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = Some(status);
        }
        self.status
    }

    /// SIGKILLs the child's process group (Unix) or the child, and reaps it.
    fn kill_and_reap(&mut self) {
        if self.status.is_some() {
            return;
        }
        #[cfg(unix)]
        {
            // The child leads its own process group (see `spawn`); signalling the group
            // also stops what a `sh -c` line started. The child is not reaped yet, so the
            // group id cannot have been reused.
            if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe {
                    libc::kill(-pgid, libc::SIGKILL);
                }
            }
        }
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.status = Some(status);
        }
    }
}

/// `line`, prefixed with `exec` when that cannot change its meaning (see `spawn_shell`).
fn shell_line(line: &str) -> String {
    const COMPOUND: [char; 12] = [';', '&', '|', '<', '>', '(', ')', '$', '`', '\n', '{', '}'];
    // Keywords and builtins that `exec` cannot run.
    const NOT_EXECUTABLE: [&str; 20] = [
        "if", "while", "until", "for", "case", "!", "{", "exec", "time", "exit", "cd", ".",
        "source", "eval", "export", "set", "unset", "read", "wait", "trap",
    ];
    let simple = !line.contains(COMPOUND)
        && line
            .split_whitespace()
            .next()
            .is_some_and(|first| !first.contains('=') && !NOT_EXECUTABLE.contains(&first));
    if simple {
        format!("exec {line}")
    } else {
        line.to_owned()
    }
}

/// Locks a mutex, also when another thread panicked while holding it: the protected state
/// (pipes, child handle) stays consistent at every await point.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::shell_line;

    #[test]
    fn simple_lines_are_execed() {
        assert_eq!(shell_line("python3 p.py --x"), "exec python3 p.py --x");
        assert_eq!(shell_line("'/a b/plugin'"), "exec '/a b/plugin'");
        for line in [
            "cd x && ./p",
            "A=1 ./p",
            "./p 2>log",
            "./p; echo",
            "if true; then ./p; fi",
            "exec ./p",
            "exit 3",
            "",
        ] {
            assert_eq!(shell_line(line), line);
        }
    }
}
