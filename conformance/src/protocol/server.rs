//! The plugin's side of the protocol: answers requests with any `CachePersistence`.

use std::{
    collections::HashMap,
    io::{self, BufRead, Write},
    time::Duration,
};

use identity_cache_persistence::{CachePersistence, ErrorKind, LockGuard, Result};

use crate::factory::Namespace;

use super::{
    lines::{LineRead, read_line},
    message::{
        HelloInfo, MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request, WireNamespace, error_line,
        parse_request, reply_line,
    },
};

/// The plugin's name and version as `serve_with` announces them in `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The plugin's name; empty means "use the backend name of its description".
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// Announced as `storage_under_dir`: everything the plugin stores for a namespace is
    /// under its directory, so the suite provokes faults and corruption there itself.
    pub storage_under_dir: bool,
}

impl ServerInfo {
    /// A plugin called `name` at `version`, storing where it likes.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        ServerInfo {
            name: name.into(),
            version: version.into(),
            storage_under_dir: false,
        }
    }

    /// Declares that the plugin keeps everything under the namespace directory.
    pub fn storage_under_dir(self, yes: bool) -> Self {
        ServerInfo {
            storage_under_dir: yes,
            ..self
        }
    }
}

/// Serves protocol 1 on `input`/`output` until `shutdown` or end of input.
///
/// The plugin is built by `make_plugin` from the namespace of the `hello` request, so one
/// server process is one plugin handle on that slot (a [`PluginFactory`](crate::PluginFactory) serves with
/// `|ns| factory.create(ns)`). It announces itself with the backend
/// name of the plugin's description and version `"unknown"`; [`serve_with`] names it.
///
/// Contract:
/// - Every request is answered with exactly one line carrying its id, flushed at once.
/// - A malformed line is answered with an error of kind `other` (id `null` when the line
///   had no usable id) and the server goes on; an unknown op with `not_supported`.
/// - Locks still held at `shutdown` or end of input are released before returning.
/// - A `lock` wait above `u32::MAX` milliseconds (about 49 days) is capped to that.
/// - Nothing but answers is written to `output`; a Rust plugin served on stdout must log
///   to stderr.
/// - Returns `Err` only when `input` or `output` fails (e.g. the suite went away).
pub fn serve<P, F>(make_plugin: F, input: impl BufRead, output: impl Write) -> io::Result<()>
where
    P: CachePersistence,
    F: FnMut(&Namespace) -> Result<P>,
{
    serve_with(ServerInfo::new("", "unknown"), make_plugin, input, output)
}

/// [`serve`], announcing the plugin as `info`.
pub fn serve_with<P, F>(
    info: ServerInfo,
    make_plugin: F,
    mut input: impl BufRead,
    mut output: impl Write,
) -> io::Result<()>
where
    P: CachePersistence,
    F: FnMut(&Namespace) -> Result<P>,
{
    let mut session = Session {
        info,
        make_plugin,
        plugin: None,
        locks: HashMap::new(),
        next_lock: 1,
    };
    loop {
        let line = match read_line(&mut input, MAX_LINE_BYTES)? {
            LineRead::Line(line) => line,
            // A partial last line is a request the suite never finished sending: nothing
            // to answer, and nobody left to answer to.
            LineRead::Eof { .. } => return Ok(()),
            LineRead::TooLong { .. } => {
                let message = format!("malformed request: line longer than {MAX_LINE_BYTES} bytes");
                write_line(&mut output, &error_line(None, ErrorKind::Other, &message))?;
                continue;
            }
        };
        let answer = match std::str::from_utf8(&line) {
            Err(_) => error_line(None, ErrorKind::Other, "malformed request: not UTF-8"),
            Ok(text) => match parse_request(text) {
                Err(e) => error_line(e.id, e.kind, &e.message),
                Ok((id, request)) => {
                    let shutdown = request == Request::Shutdown;
                    let answer = match session.handle(request) {
                        Ok(reply) => reply_line(id, &reply),
                        Err(e) => error_line(Some(id), e.kind(), e.message()),
                    };
                    if shutdown {
                        // Release locks before answering, so that "answered" means "done".
                        session.locks.clear();
                        write_line(&mut output, &answer)?;
                        return Ok(());
                    }
                    answer
                }
            },
        };
        write_line(&mut output, &answer)?;
    }
}

