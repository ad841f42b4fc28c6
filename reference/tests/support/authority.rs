//! A real HTTP/1.1 server on 127.0.0.1 for the tests' mock authorities: each request is
//! parsed (request line, `Content-Length` body, form-decoded), counted, and answered by
//! the test's handler on a thread of its own, so a handler may sleep to hold an answer
//! back.
//!
//! A std `TcpListener` rather than a server crate: the tests need to count, delay and
//! script answers in a few lines, and hyper or axum would add more build time than the
//! tests take on a 2-core CI.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

/// One request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, without query.
    pub path: String,
    /// The form-decoded body (`application/x-www-form-urlencoded`).
    pub form: HashMap<String, String>,
}

impl Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form.get(name).map(String::as_str)
    }
}

/// The handler's answer: a status and a JSON body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub json: String,
}

impl Response {
    pub fn ok(json: impl Into<String>) -> Self {
        Response {
            status: 200,
            json: json.into(),
        }
    }

    /// An OAuth error answer (RFC 6749 §5.2), status 400.
    pub fn oauth_error(error: &str) -> Self {
        Response {
            status: 400,
            json: format!(
                r#"{{"error":"{error}","error_description":"AADSTS00000: {error} (mock)","error_codes":[0]}}"#
            ),
        }
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// The server; stops accepting when dropped.
pub struct Server {
    port: u16,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("addr").port();
        let server = Server {
            port,
            log: Arc::default(),
            stop: Arc::default(),
        };
        let handler: Arc<Handler> = Arc::new(handler);
        let (log, stop) = (server.log.clone(), server.stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (handler, log) = (handler.clone(), log.clone());
                thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        server
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request answered or being answered, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().expect("log").clone()
    }

    /// How many requests were for a path ending in `suffix` and, when given, with form
    /// field `grant_type` equal to `grant`.
    pub fn count(&self, suffix: &str, grant: Option<&str>) -> usize {
        self.requests()
            .iter()
            .filter(|r| {
                r.path.ends_with(suffix) && (grant.is_none() || r.param("grant_type") == grant)
            })
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag and ends.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves the requests of one connection (clients may keep it alive) until it closes.
fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let (mut length, mut close) = (0, false);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            let line = line.to_ascii_lowercase();
            if let Some(v) = line.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            close |= line.starts_with("connection:") && line.contains("close");
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("");
        let request = Request {
            method,
            path: target.split('?').next().unwrap_or("").to_owned(),
            form: form_decode(&String::from_utf8_lossy(&body)),
        };
        log.lock().expect("log").push(request.clone());
        let response = handler(&request);
        let stream = reader.get_mut();
        let written = write!(
            stream,
            "HTTP/1.1 {} {}\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: {}\r\n{}\r\n{}",
            response.status,
            if response.status == 200 {
                "OK"
            } else {
                "Bad Request"
            },
            response.json.len(),
            if close { "Connection: close\r\n" } else { "" },
            response.json
        );
        if written.is_err() || close {
            return;
        }
    }
}

fn form_decode(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Form-encodes a value, as the OAuth2 clients of the tests send.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
