//! The suite's side of the protocol: a plugin process seen as a `CachePersistence`.

use std::{
    collections::{BTreeMap, VecDeque},
    fmt,
    io::{self, Write},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{self, RecvTimeoutError, Sender},
    },
    thread,
    time::{Duration, Instant},
};

use identity_cache_persistence::{
    CachePersistence, ChangeToken, Description, Error, ErrorKind, HeldLock, LockGuard, Result,
};

use crate::factory::{Namespace, Worker};

use super::lock;
use super::{
    lines::{LineRead, read_line},
    message::{
        ErrorReply, HelloInfo, MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request, WireNamespace,
        parse_reply, parse_response, quote_line, truncate,
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

/// A plugin handle served by a process speaking protocol 1, usable wherever a
/// [`CachePersistence`] is.
///
/// Contract:
/// - [`spawn`](ProcessPlugin::spawn) starts the command with piped stdin and stdout
///   (stderr is passed through to the suite's stderr, and kept for the cases that check
///   what a plugin logs: `protocol::stderr`), in a process group of its own on Unix so
///   that [`kill`](ProcessPlugin::kill) also reaches processes it started (`sh -c` lines),
///   and completes the `hello` handshake before returning. The handle is the one of
///   `hello`.
/// - [`open`](ProcessPlugin::open) makes another handle in the same process, when the
///   plugin declared `handles`; dropping it sends `close`.
/// - Each trait method is one request and one answer. Plugin errors come back with the
///   kind the plugin sent; `not_supported` stays [`ErrorKind::NotSupported`].
/// - Anything else the process does (ends its output, writes a line that is not a valid
///   answer to a request, answers with an id nobody waits for, or stays silent past the
///   timeout) is a protocol violation: an error of kind [`ErrorKind::Other`] that quotes
///   the offending line (truncated, long base64 runs replaced by their length), after
///   which the process is killed and every later request fails with the same message.
/// - Safe to share between threads. Requests to a process that declared `handles` are sent
///   as they come, each answered by id; to any other process one at a time.
/// - [`lock`](CachePersistence::lock) returns a guard whose release sends `unlock`.
/// - Dropping the last handle of a process (guards keep it alive) closes stdin, gives the
///   process [`ClientOptions::exit_grace`] to exit, then kills and reaps it.
/// - Blob bytes never appear in `Debug` output or error messages.
#[derive(Clone)]
pub struct ProcessPlugin {
    handle: Arc<Handle>,
}

/// One handle: the process and the handle id requests carry.
struct Handle {
    process: Arc<Process>,
    /// `None` for the handle of `hello`, which lives as long as the process.
    id: Option<String>,
    info: HelloInfo,
}

struct Process {
    /// The command, for messages.
    label: String,
    pid: u32,
    options: ClientOptions,
    writer: Mutex<Writer>,
    router: Arc<Router>,
    /// Held for the whole exchange by a process that did not declare `handles`, which
    /// takes one request at a time.
    turn: Mutex<()>,
    /// Whether the plugin declared `handles` (set from the `hello` answer).
    concurrent: AtomicBool,
    /// The first violation; every later request fails with it.
    broken: Mutex<Option<String>>,
    child: Mutex<ChildState>,
    /// Set by `kill`, so that the failures it causes are not blamed on the plugin.
    killed: AtomicBool,
    stderr: stderr::Reader,
}

struct Writer {
    /// `None` once closed.
    stdin: Option<ChildStdin>,
    next_id: u64,
}

/// What the stdout reader hands to a waiting request.
enum Incoming {
    /// A line, parsed once by the reader: the answer's id and its result, or what is wrong
    /// with the line.
    Line {
        line: Vec<u8>,
        parsed:
            std::result::Result<(u64, std::result::Result<serde_json::Value, ErrorReply>), String>,
    },
    /// The process ended its output, `partial` being an unfinished last line.
    Eof { partial: Vec<u8> },
    /// A line longer than [`MAX_LINE_BYTES`]; the reader stops there.
    TooLong { prefix: Vec<u8> },
}

/// Hands each line of the process's stdout to the request it answers.
///
/// A line goes to the request whose id it carries. A line that carries no id that is
/// waiting (malformed, or a wrong id) goes to the oldest waiting request, which reports it
/// as the violation it is; with none waiting it is kept for the next request, as a line
/// nobody asked for. The end of output reaches every waiting request and every later one.
#[derive(Default)]
struct Router {
    state: Mutex<RouterState>,
}

#[derive(Default)]
struct RouterState {
    waiting: BTreeMap<u64, Sender<Incoming>>,
    stray: VecDeque<Incoming>,
    /// The output ended (or broke off): later requests get an end of output at once.
    ended: bool,
}

impl Router {
    /// Registers request `id` before it is sent, so its answer cannot come first.
    fn wait_for(&self, id: u64) -> mpsc::Receiver<Incoming> {
        let (sender, receiver) = mpsc::channel();
        let mut state = lock(&self.state);
        if let Some(line) = state.stray.pop_front() {
            let _ = sender.send(line);
        } else if state.ended {
            let _ = sender.send(Incoming::Eof {
                partial: Vec::new(),
            });
        }
        state.waiting.insert(id, sender);
        receiver
    }

    fn done(&self, id: u64) {
        lock(&self.state).waiting.remove(&id);
    }

    fn deliver(&self, incoming: Incoming) {
        let mut state = lock(&self.state);
        let named = match &incoming {
            Incoming::Line {
                parsed: Ok((id, _)),
                ..
            } if state.waiting.contains_key(id) => Some(*id),
            _ => None,
        };
        let target = named.or_else(|| state.waiting.keys().next().copied());
        match target.and_then(|id| state.waiting.remove(&id)) {
            Some(sender) => {
                let _ = sender.send(incoming);
            }
            None => state.stray.push_back(incoming),
        }
    }

    /// The output ended: `last` (the end itself) goes to the oldest waiting request, a
    /// plain end of output to the others.
    fn end(&self, last: Incoming) {
        let mut state = lock(&self.state);
        state.ended = true;
        let mut last = Some(last);
        for (_, sender) in std::mem::take(&mut state.waiting) {
            let _ = sender.send(last.take().unwrap_or(Incoming::Eof {
                partial: Vec::new(),
            }));
        }
    }
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
        let namespace = wire_namespace(namespace)?;
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
        let router = Arc::new(Router::default());
        let reader_router = Arc::clone(&router);
        // A reader thread turns the blocking pipe into answers that requests wait for with
        // a timeout. It ends when the process closes its stdout.
        let spawned = thread::Builder::new()
            .name(format!("plugin-{pid}-stdout"))
            .spawn(move || {
                let mut stdout = io::BufReader::new(stdout);
                loop {
                    match read_line(&mut stdout, MAX_LINE_BYTES) {
                        Ok(LineRead::Line(line)) => {
                            let parsed = std::str::from_utf8(&line)
                                .map_err(|_| "it is not UTF-8".to_owned())
                                .and_then(parse_response);
                            reader_router.deliver(Incoming::Line { line, parsed });
                        }
                        Ok(LineRead::Eof { partial }) => {
                            return reader_router.end(Incoming::Eof { partial });
                        }
                        Ok(LineRead::TooLong { prefix }) => {
                            return reader_router.end(Incoming::TooLong { prefix });
                        }
                        Err(_) => {
                            return reader_router.end(Incoming::Eof {
                                partial: Vec::new(),
                            });
                        }
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
        let process = Arc::new(Process {
            label,
            pid,
            options,
            writer: Mutex::new(Writer {
                stdin: Some(stdin),
                next_id: 0,
            }),
            router,
            turn: Mutex::new(()),
            concurrent: AtomicBool::new(false),
            broken: Mutex::new(None),
            child: Mutex::new(state),
            killed: AtomicBool::new(false),
            stderr,
        });
        let hello = Request::Hello {
            protocol: PROTOCOL_VERSION,
            namespace,
        };
        let info = match process.request(None, &hello, &mut || {}) {
            Ok(Reply::Hello(info)) if info.protocol == PROTOCOL_VERSION => info,
            Ok(Reply::Hello(info)) => {
                return Err(process.fail(&format!(
                    "it answered `hello` with protocol {}, the suite speaks {PROTOCOL_VERSION}",
                    info.protocol
                )));
            }
            Ok(other) => return Err(process.unexpected(&other)),
            Err(e) => {
                lock(&process.child).kill_and_reap();
                return Err(e);
            }
        };
        process.concurrent.store(info.handles, Ordering::SeqCst);
        Ok(ProcessPlugin {
            handle: Arc::new(Handle {
                process,
                id: None,
                info,
            }),
        })
    }

    /// Starts `command_line` with `sh -c` (an `exec:<command>` plugin line).
    ///
    /// A simple command line (one command with arguments and plain `NAME=value` words
    /// before it, no operators, redirections or substitutions) is run with `exec` before
    /// its command, so that the plugin itself is the process whose
    /// [`pid`](ProcessPlugin::pid) the suite knows and kills; `sh` (dash) would otherwise
    /// keep running as its parent, and a pid the plugin wrote in a lock file would name a
    /// child left unreaped after the kill. Other lines run as given; killing the
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

    /// Another handle on `namespace` in the same process (`open`), for a plugin that
    /// declared `handles`; [`ErrorKind::NotSupported`] for one that did not, and the
    /// plugin's own error when it refuses the namespace.
    pub fn open(&self, namespace: &Namespace) -> Result<ProcessPlugin> {
        let process = &self.handle.process;
        if !process.concurrent.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::NotSupported,
                format!(
                    "plugin {} serves one handle per process (no `handles` in its hello answer)",
                    process.label
                ),
            ));
        }
        process.open(namespace)
    }

    /// The process of this handle, without keeping it alive: a way to open more handles
    /// in it for as long as other handles keep it running.
    pub(crate) fn process(&self) -> WeakProcess {
        WeakProcess(Arc::downgrade(&self.handle.process))
    }

    /// What the plugin said about this handle in the handshake (or `open`).
    pub fn hello(&self) -> &HelloInfo {
        &self.handle.info
    }

    /// The process id (on Unix also its process group id).
    pub fn pid(&self) -> u32 {
        self.handle.process.pid
    }

    /// The command, as shown in messages.
    pub fn command(&self) -> &str {
        &self.handle.process.label
    }

    /// Kills the process (on Unix its whole process group) with SIGKILL and reaps it.
    ///
    /// Requests in flight and later requests fail with kind [`ErrorKind::Other`] saying the
    /// suite killed the plugin. Killing a process that already exited does nothing.
    /// Does not wait for a request in flight: it is meant to interrupt one.
    pub fn kill(&self) {
        let process = &self.handle.process;
        process.killed.store(true, Ordering::SeqCst);
        lock(&process.child).kill_and_reap();
    }

    /// Asks the plugin to shut down (`shutdown`) and waits for it to exit.
    ///
    /// Fails when the plugin does not answer properly or does not exit within
    /// [`ClientOptions::exit_grace`] (it is killed then).
    pub fn shutdown(&self) -> Result<ExitStatus> {
        let process = &self.handle.process;
        process.request(None, &Request::Shutdown, &mut || {})?;
        let deadline = Instant::now() + process.options.exit_grace;
        loop {
            let mut state = lock(&process.child);
            if let Some(status) = state.try_reap() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                state.kill_and_reap();
                return Err(process.context().violation(
                    &format!(
                        "it answered `shutdown` but had not exited after {:?}",
                        process.options.exit_grace
                    ),
                    None,
                ));
            }
            drop(state);
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn request(&self, request: Request) -> Result<Reply> {
        self.handle.request(&request, &mut || {})
    }
}

/// A plugin process that handles may still keep running (see [`ProcessPlugin::process`]).
#[derive(Clone)]
pub(crate) struct WeakProcess(std::sync::Weak<Process>);

impl fmt::Debug for WeakProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.upgrade() {
            Some(process) => write!(f, "WeakProcess(pid {})", process.pid),
            None => f.write_str("WeakProcess(ended)"),
        }
    }
}

impl WeakProcess {
    /// A new handle on `namespace` in the process: `None` when the process has ended or
    /// broke the protocol, so that a new one should be started.
    pub(crate) fn open(&self, namespace: &Namespace) -> Option<Result<ProcessPlugin>> {
        let process = self.0.upgrade()?;
        let usable = !process.killed.load(Ordering::SeqCst) && lock(&process.broken).is_none();
        usable.then(|| process.open(namespace))
    }

    /// Whether some handle still keeps the process running.
    pub(crate) fn is_running(&self) -> bool {
        self.0.strong_count() > 0
    }
}

impl fmt::Debug for ProcessPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPlugin")
            .field("command", &self.handle.process.label)
            .field("pid", &self.handle.process.pid)
            .field("handle", &self.handle.id)
            .field("plugin", &self.handle.info.name)
            .finish_non_exhaustive()
    }
}

