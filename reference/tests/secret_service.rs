//! The Secret Service backend on a real gnome-keyring-daemon, on a private D-Bus bus that
//! each test starts for itself (see `secret_service_support`). Without gnome-keyring the
//! tests print SKIP; with `CI` set they fail instead.
#![cfg(all(target_os = "linux", feature = "secret-service"))]

mod secret_service_support;

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    time::{Duration, Instant},
};

use identity_cache_persistence::{
    CachePersistence, ErrorKind, KeyringProfile, SecretServicePersistence,
    TokenCachePersistenceOptions, persistence_for, secret_service::MAX_SIZE,
};
use secret_service_support::{PrivateBus, PrivateKeyring, available_or_skip, keyring_or_skip};

/// A persistence for the cache `name` in the keyring's scratch directory.
fn persistence(
    keyring: &PrivateKeyring,
    name: &str,
    profile: KeyringProfile,
) -> SecretServicePersistence {
    let dir = keyring.scratch("caches");
    SecretServicePersistence::new(dir.join(name), profile)
        .expect("a valid path")
        .with_bus_address(keyring.address())
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut data = vec![0; len];
    rng.fill(&mut data);
    data
}

fn owned(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn round_trips_absent_empty_binary_and_4_mib_in_every_profile() {
    let Some(keyring) = keyring_or_skip("round_trips") else {
        return;
    };
    let all_bytes: Vec<u8> = (0..=255).collect();
    let big = random_bytes(4 * 1024 * 1024, 4);
    for profile in KeyringProfile::ALL {
        let cache = persistence(&keyring, &format!("{profile}.cache"), profile);
        assert_eq!(cache.load().expect("load"), None, "{profile}: absent");
        for (what, data) in [
            ("empty", &b""[..]),
            ("binary", &all_bytes[..]),
            ("4 MiB", &big[..]),
            ("json", &b"{\"AccessToken\": {}}"[..]),
        ] {
            cache.save(data).expect("save");
            let loaded = cache.load().expect("load").expect("stored");
            assert!(loaded == data, "{profile}: {what} round trip");
        }
        // A second handle (its own connection) sees the same blob.
        let other = persistence(&keyring, &format!("{profile}.cache"), profile);
        assert_eq!(
            other.load().expect("load").as_deref(),
            Some(&b"{\"AccessToken\": {}}"[..])
        );
    }
}

#[test]
fn each_profile_writes_the_attributes_and_label_of_its_sdk() {
    let Some(keyring) = keyring_or_skip("profile_layouts") else {
        return;
    };
    let cases = [
        (
            KeyringProfile::AzureIdentityPython,
            owned(&[
                ("xdg:schema", "msal.cache.nocae"),
                ("MsalClientID", "Microsoft.Developer.IdentityService"),
            ]),
            "MSALCache",
            "{\"py\":1}",
        ),
        (
            KeyringProfile::AzureIdentityDotNet,
            owned(&[
                ("xdg:schema", "msal.cache"),
                ("MsalClientID", "Microsoft.Developer.IdentityService"),
                ("Microsoft.Developer.IdentityService", "1.0.0.0"),
            ]),
            "msal.cache.nocae",
            // Base64 of {"py":1}, as .NET's Convert.ToBase64String writes it.
            "eyJweSI6MX0=",
        ),
        (
            KeyringProfile::Keytar,
            owned(&[
                ("xdg:schema", "org.freedesktop.Secret.Generic"),
                ("service", "Microsoft.Developer.IdentityService"),
                ("account", "MSALCache"),
            ]),
            "Microsoft.Developer.IdentityService/MSALCache",
            "{\"py\":1}",
        ),
    ];
    for (profile, attributes, label, secret) in cases {
        let cache = persistence(&keyring, "msal.cache.nocae", profile);
        cache.save(b"{\"py\":1}").expect("save");
        let lookup: Vec<(&str, &str)> = attributes
            .iter()
            .filter(|(k, _)| *k != "xdg:schema")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let found: Vec<_> = keyring
            .search(&lookup)
            .into_iter()
            .filter(|item| item.attributes.get("xdg:schema") == attributes.get("xdg:schema"))
            .collect();
        assert_eq!(found.len(), 1, "{profile}: one item: {found:?}");
        assert_eq!(
            found[0].attributes, attributes,
            "{profile}: exact attribute set"
        );
        assert_eq!(found[0].label, label, "{profile}: label");
        assert_eq!(found[0].secret, secret, "{profile}: payload encoding");
        // libsecret, as the SDK uses it, finds it by its lookup attributes.
        let with_schema: Vec<(&str, &str)> = attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            keyring.secret_tool_lookup(&with_schema).as_deref(),
            Some(secret.as_bytes()),
            "{profile}: secret-tool lookup"
        );
        assert_eq!(profile.attributes("msal.cache.nocae"), attributes);
        assert_eq!(profile.label("msal.cache.nocae"), label);
        // Saving again replaces the item rather than adding one.
        cache.save(b"{\"py\":2}").expect("save");
        let again = keyring.search(&lookup);
        assert_eq!(
            again
                .iter()
                .filter(|i| i.attributes.get("xdg:schema") == attributes.get("xdg:schema"))
                .count(),
            1,
            "{profile}: still one item"
        );
    }
    // The Python profile keeps one item per cache name; the other two share one.
    let py = |name: &str| persistence(&keyring, name, KeyringProfile::AzureIdentityPython);
    py("msal.cache.cae").save(b"cae").expect("save");
    py("msal.cache.nocae").save(b"nocae").expect("save");
    assert_eq!(
        py("msal.cache.cae").load().expect("load").as_deref(),
        Some(&b"cae"[..])
    );
    let dotnet = |name: &str| persistence(&keyring, name, KeyringProfile::AzureIdentityDotNet);
    dotnet("msal.cache.cae").save(b"shared").expect("save");
    assert_eq!(
        dotnet("msal.cache.nocae").load().expect("load").as_deref(),
        Some(&b"shared"[..]),
        ".NET's lookup does not include the name"
    );
}

