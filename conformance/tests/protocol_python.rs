//! The whole suite against the example Python plugin (`examples/file_plugin.py`), through
//! the process protocol: every handle and every worker is a real `python3` process.
//!
//! One test per case (filterable: `cargo test -p conformance --test protocol_python --
//! crash::`). A case that applies must pass; a case that does not apply to what the plugin
//! declares is reported as ignored with its reason. The multi-process cases must apply.
//!
//! The `broken_python::` tests run the multi-process crash cases against the example
//! plugin with a method replaced by a broken one, and require the case to fail: proof
//! that those cases can fail through the protocol.

#[cfg(unix)]
fn main() {
    unix::main();
}

/// The example plugin uses `fcntl`: Unix only.
#[cfg(not(unix))]
fn main() {}

#[cfg(unix)]
mod unix {
    use std::sync::Arc;

    use conformance::{EnvSettings, Need, Outcome, Suite, all_cases, protocol::ExecFactory};
    use libtest_mimic::{Arguments, Failed, Trial};

    const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/file_plugin.py");

    /// `text` as one word for `sh`.
    fn quoted(text: &str) -> String {
        format!("'{}'", text.replace('\'', r"'\''"))
    }

    /// The interpreter itself rather than `python3` on the PATH, which may be a wrapper
    /// script (pyenv's shim costs a shell and a second interpreter start per process, and
    /// every handle and worker here is a process).
    fn python() -> String {
        static PYTHON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        PYTHON
            .get_or_init(|| {
                let found = std::process::Command::new("python3")
                    .args(["-c", "import sys; print(sys.executable)"])
                    .output();
                match found {
                    Ok(out) if out.status.success() => {
                        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                        if path.is_empty() {
                            "python3".into()
                        } else {
                            quoted(&path)
                        }
                    }
                    // Not skipped: the example plugin is part of what this crate ships.
                    _ => panic!("python3 is needed to check the example plugin: {found:?}"),
                }
            })
            .clone()
    }

    /// The plugin as an `exec:` line would name it.
    fn command() -> String {
        format!("{} {}", python(), quoted(SCRIPT))
    }

