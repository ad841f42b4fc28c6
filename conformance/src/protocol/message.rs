//! The messages of protocol 1 and their JSON form (see `conformance/PROTOCOL.md`).
//!
//! Both directions are parsed by hand from [`serde_json::Value`] rather than derived, so that
//! every way a line can be wrong becomes an error that names what was wrong (a
//! [`RequestError`] on the plugin's side, a message on the suite's): a derived deserializer
//! would lump "unknown op" (which a plugin answers with `not_supported`) together with
//! "malformed line" (answered with `other` by a plugin, a violation when the suite gets one).
//!
//! Blob bytes are carried base64-encoded (standard alphabet, with padding) and never
//! appear in `Debug` output of these types: only their length does.

use std::fmt;

use base64::Engine as _;
use identity_cache_persistence::{Capabilities, ErrorKind};
use serde_json::{Map, Value, json};

/// The protocol version this crate speaks, sent in `hello` and expected back.
pub const PROTOCOL_VERSION: u64 = 1;

/// The longest line either side accepts, in bytes. Far above any blob the suite saves
/// (a 16 MiB blob is about 22 MiB of base64); it bounds memory if a plugin goes astray.
pub const MAX_LINE_BYTES: usize = 256 * 1024 * 1024;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The storage slot a plugin instance is bound to, as sent in `hello`.
///
/// Every instance given equal namespaces works on the same slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireNamespace {
    /// The slot (cache) name.
    pub name: String,
    /// A scratch directory the plugin may use for its files; it exists and is empty when
    /// the first instance starts.
    pub dir: String,
}

/// What the suite asks, one per line.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// The handshake, always first.
    Hello {
        /// The protocol version of the suite.
        protocol: u64,
        /// The slot to work on.
        namespace: WireNamespace,
    },
    /// `CachePersistence::load`.
    Load,
    /// `CachePersistence::save`.
    Save {
        /// The blob.
        data: Vec<u8>,
    },
    /// `CachePersistence::delete`.
    Delete,
    /// `CachePersistence::version`.
    Version,
    /// `CachePersistence::lock` with a bounded wait.
    Lock {
        /// How long the plugin may wait for the lock, in milliseconds.
        wait_ms: u64,
    },
    /// Releases a lock returned by [`Request::Lock`].
    Unlock {
        /// The id the plugin returned for the lock.
        lock: String,
    },
    /// Release everything, answer, and exit.
    Shutdown,
    /// Another handle in the same process, on `namespace`; only for a plugin whose `hello`
    /// answer declared `handles`.
    Open {
        /// The slot of the new handle.
        namespace: WireNamespace,
    },
    /// Drops the handle the request is sent to, releasing the locks taken through it.
    Close,
}

impl Request {
    /// The `op` name on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Load => "load",
            Request::Save { .. } => "save",
            Request::Delete => "delete",
            Request::Version => "version",
            Request::Lock { .. } => "lock",
            Request::Unlock { .. } => "unlock",
            Request::Shutdown => "shutdown",
            Request::Open { .. } => "open",
            Request::Close => "close",
        }
    }

    /// The JSON line (without the newline) for this request with `id`, sent to `handle`
    /// (`None`: the handle of `hello`).
    pub fn to_line(&self, id: u64, handle: Option<&str>) -> String {
        let mut object = Map::new();
        object.insert("id".into(), json!(id));
        object.insert("op".into(), json!(self.op()));
        if let Some(handle) = handle {
            object.insert("handle".into(), json!(handle));
        }
        let namespace_json =
            |namespace: &WireNamespace| json!({"name": namespace.name, "dir": namespace.dir});
        match self {
            Request::Hello {
                protocol,
                namespace,
            } => {
                object.insert("protocol".into(), json!(protocol));
                object.insert("namespace".into(), namespace_json(namespace));
            }
            Request::Open { namespace } => {
                object.insert("namespace".into(), namespace_json(namespace));
            }
            Request::Save { data } => {
                object.insert("data".into(), json!(BASE64.encode(data)));
            }
            Request::Lock { wait_ms } => {
                object.insert("wait_ms".into(), json!(wait_ms));
            }
            Request::Unlock { lock } => {
                object.insert("lock".into(), json!(lock));
            }
            Request::Load
            | Request::Delete
            | Request::Version
            | Request::Shutdown
            | Request::Close => {}
        }
        Value::Object(object).to_string()
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Save { data } => f
                .debug_struct("Save")
                .field("data", &format_args!("<{} bytes>", data.len()))
                .finish(),
            Request::Hello {
                protocol,
                namespace,
            } => f
                .debug_struct("Hello")
                .field("protocol", protocol)
                .field("namespace", namespace)
                .finish(),
            Request::Open { namespace } => f
                .debug_struct("Open")
                .field("namespace", namespace)
                .finish(),
            Request::Lock { wait_ms } => f.debug_struct("Lock").field("wait_ms", wait_ms).finish(),
            Request::Unlock { lock } => f.debug_struct("Unlock").field("lock", lock).finish(),
            other => f.write_str(match other {
                Request::Load => "Load",
                Request::Delete => "Delete",
                Request::Version => "Version",
                Request::Close => "Close",
                _ => "Shutdown",
            }),
        }
    }
}

