//! End to end: `DeviceCodeCredential` against a mock authority, a real HTTP server on
//! 127.0.0.1 (`support/authority.rs`) implementing the device authorization and token
//! endpoints with scripted answers, through azure_core's default HTTP client (reqwest),
//! across real processes (this test binary re-executed as a worker) sharing a file cache.
//!
//! The mock "user" approves every sign-in by itself: the token endpoint answers
//! `authorization_pending` (or what the test scripted) and then the tokens.
#![cfg(feature = "device-code")]

mod support;

use std::{
    collections::{HashSet, VecDeque},
    path::Path,
    process::{Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use azure_core::{
    credentials::TokenCredential,
    http::{AsyncRawResponse, HttpClient, Request as HttpRequest},
};
use base64::Engine as _;
use identity_cache_persistence::{
    FilePersistence,
    azure::device_code::{
        AuthenticationRecord, DeviceCodeCredential, DeviceCodeCredentialOptions, DeviceCodeError,
        DeviceCodePrompt,
    },
    token_cache::{Quarantine, TokenCacheDocument},
};
use support::authority::{Request, Response, Server};

const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
const CLIENT: &str = "00000000-0000-0000-0000-000000000002";
const OID: &str = "00000000-0000-0000-0000-0000000000b0";
const USERNAME: &str = "user@contoso.example";
const SCOPE: &str = "https://vault.azure.net/.default";

// ---- the mock authority ---------------------------------------------------------------

#[derive(Default)]
struct State {
    /// Access tokens are valid this long.
    expires_in: AtomicU64,
    /// The device code's lifetime and polling interval.
    code_expires_in: AtomicU64,
    interval: AtomicU64,
    /// Answers to the next device-code polls, one each; then success.
    polls: Mutex<VecDeque<&'static str>>,
    /// An error for the device authorization request, when set.
    device_code_error: Mutex<Option<&'static str>>,
    /// Every refresh request is refused with this error (`invalid_grant`: revoked).
    refresh_error: Mutex<Option<&'static str>>,
    /// Refresh answers are held back this long (ms).
    refresh_delay_ms: AtomicU64,
    valid_refresh_tokens: Mutex<HashSet<String>>,
    /// Every secret handed out: tokens, refresh tokens, ID tokens, device and user codes.
    issued: Mutex<Vec<String>>,
}

struct MockAuthority {
    server: Server,
    state: Arc<State>,
}

impl MockAuthority {
    fn start(expires_in: u64) -> Self {
        let state = Arc::new(State::default());
        state.expires_in.store(expires_in, Ordering::SeqCst);
        state.code_expires_in.store(900, Ordering::SeqCst);
        let server = Server::start({
            let state = state.clone();
            move |request| state.answer(request)
        });
        MockAuthority { server, state }
    }

    fn url(&self) -> String {
        self.server.url()
    }

    fn device_code_requests(&self) -> usize {
        self.server.count("/oauth2/v2.0/devicecode", None)
    }

    fn polls(&self) -> usize {
        self.server.count(
            "/oauth2/v2.0/token",
            Some("urn:ietf:params:oauth:grant-type:device_code"),
        )
    }

    fn refreshes(&self) -> usize {
        self.server
            .count("/oauth2/v2.0/token", Some("refresh_token"))
    }

    fn token_requests(&self) -> usize {
        self.server.count("/oauth2/v2.0/token", None)
    }

    fn script(&self, polls: &[&'static str]) {
        *self.state.polls.lock().expect("polls") = polls.iter().copied().collect();
    }

    fn issued(&self) -> Vec<String> {
        self.state.issued.lock().expect("issued").clone()
    }
}

impl State {
    fn secret(&self, prefix: &str) -> String {
        let mut issued = self.issued.lock().expect("issued");
        let secret = format!("{prefix}-{}-{:016x}", issued.len(), fastrand::u64(..));
        issued.push(secret.clone());
        secret
    }

    fn answer(&self, request: &Request) -> Response {
        let tenant_path = format!("/{TENANT}/oauth2/v2.0/");
        if request.method != "POST"
            || !request.path.starts_with(&tenant_path)
            || request.param("client_id") != Some(CLIENT)
        {
            return Response::oauth_error("invalid_request");
        }
        match &request.path[tenant_path.len()..] {
            "devicecode" => self.device_authorization(request),
            "token" => match request.param("grant_type") {
                Some("urn:ietf:params:oauth:grant-type:device_code") => self.poll(request),
                Some("refresh_token") => self.refresh(request),
                _ => Response::oauth_error("unsupported_grant_type"),
            },
            _ => Response::oauth_error("invalid_request"),
        }
    }

    fn device_authorization(&self, request: &Request) -> Response {
        if let Some(error) = *self.device_code_error.lock().expect("error") {
            return Response::oauth_error(error);
        }
        let scope = request.param("scope").unwrap_or("");
        if !scope.split(' ').any(|s| s == "offline_access") {
            return Response::oauth_error("invalid_scope");
        }
        let device_code = self.secret("device-code");
        let user_code = format!("UC{:08X}", fastrand::u32(..));
        self.issued.lock().expect("issued").push(user_code.clone());
        Response::ok(
            serde_json::json!({
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": "https://microsoft.com/devicelogin",
                "expires_in": self.code_expires_in.load(Ordering::SeqCst),
                "interval": self.interval.load(Ordering::SeqCst),
                "message": format!("To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."),
            })
            .to_string(),
        )
    }

    fn poll(&self, request: &Request) -> Response {
        if !request
            .param("device_code")
            .is_some_and(|c| c.starts_with("device-code-"))
        {
            return Response::oauth_error("invalid_grant");
        }
        match self.polls.lock().expect("polls").pop_front() {
            Some("success") | None => self.tokens(SCOPE),
            Some(error) => Response::oauth_error(error),
        }
    }

    fn refresh(&self, request: &Request) -> Response {
        thread::sleep(Duration::from_millis(
            self.refresh_delay_ms.load(Ordering::SeqCst),
        ));
        let token = request.param("refresh_token").unwrap_or("");
        let known = self
            .valid_refresh_tokens
            .lock()
            .expect("rts")
            .contains(token);
        if !known {
            return Response::oauth_error("invalid_grant");
        }
        if let Some(error) = *self.refresh_error.lock().expect("error") {
            return Response::oauth_error(error);
        }
        let scope = request.param("scope").unwrap_or("");
        let wanted = scope
            .split(' ')
            .find(|s| !["openid", "profile", "offline_access"].contains(s));
        self.tokens(wanted.unwrap_or(SCOPE))
    }

    /// A token answer as Microsoft Entra gives it: access, refresh and ID token and
    /// `client_info`.
    fn tokens(&self, scope: &str) -> Response {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let claims = serde_json::json!({
            "aud": CLIENT, "iss": format!("https://login.microsoftonline.com/{TENANT}/v2.0"),
            "iat": now, "nbf": now, "exp": now + 3600, "name": "Test User", "oid": OID,
            "preferred_username": USERNAME, "sub": "sub-of-the-test-user", "tid": TENANT,
            "ver": "2.0", "nonce": self.secret("nonce"),
        });
        let id_token = format!(
            "{}.{}.{}",
            b64.encode(br#"{"typ":"JWT","alg":"RS256"}"#),
            b64.encode(claims.to_string()),
            b64.encode(self.secret("signature"))
        );
        self.issued.lock().expect("issued").push(id_token.clone());
        let refresh_token = self.secret("refresh-token");
        self.valid_refresh_tokens
            .lock()
            .expect("rts")
            .insert(refresh_token.clone());
        let expires_in = self.expires_in.load(Ordering::SeqCst);
        Response::ok(
            serde_json::json!({
                "token_type": "Bearer",
                "scope": format!("{scope} openid profile"),
                "expires_in": expires_in,
                "ext_expires_in": expires_in,
                "access_token": self.secret("access-token"),
                "refresh_token": refresh_token,
                "id_token": id_token,
                "client_info": b64.encode(format!(r#"{{"uid":"{OID}","utid":"{TENANT}"}}"#)),
            })
            .to_string(),
        )
    }
}

// ---- credentials ----------------------------------------------------------------------

fn options(authority: &str, prompts: Arc<Mutex<Vec<String>>>) -> DeviceCodeCredentialOptions {
    DeviceCodeCredentialOptions {
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        authority_host: Some(authority.into()),
        user_prompt_callback: Some(Arc::new(move |prompt: &DeviceCodePrompt| {
            prompts
                .lock()
                .expect("prompts")
                .push(prompt.user_code.clone());
        })),
        ..Default::default()
    }
}

fn file_credential(
    options: DeviceCodeCredentialOptions,
    cache_dir: &Path,
) -> Arc<DeviceCodeCredential> {
    let cache = cache_dir.join("msal.cache");
    DeviceCodeCredential::with_persistence(
        options,
        Box::new(FilePersistence::new(&cache).expect("file persistence")),
        Quarantine::beside(cache),
    )
    .expect("credential")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

// ---- worker processes -----------------------------------------------------------------

/// The worker: a no-op in a normal run; in a re-executed process, one `get_token` with
/// the authority and cache directory from the environment, printing the prompts it
/// showed and the token.
#[test]
fn worker_process() {
    let (Ok(authority), Ok(dir)) = (
        std::env::var("DEVICE_CODE_WORKER_AUTHORITY"),
        std::env::var("DEVICE_CODE_WORKER_DIR"),
    ) else {
        return;
    };
    let options = DeviceCodeCredentialOptions {
        user_prompt_callback: Some(Arc::new(|prompt: &DeviceCodePrompt| {
            // On a line of its own: libtest has printed "test worker_process ... ".
            println!("\nPROMPT {}", prompt.user_code);
        })),
        ..options(&authority, Arc::default())
    };
    let credential = file_credential(options, Path::new(&dir));
    let token = runtime()
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("token");
    println!("\nTOKEN {}", token.token.secret());
}

fn spawn_worker(authority: &MockAuthority, dir: &Path) -> std::process::Child {
    let authority = authority.url();
    support::worker::spawn(&[
        ("DEVICE_CODE_WORKER_AUTHORITY", authority.as_ref()),
        ("DEVICE_CODE_WORKER_DIR", dir.as_os_str()),
    ])
}

/// What a worker printed: its token and whether it prompted.
#[derive(Debug)]
struct Run {
    token: String,
    prompted: bool,
}

fn run_of(output: Output) -> Run {
    assert!(
        output.status.success(),
        "worker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    Run {
        token: stdout
            .lines()
            .find_map(|l| l.strip_prefix("TOKEN ").map(str::to_owned))
            .expect("worker printed its token"),
        prompted: stdout.lines().any(|l| l.starts_with("PROMPT ")),
    }
}

fn run_worker(authority: &MockAuthority, dir: &Path) -> Run {
    run_of(
        spawn_worker(authority, dir)
            .wait_with_output()
            .expect("worker"),
    )
}

// ---- across processes -----------------------------------------------------------------

#[test]
fn the_first_run_prompts_once_and_the_next_process_is_silent() {
    let authority = MockAuthority::start(3600);
    authority.script(&["authorization_pending", "authorization_pending"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run_worker(&authority, dir.path());
    assert!(first.prompted);
    assert_eq!(authority.device_code_requests(), 1, "one sign-in");
    assert_eq!(authority.polls(), 3, "two pending answers, then the tokens");

    let requests = authority.server.requests().len();
    let second = run_worker(&authority, dir.path());
    assert!(!second.prompted, "the second process does not prompt");
    assert_eq!(second.token, first.token, "the cached access token");
    assert_eq!(
        authority.server.requests().len(),
        requests,
        "no request at all while the access token is valid"
    );
    assert_cache_has_the_account(dir.path());
}

/// The cache holds every entity of the MSAL unified schema for the account.
fn assert_cache_has_the_account(dir: &Path) {
    let bytes = std::fs::read(dir.join("msal.cache")).expect("cache file");
    let document = TokenCacheDocument::parse(&bytes).expect("valid cache");
    let json = document.as_json();
    let home_account_id = format!("{OID}.{TENANT}");
    for section in [
        "AccessToken",
        "RefreshToken",
        "IdToken",
        "Account",
        "AppMetadata",
    ] {
        let entries = json
            .get(section)
            .and_then(|s| s.as_object())
            .unwrap_or_else(|| panic!("no {section} section"));
        assert_eq!(entries.len(), 1, "one {section} entry");
        let entry = entries.values().next().expect("entry");
        if section != "AppMetadata" {
            assert_eq!(
                entry["home_account_id"],
                home_account_id.as_str(),
                "{section}"
            );
        }
        assert_eq!(entry["environment"], "127.0.0.1", "{section}");
    }
    let account = json["Account"]
        .as_object()
        .expect("accounts")
        .values()
        .next();
    let account = account.expect("account");
    assert_eq!(account["username"], USERNAME);
    assert_eq!(account["realm"], TENANT);
    assert_eq!(account["local_account_id"], OID);
}

#[test]
fn after_expiry_one_refresh_request_and_no_prompt() {
    // Valid for the refresh margin (300 s) plus 3 s: a hit for 2 s at least, then due.
    let authority = MockAuthority::start(303);
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run_worker(&authority, dir.path());
    assert_eq!(
        run_worker(&authority, dir.path()).token,
        first.token,
        "still fresh"
    );
    assert_eq!(authority.refreshes(), 0);
    thread::sleep(Duration::from_millis(4100));
    authority.state.expires_in.store(3600, Ordering::SeqCst);
    let refreshed = run_worker(&authority, dir.path());
    assert!(!refreshed.prompted, "a refresh, not a prompt");
    assert_ne!(refreshed.token, first.token);
    assert_eq!(authority.refreshes(), 1, "one refresh request");
    assert_eq!(authority.device_code_requests(), 1);
    let again = run_worker(&authority, dir.path());
    assert_eq!(
        again.token, refreshed.token,
        "the refreshed token is shared"
    );
    assert_eq!(authority.refreshes(), 1);
}

#[test]
fn concurrent_processes_needing_a_refresh_send_one_request() {
    const N: usize = 4;
    let authority = MockAuthority::start(301);
    let dir = tempfile::tempdir().expect("tempdir");
    let stale = run_worker(&authority, dir.path());
    thread::sleep(Duration::from_millis(1100));
    authority.state.expires_in.store(3600, Ordering::SeqCst);
    // Slow answers, so every worker is waiting on the lock while the first one refreshes.
    authority
        .state
        .refresh_delay_ms
        .store(500, Ordering::SeqCst);
    let workers: Vec<_> = (0..N)
        .map(|_| spawn_worker(&authority, dir.path()))
        .collect();
    let runs: Vec<Run> = workers
        .into_iter()
        .map(|w| run_of(w.wait_with_output().expect("worker")))
        .collect();
    assert_eq!(
        authority.refreshes(),
        1,
        "{N} processes, one refresh request"
    );
    assert_eq!(authority.device_code_requests(), 1, "and no prompt");
    assert!(
        runs.iter()
            .all(|r| r.token == runs[0].token && r.token != stale.token && !r.prompted),
        "all got the one new token: {runs:?}"
    );
}

#[test]
fn a_revoked_refresh_token_leads_to_a_new_prompt() {
    let authority = MockAuthority::start(301);
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run_worker(&authority, dir.path());
    thread::sleep(Duration::from_millis(1100));
    *authority.state.refresh_error.lock().expect("error") = Some("invalid_grant");
    authority.state.expires_in.store(3600, Ordering::SeqCst);
    let second = run_worker(&authority, dir.path());
    assert_eq!(authority.refreshes(), 1, "the refresh token was tried once");
    assert!(second.prompted, "then a new sign-in");
    assert_eq!(authority.device_code_requests(), 2);
    assert_ne!(second.token, first.token);
    let cache = std::fs::read(dir.path().join("msal.cache")).expect("cache");
    let document = TokenCacheDocument::parse(&cache).expect("valid");
    let refresh_tokens = document.as_json()["RefreshToken"]
        .as_object()
        .expect("section")
        .len();
    assert_eq!(refresh_tokens, 1, "the rejected refresh token was replaced");
    let third = run_worker(&authority, dir.path());
    assert!(!third.prompted);
    assert_eq!(third.token, second.token);
}

#[test]
fn a_corrupt_cache_is_kept_aside_and_leads_to_a_prompt() {
    let authority = MockAuthority::start(3600);
    let dir = tempfile::tempdir().expect("tempdir");
    let corrupt = b"{\"RefreshToken\": {\"k\": ";
    std::fs::write(dir.path().join("msal.cache"), corrupt).expect("write");
    let run = run_worker(&authority, dir.path());
    assert!(run.prompted, "nothing usable in the cache: a sign-in");
    let kept = support::quarantine::kept_aside(dir.path());
    assert_eq!(
        kept,
        vec![corrupt.to_vec()],
        "the corrupt bytes are kept aside"
    );
    assert!(
        !run_worker(&authority, dir.path()).prompted,
        "the new cache works"
    );
}

// ---- in one process -------------------------------------------------------------------

/// The device-code error answers give their typed errors.
#[test]
fn each_error_answer_of_the_device_code_flow_gives_its_typed_error() {
    let runtime = runtime();
    type Expected = fn(&DeviceCodeError) -> bool;
    let cases: [(&[&'static str], Expected); 3] = [
        (&["authorization_pending", "expired_token"], |e| {
            matches!(e, DeviceCodeError::CodeExpired)
        }),
        (&["access_denied"], |e| {
            matches!(e, DeviceCodeError::AccessDenied { .. })
        }),
        (
            &["invalid_client"],
            |e| matches!(e, DeviceCodeError::Authority { status: 400, error, .. } if error == "invalid_client"),
        ),
    ];
    for (script, expected) in cases {
        let authority = MockAuthority::start(3600);
        authority.script(script);
        let dir = tempfile::tempdir().expect("tempdir");
        let credential = file_credential(options(&authority.url(), Arc::default()), dir.path());
        let error = runtime
            .block_on(credential.get_token(&[SCOPE], None))
            .expect_err("the sign-in fails");
        let typed = error
            .downcast_ref::<DeviceCodeError>()
            .unwrap_or_else(|| panic!("{script:?}: not a DeviceCodeError: {error:?}"));
        assert!(expected(typed), "{script:?}: {typed:?}");
        assert_eq!(
            authority.polls(),
            script.len(),
            "{script:?}: stopped polling"
        );
    }

    let authority = MockAuthority::start(3600);
    *authority.state.device_code_error.lock().expect("error") = Some("unauthorized_client");
    let dir = tempfile::tempdir().expect("tempdir");
    let credential = file_credential(options(&authority.url(), Arc::default()), dir.path());
    let error = runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect_err("refused");
    assert!(
        matches!(
            error.downcast_ref::<DeviceCodeError>(),
            Some(DeviceCodeError::Authority { error, .. }) if error == "unauthorized_client"
        ),
        "{error:?}"
    );
    assert_eq!(authority.token_requests(), 0, "no polling without a code");

    // Another error than invalid_grant on a refresh fails the request: no new sign-in.
    let authority = MockAuthority::start(301);
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let credential = file_credential(options(&authority.url(), prompts.clone()), dir.path());
    runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("signed in");
    thread::sleep(Duration::from_millis(1100));
    *authority.state.refresh_error.lock().expect("error") = Some("invalid_client");
    let error = runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect_err("refresh refused");
    assert!(
        matches!(
            error.downcast_ref::<DeviceCodeError>(),
            Some(DeviceCodeError::Authority { error, .. }) if error == "invalid_client"
        ),
        "{error:?}"
    );
    assert_eq!(
        prompts.lock().expect("prompts").len(),
        1,
        "no second prompt"
    );

    // No authority listening: a transport error.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let credential = file_credential(options(&closed, Arc::default()), dir.path());
    let error = runtime
        .block_on(credential.authenticate(&[SCOPE]))
        .expect_err("nobody listens");
    assert!(
        matches!(
            error.downcast_ref::<DeviceCodeError>(),
            Some(DeviceCodeError::Transport {
                endpoint: "devicecode",
                ..
            })
        ),
        "{error:?}"
    );
}

#[test]
fn slow_down_adds_five_seconds_and_the_code_expires_locally() {
    let runtime = runtime();
    let authority = MockAuthority::start(3600);
    authority.script(&["slow_down", "authorization_pending"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let credential = file_credential(options(&authority.url(), prompts.clone()), dir.path());
    let started = Instant::now();
    runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("signed in after slowing down");
    let took = started.elapsed();
    assert_eq!(authority.polls(), 3);
    // Interval 0, then 5 s after the slow_down, for both later polls.
    assert!(took >= Duration::from_secs(10), "took {took:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(prompts.lock().expect("prompts").len(), 1);

    // A code that expires while the user has not signed in: no endless polling.
    let authority = MockAuthority::start(3600);
    authority.state.code_expires_in.store(2, Ordering::SeqCst);
    authority.state.interval.store(1, Ordering::SeqCst);
    authority.script(&["authorization_pending"; 50]);
    let dir = tempfile::tempdir().expect("tempdir");
    let credential = file_credential(options(&authority.url(), Arc::default()), dir.path());
    let error = runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect_err("expired");
    assert!(matches!(
        error.downcast_ref::<DeviceCodeError>(),
        Some(DeviceCodeError::CodeExpired)
    ));
    assert!(authority.polls() <= 2, "polled {} times", authority.polls());
}

#[test]
fn an_authority_that_is_not_https_is_refused_unless_loopback() {
    for (host, insecure) in [
        ("http://login.microsoftonline.com", true),
        ("http://192.168.1.10:8080", true),
        ("ftp://login.microsoftonline.com", false),
        ("not a url", false),
    ] {
        let error = DeviceCodeCredential::new(DeviceCodeCredentialOptions {
            authority_host: Some(host.into()),
            ..Default::default()
        })
        .expect_err(host);
        let typed = error.downcast_ref::<DeviceCodeError>().expect("typed");
        if insecure {
            assert!(
                matches!(typed, DeviceCodeError::InsecureAuthority { .. }),
                "{typed:?}"
            );
        } else {
            assert!(
                matches!(typed, DeviceCodeError::InvalidAuthority { .. }),
                "{typed:?}"
            );
        }
    }
    for host in [
        "http://127.0.0.1:1",
        "http://localhost",
        "http://[::1]",
        "https://login.microsoftonline.us",
    ] {
        DeviceCodeCredential::new(DeviceCodeCredentialOptions {
            authority_host: Some(host.into()),
            ..Default::default()
        })
        .expect(host);
    }
}

#[test]
fn authenticate_returns_a_record_that_a_later_credential_uses_silently() {
    let runtime = runtime();
    let authority = MockAuthority::start(3600);
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let first = file_credential(options(&authority.url(), prompts.clone()), dir.path());
    let record = runtime
        .block_on(first.authenticate(&[SCOPE]))
        .expect("signed in");
    assert_eq!(
        record,
        AuthenticationRecord {
            authority: "127.0.0.1".into(),
            home_account_id: format!("{OID}.{TENANT}"),
            client_id: CLIENT.into(),
            tenant_id: TENANT.into(),
            username: USERNAME.into(),
        }
    );
    let json = record.serialize();
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(value["version"], "1.0");
    assert_eq!(value["homeAccountId"], format!("{OID}.{TENANT}").as_str());

    let later = file_credential(
        DeviceCodeCredentialOptions {
            authentication_record: Some(AuthenticationRecord::deserialize(&json).expect("valid")),
            ..options(&authority.url(), prompts.clone())
        },
        dir.path(),
    );
    let requests = authority.server.requests().len();
    runtime
        .block_on(later.get_token(&[SCOPE], None))
        .expect("silent");
    assert_eq!(
        authority.server.requests().len(),
        requests,
        "from the cache"
    );
    assert_eq!(
        prompts.lock().expect("prompts").len(),
        1,
        "one sign-in in all"
    );

    // A record of another client is refused, not silently ignored.
    let mut other = record.clone();
    other.client_id = "another-client".into();
    let error = DeviceCodeCredential::new(DeviceCodeCredentialOptions {
        authentication_record: Some(other),
        ..options(&authority.url(), Arc::default())
    })
    .expect_err("mismatch");
    assert!(matches!(
        error.downcast_ref::<DeviceCodeError>(),
        Some(DeviceCodeError::RecordMismatch { .. })
    ));
}

#[test]
fn concurrent_requests_of_one_credential_share_one_sign_in() {
    let runtime = runtime();
    let authority = MockAuthority::start(3600);
    authority.script(&["authorization_pending"; 3]);
    let dir = tempfile::tempdir().expect("tempdir");
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let credential = file_credential(options(&authority.url(), prompts.clone()), dir.path());
    let tokens: Vec<String> = runtime.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let credential = credential.clone();
                tokio::spawn(async move { credential.get_token(&[SCOPE], None).await })
            })
            .collect();
        let mut tokens = Vec::new();
        for task in tasks {
            let token = task.await.expect("task").expect("token");
            tokens.push(token.token.secret().to_owned());
        }
        tokens
    });
    assert_eq!(prompts.lock().expect("prompts").len(), 1, "one prompt");
    assert_eq!(authority.device_code_requests(), 1);
    assert!(tokens.iter().all(|t| *t == tokens[0]));
}

/// An injected transport: azure_core's default one, counting the requests it carries.
#[derive(Debug)]
struct CountingTransport {
    inner: Arc<dyn HttpClient>,
    requests: AtomicU64,
}

#[async_trait::async_trait]
impl HttpClient for CountingTransport {
    async fn execute_request(&self, request: &HttpRequest) -> azure_core::Result<AsyncRawResponse> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.execute_request(request).await
    }
}

#[test]
fn without_persistence_tokens_stay_in_memory_and_the_transport_is_injectable() {
    let runtime = runtime();
    let authority = MockAuthority::start(3600);
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let transport = Arc::new(CountingTransport {
        inner: azure_core::http::new_http_client(None),
        requests: AtomicU64::new(0),
    });
    let credential = DeviceCodeCredential::new(DeviceCodeCredentialOptions {
        http_client: Some(transport.clone()),
        ..options(&authority.url(), prompts.clone())
    })
    .expect("credential");
    let a = runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("token");
    let b = runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("token");
    assert_eq!(a.token.secret(), b.token.secret());
    assert_eq!(prompts.lock().expect("prompts").len(), 1);
    assert_eq!(authority.device_code_requests(), 1);
    assert_eq!(
        transport.requests.load(Ordering::SeqCst) as usize,
        authority.server.requests().len(),
        "every request went through the injected transport"
    );
    let debug = format!("{credential:?}");
    for secret in authority.issued() {
        assert!(!debug.contains(&secret), "a secret in {debug}");
    }
}

// ---- logging --------------------------------------------------------------------------

#[test]
fn requests_and_answers_are_logged_without_secrets() {
    let logs = support::logs::captured();
    let runtime = runtime();
    let authority = MockAuthority::start(301);
    authority.script(&["authorization_pending"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let credential = file_credential(options(&authority.url(), Arc::default()), dir.path());
    // A sign-in, then a refresh (the token is within the margin), then a rejected one.
    runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("token");
    thread::sleep(Duration::from_millis(1100));
    runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("refreshed");
    assert_eq!(authority.refreshes(), 1);
    *authority.state.refresh_error.lock().expect("error") = Some("invalid_grant");
    thread::sleep(Duration::from_millis(1100));
    runtime
        .block_on(credential.get_token(&[SCOPE], None))
        .expect("signed in again");
    assert!(format!("{credential:?}").contains("DeviceCodeCredential"));

    let text = String::from_utf8(logs.lock().expect("logs").clone()).expect("utf-8 logs");
    for expected in [
        "HTTP request",
        "HTTP response",
        "status=200",
        "status=400",
        "/oauth2/v2.0/devicecode",
        "grant_type=refresh_token",
        "authorization_pending",
        "invalid_grant",
        "device_code=<redacted>",
        "refresh_token=<redacted>",
        r#""access_token":"<redacted>""#,
        "enter the code <redacted> to authenticate",
    ] {
        assert!(
            text.contains(expected),
            "no {expected:?} in the logs:\n{text}"
        );
    }
    let secrets = authority.issued();
    assert!(secrets.len() > 10);
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is in the logs: {text}"
        );
        let debug = format!("{credential:?}");
        assert!(!debug.contains(secret.as_str()));
    }
}

// ---- the example ----------------------------------------------------------------------

/// Builds `examples/device_code.rs` (a no-op when up to date) and returns its path.
fn example_binary() -> std::path::PathBuf {
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--message-format=json",
            "-p",
            "identity-cache-persistence",
            "--features",
            "device-code",
            "--example",
            "device_code",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo build --example device_code");
    assert!(output.status.success(), "the example builds");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "device_code")
        .find_map(|message| message["executable"].as_str().map(Into::into))
        .expect("the example's executable")
}

/// The example against the mock authority, as a user runs it twice: the first run signs
/// in, the second is silent; `AZURE_LOG_LEVEL=info` shows the HTTP exchanges, redacted.
/// `--nocapture` prints both runs' output.
#[test]
fn the_example_signs_in_once_then_runs_silently_with_redacted_logs() {
    let example = example_binary();
    let authority = MockAuthority::start(3600);
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        let output = Command::new(&example)
            .args(["--unsafe-file", SCOPE])
            .env("AZURE_LOG_LEVEL", "info")
            .env("AZURE_AUTHORITY_HOST", authority.url())
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", CLIENT)
            .env("EXAMPLE_CACHE_DIR", dir.path())
            .output()
            .expect("run the example");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        println!("--- stdout\n{stdout}--- stderr\n{stderr}");
        assert!(output.status.success(), "the example failed:\n{stderr}");
        (stdout, stderr)
    };
    let (stdout, stderr) = run();
    assert!(
        stdout.contains(&format!("signed in as {USERNAME}")),
        "{stdout}"
    );
    assert!(
        stderr.contains("https://microsoft.com/devicelogin"),
        "the prompt"
    );
    assert!(
        stderr.contains(" INFO ") && stderr.contains("HTTP response"),
        "{stderr}"
    );
    assert!(dir.path().join("device-code-example.record.json").exists());
    let issued = authority.issued();
    let user_code = issued
        .iter()
        .find(|s| s.starts_with("UC"))
        .expect("a user code");
    for secret in &issued {
        // The prompt is the one place the user code must appear.
        let logs: String = stderr
            .lines()
            .filter(|l| !l.starts_with("To sign in"))
            .collect();
        assert!(!logs.contains(secret.as_str()), "{secret} in the logs");
        assert!(!stdout.contains(secret.as_str()), "{secret} on stdout");
    }
    assert!(
        stderr.contains(&format!("enter the code {user_code}")),
        "the prompt"
    );
    let requests = authority.server.requests().len();

    let (stdout, stderr) = run();
    assert!(stdout.contains("token for"), "{stdout}");
    assert!(!stderr.contains("devicelogin"), "no prompt the second time");
    assert_eq!(authority.server.requests().len(), requests, "silent");
}