#[test]
fn the_marker_is_a_private_empty_file_rewritten_after_every_save() {
    let Some(keyring) = keyring_or_skip("marker") else {
        return;
    };
    let dir = keyring.scratch("marker").join("new-dir");
    let cache = SecretServicePersistence::new(dir.join("msal.cache"), KeyringProfile::default())
        .expect("path")
        .with_bus_address(keyring.address());
    assert_eq!(cache.version().expect("version"), None);
    let secret = b"{\"RefreshToken\": \"very-secret-refresh-token\"}";
    cache.save(secret).expect("save");
    let marker = dir.join("msal.cache");
    let meta = std::fs::metadata(&marker).expect("marker exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "marker mode");
    assert_eq!(meta.len(), 0, "the marker holds nothing");
    let dir_mode = std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700, "created directory mode");
    // Nothing under the directory holds the blob.
    for entry in std::fs::read_dir(&dir).expect("ls") {
        let path = entry.expect("entry").path();
        let content = std::fs::read(&path).unwrap_or_default();
        assert!(
            !content
                .windows(secret.len())
                .any(|w| w == secret.as_slice()),
            "{} holds the blob",
            path.display()
        );
    }
    let mut seen = vec![cache.version().expect("version").expect("a token")];
    for i in 0..20 {
        // Same size, same second: the token still moves.
        cache
            .save(format!("{{\"n\": {:02}}}", i % 10).as_bytes())
            .expect("save");
        let token = cache.version().expect("version").expect("a token");
        assert!(!seen.contains(&token), "save {i} reused a token");
        seen.push(token);
    }
    assert_eq!(
        cache.version().expect("version"),
        seen.last().cloned(),
        "stable"
    );
}

#[test]
fn another_handle_sees_saves_through_the_change_token() {
    let Some(keyring) = keyring_or_skip("change_token") else {
        return;
    };
    let a = persistence(&keyring, "shared.cache", KeyringProfile::default());
    let b = persistence(&keyring, "shared.cache", KeyringProfile::default());
    a.save(b"one").expect("save");
    let before = a.version().expect("version");
    assert_eq!(
        b.version().expect("version"),
        before,
        "same marker, same token"
    );
    b.save(b"two").expect("save");
    assert_ne!(a.version().expect("version"), before, "a sees b's save");
    assert_eq!(a.load().expect("load").as_deref(), Some(&b"two"[..]));
}

