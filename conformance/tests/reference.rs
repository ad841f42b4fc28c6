//! Runs the whole suite against the reference file plugin, one test per case
//! (`cargo test -p conformance --test reference -- lock::`).
//!
//! With `CONFORMANCE_PLUGIN='exec:<command>'` it checks that external plugin instead,
//! over the JSON-lines protocol; `CONFORMANCE_PLUGIN=file` is the default.
//!
//! Multi-process cases re-execute this binary as a worker serving the file plugin.

use std::sync::Arc;

use conformance::{
    FileFactory,
    harness::run_trials,
    protocol::{ExecFactory, SelfExecLauncher, serve_worker_if_requested},
};

fn main() {
    let file = FileFactory::new();
    // First: in a worker process stdout belongs to the protocol.
    serve_worker_if_requested(&file);
    match std::env::var("CONFORMANCE_PLUGIN") {
        Ok(spec) if spec != "file" && !spec.is_empty() => {
            let Some(exec) = ExecFactory::from_spec(&spec) else {
                eprintln!("CONFORMANCE_PLUGIN must be `file` or `exec:<command>`, not {spec:?}");
                std::process::exit(2);
            };
            let exec = Arc::new(exec);
            run_trials(env!("CARGO_PKG_NAME"), exec.clone(), Some(exec))
        }
        _ => {
            let launcher =
                SelfExecLauncher::new().expect("the test binary can find itself to start workers");
            run_trials(
                env!("CARGO_PKG_NAME"),
                Arc::new(file),
                Some(Arc::new(launcher)),
            )
        }
    }
}
