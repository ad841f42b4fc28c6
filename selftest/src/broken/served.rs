//! The broken plugins served over the protocol by the test binary that checks them: as the
//! worker processes of multi-process cases, and as `exec:` plugins, so that the suite
//! judges each one exactly as it judges a plugin written in another language.

use std::{
    io::{self, BufWriter},
    path::Path,
    sync::Arc,
};

use conformance::{
    FileFactory, PluginFactory,
    protocol::{ServerInfo, WORKER_ENV, is_worker, serve_with},
};

use super::find;

/// Names the plugin a worker process serves.
pub const PLUGIN_ENV: &str = "CATALOGUE_PLUGIN";

/// The reference file plugin, as a worker name.
pub const REFERENCE_FILE: &str = "reference_file";

/// In a process started as a worker ([`is_worker`]): serves the plugin that [`PLUGIN_ENV`]
/// names on stdin/stdout and exits (status 2 for an unknown name, 1 when stdin/stdout
/// failed). Otherwise returns at once. Call it first in `main`: a worker's stdout belongs
/// to the protocol.
///
/// A plugin whose storage is under the namespace directory (the file family and the
/// reference file plugin) declares `storage_under_dir`, so that over `exec:` the suite
/// provokes its faults and corruption from outside.
pub fn serve_if_worker() {
    if !is_worker() {
        return;
    }
    let name = std::env::var(PLUGIN_ENV).unwrap_or_default();
    let (factory, storage_under_dir): (Arc<dyn PluginFactory>, bool) = if name == REFERENCE_FILE {
        (Arc::new(FileFactory::new()), true)
    } else {
        match find(&name) {
            Some(plugin) => (plugin.factory, plugin.storage_under_dir),
            None => {
                eprintln!("catalogue worker: no plugin called {name:?} ({PLUGIN_ENV})");
                std::process::exit(2);
            }
        }
    };
    // Logs go to stderr, where the suite reads what a plugin process logs.
    tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .init();
    let served = serve_with(
        ServerInfo::new(&name, env!("CARGO_PKG_VERSION")).storage_under_dir(storage_under_dir),
        |ns| factory.create(ns),
        io::stdin().lock(),
        BufWriter::new(io::stdout()),
    );
    std::process::exit(match served {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("catalogue worker: {e}");
            1
        }
    })
}

/// The `exec:` command line (without the prefix) that runs `exe` serving the plugin
/// called `name`: `exe` must call [`serve_if_worker`] first in its `main`.
pub fn exec_command(exe: &Path, name: &str) -> String {
    let quoted = |text: &str| format!("'{}'", text.replace('\'', r"'\''"));
    // The name is a plain word (snake_case): unquoted, the line stays one the suite runs
    // with `exec`, so the plugin is the process it kills.
    format!(
        "{WORKER_ENV}=1 {PLUGIN_ENV}={name} {}",
        quoted(&exe.to_string_lossy())
    )
}
