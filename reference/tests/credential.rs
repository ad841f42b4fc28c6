//! End to end: `PersistentTokenCredential` in front of a real HTTP token endpoint on
//! 127.0.0.1, across real processes (this test binary re-executed as a worker).
//!
//! The endpoint is the tests' std `TcpListener` server (`support/authority.rs`): it
//! counts requests, delays answers and changes `expires_in` between requests. The inner credential is ours, speaking the OAuth2
//! client-credentials request (`grant_type=client_credentials`, form-encoded POST to
//! `/{tenant}/oauth2/v2.0/token`): azure_identity 1.0's `ClientSecretCredential` refuses
//! an authority host that is not `https://` ("authority host doesn't use HTTPS scheme"),
//! and the endpoint here speaks plain HTTP.
#![cfg(feature = "azure")]

mod support;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::Output,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use azure_core::{
    credentials::{AccessToken, TokenCredential, TokenRequestOptions},
    time::OffsetDateTime,
};
use identity_cache_persistence::{
    FilePersistence, TokenCachePersistenceOptions,
    azure::{CacheIdentity, PersistentTokenCredential},
    token_cache::Quarantine,
};
use support::authority::{Request, Response, Server, form_encode};

const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
const CLIENT: &str = "00000000-0000-0000-0000-000000000001";
const CLIENT_SECRET: &str = "client-secret-Zq8~never-log-me";
const SCOPE: &str = "https://vault.azure.net/.default";

// ---- the token endpoint ------------------------------------------------------------

/// An OAuth2 token endpoint on 127.0.0.1 that counts the requests it answers.
struct TokenServer {
    server: Server,
    expires_in: Arc<AtomicU64>,
    issued: Arc<Mutex<Vec<String>>>,
}

impl TokenServer {
    /// Answers each request after `delay`, with tokens valid for `expires_in` seconds.
    fn start(expires_in: u64, delay: Duration) -> Self {
        let expires = Arc::new(AtomicU64::new(expires_in));
        let issued: Arc<Mutex<Vec<String>>> = Arc::default();
        let server = Server::start({
            let (expires, issued) = (expires.clone(), issued.clone());
            move |request| {
                let token = {
                    let mut issued = issued.lock().expect("issued");
                    let token = format!(
                        "eyJ0eXAiOiJKV1QifQ.{}-{}.c2ln",
                        issued.len() + 1,
                        fastrand::u64(..)
                    );
                    issued.push(token.clone());
                    token
                };
                thread::sleep(delay);
                answer(request, &token, expires.load(Ordering::SeqCst))
            }
        });
        TokenServer {
            server,
            expires_in: expires,
            issued,
        }
    }

    fn requests(&self) -> usize {
        self.server.requests().len()
    }

    fn issued(&self) -> Vec<String> {
        self.issued.lock().expect("issued").clone()
    }

    fn authority(&self) -> String {
        self.server.url()
    }
}

/// Checks the request is a client-credentials token request, answers.
fn answer(request: &Request, token: &str, expires_in: u64) -> Response {
    let ok = request.method == "POST"
        && request.path == format!("/{TENANT}/oauth2/v2.0/token")
        && request.param("grant_type") == Some("client_credentials")
        && request.param("client_id") == Some(CLIENT);
    if ok {
        Response::ok(format!(
            r#"{{"token_type":"Bearer","expires_in":{expires_in},"ext_expires_in":{expires_in},"access_token":"{token}"}}"#
        ))
    } else {
        Response::oauth_error("invalid_request")
    }
}

// ---- the inner credential: OAuth2 client credentials over HTTP ------------------------

#[derive(Debug)]
struct ClientCredentials {
    authority: String,
}

impl ClientCredentials {
    fn request(authority: &str, scopes: &[String]) -> Result<(String, u64), String> {
        let address = authority.trim_start_matches("http://");
        let body = format!(
            "client_id={}&client_secret={}&grant_type=client_credentials&scope={}",
            form_encode(CLIENT),
            form_encode(CLIENT_SECRET),
            form_encode(&scopes.join(" "))
        );
        let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
        write!(
            stream,
            "POST /{TENANT}/oauth2/v2.0/token HTTP/1.1\r\nHost: {address}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        let (head, json) = response.split_once("\r\n\r\n").ok_or("no body")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(head.lines().next().unwrap_or("").to_owned());
        }
        let json: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let token = json["access_token"].as_str().ok_or("no access_token")?;
        let expires_in = json["expires_in"].as_u64().ok_or("no expires_in")?;
        Ok((token.to_owned(), expires_in))
    }
}

#[async_trait::async_trait]
impl TokenCredential for ClientCredentials {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let authority = self.authority.clone();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        let (token, expires_in) =
            tokio::task::spawn_blocking(move || Self::request(&authority, &scopes))
                .await
                .map_err(|e| azure_core::Error::new(azure_core::error::ErrorKind::Io, e))?
                .map_err(|e| {
                    azure_core::Error::with_message(azure_core::error::ErrorKind::Credential, e)
                })?;
        Ok(AccessToken::new(
            token,
            OffsetDateTime::now_utc() + Duration::from_secs(expires_in),
        ))
    }
}

