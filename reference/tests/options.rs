//! The one constructor: options in, the persistence the Azure SDKs would use out.

use identity_cache_persistence::{
    CachePersistence, ErrorKind, KeyringProfile, TokenCachePersistenceOptions, default_directory,
    persistence_for,
};

/// Options for a cache in `dir` whose secure storage is unusable: on Linux its D-Bus
/// address names a socket that does not exist, so the Secret Service probe fails as it
/// does on a machine without a session bus, and the developer's real keyring is never
/// touched, and the kernel keyring is not used. (tests/secret_service.rs covers the cases
/// with a real keyring, tests/kernel_keyring.rs the kernel keyring.)
fn options_in(dir: &std::path::Path) -> TokenCachePersistenceOptions {
    TokenCachePersistenceOptions {
        enabled: true,
        directory: Some(dir.to_path_buf()),
        dbus_address: Some(format!("unix:path={}", dir.join("no-bus").display())),
        // The kernel keyring would be the secure storage here: tests/kernel_keyring.rs.
        use_kernel_keyring: false,
        ..Default::default()
    }
}

#[test]
fn defaults_mirror_the_azure_sdks() {
    let options = TokenCachePersistenceOptions::default();
    assert!(!options.enabled);
    assert_eq!(options.name, "msal.cache");
    assert!(!options.unsafe_allow_unencrypted_storage);
    assert_eq!(options.keyring_profile, KeyringProfile::AzureIdentityPython);
    assert_eq!(options.dbus_address, None, "the session bus");
    let dir = default_directory().expect("a home directory");
    assert!(dir.ends_with(".IdentityService"), "{}", dir.display());
    #[cfg(windows)]
    let root = std::path::PathBuf::from(std::env::var_os("LOCALAPPDATA").expect("LOCALAPPDATA"));
    #[cfg(not(windows))]
    let root = std::env::home_dir().expect("home");
    assert_eq!(dir, root.join(".IdentityService"));
}

#[test]
fn disabled_means_no_persistence() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = TokenCachePersistenceOptions {
        enabled: false,
        ..options_in(dir.path())
    };
    assert!(persistence_for(&options).expect("ok").is_none());
}

#[test]
fn without_secure_storage_plaintext_needs_the_opt_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = persistence_for(&options_in(dir.path())).expect_err("no silent plaintext");
    assert_eq!(err.kind(), ErrorKind::StorageUnavailable);
    assert!(
        err.to_string().contains("unsafe_allow_unencrypted_storage"),
        "the error says how to opt in: {err}"
    );
    #[cfg(all(target_os = "linux", feature = "secret-service"))]
    assert!(
        err.to_string().contains("no D-Bus session bus"),
        "the error names the cause: {err}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the probe's error is kept as the source"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("ls").count(),
        0,
        "nothing written"
    );
}

#[test]
fn with_the_opt_in_the_cache_is_a_file_at_the_sdk_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = TokenCachePersistenceOptions {
        name: "msal.cache.nocae".into(),
        unsafe_allow_unencrypted_storage: true,
        ..options_in(dir.path())
    };
    let p = persistence_for(&options).expect("ok").expect("enabled");
    assert_eq!(p.describe().backend, "file");
    p.save(b"{}").expect("save");
    assert_eq!(
        std::fs::read(dir.path().join("msal.cache.nocae")).expect("read"),
        b"{}"
    );
}

#[test]
fn invalid_names_are_refused_before_anything_is_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["", "..", "../escape", "a/b", "nul\0", "x.lockfile"] {
        let options = TokenCachePersistenceOptions {
            name: name.into(),
            unsafe_allow_unencrypted_storage: true,
            ..options_in(dir.path())
        };
        let err = persistence_for(&options).expect_err(name);
        assert_eq!(err.kind(), ErrorKind::InvalidName, "{name:?}: {err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}
