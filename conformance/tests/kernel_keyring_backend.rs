//! The whole suite against `KernelKeyringPersistence` on this machine's kernel keyring
//! (`cargo test -p conformance --test kernel_keyring_backend -- faults::`).
//!
//! Faults are the file plugin's: the cache is a file written by the file plugin under
//! the namespace directory, so the directory faults apply as they are; the key is outside
//! it, in the persistent kernel keyring. Damaged data is a JWE whose tag does not verify.
//!
//! The plugin's `delete` keeps the key (by design: a concurrent save may be using it), and
//! cases that delete through a handle skip the factory's `cleanup`, so a run leaves about
//! 15 keys of 33 bytes. Each run first unlinks those of suites no longer running (the
//! suite's pid is in the namespace name), so they never pile up against a non-root
//! user's key quota (200 keys by default).

#[cfg(target_os = "linux")]
mod factory {
    use std::{
        fs,
        hash::{DefaultHasher, Hash, Hasher},
        path::PathBuf,
    };

    use conformance::{Fault, FileFactory, Namespace, PluginFactory};
    use identity_cache_persistence::{
        CachePersistence, Error, ErrorKind, KernelKeyringPersistence, Result, validate_name,
    };

    /// Makes a `KernelKeyringPersistence` at `<ns.dir>/<ns.name>`.
    #[derive(Debug, Default)]
    pub struct KernelKeyringFactory {
        /// The same files as the file plugin's, so its fault hooks apply as they are.
        files: FileFactory,
    }

    fn path(ns: &Namespace) -> PathBuf {
        ns.dir.join(&ns.name)
    }

    /// The key is named by the cache name; the suite uses one name in several
    /// directories, so the directory's hash keeps their keys apart (and lets `cleanup`
    /// unlink exactly this namespace's key).
    fn plugin(ns: &Namespace) -> Result<KernelKeyringPersistence> {
        validate_name(&ns.name)?;
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_earlier_runs);
        let mut hasher = DefaultHasher::new();
        ns.dir.hash(&mut hasher);
        KernelKeyringPersistence::with_key_description(
            path(ns),
            format!("{}{MARK}{:016x}", ns.name, hasher.finish()),
        )
    }

    /// The suffix of this target's key descriptions.
    const MARK: &str = "@conformance-";

    /// The process that ran the suite which named a namespace `conf-<run tag>-<n>...`:
    /// the tag is the suite's pid in hex and six random hex digits (`Ctx`), the same in
    /// its worker processes.
    fn suite_pid(description: &str) -> Option<u32> {
        let tag = description.strip_prefix("conf-")?.split('-').next()?;
        u32::from_str_radix(tag.get(..tag.len().checked_sub(6)?)?, 16).ok()
    }

    /// Unlinks this target's keys left by suites that are no longer running. Best effort:
    /// a key it cannot see or unlink stays.
    fn sweep_earlier_runs() {
        use linux_keyutils::{KeyRing, KeyRingIdentifier};
        let Ok(ring) = KeyRing::get_persistent(KeyRingIdentifier::User) else {
            return;
        };
        let Ok(links) = ring.get_links(4096) else {
            return;
        };
        for key in links.iter().filter_map(|node| node.as_key()) {
            let stale = key.metadata().is_ok_and(|meta| {
                let description = meta.get_description();
                description.contains(MARK)
                    && suite_pid(description)
                        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
            });
            if stale {
                let _ = ring.unlink_key(key);
            }
        }
    }

    impl PluginFactory for KernelKeyringFactory {
        fn label(&self) -> String {
            "kernel-keyring".into()
        }

        fn create(&self, ns: &Namespace) -> Result<Box<dyn CachePersistence>> {
            Ok(Box::new(plugin(ns)?))
        }

        /// The key first: a file cleanup that fails (a fault still in force) must not
        /// leave the key behind in the user's persistent keyring.
        fn cleanup(&self, ns: &Namespace) -> Result<()> {
            let key = plugin(ns)?.remove_key();
            self.files.cleanup(ns)?;
            key.map(|_| ())
        }

        /// A stored JWE with one byte of its ciphertext changed: the tag does not verify
        /// under the key, which is still there.
        fn corrupt_stored_data(&self, ns: &Namespace) -> Result<()> {
            let path = path(ns);
            let mut stored = fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
            let dots: Vec<usize> = stored
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'.')
                .map(|(i, _)| i)
                .collect();
            let [_, _, iv_end, ct_end] = dots[..] else {
                return Err(Error::new(
                    ErrorKind::Other,
                    "the stored file is not a compact JWE",
                ));
            };
            if ct_end <= iv_end + 1 {
                // An empty blob has no ciphertext byte to change: change the tag's first.
                stored[ct_end + 1] = if stored[ct_end + 1] == b'A' {
                    b'B'
                } else {
                    b'A'
                };
            } else {
                let at = (iv_end + 1 + ct_end) / 2;
                stored[at] = if stored[at] == b'A' { b'B' } else { b'A' };
            }
            fs::write(&path, stored).map_err(|e| Error::io("write", &path, e))
        }

        fn inject_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
            self.files.inject_fault(ns, fault)
        }

        fn clear_fault(&self, ns: &Namespace, fault: Fault) -> Result<()> {
            self.files.clear_fault(ns, fault)
        }
    }
}

#[cfg(target_os = "linux")]
conformance::harness!(factory::KernelKeyringFactory::default);

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("SKIP kernel_keyring_backend: the kernel keyring is Linux-only");
}
