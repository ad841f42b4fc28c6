//! Worker processes: the test binary re-executed to run one test, `worker_process`, which
//! reads its orders from the environment (libtest passes no other arguments through).

use std::{
    ffi::OsStr,
    process::{Child, Command, Stdio},
};

/// Starts this test binary running only its `worker_process` test, with `envs` set and
/// its output piped, so the caller reads what the worker printed.
pub fn spawn(envs: &[(&str, &OsStr)]) -> Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .args([
            "--exact",
            "worker_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker")
}
