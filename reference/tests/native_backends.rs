//! The real macOS Keychain and Windows DPAPI backends, on their own OS (the GitHub
//! workflow's macOS and Windows runners); nothing runs elsewhere. The platform-independent
//! logic they share is tested everywhere (`secret_store_persistence.rs`,
//! `encrypted_file_persistence.rs`); these check the OS calls and the interoperability
//! with the other SDKs' tools.

/// Whether a missing environment (a locked keychain, say) fails the test: in CI it does,
/// loudly; on a developer's machine the test reports a skip with the reason.
#[allow(dead_code, reason = "used on macOS only")]
fn must_run() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

/// Hex of `bytes`, as PowerShell's `[BitConverter]::ToString` writes it (`7B-22-…`).
#[allow(dead_code, reason = "used on Windows only")]
fn dashed_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(all(target_os = "macos", feature = "keychain"))]
mod keychain {
    use std::process::Command;

    use identity_cache_persistence::{
        CachePersistence, ErrorKind, KeychainAccount, KeychainPersistence,
        platform::KEYCHAIN_SERVICE,
    };

    /// A cache name no real cache has, so the test item is its own (account = name).
    fn unique_name() -> String {
        format!(
            "identity-cache-persistence-test-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        )
    }

    /// Deletes the test item however the test ends.
    struct Cleanup<'a>(&'a KeychainPersistence);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.delete();
        }
    }

    /// `None` when the keychain cannot be used here and the test may skip.
    fn persistence(dir: &std::path::Path) -> Option<KeychainPersistence> {
        let p = KeychainPersistence::new(dir.join(unique_name()), KeychainAccount::CacheName)
            .expect("new");
        match p.validate() {
            Ok(()) => Some(p),
            Err(e)
                if !super::must_run()
                    && matches!(
                        e.kind(),
                        ErrorKind::AccessDenied | ErrorKind::StorageUnavailable
                    ) =>
            {
                eprintln!("SKIPPED: the login keychain cannot be used here: {e}");
                None
            }
            Err(e) => panic!("the keychain validation probe failed: {e} ({:?})", e.kind()),
        }
    }

    #[test]
    fn keychain_round_trip_update_in_place_and_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some(p) = persistence(dir.path()) else {
            return;
        };
        let _cleanup = Cleanup(&p);
        assert_eq!(p.keychain().service(), KEYCHAIN_SERVICE);
        let description = p.describe();
        assert_eq!(description.backend, "keychain");
        assert!(description.capabilities.encrypts_at_rest);
        assert_eq!(p.load().expect("load absent"), None);
        assert_eq!(p.version().expect("version absent"), None);

        p.save(b"{\"first\":1}").expect("save");
        assert_eq!(
            p.load().expect("load").as_deref(),
            Some(&b"{\"first\":1}"[..])
        );
        let first = p.version().expect("version").expect("token");
        assert_eq!(std::fs::read(p.cache_path()).expect("marker"), b"");

        let big: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        p.save(&big).expect("save 1 MiB over the existing item");
        assert_eq!(p.load().expect("load").as_deref(), Some(&big[..]));
        assert_ne!(p.version().expect("version"), Some(first));

        p.save(b"").expect("save empty");
        assert_eq!(p.load().expect("load empty"), Some(vec![]));

        assert!(p.delete().expect("delete"));
        assert_eq!(p.load().expect("load deleted"), None);
        assert_eq!(p.version().expect("version deleted"), None);
        assert!(!p.delete().expect("delete again"));
    }

    /// The other SDKs write with the legacy `SecKeychainAddGenericPassword`, as the
    /// `security` tool does; we find that item, update it in place, and the tool reads
    /// our update. `-A` lets any program use the item, so no prompt appears.
    #[test]
    fn keychain_items_of_the_legacy_api_are_shared() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some(p) = persistence(dir.path()) else {
            return;
        };
        let _cleanup = Cleanup(&p);
        let account = p.keychain().account().to_owned();
        let added = Command::new("security")
            .args(["add-generic-password", "-A", "-s", KEYCHAIN_SERVICE, "-a"])
            .arg(&account)
            .args(["-w", "{\"written\":\"by security\"}"])
            .status()
            .expect("run security");
        assert!(added.success(), "security add-generic-password: {added}");

        assert_eq!(
            p.load().expect("load").as_deref(),
            Some(&b"{\"written\":\"by security\"}"[..])
        );
        p.save(b"{\"written\":\"by us\"}").expect("update");
        let found = Command::new("security")
            .args(["find-generic-password", "-s", KEYCHAIN_SERVICE, "-a"])
            .arg(&account)
            .arg("-w")
            .output()
            .expect("run security");
        assert!(
            found.status.success(),
            "security find-generic-password: {found:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&found.stdout).trim_end(),
            "{\"written\":\"by us\"}"
        );
    }
}

#[cfg(all(windows, feature = "dpapi"))]
mod dpapi {
    use std::{fs, path::Path, process::Command};

    use identity_cache_persistence::{
        CachePersistence, DpapiPersistence, ErrorKind, platform::Dpapi,
    };

    /// Every DPAPI blob starts with version 1 and the provider GUID
    /// {df9d8cd0-1501-11d1-8c7a-00c04fc297eb}: the raw `CryptProtectData` output.
    const DPAPI_BLOB_START: [u8; 20] = [
        0x01, 0x00, 0x00, 0x00, 0xD0, 0x8C, 0x9D, 0xDF, 0x01, 0x15, 0xD1, 0x11, 0x8C, 0x7A, 0x00,
        0xC0, 0x4F, 0xC2, 0x97, 0xEB,
    ];