/// A request line the server could not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The request's id, when the line had a usable one; the error answer echoes it.
    pub id: Option<u64>,
    /// `not_supported` for an op the server does not know, `other` for a malformed line.
    pub kind: ErrorKind,
    /// What was wrong, for people.
    pub message: String,
}

/// A parsed request line: its id, the handle it is sent to, and the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The id the answer echoes.
    pub id: u64,
    /// The handle named by the line's `handle` field; `None` for the handle of `hello`.
    pub handle: Option<String>,
    /// What is asked.
    pub request: Request,
}

/// Parses one request line.
pub fn parse_request(line: &str) -> Result<Envelope, RequestError> {
    let malformed = |id, message: String| RequestError {
        id,
        kind: ErrorKind::Other,
        message,
    };
    let value: Value = serde_json::from_str(line)
        .map_err(|e| malformed(None, format!("malformed request: not JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(malformed(
            None,
            "malformed request: not a JSON object".into(),
        ));
    };
    let id = match object.get("id") {
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    }
    .ok_or_else(|| {
        malformed(
            None,
            "malformed request: `id` must be a non-negative integer".into(),
        )
    })?;
    let op = match object.get("op") {
        Some(Value::String(op)) => op.as_str(),
        _ => {
            return Err(malformed(
                Some(id),
                "malformed request: no `op` string".into(),
            ));
        }
    };
    let fields = Fields {
        object: &object,
        what: "request",
    };
    let handle = match object.get("handle") {
        None | Some(Value::Null) => None,
        Some(Value::String(handle)) => Some(handle.clone()),
        Some(_) => {
            return Err(malformed(
                Some(id),
                "malformed request: `handle` must be a string".into(),
            ));
        }
    };
    match parse_op(op, &fields) {
        Ok(Some(request)) => Ok(Envelope {
            id,
            handle,
            request,
        }),
        Ok(None) => Err(RequestError {
            id: Some(id),
            kind: ErrorKind::NotSupported,
            message: format!("unknown op `{}`", truncate(op, 64)),
        }),
        Err(message) => Err(malformed(Some(id), format!("malformed request: {message}"))),
    }
}

/// The request for a known `op`, `None` for an unknown one.
fn parse_op(op: &str, fields: &Fields<'_>) -> Result<Option<Request>, String> {
    let namespace = || -> Result<WireNamespace, String> {
        let namespace = Fields {
            object: fields.object_field("namespace")?,
            what: "namespace",
        };
        Ok(WireNamespace {
            name: namespace.str_field("name")?.to_owned(),
            dir: namespace.str_field("dir")?.to_owned(),
        })
    };
    let request = match op {
        "hello" => Request::Hello {
            protocol: fields.u64_field("protocol")?,
            namespace: namespace()?,
        },
        "open" => Request::Open {
            namespace: namespace()?,
        },
        "close" => Request::Close,
        "load" => Request::Load,
        "save" => Request::Save {
            data: decode_blob(fields.str_field("data")?)?,
        },
        "delete" => Request::Delete,
        "version" => Request::Version,
        "lock" => Request::Lock {
            wait_ms: fields.u64_field("wait_ms")?,
        },
        "unlock" => Request::Unlock {
            lock: fields.str_field("lock")?.to_owned(),
        },
        "shutdown" => Request::Shutdown,
        _ => return Ok(None),
    };
    Ok(Some(request))
}

