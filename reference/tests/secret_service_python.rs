//! Interop on one private gnome-keyring: what Python `msal-extensions`' libsecret
//! persistence (with the azure-identity parameters) writes, ours reads with the Python
//! profile, and the other way round; and the same for the exact libsecret calls of MSAL.NET
//! and keytar (made through PyGObject, since neither SDK runs here).
//!
//! Python needs PyGObject's libsecret bindings, which come from Debian (`python3-gi`,
//! `gir1.2-secret-1`) for Debian's `/usr/bin/python3`: the venv is made from that
//! interpreter with `--system-site-packages`, and msal-extensions is installed into it from
//! PyPI. Without them the tests print SKIP; with `CI` set they fail instead.
#![cfg(all(target_os = "linux", feature = "secret-service"))]

mod secret_service_support;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
};

use identity_cache_persistence::{CachePersistence, KeyringProfile, SecretServicePersistence};
use secret_service_support::{PrivateKeyring, in_ci, keyring_or_skip};
use venv::run;

#[path = "python/venv.rs"]
mod venv;

/// Debian's interpreter, the one PyGObject is installed for.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// `LibsecretPersistence` exactly as azure-identity's `_persistent_cache.py` makes it on
/// Linux; argv: operation (`save` reads stdin, `load` writes stdout, exit 3 when absent,
/// `mtime`), signal file path, cache name.
const MSAL_EXTENSIONS: &str = r#"
import sys
from msal_extensions import LibsecretPersistence
from msal_extensions.persistence import PersistenceNotFound
op, file_path, cache_name = sys.argv[1:4]
p = LibsecretPersistence(
    file_path, cache_name, {"MsalClientID": "Microsoft.Developer.IdentityService"}, label="MSALCache"
)
try:
    if op == "save":
        p.save(sys.stdin.buffer.read().decode("utf-8"))
    elif op == "load":
        sys.stdout.buffer.write(p.load().encode("utf-8"))
    elif op == "mtime":
        print(p.time_last_modified())
except PersistenceNotFound:
    sys.exit(3)
"#;

/// The libsecret calls of MSAL.NET's `LinuxKeyringAccessor` (Azure.Identity's values) and
/// of keytar's `SetPassword`/`GetPassword` (msal-node-extensions' values); argv: sdk
/// (`dotnet`, `keytar`), operation (`save`, `load`), cache name.
const SDK_LIBSECRET_CALLS: &str = r#"
import base64, sys
import gi
gi.require_version("Secret", "1")
from gi.repository import Secret
S = Secret.SchemaAttributeType.STRING
sdk, op, name = sys.argv[1:4]
if sdk == "dotnet":
    schema = Secret.Schema.new("msal.cache", Secret.SchemaFlags.DONT_MATCH_NAME,
        {"MsalClientID": S, "Microsoft.Developer.IdentityService": S})
    attrs = {"MsalClientID": "Microsoft.Developer.IdentityService",
             "Microsoft.Developer.IdentityService": "1.0.0.0"}
    label = name
    encode = lambda b: base64.b64encode(b).decode("ascii")
    decode = lambda s: base64.b64decode(s)
else:
    schema = Secret.Schema.new("org.freedesktop.Secret.Generic", Secret.SchemaFlags.NONE,
        {"service": S, "account": S})
    attrs = {"service": "Microsoft.Developer.IdentityService", "account": "MSALCache"}
    label = "Microsoft.Developer.IdentityService/MSALCache"
    encode = lambda b: b.decode("utf-8")
    decode = lambda s: s.encode("utf-8")
if op == "save":
    ok = Secret.password_store_sync(schema, attrs, Secret.COLLECTION_DEFAULT, label,
        encode(sys.stdin.buffer.read()), None)
    sys.exit(0 if ok else 1)
found = Secret.password_lookup_sync(schema, attrs, None)
if found is None:
    sys.exit(3)
sys.stdout.buffer.write(decode(found))
"#;

/// The venv's python, or `None` (after printing why) when it cannot be made outside CI.
fn python() -> Option<&'static Path> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| match make_venv() {
            Ok(python) => Some(python),
            Err(why) => {
                assert!(
                    !in_ci(),
                    "CI is set, and the libsecret Python venv could not be made: {why}"
                );
                venv::report_skip("python libsecret interop", &why.to_string());
                None
            }
        })
        .as_deref()
}

/// Makes `target/tmp/py-libsecret-venv` once, on the system python so that Debian's
/// PyGObject is visible (`--system-site-packages`).
fn make_venv() -> Result<PathBuf, String> {
    if !Path::new(SYSTEM_PYTHON).exists() {
        return Err(format!(
            "{SYSTEM_PYTHON} is missing (run ci/install-deps.sh)"
        ));
    }
    run(Command::new(SYSTEM_PYTHON).args([
        "-c",
        "import gi; gi.require_version('Secret', '1'); from gi.repository import Secret",
    ]))
    .map_err(|e| {
        format!("PyGObject's libsecret is missing: install python3-gi gir1.2-secret-1 ({e})")
    })?;
    venv::build(
        "py-libsecret-venv",
        Command::new(SYSTEM_PYTHON).args(["-m", "venv", "--system-site-packages"]),
        "msal-extensions>=1.3,<2",
        "import gi, msal_extensions.libsecret",
    )
}