fn credential(authority: &str, cache_dir: &Path) -> PersistentTokenCredential {
    let cache = cache_dir.join("msal.cache");
    PersistentTokenCredential::with_persistence(
        Arc::new(ClientCredentials {
            authority: authority.to_owned(),
        }),
        CacheIdentity::new(CLIENT, TENANT).with_authority_host(authority),
        Box::new(FilePersistence::new(&cache).expect("file persistence")),
        Quarantine::beside(cache),
    )
}

// ---- worker processes -----------------------------------------------------------------

/// The worker: a no-op in a normal run; in a re-executed process, one `get_token` with
/// the authority and cache directory from the environment, printing the token.
#[test]
fn worker_process() {
    let (Ok(authority), Ok(dir)) = (
        std::env::var("CREDENTIAL_WORKER_AUTHORITY"),
        std::env::var("CREDENTIAL_WORKER_DIR"),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let token = runtime
        .block_on(credential(&authority, Path::new(&dir)).get_token(&[SCOPE], None))
        .expect("token");
    // On a line of its own: libtest has printed "test worker_process ... " without one.
    println!("\nTOKEN {}", token.token.secret());
}

fn spawn_worker(server: &TokenServer, dir: &Path) -> std::process::Child {
    let authority = server.authority();
    support::worker::spawn(&[
        ("CREDENTIAL_WORKER_AUTHORITY", authority.as_ref()),
        ("CREDENTIAL_WORKER_DIR", dir.as_os_str()),
    ])
}

fn token_of(output: Output) -> String {
    assert!(
        output.status.success(),
        "worker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN ").map(str::to_owned))
        .expect("worker printed its token")
}

fn run_worker(server: &TokenServer, dir: &Path) -> String {
    token_of(
        spawn_worker(server, dir)
            .wait_with_output()
            .expect("worker"),
    )
}

// ---- the tests ------------------------------------------------------------------------

#[test]
fn a_second_process_gets_the_cached_token_without_a_request() {
    let server = TokenServer::start(3600, Duration::ZERO);
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run_worker(&server, dir.path());
    assert_eq!(
        server.requests(),
        1,
        "the first process asks the endpoint once"
    );
    let second = run_worker(&server, dir.path());
    assert_eq!(server.requests(), 1, "the second process asks nobody");
    assert_eq!(second, first);
}

#[test]
fn a_token_near_expiry_is_refreshed_once() {
    // Valid for the refresh margin (300 s) plus 3 s: a hit for 2 s at least, then due.
    let server = TokenServer::start(303, Duration::ZERO);
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run_worker(&server, dir.path());
    assert_eq!(run_worker(&server, dir.path()), first, "still fresh");
    assert_eq!(server.requests(), 1);
    thread::sleep(Duration::from_millis(4100));
    server.expires_in.store(3600, Ordering::SeqCst);
    let refreshed = run_worker(&server, dir.path());
    assert_ne!(refreshed, first);
    assert_eq!(server.requests(), 2, "one refresh");
    assert_eq!(run_worker(&server, dir.path()), refreshed);
    assert_eq!(server.requests(), 2, "the refreshed token is shared");
}