/// What a plugin says about itself in answer to `hello`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloInfo {
    /// The plugin's name, e.g. `"example-file-plugin"`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The protocol version the plugin speaks.
    pub protocol: u64,
    /// `Description::backend`.
    pub backend: String,
    /// `Description::location`.
    pub location: String,
    /// The capabilities the suite selects its cases by.
    pub capabilities: Capabilities,
    /// Everything the plugin stores for the namespace (data, lock files, markers) is under
    /// the namespace directory, so the suite may damage, cut off, refuse or fill that
    /// directory to provoke corruption and faults with no hook in the plugin. Optional on
    /// the wire (`storage_under_dir`), `false` when absent.
    pub storage_under_dir: bool,
    /// The process serves several handles, opened with [`Request::Open`], and takes
    /// requests while others are unanswered (see PROTOCOL.md). Optional on the wire
    /// (`handles`), `false` when absent.
    pub handles: bool,
}

/// The successful result of a request.
#[derive(Clone, PartialEq, Eq)]
pub enum Reply {
    /// Answer to `hello`.
    Hello(HelloInfo),
    /// Answer to `load`: `None` when nothing is stored.
    Load(Option<Vec<u8>>),
    /// Answer to `delete`: whether something was stored.
    Delete(bool),
    /// Answer to `version`: the change token, `None` when nothing is stored.
    Version(Option<String>),
    /// Answer to `lock`: the id to pass to `unlock`.
    Lock(String),
    /// Answer to `open`: the new handle's id, and what it is.
    Open(String, HelloInfo),
    /// Answer to `save`, `unlock`, `close` and `shutdown`.
    Done,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Hello(info) => f.debug_tuple("Hello").field(info).finish(),
            Reply::Load(None) => f.write_str("Load(None)"),
            Reply::Load(Some(data)) => write!(f, "Load(<{} bytes>)", data.len()),
            Reply::Delete(deleted) => f.debug_tuple("Delete").field(deleted).finish(),
            Reply::Version(token) => f.debug_tuple("Version").field(token).finish(),
            Reply::Lock(id) => f.debug_tuple("Lock").field(id).finish(),
            Reply::Open(handle, info) => f.debug_tuple("Open").field(handle).field(info).finish(),
            Reply::Done => f.write_str("Done"),
        }
    }
}

/// An error answer: a kind from `ErrorKind::as_str` and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// What went wrong, in terms the suite acts on.
    pub kind: ErrorKind,
    /// For people; never contains the blob.
    pub message: String,
}

/// The JSON line for a successful answer to request `id`.
pub fn reply_line(id: u64, reply: &Reply) -> String {
    let hello = |info: &HelloInfo| {
        json!({
            "name": info.name,
            "version": info.version,
            "protocol": info.protocol,
            "backend": info.backend,
            "location": info.location,
            "capabilities": {
                "encrypts_at_rest": info.capabilities.encrypts_at_rest,
                "exclusive_lock": info.capabilities.exclusive_lock,
                // The name of the first protocol-1 suites, for those that still read it.
                "cross_process_lock": info.capabilities.exclusive_lock,
                "change_detection": info.capabilities.change_detection,
                "shared_across_processes": info.capabilities.shared_across_processes,
                "max_size": info.capabilities.max_size,
            },
            "storage_under_dir": info.storage_under_dir,
            "handles": info.handles,
        })
    };
    let ok = match reply {
        Reply::Hello(info) => hello(info),
        Reply::Open(handle, info) => {
            let mut ok = hello(info);
            ok["handle"] = json!(handle);
            ok
        }
        Reply::Load(data) => json!({"data": data.as_ref().map(|d| BASE64.encode(d))}),
        Reply::Delete(deleted) => json!({"deleted": deleted}),
        Reply::Version(token) => json!({"token": token}),
        Reply::Lock(id) => json!({"lock": id}),
        Reply::Done => json!({}),
    };
    json!({"id": id, "ok": ok}).to_string()
}

/// The JSON line for an error answer; `id` is `None` (JSON `null`) only when the request
/// line had no usable id.
pub fn error_line(id: Option<u64>, kind: ErrorKind, message: &str) -> String {
    json!({"id": id, "error": {"kind": kind.as_str(), "message": message}}).to_string()
}