#[test]
fn an_item_without_a_marker_still_has_a_token() {
    let Some(keyring) = keyring_or_skip("unmarked") else {
        return;
    };
    // Written by a tool that keeps no marker file.
    keyring.secret_tool_store(
        "MSALCache",
        &[
            ("xdg:schema", "unmarked.cache"),
            ("MsalClientID", "Microsoft.Developer.IdentityService"),
        ],
        b"{\"from\":\"secret-tool\"}",
    );
    let cache = persistence(
        &keyring,
        "unmarked.cache",
        KeyringProfile::AzureIdentityPython,
    );
    assert!(
        cache.version().expect("version").is_some(),
        "an item exists"
    );
    assert_eq!(
        cache.load().expect("load").as_deref(),
        Some(&b"{\"from\":\"secret-tool\"}"[..])
    );
}

#[test]
fn the_lock_is_the_msal_lock_file_and_excludes_other_handles() {
    let Some(keyring) = keyring_or_skip("lock") else {
        return;
    };
    let a = persistence(&keyring, "locked.cache", KeyringProfile::default());
    let b = persistence(&keyring, "locked.cache", KeyringProfile::default());
    let guard = a.lock(Duration::from_secs(1)).expect("lock");
    let lock_file = a.cache_path().with_file_name("locked.cache.lockfile");
    assert!(lock_file.exists(), "{}", lock_file.display());
    let start = Instant::now();
    let err = b.lock(Duration::from_millis(200)).expect_err("held by a");
    assert_eq!(err.kind(), ErrorKind::LockTimeout, "{err}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    drop(guard);
    b.lock(Duration::from_secs(1))
        .expect("free again")
        .release()
        .expect("release");
}

#[test]
fn delete_removes_the_item_and_the_marker_and_nothing_else() {
    let Some(keyring) = keyring_or_skip("delete") else {
        return;
    };
    let cache = persistence(&keyring, "gone.cache", KeyringProfile::default());
    let neighbour = persistence(&keyring, "kept.cache", KeyringProfile::default());
    assert!(!cache.delete().expect("delete nothing"), "nothing stored");
    cache.save(b"data").expect("save");
    neighbour.save(b"neighbour").expect("save");
    let _lock = cache.lock(Duration::from_secs(1)).expect("lock");
    assert!(cache.delete().expect("delete"), "something was stored");
    assert_eq!(cache.load().expect("load"), None);
    assert_eq!(cache.version().expect("version"), None);
    assert!(!cache.cache_path().exists(), "marker removed");
    assert!(
        cache
            .cache_path()
            .with_file_name("gone.cache.lockfile")
            .exists(),
        "the lock file stays"
    );
    assert!(keyring.search(&[("xdg:schema", "gone.cache")]).is_empty());
    assert!(!cache.delete().expect("delete again"));
    assert_eq!(
        neighbour.load().expect("load").as_deref(),
        Some(&b"neighbour"[..])
    );
}

#[test]
fn too_large_is_refused_before_anything_is_sent() {
    // No bus at all: a TooLarge answer proves nothing was sent.
    let dir = tempfile::tempdir().expect("tempdir");
    let nowhere = format!("unix:path={}", dir.path().join("no-bus").display());
    let cache =
        SecretServicePersistence::new(dir.path().join("big.cache"), KeyringProfile::default())
            .expect("path")
            .with_bus_address(&nowhere);
    assert_eq!(cache.describe().capabilities.max_size, Some(MAX_SIZE));
    let err = cache
        .save(&vec![b'x'; MAX_SIZE + 1])
        .expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(!cache.cache_path().exists(), "no marker written");

    let Some(keyring) = keyring_or_skip("too_large") else {
        return;
    };
    let cache = persistence(&keyring, "big.cache", KeyringProfile::AzureIdentityDotNet);
    cache.save(b"kept").expect("save");
    let err = cache
        .save(&vec![b'x'; MAX_SIZE + 1])
        .expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert_eq!(cache.load().expect("load").as_deref(), Some(&b"kept"[..]));
}

#[test]
fn the_largest_blob_fits_even_base64_encoded() {
    let Some(keyring) = keyring_or_skip("max_size") else {
        return;
    };
    let cache = persistence(&keyring, "max.cache", KeyringProfile::AzureIdentityDotNet);
    let data = random_bytes(MAX_SIZE, 32);
    cache.save(&data).expect("save MAX_SIZE");
    assert!(cache.load().expect("load").expect("stored") == data);
}

#[test]
fn nothing_touches_d_bus_before_the_first_operation_that_needs_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nowhere = format!("unix:path={}", dir.path().join("no-bus").display());
    let cache =
        SecretServicePersistence::new(dir.path().join("lazy.cache"), KeyringProfile::Keytar)
            .expect("path")
            .with_bus_address(&nowhere);
    // Any attempt to connect would fail: these succeed, so none was made.
    let description = cache.describe();
    assert_eq!(description.backend, "secret-service");
    assert!(description.capabilities.encrypts_at_rest);
    assert!(
        description.location.contains("keytar"),
        "{}",
        description.location
    );
    assert!(
        description
            .location
            .contains("service=Microsoft.Developer.IdentityService"),
        "{}",
        description.location
    );
    cache
        .lock(Duration::from_secs(1))
        .expect("lock")
        .release()
        .expect("release");
    std::fs::write(cache.cache_path(), b"").expect("a marker");
    assert!(cache.version().expect("version from the marker").is_some());
}