    /// Saves that write the blob in place, in two halves: a reader or a kill in between
    /// sees a torn blob.
    const TORN_SAVE: &str = r#"
def save(self, data):
    self._make_dir()
    with open(self.path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
        time.sleep(0.02)
        f.write(data[len(data) // 2 :])
"#;

    /// A lock file made with O_EXCL and removed on unlock, as MSAL's, but without any
    /// dead-holder recovery: a killed holder's lock stays taken forever.
    const LOCK_WITHOUT_RECOVERY: &str = r#"
def lock(self, wait_ms):
    self._make_dir()
    deadline = time.monotonic() + wait_ms / 1000.0
    while True:
        try:
            os.close(os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            if time.monotonic() >= deadline:
                raise PluginError("lock_timeout", "lock file exists")
            time.sleep(0.005)
    lock_id = "L%d" % self.next_lock
    self.next_lock += 1
    self.locks[lock_id] = None
    return lock_id

def unlock(self, lock_id):
    if self.locks.pop(lock_id, 0) is not None:
        raise PluginError("other", "unknown lock")
    os.unlink(self.lock_path)

def release_all(self):
    self.locks.clear()
"#;

    /// The example plugin with some methods of `FilePlugin` replaced by `patch` (Python
    /// source defining them): a broken plugin the suite must catch.
    fn broken_command(patch: &str) -> String {
        let program = format!(
            "import runpy, time, os\n\
             plugin = runpy.run_path({script:?}, run_name='broken')\n\
             globals().update(plugin)\n\
             exec({patch:?})\n\
             for name in ('save', 'lock', 'unlock', 'release_all'):\n    \
                 if name in globals(): setattr(plugin['FilePlugin'], name, globals()[name])\n\
             plugin['main']()\n",
            script = SCRIPT,
        );
        format!("{} -c {}", python(), quoted(&program))
    }

    /// `case` fails against the example plugin broken by `patch`.
    fn caught(case_name: &str, patch: &str) -> Result<(), Failed> {
        let factory = Arc::new(ExecFactory::new(broken_command(patch)));
        let suite =
            Suite::new(factory.clone(), EnvSettings::read()?.config())?.with_launcher(factory);
        let case = all_cases()
            .into_iter()
            .find(|c| c.name == case_name)
            .ok_or_else(|| format!("no case {case_name}"))?;
        match suite.run_case(&case).outcome {
            Outcome::Failed(failure) => {
                eprintln!("{case_name} caught the broken plugin:\n{failure}");
                Ok(())
            }
            other => Err(format!("{case_name} did not catch the broken plugin: {other:?}").into()),
        }
    }

    pub fn main() {
        let args = Arguments::from_args();
        let factory = Arc::new(ExecFactory::new(command()));
        let mut config = EnvSettings::read()
            .expect("valid CONFORMANCE_* settings")
            .config();
        config.rerun = "CONFORMANCE_SEED={seed} cargo test -p conformance --test protocol_python -- '{case}' --exact"
            .into();
        let suite = match Suite::new(factory.clone(), config) {
            Ok(suite) => suite.with_launcher(factory),
            Err(e) => panic!("cannot create the suite's scratch directory: {e}"),
        };
        eprintln!(
            "protocol_python: seed {} (set CONFORMANCE_SEED to replay)",
            suite.config().seed
        );
        let mut trials = vec![
            Trial::test("protocol_python::plugin_is_described", {
                let suite = suite.clone();
                move || match suite.capabilities() {
                    Ok(_) => Ok(()),
                    Err(f) => Err(format!("the plugin cannot be described:\n{f}").into()),
                }
            }),
            Trial::test("protocol_python::multi_process_cases_apply", {
                let suite = suite.clone();
                move || multi_process_cases_apply(&suite)
            }),
            Trial::test(
                "protocol_python::answers_malformed_lines",
                answers_malformed_lines,
            ),
            Trial::test("broken_python::torn_save_is_caught", || {
                caught("crash::kill_during_save_racing_reader", TORN_SAVE)
            }),
            Trial::test("broken_python::lock_without_recovery_is_caught", || {
                caught(
                    "crash::dead_holder_recovered_by_one_waiter",
                    LOCK_WITHOUT_RECOVERY,
                )
            }),
        ];
        for case in all_cases() {
            let trial = match suite.skip_reason(&case) {
                Some(reason) => Trial::test(case.name, || Ok(()))
                    .with_kind(format!("n/a: {reason}"))
                    .with_ignored_flag(true),
                None => {
                    let suite = suite.clone();
                    Trial::test(case.name, move || {
                        let report = suite.run_case(&case);
                        if report.duration.as_secs() >= 2 {
                            eprintln!("{}: took {:?}", case.name, report.duration);
                        }
                        match report.outcome {
                            Outcome::Passed => Ok(()),
                            Outcome::Skipped(reason) => {
                                eprintln!("{}: skipped: {reason}", case.name);
                                Ok(())
                            }
                            Outcome::Failed(failure) => Err(failure.to_string().into()),
                            Outcome::KnownGap { reason, .. } => Err(Failed::from(format!(
                                "no known gaps are declared here, yet: {reason}"
                            ))),
                        }
                    })
                }
            };
            trials.push(trial);
        }
        libtest_mimic::run(&args, trials).exit();
    }

    /// Talks to the plugin line by line, as a sloppy client would: every line gets an
    /// answer with the right id (or `null`) and kind, and the plugin keeps serving.
    fn answers_malformed_lines() -> Result<(), Failed> {
        use std::io::{BufRead, BufReader, Write};
        let dir = tempfile::tempdir()?;
        let mut child = std::process::Command::new("sh")
            .args(["-c", &command()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
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
        let hello = serde_json::json!({
            "id": 2, "op": "hello", "protocol": 1,
            "namespace": {"name": "malformed", "dir": dir.path().join("slot")},
        })
        .to_string();
        let exchanges: [(&str, serde_json::Value, &str); 9] = [
            ("this is not json", serde_json::Value::Null, "other"),
            ("[1,2]", serde_json::Value::Null, "other"),
            (r#"{"id":1,"op":"load"}"#, 1.into(), "other"),
            (&hello, 2.into(), ""),
            (r#"{"id":3,"op":"teleport"}"#, 3.into(), "not_supported"),
            (r#"{"id":4,"op":"save","data":"%%%"}"#, 4.into(), "other"),
            (r#"{"id":5,"op":"unlock","lock":"L77"}"#, 5.into(), "other"),
            (
                r#"{"id":6,"op":"hello","protocol":1,"namespace":{"name":"x","dir":"/tmp"}}"#,
                6.into(),
                "other",
            ),
            (r#"{"id":7,"op":"save","data":"aGk="}"#, 7.into(), ""),
        ];
        for (line, id, kind) in exchanges {
            let answer = ask(line)?;
            let got_kind = answer["error"]["kind"].as_str().unwrap_or("");
            if answer["id"] != id || got_kind != kind {
                return Err(format!(
                    "to {line:?} expected id {id} and error kind {kind:?}, got {answer}"
                )
                .into());
            }
        }
        let answer = ask(r#"{"id":8,"op":"load"}"#)?;
        if answer["ok"]["data"] != "aGk=" {
            return Err(format!("load after the bad lines: {answer}").into());
        }
        let answer = ask(r#"{"id":9,"op":"shutdown"}"#)?;
        if !answer["ok"].is_object() {
            return Err(format!("shutdown: {answer}").into());
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("exit status after shutdown: {status}").into());
        }
        Ok(())
    }

    /// The plugin shares its slot and has a lock, and the run has a launcher: every case
    /// that starts worker processes must be selected, not skipped.
    fn multi_process_cases_apply(suite: &Suite) -> Result<(), Failed> {
        let mut multi = 0;
        for case in all_cases() {
            if !case.needs.contains(&Need::Workers) {
                continue;
            }
            multi += 1;
            if let Some(reason) = suite.skip_reason(&case) {
                return Err(format!("{} does not apply: {reason}", case.name).into());
            }
        }
        if multi == 0 {
            return Err("the suite has no multi-process cases".into());
        }
        Ok(())
    }
}