impl CachePersistence for ProcessPlugin {
    fn describe(&self) -> Description {
        let info = &self.handle.info;
        Description::new(
            info.backend.clone(),
            info.location.clone(),
            info.capabilities,
        )
    }

    fn load(&self) -> Result<Option<Vec<u8>>> {
        match self.request(Request::Load)? {
            Reply::Load(data) => Ok(data),
            other => Err(self.handle.process.unexpected(&other)),
        }
    }

    fn save(&self, data: &[u8]) -> Result<()> {
        self.request(Request::Save {
            data: data.to_vec(),
        })?;
        Ok(())
    }

    fn delete(&self) -> Result<bool> {
        match self.request(Request::Delete)? {
            Reply::Delete(deleted) => Ok(deleted),
            other => Err(self.handle.process.unexpected(&other)),
        }
    }

    fn version(&self) -> Result<Option<ChangeToken>> {
        match self.request(Request::Version)? {
            Reply::Version(token) => Ok(token.map(ChangeToken::new)),
            other => Err(self.handle.process.unexpected(&other)),
        }
    }

    fn lock(&self, wait: Duration) -> Result<LockGuard> {
        let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        match self.request(Request::Lock { wait_ms })? {
            Reply::Lock(id) => Ok(LockGuard::new(ProcessLock {
                handle: Arc::clone(&self.handle),
                id,
            })),
            other => Err(self.handle.process.unexpected(&other)),
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
        self.handle.request(&request, sent)?;
        Ok(())
    }
}

/// A lock held through a plugin handle; releasing sends `unlock`.
struct ProcessLock {
    handle: Arc<Handle>,
    id: String,
}

impl HeldLock for ProcessLock {
    fn release(self: Box<Self>) -> Result<()> {
        let request = Request::Unlock {
            lock: self.id.clone(),
        };
        self.handle.request(&request, &mut || {}).map(drop)
    }
}

impl Handle {
    fn request(&self, request: &Request, sent: &mut dyn FnMut()) -> Result<Reply> {
        self.process.request(self.id.as_deref(), request, sent)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A handle of `open` is closed; a process that is gone or broken has nothing to
        // close, and its error would only repeat an earlier one.
        if self.id.is_some() && lock(&self.process.broken).is_none() {
            let _ = self.request(&Request::Close, &mut || {});
        }
    }
}

impl Process {
    /// `open`: another handle on `namespace` in this process.
    fn open(self: &Arc<Self>, namespace: &Namespace) -> Result<ProcessPlugin> {
        let request = Request::Open {
            namespace: wire_namespace(namespace)?,
        };
        match self.request(None, &request, &mut || {})? {
            Reply::Open(id, info) => Ok(ProcessPlugin {
                handle: Arc::new(Handle {
                    process: Arc::clone(self),
                    id: Some(id),
                    info,
                }),
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    fn context(&self) -> Context<'_> {
        Context {
            label: &self.label,
            pid: self.pid,
            child: &self.child,
            killed: &self.killed,
        }
    }

    /// Sends `request` to `handle` and waits for its answer, calling `sent` as soon as the
    /// request is written, before the answer is awaited.
    ///
    /// After a violation (or a kill) the process is stopped and stays broken: the answers
    /// of a process that once broke the protocol cannot be trusted.
    fn request(
        &self,
        handle: Option<&str>,
        request: &Request,
        sent: &mut dyn FnMut(),
    ) -> Result<Reply> {
        let mut timeout = self.options.request_timeout;
        if let Request::Lock { wait_ms } = request {
            // Saturating: `lock(Duration::MAX)` means "wait forever", not a panic.
            timeout = timeout.saturating_add(Duration::from_millis(*wait_ms));
        }
        let _turn = (!self.concurrent.load(Ordering::SeqCst)).then(|| lock(&self.turn));
        if let Some(broken) = &*lock(&self.broken) {
            return Err(Error::new(ErrorKind::Other, broken.clone()));
        }
        match self.exchange(handle, request, timeout, sent) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(answer)) => Err(answer),
            Err(broken) => Err(self.break_off(broken)),
        }
    }

    /// Records the first violation, closes the input and kills the process; returns the
    /// error a request gets: its own, or the earlier violation that caused it.
    fn break_off(&self, error: Error) -> Error {
        let mut broken = lock(&self.broken);
        let first = match &*broken {
            Some(earlier) => Error::new(ErrorKind::Other, earlier.clone()),
            None => {
                *broken = Some(error.message().to_owned());
                error
            }
        };
        drop(broken);
        lock(&self.writer).stdin = None;
        lock(&self.child).kill_and_reap();
        first
    }

    /// A violation outside a request (the handshake's answer): the process is stopped.
    fn fail(&self, what: &str) -> Error {
        self.break_off(self.context().violation(what, None))
    }

    /// `parse_reply` returns the variant of the request, so this is unreachable in
    /// practice; it is an error rather than a panic all the same.
    fn unexpected(&self, reply: &Reply) -> Error {
        self.fail(&format!("unexpected answer {reply:?}"))
    }

    /// One request and its answer. The outer `Err` breaks the connection (a violation or a
    /// kill); the inner one is the plugin's own error answer.
    fn exchange(
        &self,
        handle: Option<&str>,
        request: &Request,
        timeout: Duration,
        sent: &mut dyn FnMut(),
    ) -> Result<Result<Reply>> {
        let cx = self.context();
        let op = request.op();
        if cx.killed.load(Ordering::SeqCst) {
            return Err(killed(&cx, op));
        }
        let mut writer = lock(&self.writer);
        let id = writer.next_id;
        writer.next_id += 1;
        let answers = self.router.wait_for(id);
        let Some(stdin) = &mut writer.stdin else {
            self.router.done(id);
            return Err(cx.violation("its input was already closed", None));
        };
        let mut line = request.to_line(id, handle).into_bytes();
        line.push(b'\n');
        let written = stdin.write_all(&line).and_then(|()| stdin.flush());
        drop(writer);
        if let Err(e) = written {
            self.router.done(id);
            if cx.killed.load(Ordering::SeqCst) {
                return Err(killed(&cx, op));
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
        let incoming = answers.recv_timeout(timeout);
        self.router.done(id);
        let incoming = match incoming {
            Ok(incoming) => incoming,
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
            Err(RecvTimeoutError::Disconnected) => Incoming::Eof {
                partial: Vec::new(),
            },
        };
        let (line, parsed) = match incoming {
            Incoming::Line { line, parsed } => (line, parsed),
            _ if cx.killed.load(Ordering::SeqCst) => return Err(killed(&cx, op)),
            // Another request's violation stopped the process: that is the cause.
            _ if lock(&self.broken).is_some() => {
                return Err(Error::new(
                    ErrorKind::Other,
                    lock(&self.broken).clone().unwrap_or_default(),
                ));
            }
            Incoming::Eof { partial } => {
                let what = format!("no answer to `{op}` request {id}: {}", cx.gone());
                let partial = (!partial.is_empty()).then_some(&partial[..]);
                return Err(cx.violation(&what, partial));
            }
            Incoming::TooLong { prefix } => {
                return Err(cx.violation(
                    &format!("answer to `{op}` request {id} is longer than {MAX_LINE_BYTES} bytes"),
                    Some(&prefix),
                ));
            }
        };
        let (answer_id, answer) = parsed.map_err(|what| {
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

impl Drop for Process {
    fn drop(&mut self) {
        // Closing stdin is the polite way to end a plugin: it exits at end of input,
        // releasing what it holds. A plugin that does not is killed after the grace time.
        lock(&self.writer).stdin = None;
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

/// The namespace as `hello` and `open` carry it.
fn wire_namespace(namespace: &Namespace) -> Result<WireNamespace> {
    let Some(dir) = namespace.dir.to_str() else {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "namespace directory {} is not UTF-8, which protocol {PROTOCOL_VERSION} cannot carry",
                namespace.dir.display()
            ),
        ));
    };
    Ok(WireNamespace {
        name: namespace.name.clone(),
        dir: dir.to_owned(),
    })
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

fn killed(cx: &Context<'_>, op: &str) -> Error {
    Error::new(
        ErrorKind::Other,
        format!(
            "plugin {} (pid {}) was killed by the suite; `{op}` got no answer",
            cx.label, cx.pid
        ),
    )
}

struct ChildState {
    child: Child,
    /// Whether the child was reaped: its pid (and process group id) may then belong to
    /// someone else, so it must not be signalled any more.
    status: Option<ExitStatus>,
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

/// `line`, with `exec` before its command when that cannot change its meaning (see
/// `spawn_shell`). Leading `NAME=value` words stay in front (`NAME=value exec cmd` gives
/// `cmd` the variable, as `NAME=value cmd` does) when they are plain: a quote or escape in
/// one could hide a space, so such a line runs as given.
fn shell_line(line: &str) -> String {
    const COMPOUND: [char; 12] = [';', '&', '|', '<', '>', '(', ')', '$', '`', '\n', '{', '}'];
    // Keywords and builtins that `exec` cannot run.
    const NOT_EXECUTABLE: [&str; 20] = [
        "if", "while", "until", "for", "case", "!", "{", "exec", "time", "exit", "cd", ".",
        "source", "eval", "export", "set", "unset", "read", "wait", "trap",
    ];
    let is_assignment = |word: &str| {
        word.split_once('=').is_some_and(|(name, _)| {
            name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    if line.contains(COMPOUND) {
        return line.to_owned();
    }
    let mut head = Vec::new();
    let mut tail = line.trim_start();
    while let Some(word) = tail.split_whitespace().next().filter(|w| is_assignment(w)) {
        if word.contains(['\'', '"', '\\']) {
            return line.to_owned();
        }
        head.push(word);
        tail = tail[word.len()..].trim_start();
    }
    match tail.split_whitespace().next() {
        Some(command) if !command.contains('=') && !NOT_EXECUTABLE.contains(&command) => {
            head.push("exec");
            format!("{} {tail}", head.join(" "))
        }
        _ => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::shell_line;

    #[test]
    fn simple_lines_are_execed() {
        assert_eq!(shell_line("python3 p.py --x"), "exec python3 p.py --x");
        assert_eq!(shell_line("'/a b/plugin'"), "exec '/a b/plugin'");
        assert_eq!(
            shell_line("A=1 B_2=x ./p  'a  b'"),
            "A=1 B_2=x exec ./p  'a  b'"
        );
        for line in [
            "cd x && ./p",
            "A='1 2' ./p",
            "A=1",
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
