//! The plugin's side of the protocol: answers requests with any `CachePersistence`.

use std::{
    collections::HashMap,
    io::{self, BufRead, Write},
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use identity_cache_persistence::{CachePersistence, Error, ErrorKind, LockGuard, Result};

use crate::factory::Namespace;

use super::lock;
use super::{
    lines::{LineRead, read_line},
    message::{
        Envelope, HelloInfo, MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request, WireNamespace,
        error_line, parse_request, reply_line,
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
/// The plugin is built by `make_plugin` from the namespace of the `hello` request, and
/// again for each `open`: one server process serves several handles, as one Rust process
/// holds several values of a plugin (a [`PluginFactory`](crate::PluginFactory) serves with
/// `|ns| factory.create(ns)`). It announces itself with the backend name of the plugin's
/// description and version `"unknown"`; [`serve_with`] names it.
///
/// Contract:
/// - Every request is answered with exactly one line carrying its id, flushed at once.
/// - `hello`, `open` and `close` are answered in order; every other request runs on a
///   thread of its own and is answered when done, so a `lock` that waits does not hold up
///   the `unlock` that ends the wait (the `hello` answer declares `handles`).
/// - A malformed line is answered with an error of kind `other` (id `null` when the line
///   had no usable id) and the server goes on; an unknown op with `not_supported`, a
///   request to an unknown handle with `other`.
/// - `close` drops the handle; its locks are released once no request of it is running.
/// - `shutdown` waits for the requests still running, releases every lock, answers and
///   returns; at end of input the same happens without an answer.
/// - A `lock` wait above `u32::MAX` milliseconds (about 49 days) is capped to that.
/// - Nothing but answers is written to `output`; a Rust plugin served on stdout must log
///   to stderr.
/// - Returns `Err` only when `input` or `output` fails (e.g. the suite went away).
pub fn serve<P, F>(make_plugin: F, input: impl BufRead, output: impl Write + Send) -> io::Result<()>
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
    output: impl Write + Send,
) -> io::Result<()>
where
    P: CachePersistence,
    F: FnMut(&Namespace) -> Result<P>,
{
    let mut session = Session {
        info,
        make_plugin,
        handles: Mutex::new(HashMap::new()),
        next_handle: 1,
    };
    let output = Mutex::new(output);
    thread::scope(|scope| -> io::Result<()> {
        let mut running = Vec::new();
        loop {
            let line = match read_line(&mut input, MAX_LINE_BYTES)? {
                LineRead::Line(line) => line,
                // A partial last line is a request the suite never finished sending:
                // nothing to answer, and nobody left to answer to.
                LineRead::Eof { .. } => return session.end(running),
                LineRead::TooLong { .. } => {
                    let message =
                        format!("malformed request: line longer than {MAX_LINE_BYTES} bytes");
                    write_line(&output, &error_line(None, ErrorKind::Other, &message))?;
                    continue;
                }
            };
            let envelope = match std::str::from_utf8(&line) {
                Err(_) => Err(error_line(
                    None,
                    ErrorKind::Other,
                    "malformed request: not UTF-8",
                )),
                Ok(text) => parse_request(text).map_err(|e| error_line(e.id, e.kind, &e.message)),
            };
            let Envelope {
                id,
                handle,
                request,
            } = match envelope {
                Ok(envelope) => envelope,
                Err(answer) => {
                    write_line(&output, &answer)?;
                    continue;
                }
            };
            let answer = move |result: Result<Reply>| match result {
                Ok(reply) => reply_line(id, &reply),
                Err(e) => error_line(Some(id), e.kind(), e.message()),
            };
            match request {
                Request::Hello {
                    protocol,
                    namespace,
                } => write_line(&output, &answer(session.hello(protocol, &namespace)))?,
                Request::Open { namespace } => {
                    write_line(&output, &answer(session.open(&namespace)))?
                }
                Request::Close => write_line(&output, &answer(session.close(handle)))?,
                Request::Shutdown => {
                    // Locks are released before answering, so that "answered" means "done".
                    session.end(running)?;
                    return write_line(&output, &answer(Ok(Reply::Done)));
                }
                request => match session.handle(handle.as_deref()) {
                    Err(e) => write_line(&output, &answer(Err(e)))?,
                    Ok(target) => {
                        let output = &output;
                        running.retain(|t: &thread::ScopedJoinHandle<'_, _>| !t.is_finished());
                        running.push(
                            scope.spawn(move || write_line(output, &answer(target.serve(request)))),
                        );
                    }
                },
            }
        }
    })
}

fn write_line(output: &Mutex<impl Write>, line: &str) -> io::Result<()> {
    let mut output = lock(output);
    output.write_all(line.as_bytes())?;
    output.write_all(b"\n")?;
    output.flush()
}

/// The key of the handle of `hello` in [`Session::handles`]; `open` hands out `H1`, `H2`, ...
const HELLO_HANDLE: &str = "";

/// The state of one connection: the handles `hello` and `open` built.
struct Session<P, F> {
    info: ServerInfo,
    make_plugin: F,
    handles: Mutex<HashMap<String, Arc<Handle<P>>>>,
    next_handle: u64,
}

/// One plugin value and the locks taken through it.
struct Handle<P> {
    plugin: P,
    /// Guards by the id handed out; dropping the map releases them all.
    locks: Mutex<HashMap<String, LockGuard>>,
    next_lock: Mutex<u64>,
}

impl<P, F> Session<P, F>
where
    P: CachePersistence,
    F: FnMut(&Namespace) -> Result<P>,
{
    /// Waits for the requests still running, then drops every handle and its locks.
    fn end<T>(&self, running: Vec<thread::ScopedJoinHandle<'_, io::Result<T>>>) -> io::Result<()> {
        for request in running {
            // A request thread that panicked has written nothing; the suite reports the
            // missing answer.
            if let Ok(written) = request.join() {
                written?;
            }
        }
        lock(&self.handles).clear();
        Ok(())
    }

    fn handle(&self, handle: Option<&str>) -> Result<Arc<Handle<P>>> {
        let handles = lock(&self.handles);
        if handles.is_empty() {
            return Err(Error::new(
                ErrorKind::Other,
                "the first request must be a successful `hello`",
            ));
        }
        handles
            .get(handle.unwrap_or(HELLO_HANDLE))
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Other,
                    format!("no open handle {:?} in this process", handle.unwrap_or("")),
                )
            })
    }

    fn hello(&mut self, protocol: u64, namespace: &WireNamespace) -> Result<Reply> {
        if lock(&self.handles).contains_key(HELLO_HANDLE) {
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
        let info = self.add(HELLO_HANDLE.to_owned(), namespace)?;
        Ok(Reply::Hello(info))
    }

    fn open(&mut self, namespace: &WireNamespace) -> Result<Reply> {
        self.handle(None)?;
        let id = format!("H{}", self.next_handle);
        self.next_handle += 1;
        let info = self.add(id.clone(), namespace)?;
        Ok(Reply::Open(id, info))
    }

    fn close(&self, handle: Option<String>) -> Result<Reply> {
        let Some(handle) = handle else {
            return Err(Error::new(
                ErrorKind::Other,
                "`close` needs the `handle` of an `open`; the handle of `hello` lives as long as the process",
            ));
        };
        match lock(&self.handles).remove(&handle) {
            Some(_) => Ok(Reply::Done),
            None => Err(Error::new(
                ErrorKind::Other,
                format!("no open handle {handle:?} in this process"),
            )),
        }
    }

    /// Builds the plugin of `namespace` and keeps it under `id`.
    fn add(&mut self, id: String, namespace: &WireNamespace) -> Result<HelloInfo> {
        let namespace = Namespace::new(namespace.name.clone(), &namespace.dir);
        let plugin = (self.make_plugin)(&namespace)?;
        let description = plugin.describe();
        let name = if self.info.name.is_empty() {
            description.backend.clone()
        } else {
            self.info.name.clone()
        };
        let handle = Handle {
            plugin,
            locks: Mutex::new(HashMap::new()),
            next_lock: Mutex::new(1),
        };
        lock(&self.handles).insert(id, Arc::new(handle));
        Ok(HelloInfo {
            name,
            version: self.info.version.clone(),
            protocol: PROTOCOL_VERSION,
            backend: description.backend,
            location: description.location,
            capabilities: description.capabilities,
            storage_under_dir: self.info.storage_under_dir,
            handles: true,
        })
    }
}

impl<P: CachePersistence> Handle<P> {
    /// Runs one request of the trait's methods on this handle.
    fn serve(&self, request: Request) -> Result<Reply> {
        let plugin = &self.plugin;
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
                // The largest value is how the client sends `Duration::MAX`, "no deadline"
                // (PROTOCOL.md, `lock`): the plugin gets it as such, so that
                // `lock::unbounded_wait_enters_after_release` judges it over the protocol too.
                let wait = if wait_ms == u64::MAX {
                    Duration::MAX
                } else {
                    Duration::from_millis(wait_ms)
                };
                let guard = plugin.lock(wait)?;
                let id = {
                    let mut next = lock(&self.next_lock);
                    *next += 1;
                    format!("L{}", *next - 1)
                };
                lock(&self.locks).insert(id.clone(), guard);
                Reply::Lock(id)
            }
            Request::Unlock { lock: id } => {
                // Taken out of the map first: a release that blocks must not hold it.
                let guard = lock(&self.locks).remove(&id);
                match guard {
                    Some(guard) => {
                        guard.release()?;
                        Reply::Done
                    }
                    None => {
                        return Err(Error::new(
                            ErrorKind::Other,
                            format!("no lock with id {id:?} is held by this handle"),
                        ));
                    }
                }
            }
            Request::Hello { .. } | Request::Open { .. } | Request::Close | Request::Shutdown => {
                return Err(Error::new(
                    ErrorKind::Other,
                    format!("`{}` is not a request of a handle", request.op()),
                ));
            }
        })
    }
}