/// Runs `script` with `args` on the keyring's bus, `input` on stdin; its stdout, or `None`
/// when it exits 3 (nothing stored).
fn python_on(
    keyring: &PrivateKeyring,
    python: &Path,
    script: &str,
    args: &[&str],
    input: &[u8],
) -> Option<Vec<u8>> {
    let mut child = keyring
        .command(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input)
        .expect("write stdin");
    let out = child.wait_with_output().expect("python");
    match out.status.code() {
        Some(0) => Some(out.stdout),
        Some(3) => None,
        _ => panic!(
            "python {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn setup(test: &str) -> Option<(PrivateKeyring, &'static Path)> {
    let keyring = keyring_or_skip(test)?;
    let python = python()?;
    Some((keyring, python))
}

#[test]
fn msal_extensions_and_ours_read_each_others_cache() {
    let Some((keyring, python)) = setup("python_msal_extensions") else {
        return;
    };
    let dir = keyring.scratch("IdentityService");
    let path = dir.join("msal.cache.nocae");
    let path_arg = path.to_str().expect("UTF-8 path");
    let ours = SecretServicePersistence::new(&path, KeyringProfile::AzureIdentityPython)
        .expect("path")
        .with_bus_address(keyring.address());
    let py =
        |args: &[&str], input: &[u8]| python_on(&keyring, python, MSAL_EXTENSIONS, args, input);

    assert_eq!(py(&["load", path_arg, "msal.cache.nocae"], b""), None);
    let theirs = br#"{"AccessToken": {"from": "python msal-extensions"}}"#;
    py(&["save", path_arg, "msal.cache.nocae"], theirs).expect("python save");
    let token = ours.version().expect("version");
    assert!(
        token.is_some(),
        "python touched the marker at the same path"
    );
    assert_eq!(ours.load().expect("load").as_deref(), Some(&theirs[..]));

    let mine = br#"{"AccessToken": {"from": "rust", "unicode": "\u00e9\u4e2d"}}"#;
    ours.save(mine).expect("save");
    assert_ne!(ours.version().expect("version"), token);
    assert_eq!(
        py(&["load", path_arg, "msal.cache.nocae"], b"").as_deref(),
        Some(&mine[..]),
        "python reads ours"
    );
    py(&["mtime", path_arg, "msal.cache.nocae"], b"").expect("python sees our marker");

    // One item, replaced in turn by each side rather than duplicated.
    assert_eq!(
        keyring.search(&[("xdg:schema", "msal.cache.nocae")]).len(),
        1
    );
    let again = br#"{"AccessToken": {"from": "python again"}}"#;
    py(&["save", path_arg, "msal.cache.nocae"], again).expect("python save");
    assert_eq!(
        keyring.search(&[("xdg:schema", "msal.cache.nocae")]).len(),
        1
    );
    assert_eq!(ours.load().expect("load").as_deref(), Some(&again[..]));

    // Python's `.cae` cache is another item; ours with that name finds it, not this one.
    let cae = SecretServicePersistence::new(dir.join("msal.cache.cae"), KeyringProfile::default())
        .expect("path")
        .with_bus_address(keyring.address());
    assert_eq!(cae.load().expect("load"), None);
    assert!(ours.delete().expect("delete"));
    assert_eq!(py(&["load", path_arg, "msal.cache.nocae"], b""), None);
}

#[test]
fn dotnet_and_keytar_libsecret_calls_and_ours_share_one_item() {
    let Some((keyring, python)) = setup("python_dotnet_keytar") else {
        return;
    };
    for (sdk, profile) in [
        ("dotnet", KeyringProfile::AzureIdentityDotNet),
        ("keytar", KeyringProfile::Keytar),
    ] {
        let ours =
            SecretServicePersistence::new(keyring.scratch(sdk).join("msal.cache.nocae"), profile)
                .expect("path")
                .with_bus_address(keyring.address());
        let sdk_call = |op: &str, input: &[u8]| {
            python_on(
                &keyring,
                python,
                SDK_LIBSECRET_CALLS,
                &[sdk, op, "msal.cache.nocae"],
                input,
            )
        };
        assert_eq!(sdk_call("load", b""), None, "{sdk}: nothing yet");
        let theirs = format!(r#"{{"AccessToken": {{"from": "{sdk}"}}}}"#);
        sdk_call("save", theirs.as_bytes()).expect("sdk save");
        assert_eq!(
            ours.load().expect("load").as_deref(),
            Some(theirs.as_bytes()),
            "{sdk}: we read theirs"
        );
        let mine = format!(r#"{{"AccessToken": {{"from": "rust for {sdk}"}}}}"#);
        ours.save(mine.as_bytes()).expect("save");
        assert_eq!(
            sdk_call("load", b"").as_deref(),
            Some(mine.as_bytes()),
            "{sdk}: they read ours"
        );
        let items = keyring.search(
            &profile
                .attributes("msal.cache.nocae")
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        assert_eq!(items.len(), 1, "{sdk}: one shared item: {items:?}");
        assert!(ours.delete().expect("delete"));
        assert_eq!(sdk_call("load", b""), None, "{sdk}: deleted for them too");
    }
}