fn write_line(output: &mut impl Write, line: &str) -> io::Result<()> {
    output.write_all(line.as_bytes())?;
    output.write_all(b"\n")?;
    output.flush()
}

/// The state of one connection: the plugin once `hello` built it, and the locks it holds.
struct Session<P, F> {
    info: ServerInfo,
    make_plugin: F,
    plugin: Option<P>,
    /// Guards by the id handed out; dropping the map releases them all.
    locks: HashMap<String, LockGuard>,
    next_lock: u64,
}

impl<P, F> Session<P, F>
where
    P: CachePersistence,
    F: FnMut(&Namespace) -> Result<P>,
{
    fn handle(&mut self, request: Request) -> Result<Reply> {
        use identity_cache_persistence::Error;
        if let Request::Hello {
            protocol,
            namespace,
        } = request
        {
            return self.hello(protocol, &namespace);
        }
        if request == Request::Shutdown {
            return Ok(Reply::Done);
        }
        let Some(plugin) = &self.plugin else {
            return Err(Error::new(
                ErrorKind::Other,
                "the first request must be a successful `hello`",
            ));
        };
        Ok(match request {
            Request::Load => Reply::Load(plugin.load()?),
            Request::Save { data } => {
                plugin.save(&data)?;
                Reply::Done
            }
            Request::Delete => Reply::Delete(plugin.delete()?),
            Request::Version => {
                Reply::Version(plugin.version()?.map(|token| token.as_str().to_owned()))
            }
            Request::Lock { wait_ms } => {
                // Capped at about 49 days: plugins compute `Instant::now() + wait`, which a
                // wire value near u64::MAX would overflow (a panic, not an answer).
                let wait = Duration::from_millis(wait_ms.min(u64::from(u32::MAX)));
                let guard = plugin.lock(wait)?;
                let id = format!("L{}", self.next_lock);
                self.next_lock += 1;
                self.locks.insert(id.clone(), guard);
                Reply::Lock(id)
            }
            Request::Unlock { lock } => match self.locks.remove(&lock) {
                Some(guard) => {
                    guard.release()?;
                    Reply::Done
                }
                None => {
                    return Err(Error::new(
                        ErrorKind::Other,
                        format!("no lock with id {lock:?} is held by this instance"),
                    ));
                }
            },
            Request::Hello { .. } | Request::Shutdown => Reply::Done,
        })
    }

    fn hello(&mut self, protocol: u64, namespace: &WireNamespace) -> Result<Reply> {
        use identity_cache_persistence::Error;
        if self.plugin.is_some() {
            return Err(Error::new(
                ErrorKind::Other,
                "`hello` was already answered on this connection",
            ));
        }
        if protocol != PROTOCOL_VERSION {
            return Err(Error::new(
                ErrorKind::NotSupported,
                format!("this plugin speaks protocol {PROTOCOL_VERSION}, not {protocol}"),
            ));
        }
        let namespace = Namespace::new(namespace.name.clone(), &namespace.dir);
        let plugin = (self.make_plugin)(&namespace)?;
        let description = plugin.describe();
        let name = if self.info.name.is_empty() {
            description.backend.clone()
        } else {
            self.info.name.clone()
        };
        self.plugin = Some(plugin);
        Ok(Reply::Hello(HelloInfo {
            name,
            version: self.info.version.clone(),
            protocol: PROTOCOL_VERSION,
            backend: description.backend,
            location: description.location,
            capabilities: description.capabilities,
            storage_under_dir: self.info.storage_under_dir,
        }))
    }
}