/// Parses a response line into its id and either the raw `ok` value or an error answer.
///
/// The `ok` value is interpreted by [`parse_reply`], which needs to know the request.
pub fn parse_response(line: &str) -> Result<(u64, Result<Value, ErrorReply>), String> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| format!("the line is not JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("the line is not a JSON object".into());
    };
    let id = match object.get("id") {
        Some(Value::Number(n)) => n.as_u64(),
        _ => None,
    }
    .ok_or("`id` is missing or not a non-negative integer")?;
    match (object.remove("ok"), object.remove("error")) {
        (Some(ok), None) => Ok((id, Ok(ok))),
        (None, Some(Value::Object(error))) => {
            let fields = Fields {
                object: &error,
                what: "error",
            };
            let kind_name = fields.str_field("kind")?;
            let kind = ErrorKind::from_name(kind_name).ok_or_else(|| {
                format!(
                    "unknown error kind `{}` (the kinds are {})",
                    truncate(kind_name, 64),
                    ErrorKind::ALL.map(ErrorKind::as_str).join(", ")
                )
            })?;
            let message = fields.str_field("message")?;
            Ok((
                id,
                Err(ErrorReply {
                    kind,
                    message: message.to_owned(),
                }),
            ))
        }
        (None, Some(_)) => Err("`error` is not an object".into()),
        (Some(_), Some(_)) => Err("the response has both `ok` and `error`".into()),
        (None, None) => Err("the response has neither `ok` nor `error`".into()),
    }
}

/// Interprets the `ok` value of the answer to `request`.
pub fn parse_reply(request: &Request, ok: &Value) -> Result<Reply, String> {
    let object = ok
        .as_object()
        .ok_or_else(|| format!("`ok` of a `{}` answer is not an object", request.op()))?;
    let fields = Fields { object, what: "ok" };
    let reply = match request {
        Request::Hello { .. } => Reply::Hello(parse_hello(&fields)?),
        Request::Load => Reply::Load(match fields.nullable_str_field("data")? {
            None => None,
            Some(text) => Some(decode_blob(text)?),
        }),
        Request::Delete => Reply::Delete(fields.bool_field("deleted")?),
        Request::Version => Reply::Version(fields.nullable_str_field("token")?.map(str::to_owned)),
        Request::Lock { .. } => Reply::Lock(fields.str_field("lock")?.to_owned()),
        Request::Open { .. } => Reply::Open(
            fields.str_field("handle")?.to_owned(),
            parse_hello(&fields)?,
        ),
        Request::Save { .. } | Request::Unlock { .. } | Request::Shutdown | Request::Close => {
            Reply::Done
        }
    };
    Ok(reply)
}

fn parse_hello(fields: &Fields<'_>) -> Result<HelloInfo, String> {
    let caps = Fields {
        object: fields.object_field("capabilities")?,
        what: "capabilities",
    };
    let max_size = match caps.object.get("max_size") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or("`capabilities.max_size` is not a non-negative integer")?,
        ),
        Some(_) => return Err("`capabilities.max_size` must be an integer or null".into()),
    };
    let capabilities = Capabilities::full()
        .encrypts_at_rest(caps.bool_field("encrypts_at_rest")?)
        .exclusive_lock(caps.exclusive_lock()?)
        .change_detection(caps.bool_field("change_detection")?)
        .shared_across_processes(caps.bool_field("shared_across_processes")?)
        .max_size(max_size);
    Ok(HelloInfo {
        name: fields.str_field("name")?.to_owned(),
        version: fields.str_field("version")?.to_owned(),
        protocol: fields.u64_field("protocol")?,
        backend: fields.str_field("backend")?.to_owned(),
        location: fields.str_field("location")?.to_owned(),
        capabilities,
        storage_under_dir: fields.optional_bool_field("storage_under_dir")?,
        handles: fields.optional_bool_field("handles")?,
    })
}

/// Decodes a base64 blob; the message names the problem, never the content.
fn decode_blob(text: &str) -> Result<Vec<u8>, String> {
    BASE64
        .decode(text)
        .map_err(|e| format!("`data` is not standard padded base64: {e}"))
}