#[test]
fn no_bus_is_storage_unavailable_for_every_operation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nowhere = format!("unix:path={}", dir.path().join("no-bus").display());
    let cache =
        SecretServicePersistence::new(dir.path().join("c.cache"), KeyringProfile::default())
            .expect("path")
            .with_bus_address(&nowhere);
    let errors = [
        cache.load().expect_err("load"),
        cache.save(b"x").expect_err("save"),
        cache.delete().expect_err("delete"),
        cache.version().expect_err("version without marker"),
        cache.validate().expect_err("validate"),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::StorageUnavailable, "{err}");
        assert!(
            err.to_string().starts_with("no D-Bus session bus: "),
            "{err}"
        );
    }
    assert!(
        !cache.cache_path().exists(),
        "a failed save writes no marker"
    );
}

#[test]
fn a_bus_without_a_secret_service_says_so() {
    if !available_or_skip("no_secret_service") {
        return;
    }
    let bus = PrivateBus::start();
    let dir = bus.scratch("c");
    let cache = SecretServicePersistence::new(dir.join("c.cache"), KeyringProfile::default())
        .expect("path")
        .with_bus_address(bus.address());
    let errors = [
        cache.load().expect_err("load"),
        cache.save(b"x").expect_err("save"),
        cache.delete().expect_err("delete"),
        cache.validate().expect_err("validate"),
    ];
    for err in errors {
        assert_eq!(err.kind(), ErrorKind::StorageUnavailable, "{err}");
        assert!(
            err.to_string()
                .starts_with("no Secret Service (org.freedesktop.secrets) on the bus"),
            "{err}"
        );
    }
    assert!(
        !cache.cache_path().exists(),
        "a failed save writes no marker"
    );
}

#[test]
fn a_locked_collection_is_access_denied_and_loses_nothing() {
    let Some(mut keyring) = keyring_or_skip("locked") else {
        return;
    };
    let secret = b"{\"RefreshToken\": \"locked-away-secret\"}";
    let cache = persistence(&keyring, "locked.cache", KeyringProfile::default());
    cache.save(secret).expect("save");
    let token = cache.version().expect("version");
    keyring.lock_default_collection();
    let errors = [
        cache.load().expect_err("load"),
        cache.save(b"overwrite").expect_err("save"),
        cache.delete().expect_err("delete"),
        cache.validate().expect_err("validate"),
    ];
    for err in &errors {
        assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
        assert!(err.to_string().contains("locked"), "{err}");
        assert!(!format!("{err:?}").contains("locked-away-secret"));
    }
    assert_eq!(cache.version().expect("version"), token, "marker untouched");
    // Unlock by restarting the daemon on the same keyring file: the blob is intact.
    keyring.restart_daemon();
    assert_eq!(
        cache.load().expect("load after unlock").as_deref(),
        Some(&secret[..])
    );
}

