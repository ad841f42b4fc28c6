//! What a quarantine left beside a cache.

use std::path::Path;

/// The contents of every `<cache>.corrupt-<stamp>` file in `dir`: the corrupt caches
/// kept aside.
pub fn kept_aside(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .map(|e| std::fs::read(e.path()).expect("read"))
        .collect()
}