/// Typed access to the fields of one JSON object, with messages naming the field.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn missing(&self, name: &str, expected: &str) -> String {
        format!("`{}.{name}` must be {expected}", self.what)
    }

    fn str_field(&self, name: &str) -> Result<&'a str, String> {
        match self.object.get(name) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(self.missing(name, "a string")),
        }
    }

    fn nullable_str_field(&self, name: &str) -> Result<Option<&'a str>, String> {
        match self.object.get(name) {
            Some(Value::String(s)) => Ok(Some(s)),
            Some(Value::Null) => Ok(None),
            _ => Err(self.missing(name, "a string or null")),
        }
    }

    fn bool_field(&self, name: &str) -> Result<bool, String> {
        match self.object.get(name) {
            Some(Value::Bool(b)) => Ok(*b),
            _ => Err(self.missing(name, "true or false")),
        }
    }

    /// `exclusive_lock`, or `cross_process_lock`, its name in the first protocol-1
    /// plugins; the new name wins when both are present.
    fn exclusive_lock(&self) -> Result<bool, String> {
        match self.object.get("exclusive_lock") {
            None => self
                .bool_field("cross_process_lock")
                .map_err(|_| self.missing("exclusive_lock", "true or false")),
            Some(_) => self.bool_field("exclusive_lock"),
        }
    }

    /// A boolean that may be absent (or `null`): `false` then.
    fn optional_bool_field(&self, name: &str) -> Result<bool, String> {
        match self.object.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.missing(name, "true or false when present")),
        }
    }

    fn u64_field(&self, name: &str) -> Result<u64, String> {
        match self.object.get(name).and_then(Value::as_u64) {
            Some(n) => Ok(n),
            None => Err(self.missing(name, "a non-negative integer")),
        }
    }

    fn object_field(&self, name: &str) -> Result<&'a Map<String, Value>, String> {
        match self.object.get(name) {
            Some(Value::Object(o)) => Ok(o),
            _ => Err(self.missing(name, "an object")),
        }
    }
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// A line as it may appear in an error message: long base64-looking runs (blob data) are
/// replaced by their length, and the result is cut to a readable size.
pub fn quote_line(line: &str) -> String {
    const RUN: usize = 24;
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() > RUN {
            out.push_str(&format!("<{} base64 chars>", run.len()));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=') {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    format!("{:?}", truncate(&out, 300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let requests = [
            Request::Hello {
                protocol: 1,
                namespace: WireNamespace {
                    name: "n".into(),
                    dir: "/tmp/x".into(),
                },
            },
            Request::Load,
            Request::Save {
                data: vec![0, 255, 10, 13],
            },
            Request::Save { data: vec![] },
            Request::Delete,
            Request::Version,
            Request::Lock { wait_ms: 5 },
            Request::Unlock { lock: "L1".into() },
            Request::Shutdown,
            Request::Open {
                namespace: WireNamespace {
                    name: "m".into(),
                    dir: "e".into(),
                },
            },
            Request::Close,
        ];
        for (id, request) in requests.into_iter().enumerate() {
            let id = id as u64;
            for handle in [None, Some("H2".to_owned())] {
                let line = request.to_line(id, handle.as_deref());
                assert!(!line.contains('\n'));
                let envelope = Envelope {
                    id,
                    handle,
                    request: request.clone(),
                };
                assert_eq!(parse_request(&line), Ok(envelope));
            }
        }
    }

    #[test]
    fn malformed_requests_are_typed_errors() {
        for line in ["", "nope", "[]", "{}", r#"{"id":-1,"op":"load"}"#] {
            let err = parse_request(line).expect_err(line);
            assert_eq!((err.id, err.kind), (None, ErrorKind::Other), "{line}");
        }
        let err = parse_request(r#"{"id":4,"op":"save","data":"!!"}"#).expect_err("bad b64");
        assert_eq!((err.id, err.kind), (Some(4), ErrorKind::Other));
        let err = parse_request(r#"{"id":5,"op":"fly"}"#).expect_err("unknown op");
        assert_eq!((err.id, err.kind), (Some(5), ErrorKind::NotSupported));
        let err = parse_request(r#"{"id":6,"op":"load","handle":2}"#).expect_err("handle");
        assert_eq!((err.id, err.kind), (Some(6), ErrorKind::Other));
    }

    #[test]
    fn replies_round_trip() {
        let cases = [
            (Request::Load, Reply::Load(None)),
            (Request::Load, Reply::Load(Some(vec![]))),
            (Request::Load, Reply::Load(Some(vec![1, 2, 3]))),
            (Request::Delete, Reply::Delete(true)),
            (Request::Version, Reply::Version(None)),
            (Request::Version, Reply::Version(Some("t".into()))),
            (Request::Lock { wait_ms: 1 }, Reply::Lock("L9".into())),
            (Request::Shutdown, Reply::Done),
            (Request::Close, Reply::Done),
        ];
        for (request, reply) in cases {
            let (id, ok) = parse_response(&reply_line(7, &reply)).expect("parses");
            assert_eq!(id, 7);
            let ok = ok.expect("ok");
            assert_eq!(parse_reply(&request, &ok), Ok(reply));
        }
        let info = HelloInfo {
            name: "p".into(),
            version: "1".into(),
            protocol: 1,
            backend: "file".into(),
            location: "/x".into(),
            capabilities: Capabilities::full().max_size(Some(10)),
            storage_under_dir: true,
            handles: true,
        };
        let hello = Request::Hello {
            protocol: 1,
            namespace: WireNamespace {
                name: "n".into(),
                dir: "d".into(),
            },
        };
        let (_, ok) = parse_response(&reply_line(0, &Reply::Hello(info.clone()))).expect("ok");
        assert_eq!(
            parse_reply(&hello, &ok.expect("ok")),
            Ok(Reply::Hello(info.clone()))
        );
        let open = Request::Open {
            namespace: WireNamespace {
                name: "n".into(),
                dir: "d".into(),
            },
        };
        let opened = Reply::Open("H3".into(), info);
        let (_, ok) = parse_response(&reply_line(1, &opened)).expect("ok");
        assert_eq!(parse_reply(&open, &ok.expect("ok")), Ok(opened));
    }

    #[test]
    fn the_first_name_of_the_lock_capability_is_still_read() {
        let hello = Request::Hello {
            protocol: 1,
            namespace: WireNamespace {
                name: "n".into(),
                dir: "d".into(),
            },
        };
        let answer = |lock_fields: &str| {
            let ok: Value = serde_json::from_str(&format!(
                r#"{{"name":"p","version":"1","protocol":1,"backend":"b","location":"l",
                "capabilities":{{"encrypts_at_rest":false,{lock_fields}"change_detection":true,
                "shared_across_processes":true,"max_size":null}}}}"#
            ))
            .expect("json");
            match parse_reply(&hello, &ok) {
                Ok(Reply::Hello(info)) => Ok(info.capabilities.exclusive_lock),
                Ok(other) => panic!("not a hello answer: {other:?}"),
                Err(e) => Err(e),
            }
        };
        assert_eq!(answer(r#""cross_process_lock":true,"#), Ok(true));
        assert_eq!(answer(r#""exclusive_lock":false,"#), Ok(false));
        assert_eq!(
            answer(r#""exclusive_lock":false,"cross_process_lock":true,"#),
            Ok(false)
        );
        let missing = answer("").expect_err("neither name");
        assert!(missing.contains("exclusive_lock"), "{missing}");
    }

    #[test]
    fn error_answers_carry_known_kinds_only() {
        let line = error_line(Some(3), ErrorKind::LockTimeout, "busy");
        let (id, answer) = parse_response(&line).expect("parses");
        assert_eq!(id, 3);
        assert_eq!(
            answer.expect_err("error"),
            ErrorReply {
                kind: ErrorKind::LockTimeout,
                message: "busy".into()
            }
        );
        let bad = r#"{"id":3,"error":{"kind":"oops","message":"m"}}"#;
        assert!(parse_response(bad).is_err());
        assert!(parse_response(r#"{"id":3}"#).is_err());
        assert!(parse_response(r#"{"id":3,"ok":{},"error":{}}"#).is_err());
    }

    #[test]
    fn debug_and_quotes_hide_blobs() {
        let secret = b"secret-token-value-that-is-long".to_vec();
        let debug = format!(
            "{:?}",
            Request::Save {
                data: secret.clone()
            }
        );
        assert!(!debug.contains("secret"), "{debug}");
        let debug = format!("{:?}", Reply::Load(Some(secret.clone())));
        assert!(!debug.contains("secret"), "{debug}");
        let line = Request::Save {
            data: secret.clone(),
        }
        .to_line(1, None);
        let encoded = BASE64.encode(&secret);
        assert!(line.contains(&encoded));
        let quoted = quote_line(&line);
        assert!(!quoted.contains(&encoded[..20]), "{quoted}");
        assert!(quoted.contains("save"), "{quoted}");
        assert!(quote_line(&"x".repeat(10_000)).len() < 400);
    }
}
