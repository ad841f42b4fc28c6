//! The process protocol end to end, with real processes: the Rust server (this test binary
//! re-executed as a worker serving `FilePersistence`) against the client, and the client
//! against deliberately broken plugins written as `sh` scripts.

#[cfg(unix)]
fn main() {
    unix::main();
}

/// The fake plugins are `sh` scripts and the checks use `kill(2)`: Unix only.
#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod unix {
    use std::{
        io::{BufRead, BufReader, Write},
        process::{Command, Stdio},
        sync::Arc,
        thread,
        time::{Duration, Instant},
    };

    use conformance::{
        Namespace, PluginFactory,
        protocol::{
            ClientOptions, ExecFactory, PARENT_ENV, ProcessPlugin, SelfExecLauncher, WORKER_ENV,
        },
    };
    use identity_cache_persistence::{CachePersistence, ErrorKind, FilePersistence};
    use libtest_mimic::{Arguments, Failed, Trial};

    /// What the workers of this binary serve: the reference file plugin in the namespace dir.
    struct FileFactory;

    impl PluginFactory for FileFactory {
        fn label(&self) -> String {
            "file".into()
        }

        fn create(
            &self,
            ns: &Namespace,
        ) -> identity_cache_persistence::Result<Box<dyn CachePersistence>> {
            Ok(Box::new(FilePersistence::new(ns.dir.join(&ns.name))?))
        }
    }

    pub fn main() {
        conformance::protocol::serve_worker_if_requested(&FileFactory);
        let args = Arguments::from_args();
        let tests = vec![
            Trial::test("rust_server::round_trip", round_trip),
            Trial::test("rust_server::two_processes_share_the_slot", shared_slot),
            Trial::test("rust_server::lock_excludes_other_process", lock_excludes),
            Trial::test(
                "rust_server::kill_interrupts_a_waiting_lock",
                kill_interrupts,
            ),
            Trial::test("rust_server::threads_share_one_process", threads_share),
            Trial::test("rust_server::handles_share_one_process", handles_share),
            Trial::test("rust_server::shutdown_exits_cleanly", shutdown),
            Trial::test("rust_server::an_orphaned_worker_exits", orphan_exits),
            Trial::test("rust_server::answers_malformed_lines", server_malformed),
            Trial::test("client::eof_before_answer", eof_before_answer),
            Trial::test("client::malformed_line_is_quoted", malformed_line),
            Trial::test("client::wrong_id", wrong_id),
            Trial::test("client::timeout_kills_the_plugin", timeout_kills),
            Trial::test("suite::a_hang_is_named_as_a_hang", hang_is_named),
            Trial::test("client::unknown_error_kind", unknown_error_kind),
            Trial::test("client::protocol_version_mismatch", version_mismatch),
            Trial::test("client::not_supported_is_an_answer", not_supported),
            Trial::test("client::blobs_stay_out_of_messages", blobs_hidden),
        ];
        libtest_mimic::run(&args, tests).exit();
    }

    type TestResult = Result<(), Failed>;

    fn check(cond: bool, what: impl Into<String>) -> TestResult {
        if cond {
            Ok(())
        } else {
            Err(what.into().into())
        }
    }

    /// A fresh namespace in its own temporary directory (kept alive by the returned guard).
    fn namespace() -> (tempfile::TempDir, Namespace) {
        let dir = tempfile::tempdir().expect("temp dir");
        let ns = Namespace::new(
            format!("proto-{}", fastrand::u32(..)),
            dir.path().join("slot"),
        );
        std::fs::create_dir(&ns.dir).expect("slot dir");
        (dir, ns)
    }

    fn worker(ns: &Namespace) -> ProcessPlugin {
        SelfExecLauncher::new()
            .expect("current exe")
            .spawn(ns)
            .expect("worker starts")
    }

    fn round_trip() -> TestResult {
        let (_tmp, ns) = namespace();
        let plugin = worker(&ns);
        let local = FilePersistence::new(ns.dir.join(&ns.name))?;
        check(
            plugin.describe() == local.describe(),
            "hello carries the description",
        )?;
        check(
            plugin.hello().name == "file",
            "hello carries the factory label",
        )?;
        check(plugin.load()?.is_none(), "absent is None")?;
        check(plugin.version()?.is_none(), "absent has no token")?;
        plugin.save(b"")?;
        check(
            plugin.load()? == Some(Vec::new()),
            "empty blob is Some(empty)",
        )?;
        let first = plugin.version()?;
        let mut big = vec![0u8; 3 * 1024 * 1024 + 17];
        fastrand::fill(&mut big);
        plugin.save(&big)?;
        check(
            plugin.load()?.as_deref() == Some(&big[..]),
            "3 MiB binary blob round-trips",
        )?;
        check(
            local.load()?.as_deref() == Some(&big[..]),
            "the worker wrote the real file",
        )?;
        check(plugin.version()? != first, "token moved")?;
        check(plugin.delete()?, "delete of something is true")?;
        check(!plugin.delete()?, "delete of nothing is false")?;
        check(plugin.load()?.is_none(), "absent after delete")?;
        Ok(())
    }

    fn shared_slot() -> TestResult {
        let (_tmp, ns) = namespace();
        let a = worker(&ns);
        let b = worker(&ns);
        check(a.pid() != b.pid(), "two processes")?;
        a.save(b"from a")?;
        check(
            b.load()?.as_deref() == Some(&b"from a"[..]),
            "b sees a's save",
        )?;
        let token = b.version()?;
        b.save(b"from b")?;
        check(a.version()? != token, "a sees the token move")?;
        Ok(())
    }

    fn lock_excludes() -> TestResult {
        let (_tmp, ns) = namespace();
        let a = worker(&ns);
        let b = worker(&ns);
        let guard = a.lock(Duration::from_secs(5))?;
        let err = b
            .lock(Duration::from_millis(200))
            .err()
            .ok_or("b got the lock a holds")?;
        check(
            err.kind() == ErrorKind::LockTimeout,
            format!("timeout kind, got {err}"),
        )?;
        guard.release()?;
        let again = b.lock(Duration::from_secs(5))?;
        drop(again);
        // b's guard was released through `unlock`: a can take it again at once.
        drop(a.lock(Duration::from_secs(5))?);
        Ok(())
    }

    fn kill_interrupts() -> TestResult {
        let (_tmp, ns) = namespace();
        let a = worker(&ns);
        let b = worker(&ns);
        let _guard = a.lock(Duration::from_secs(5))?;
        let waiter = b.clone();
        let started = Instant::now();
        let handle = thread::spawn(move || waiter.lock(Duration::from_secs(30)).map(drop));
        thread::sleep(Duration::from_millis(200));
        b.kill();
        let result = handle.join().map_err(|_| "waiter panicked")?;
        let err = result.err().ok_or("a killed worker returned a lock")?;
        check(
            err.kind() == ErrorKind::Other && err.to_string().contains("killed by the suite"),
            format!("killed error, got {err}"),
        )?;
        check(
            started.elapsed() < Duration::from_secs(10),
            "kill interrupts at once",
        )?;
        check(
            !process_exists(b.pid()),
            "the killed worker is gone (reaped)",
        )?;
        let later = b.load().err().ok_or("a killed worker answered")?;
        check(
            later.to_string().contains("killed"),
            format!("later calls fail: {later}"),
        )?;
        Ok(())
    }

    fn threads_share() -> TestResult {
        let (_tmp, ns) = namespace();
        let plugin = Arc::new(worker(&ns));
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                let plugin = Arc::clone(&plugin);
                thread::spawn(move || -> identity_cache_persistence::Result<()> {
                    for i in 0..25u8 {
                        plugin.save(&[t, i])?;
                        let loaded = plugin.load()?.unwrap_or_default();
                        assert_eq!(loaded.len(), 2, "whole blobs only");
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle.join().map_err(|_| "thread panicked")??;
        }
        Ok(())
    }

    /// Two handles opened in one process exclude each other, a `lock` that waits on one
    /// does not hold up the `unlock` of the other (answers come as requests finish).
    fn handles_share() -> TestResult {
        let (_tmp, ns) = namespace();
        let a = worker(&ns);
        check(a.hello().handles, "the Rust server declares handles")?;
        let b = a.open(&ns)?;
        check(
            a.pid() == b.pid(),
            "an opened handle is in the same process",
        )?;
        a.save(b"from a")?;
        check(
            b.load()?.as_deref() == Some(&b"from a"[..]),
            "b sees a's save",
        )?;
        let guard = a.lock(Duration::from_secs(5))?;
        let waiter = b.clone();
        let waiting = thread::spawn(move || waiter.lock(Duration::from_secs(10)));
        thread::sleep(Duration::from_millis(200));
        check(!waiting.is_finished(), "b waits while a holds the lock")?;
        let released = Instant::now();
        guard.release()?;
        let b_guard = waiting.join().map_err(|_| "waiter panicked")??;
        check(
            released.elapsed() < Duration::from_secs(5),
            "b got the lock once a released it, not at the end of its wait",
        )?;
        let c = a.open(&ns)?;
        check(
            c.lock(Duration::from_millis(100)).is_err(),
            "a third handle is excluded while b holds the lock",
        )?;
        drop(b_guard);
        drop(b);
        drop(c.lock(Duration::from_secs(5))?);
        Ok(())
    }

    fn shutdown() -> TestResult {
        let (_tmp, ns) = namespace();
        let plugin = worker(&ns);
        let _guard = plugin.lock(Duration::from_secs(5))?;
        let status = plugin.shutdown()?;
        check(status.success(), format!("exit status {status}"))?;
        // Shutdown released the lock (and the process is gone, so the OS did too).
        drop(worker(&ns).lock(Duration::from_secs(5))?);
        Ok(())
    }

    /// A worker whose suite is gone exits although its input is still open: a suite killed
    /// by a runner's timeout must not leave workers behind (they are in process groups of
    /// their own, which the runner's kill misses).
    fn orphan_exits() -> TestResult {
        // `sh` starts the worker in the background on this test's pipe, prints its pid and
        // exits: the worker's parent is gone, its input open.
        let mut sh = Command::new("sh")
            .args([
                "-c",
                &format!(r#"exec 3<&0; {PARENT_ENV}=$$ "$0" <&3 3<&- >/dev/null 2>&1 & echo $!"#),
            ])
            .arg(std::env::current_exe()?)
            .env(WORKER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let input = sh.stdin.take();
        let mut pid = String::new();
        BufReader::new(sh.stdout.take().ok_or("stdout")?).read_line(&mut pid)?;
        sh.wait()?;
        let pid: u32 = pid.trim().parse()?;
        let start = Instant::now();
        while alive(pid) {
            if start.elapsed() > Duration::from_secs(10) {
                // SAFETY: kill(2) with a pid this test started; no memory is involved.
                unsafe { libc::kill(libc::pid_t::try_from(pid)?, libc::SIGKILL) };
                return Err("the orphaned worker still ran 10 s after its parent exited".into());
            }
            thread::sleep(Duration::from_millis(50));
        }
        drop(input);
        Ok(())
    }

    /// Whether `pid` runs. An orphan's exit is collected by init, maybe late: a zombie
    /// (state `Z` in `/proc/<pid>/stat`, after the command's closing parenthesis) counts
    /// as gone.
    fn alive(pid: u32) -> bool {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, state)| state.trim_start().starts_with('Z'))
        });
        process_exists(pid) && !zombie
    }

    /// Talks to a worker directly, line by line, as a sloppy client would.
    fn server_malformed() -> TestResult {
        let (_tmp, ns) = namespace();
        let mut child = Command::new(std::env::current_exe()?)
            .env(WORKER_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut stdin = child.stdin.take().ok_or("stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().ok_or("stdout")?);
        let mut ask = |line: &str| -> Result<serde_json::Value, Failed> {
            writeln!(stdin, "{line}")?;
            stdin.flush()?;
            let mut answer = String::new();
            stdout.read_line(&mut answer)?;
            Ok(serde_json::from_str(&answer)?)
        };
        let kind = |v: &serde_json::Value| v["error"]["kind"].as_str().map(str::to_owned);
        let answer = ask("this is not json")?;
        check(
            answer["id"].is_null() && kind(&answer).as_deref() == Some("other"),
            format!("garbage: {answer}"),
        )?;
        let answer = ask(r#"{"id":1,"op":"load"}"#)?;
        check(
            answer["id"] == 1 && kind(&answer).as_deref() == Some("other"),
            format!("load before hello: {answer}"),
        )?;
        let hello = format!(
            r#"{{"id":2,"op":"hello","protocol":1,"namespace":{{"name":"{}","dir":"{}"}}}}"#,
            ns.name,
            ns.dir.display()
        );
        let answer = ask(&hello)?;
        check(
            answer["id"] == 2 && answer["ok"]["protocol"] == 1,
            format!("hello: {answer}"),
        )?;
        let answer = ask(r#"{"id":3,"op":"teleport"}"#)?;
        check(
            answer["id"] == 3 && kind(&answer).as_deref() == Some("not_supported"),
            format!("unknown op: {answer}"),
        )?;
        let answer = ask(r#"{"id":4,"op":"save","data":"%%%"}"#)?;
        check(
            answer["id"] == 4 && kind(&answer).as_deref() == Some("other"),
            format!("bad base64: {answer}"),
        )?;
        let answer = ask(r#"{"id":5,"op":"unlock","lock":"L77"}"#)?;
        check(
            answer["id"] == 5 && kind(&answer).as_deref() == Some("other"),
            format!("unknown lock: {answer}"),
        )?;
        let answer = ask(r#"{"id":6,"op":"save","data":"aGk="}"#)?;
        check(answer["ok"].is_object(), format!("save: {answer}"))?;
        let answer = ask(r#"{"id":7,"op":"load"}"#)?;
        check(answer["ok"]["data"] == "aGk=", format!("load: {answer}"))?;
        drop(stdin);
        let status = child.wait()?;
        check(status.success(), "end of input ends the worker cleanly")?;
        Ok(())
    }

    const HELLO_OK: &str = r#"{"id":0,"ok":{"name":"fake","version":"0","protocol":1,"backend":"fake","location":"-","capabilities":{"encrypts_at_rest":false,"exclusive_lock":true,"change_detection":true,"shared_across_processes":true,"max_size":null}}}"#;

    /// A fake plugin: answers hello properly, then runs `then` (a shell snippet) on the next
    /// request.
    fn fake(then: &str, options: ClientOptions) -> ProcessPlugin {
        let (_tmp, ns) = namespace();
        let script = format!("read l; echo '{HELLO_OK}'; read l; {then}");
        ProcessPlugin::spawn_shell(&script, &ns, options).expect("fake plugin starts")
    }

    fn violation_of(result: identity_cache_persistence::Result<impl std::fmt::Debug>) -> String {
        match result {
            Ok(v) => panic!("a broken plugin was accepted: {v:?}"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Other, "{e}");
                e.to_string()
            }
        }
    }

    fn eof_before_answer() -> TestResult {
        let (_tmp, ns) = namespace();
        let message = violation_of(ProcessPlugin::spawn_shell(
            "exit 3",
            &ns,
            ClientOptions::default(),
        ));
        check(
            message.contains("no answer to `hello`") && message.contains("exit status: 3"),
            message,
        )
    }

    fn malformed_line() -> TestResult {
        let plugin = fake("echo 'this is {not json'", ClientOptions::default());
        let message = violation_of(plugin.load());
        check(
            message.contains("not JSON") && message.contains("this is {not json"),
            &message,
        )?;
        let again = violation_of(plugin.load());
        check(
            again == message,
            format!("later calls repeat the violation: {again}"),
        )
    }

    fn wrong_id() -> TestResult {
        let plugin = fake(
            r#"echo '{"id":5,"ok":{"data":null}}'"#,
            ClientOptions::default(),
        );
        let message = violation_of(plugin.load());
        check(
            message.contains("answered id 5 to `load` request 1")
                && message.contains(r#"\"id\":5"#),
            message,
        )
    }

    fn timeout_kills() -> TestResult {
        let options = ClientOptions {
            request_timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        };
        let plugin = fake("sleep 30", options);
        let started = Instant::now();
        let message = violation_of(plugin.load());
        check(
            message.contains("no answer to `load` request 1 within 300ms"),
            &message,
        )?;
        check(
            started.elapsed() < Duration::from_secs(5),
            "the timeout is honoured",
        )?;
        check(!process_exists(plugin.pid()), "a hanging plugin is killed")
    }

    /// A plugin that never answers a `load` fails the case that loads under the hang rule,
    /// not under the case's own rule.
    fn hang_is_named() -> TestResult {
        let script = format!(
            "while read l; do case \"$l\" in *hello*) echo '{HELLO_OK}';; *) sleep 30;; esac; done"
        );
        let factory = ExecFactory::new(script).options(ClientOptions {
            request_timeout: Duration::from_millis(500),
            ..ClientOptions::default()
        });
        let suite = conformance::Suite::new(Arc::new(factory), conformance::Config::new())?;
        let cases = conformance::select(
            &conformance::all_cases(),
            &["contract::absent_is_none".to_owned()],
        )?;
        let report = suite.run(&cases);
        let outcome = &report
            .case("contract::absent_is_none")
            .ok_or("the case was not run")?
            .outcome;
        match outcome {
            conformance::Outcome::Failed(f) => check(
                f.rule == conformance::failure::HANG_RULE
                    && f.actual.contains("no answer to `load`"),
                format!("{f}"),
            ),
            other => Err(format!("the hanging plugin was not failed: {other:?}").into()),
        }
    }

    fn unknown_error_kind() -> TestResult {
        let plugin = fake(
            r#"echo '{"id":1,"error":{"kind":"kaputt","message":"m"}}'"#,
            ClientOptions::default(),
        );
        let message = violation_of(plugin.load());
        check(message.contains("unknown error kind `kaputt`"), message)
    }

    fn version_mismatch() -> TestResult {
        let (_tmp, ns) = namespace();
        let hello = HELLO_OK.replace(r#""protocol":1"#, r#""protocol":2"#);
        let message = violation_of(ProcessPlugin::spawn_shell(
            &format!("read l; echo '{hello}'; sleep 5"),
            &ns,
            ClientOptions::default(),
        ));
        check(message.contains("protocol 2"), message)
    }

    fn not_supported() -> TestResult {
        let plugin = fake(
            r#"echo '{"id":1,"error":{"kind":"not_supported","message":"no lock here"}}'; read l; echo '{"id":2,"ok":{"data":"AA=="}}'"#,
            ClientOptions::default(),
        );
        let err = plugin
            .lock(Duration::from_millis(10))
            .err()
            .ok_or("lock succeeded")?;
        check(
            err.kind() == ErrorKind::NotSupported && err.to_string() == "no lock here",
            format!("{err}"),
        )?;
        check(
            plugin.load()? == Some(vec![0]),
            "an error answer leaves the connection usable",
        )
    }

    fn blobs_hidden() -> TestResult {
        // "secret-token-secret-token-secret-token" in base64, in an answer missing `ok` fields.
        let encoded = "c2VjcmV0LXRva2VuLXNlY3JldC10b2tlbi1zZWNyZXQtdG9rZW4=";
        let plugin = fake(
            &format!(r#"echo '{{"id":1,"ok":{{"data":"{encoded}","id":"x"}},"error":1}}'"#),
            ClientOptions::default(),
        );
        let message = violation_of(plugin.load());
        check(
            !message.contains(&encoded[..16]) && message.contains("base64 chars"),
            &message,
        )?;
        let debug = format!("{plugin:?}");
        check(!debug.contains("secret"), debug)?;
        // ExecFactory is what `exec:` plugins run through.
        let factory = ExecFactory::from_spec("exec: true").ok_or("spec parses")?;
        check(factory.label() == "exec:true", factory.label())
    }

    fn process_exists(pid: u32) -> bool {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks for existence.
        unsafe { libc::kill(pid, 0) == 0 }
    }
}