#[test]
fn the_probe_uses_its_own_item_and_leaves_nothing_behind() {
    let Some(keyring) = keyring_or_skip("probe") else {
        return;
    };
    for profile in KeyringProfile::ALL {
        let cache = persistence(&keyring, "probed.cache", profile);
        cache.save(b"real cache").expect("save");
        let before = keyring.all_items();
        let token = cache.version().expect("version");
        cache.validate().expect("validate");
        assert_eq!(
            keyring.all_items(),
            before,
            "{profile}: no item added or removed"
        );
        assert_eq!(
            cache.version().expect("version"),
            token,
            "{profile}: marker untouched"
        );
        assert_eq!(
            cache.load().expect("load").as_deref(),
            Some(&b"real cache"[..])
        );
        // Probes of many threads at once do not trip over each other.
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| cache.validate().expect("concurrent validate"));
            }
        });
        assert_eq!(
            keyring.all_items(),
            before,
            "{profile}: concurrent probes clean up"
        );
    }
}

#[test]
fn a_restarted_daemon_is_reconnected_to() {
    let Some(mut keyring) = keyring_or_skip("reconnect") else {
        return;
    };
    let cache = persistence(&keyring, "again.cache", KeyringProfile::default());
    cache.save(b"before").expect("save");
    keyring.restart_daemon();
    // The old connection's session belonged to the old daemon.
    assert_eq!(cache.load().expect("load").as_deref(), Some(&b"before"[..]));
    cache.save(b"after").expect("save");
    assert_eq!(cache.load().expect("load").as_deref(), Some(&b"after"[..]));
}

#[test]
fn the_blob_is_never_in_debug_output_or_errors() {
    let Some(keyring) = keyring_or_skip("no_leaks") else {
        return;
    };
    let cache = persistence(&keyring, "leak.cache", KeyringProfile::AzureIdentityDotNet);
    cache.save(b"super-secret-token-value").expect("save");
    let shown = format!("{cache:?} {:?}", cache.describe());
    assert!(!shown.contains("super-secret-token-value"), "{shown}");
    assert!(
        !shown.contains("c3VwZXItc2VjcmV0"),
        "nor its Base64: {shown}"
    );
    // A Base64 item that is not Base64: CorruptData, not quoted, left in place.
    keyring.secret_tool_store(
        "leak.cache",
        &[
            ("xdg:schema", "msal.cache"),
            ("MsalClientID", "Microsoft.Developer.IdentityService"),
            ("Microsoft.Developer.IdentityService", "1.0.0.0"),
        ],
        b"not base64: super-secret-token-value",
    );
    let err = cache.load().expect_err("not base64");
    assert_eq!(err.kind(), ErrorKind::CorruptData, "{err}");
    assert!(
        !format!("{err} {err:?}").contains("super-secret"),
        "{err:?}"
    );
    let items = keyring.search(&[("MsalClientID", "Microsoft.Developer.IdentityService")]);
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].secret, "not base64: super-secret-token-value",
        "left as it is"
    );
}

#[test]
fn handles_are_shared_safely_between_threads() {
    let Some(keyring) = keyring_or_skip("threads") else {
        return;
    };
    let cache = persistence(&keyring, "threads.cache", KeyringProfile::default());
    let blobs: Vec<Vec<u8>> = (0..4u64).map(|i| random_bytes(64 * 1024, i)).collect();
    std::thread::scope(|s| {
        for blob in &blobs {
            let cache = cache.clone();
            let blobs = &blobs;
            s.spawn(move || {
                for _ in 0..10 {
                    cache.save(blob).expect("save");
                    let loaded = cache.load().expect("load").expect("stored");
                    assert!(blobs.contains(&loaded), "a torn or foreign blob");
                }
            });
        }
    });
}

// persistence_for: the secure backend when its probe passes, else the typed error, or
// the plaintext file only with the opt-in.