#[test]
fn concurrent_processes_needing_a_refresh_cause_one_request() {
    const N: usize = 4;
    // Slow answers, so every worker is waiting while the first one asks.
    let server = TokenServer::start(301, Duration::from_millis(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let stale = run_worker(&server, dir.path());
    thread::sleep(Duration::from_millis(1100));
    server.expires_in.store(3600, Ordering::SeqCst);
    let workers: Vec<_> = (0..N).map(|_| spawn_worker(&server, dir.path())).collect();
    let tokens: Vec<String> = workers
        .into_iter()
        .map(|w| token_of(w.wait_with_output().expect("worker")))
        .collect();
    assert_eq!(server.requests(), 2, "{N} processes, one refresh");
    assert!(
        tokens.iter().all(|t| *t == tokens[0] && *t != stale),
        "all got the one new token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_of_one_process_cause_one_request() {
    let server = TokenServer::start(3600, Duration::from_millis(300));
    let dir = tempfile::tempdir().expect("tempdir");
    let credential = Arc::new(credential(&server.authority(), dir.path()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let credential = credential.clone();
            tokio::spawn(async move { credential.get_token(&[SCOPE], None).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(
            task.await
                .expect("task")
                .expect("token")
                .token
                .secret()
                .to_owned(),
        );
    }
    assert_eq!(server.requests(), 1);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_false_is_a_pass_through() {
    let server = TokenServer::start(3600, Duration::ZERO);
    let dir = tempfile::tempdir().expect("tempdir");
    let options = TokenCachePersistenceOptions {
        enabled: false,
        directory: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let credential = PersistentTokenCredential::new(
        Arc::new(ClientCredentials {
            authority: server.authority(),
        }),
        CacheIdentity::new(CLIENT, TENANT).with_authority_host(server.authority()),
        &options,
    )
    .expect("pass-through");
    assert!(!credential.is_persistent());
    let a = credential.get_token(&[SCOPE], None).await.expect("token");
    let b = credential.get_token(&[SCOPE], None).await.expect("token");
    assert_eq!(server.requests(), 2, "every call reaches the endpoint");
    assert_ne!(a.token.secret(), b.token.secret());
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        0,
        "no file written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_is_kept_aside_and_replaced() {
    let server = TokenServer::start(3600, Duration::ZERO);
    let dir = tempfile::tempdir().expect("tempdir");
    for corrupt in [
        &b"{\"AccessToken\": {\"k\": "[..],
        b"\xff\xfe\x00",
        b"[]",
        b"{\"AccessToken\": 7}",
    ] {
        std::fs::write(dir.path().join("msal.cache"), corrupt).expect("write");
        let credential = credential(&server.authority(), dir.path());
        let token = credential
            .get_token(&[SCOPE], None)
            .await
            .expect("a token despite the corrupt cache");
        let again = credential.get_token(&[SCOPE], None).await.expect("token");
        assert_eq!(
            token.token.secret(),
            again.token.secret(),
            "the replaced cache works"
        );
        let kept = support::quarantine::kept_aside(dir.path());
        assert!(
            kept.iter().any(|k| k == corrupt),
            "the corrupt bytes are kept aside"
        );
    }
}

/// A kernel-keyring cache whose ciphertext was changed: the persistence says
/// CorruptData, and the credential keeps the file aside and caches again, instead of
/// meeting the same error on every request.
#[cfg(all(target_os = "linux", feature = "kernel-keyring"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecryptable_cache_file_is_kept_aside_and_caching_resumes() {
    use identity_cache_persistence::{CachePersistence, ErrorKind, KernelKeyringPersistence};

    let server = TokenServer::start(3600, Duration::ZERO);
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join(format!(
        "tampered-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let persistence = KernelKeyringPersistence::new(&cache).expect("path");
    persistence.save(b"{}").expect("save");
    let mut stored = std::fs::read(&cache).expect("read");
    let at = stored.len() - 3; // in the tag: still base64url, no longer the tag
    stored[at] = if stored[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&cache, &stored).expect("tamper");
    assert_eq!(
        persistence.load().expect_err("tampered").kind(),
        ErrorKind::CorruptData
    );

    let credential = PersistentTokenCredential::with_persistence(
        Arc::new(ClientCredentials {
            authority: server.authority(),
        }),
        CacheIdentity::new(CLIENT, TENANT).with_authority_host(server.authority()),
        Box::new(persistence.clone()),
        Quarantine::beside(&cache),
    );
    let token = credential.get_token(&[SCOPE], None).await.expect("token");
    let again = credential.get_token(&[SCOPE], None).await.expect("token");
    assert_eq!(token.token.secret(), again.token.secret(), "cached again");
    assert_eq!(server.requests(), 1, "the second request was a cache hit");
    let kept = support::quarantine::kept_aside(dir.path());
    assert_eq!(
        kept,
        vec![stored],
        "the tampered file is kept aside as it was"
    );
    assert!(persistence.load().expect("readable").is_some());
    persistence.remove_key().expect("unlink the test key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_secrets() {
    let logs = support::logs::captured();
    let server = TokenServer::start(3600, Duration::from_millis(150));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("msal.cache"),
        b"{\"secret\": \"corrupt-secret-3c1f\"",
    )
    .expect("write");
    let credential = Arc::new(credential(&server.authority(), dir.path()));
    // Misses, a contended lock, hits, a corrupt cache.
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let credential = credential.clone();
            let scope = format!("https://scope{i}.example/.default");
            tokio::spawn(async move { credential.get_token(&[&scope], None).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("token");
    }
    credential
        .get_token(&["https://scope0.example/.default"], None)
        .await
        .expect("token");
    let text = String::from_utf8(logs.lock().expect("logs").clone()).expect("utf-8 logs");
    for expected in [
        "token cache miss",
        "token cache hit",
        "token cache reloaded",
        "corrupt",
        "waited for the token cache lock",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the logs:\n{text}"
        );
    }
    let mut secrets = server.issued();
    assert_eq!(secrets.len(), 3);
    secrets.push(CLIENT_SECRET.to_owned());
    secrets.push("corrupt-secret-3c1f".to_owned());
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret is in the logs");
        // Nor a recognisable part of one.
        let middle = &secret[secret.len() / 4..secret.len() * 3 / 4];
        assert!(!text.contains(middle), "part of a secret is in the logs");
    }
}