    #[test]
    fn dpapi_files_are_raw_dpapi_blobs_that_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("msal.cache");
        let p = DpapiPersistence::new(&path).expect("new");
        p.validate().expect("DPAPI works");
        let description = p.describe();
        assert_eq!(description.backend, "dpapi-file");
        assert!(description.capabilities.encrypts_at_rest);
        assert!(!format!("{:?}", Dpapi::with_entropy(*b"entropy-secret")).contains("secret"));
        assert_eq!(p.load().expect("load absent"), None);

        let blob = b"{\"RefreshToken\":{\"k\":{\"secret\":\"plaintext-token\"}}}";
        p.save(blob).expect("save");
        let on_disk = fs::read(&path).expect("read");
        assert!(
            on_disk.starts_with(&DPAPI_BLOB_START),
            "{:02X?}",
            &on_disk[..20]
        );
        assert!(!on_disk.windows(15).any(|w| w == b"plaintext-token"));
        assert_eq!(p.load().expect("load").as_deref(), Some(&blob[..]));

        let big: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        p.save(&big).expect("save 1 MiB");
        assert_eq!(p.load().expect("load").as_deref(), Some(&big[..]));

        p.save(b"").expect("save empty");
        let on_disk = fs::read(&path).expect("read");
        assert!(
            on_disk.starts_with(&DPAPI_BLOB_START),
            "the empty blob is encrypted too"
        );
        assert_eq!(p.load().expect("load empty"), Some(vec![]));

        // MSAL.NET writes an empty file for an empty cache.
        fs::write(&path, b"").expect("write");
        assert_eq!(p.load().expect("load empty file"), Some(vec![]));
    }

    #[test]
    fn damaged_or_foreign_ciphertext_is_corrupt_data_and_left_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("msal.cache");
        let p = DpapiPersistence::new(&path).expect("new");
        p.save(b"{\"k\":1}").expect("save");

        let mut damaged = fs::read(&path).expect("read");
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0xFF;
        fs::write(&path, &damaged).expect("damage");
        assert_eq!(
            p.load().expect_err("damaged").kind(),
            ErrorKind::CorruptData
        );
        assert_eq!(fs::read(&path).expect("read"), damaged, "left in place");

        // Written with an entropy we do not use.
        let salted =
            DpapiPersistence::with_cipher(&path, Dpapi::with_entropy(*b"salt")).expect("new");
        salted.save(b"{\"k\":2}").expect("save with entropy");
        assert_eq!(
            salted.load().expect("load").as_deref(),
            Some(&b"{\"k\":2}"[..])
        );
        assert_eq!(
            p.load().expect_err("other entropy").kind(),
            ErrorKind::CorruptData
        );
    }

    /// Runs a Windows PowerShell script with `ICP_*` variables set; its stdout.
    fn powershell(script: &str, vars: &[(&str, &str)]) -> String {
        let mut command = Command::new("powershell.exe");
        command.args(["-NoProfile", "-NonInteractive", "-Command", script]);
        for (k, v) in vars {
            command.env(k, v);
        }
        let out = command.output().expect("run powershell.exe");
        assert!(
            out.status.success(),
            "powershell failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn path_str(path: &Path) -> &str {
        path.to_str().expect("a UTF-8 temporary path")
    }

    /// .NET's `ProtectedData` with no entropy and CurrentUser scope is what MSAL.NET's
    /// `DpApiEncryptedFileAccessor` calls: each side reads the other's file.
    #[test]
    fn dpapi_files_interoperate_with_dotnet_protected_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ours = dir.path().join("ours.cache");
        let blob = "{\"AccessToken\":{},\"written\":\"by rust\"}";
        DpapiPersistence::new(&ours)
            .expect("new")
            .save(blob.as_bytes())
            .expect("save");
        let read_by_dotnet = powershell(
            "Add-Type -AssemblyName System.Security; \
             $c = [System.IO.File]::ReadAllBytes($env:ICP_FILE); \
             $p = [System.Security.Cryptography.ProtectedData]::Unprotect($c, $null, \
                  [System.Security.Cryptography.DataProtectionScope]::CurrentUser); \
             [Console]::Out.Write([BitConverter]::ToString($p))",
            &[("ICP_FILE", path_str(&ours))],
        );
        assert_eq!(read_by_dotnet, super::dashed_hex(blob.as_bytes()));

        let theirs = dir.path().join("theirs.cache");
        powershell(
            "Add-Type -AssemblyName System.Security; \
             $p = [System.Text.Encoding]::UTF8.GetBytes($env:ICP_TEXT); \
             $c = [System.Security.Cryptography.ProtectedData]::Protect($p, $null, \
                  [System.Security.Cryptography.DataProtectionScope]::CurrentUser); \
             [System.IO.File]::WriteAllBytes($env:ICP_FILE, $c)",
            &[
                ("ICP_FILE", path_str(&theirs)),
                ("ICP_TEXT", "{\"written\":\"by dotnet\"}"),
            ],
        );
        let loaded = DpapiPersistence::new(&theirs)
            .expect("new")
            .load()
            .expect("load");
        assert_eq!(loaded.as_deref(), Some(&b"{\"written\":\"by dotnet\"}"[..]));
    }
}