fn options(dir: &std::path::Path, address: &str) -> TokenCachePersistenceOptions {
    TokenCachePersistenceOptions {
        enabled: true,
        name: "msal.cache.nocae".into(),
        directory: Some(dir.to_path_buf()),
        dbus_address: Some(address.to_owned()),
        // These tests are about the Secret Service and the plaintext opt-in; where no
        // Secret Service answers, the kernel keyring would step in (tests/kernel_keyring.rs).
        use_kernel_keyring: false,
        ..Default::default()
    }
}

#[test]
fn persistence_for_picks_the_secret_service_when_its_probe_passes() {
    let Some(keyring) = keyring_or_skip("options_secure") else {
        return;
    };
    let dir = keyring.scratch("options");
    for unsafe_allow_unencrypted_storage in [false, true] {
        let options = TokenCachePersistenceOptions {
            unsafe_allow_unencrypted_storage,
            ..options(&dir, keyring.address())
        };
        let cache = persistence_for(&options).expect("ok").expect("enabled");
        let description = cache.describe();
        assert_eq!(description.backend, "secret-service");
        assert!(description.capabilities.encrypts_at_rest);
        cache.save(b"{\"secure\": true}").expect("save");
        assert_eq!(
            std::fs::read(dir.join("msal.cache.nocae")).expect("marker"),
            b""
        );
        let items = keyring.search(&[("xdg:schema", "msal.cache.nocae")]);
        assert_eq!(items.len(), 1, "the default profile: {items:?}");
        assert_eq!(items[0].secret, "{\"secure\": true}");
    }
}

#[test]
fn persistence_for_reports_a_locked_keyring_or_falls_back_only_with_the_opt_in() {
    let Some(keyring) = keyring_or_skip("options_locked") else {
        return;
    };
    keyring.lock_default_collection();
    let dir = keyring.scratch("options-locked");
    let err = persistence_for(&options(&dir, keyring.address())).expect_err("no silent plaintext");
    assert_eq!(err.kind(), ErrorKind::AccessDenied, "{err}");
    let message = err.to_string();
    assert!(message.contains("locked"), "{message}");
    assert!(
        message.contains("unsafe_allow_unencrypted_storage"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).expect("ls").count(),
        0,
        "nothing written"
    );

    let options = TokenCachePersistenceOptions {
        unsafe_allow_unencrypted_storage: true,
        ..options(&dir, keyring.address())
    };
    let cache = persistence_for(&options)
        .expect("fallback")
        .expect("enabled");
    assert_eq!(cache.describe().backend, "file");
    cache.save(b"plain").expect("save");
    assert_eq!(
        std::fs::read(dir.join("msal.cache.nocae")).expect("file"),
        b"plain"
    );
    let mode = std::fs::metadata(dir.join("msal.cache.nocae"))
        .expect("file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn persistence_for_without_a_secret_service_names_the_cause() {
    if !available_or_skip("options_no_service") {
        return;
    }
    let bus = PrivateBus::start();
    let dir = bus.scratch("options");
    let err = persistence_for(&options(&dir, bus.address())).expect_err("no silent plaintext");
    assert_eq!(err.kind(), ErrorKind::StorageUnavailable, "{err}");
    assert!(
        err.to_string()
            .contains("no Secret Service (org.freedesktop.secrets) on the bus"),
        "{err}"
    );
    let options = TokenCachePersistenceOptions {
        unsafe_allow_unencrypted_storage: true,
        ..options(&dir, bus.address())
    };
    let cache = persistence_for(&options)
        .expect("fallback")
        .expect("enabled");
    assert_eq!(cache.describe().backend, "file");
}

#[test]
fn persistence_for_uses_the_profile_of_the_options() {
    let Some(keyring) = keyring_or_skip("options_profile") else {
        return;
    };
    let dir = keyring.scratch("options-profile");
    let options = TokenCachePersistenceOptions {
        keyring_profile: KeyringProfile::AzureIdentityDotNet,
        ..options(&dir, keyring.address())
    };
    let cache = persistence_for(&options).expect("ok").expect("enabled");
    cache.save(b"{}").expect("save");
    let items = keyring.search(&[("Microsoft.Developer.IdentityService", "1.0.0.0")]);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].secret, "e30=");
    assert_eq!(items[0].label, "msal.cache.nocae");
}
