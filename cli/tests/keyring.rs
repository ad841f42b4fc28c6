//! The subcommands on a real private gnome-keyring, on a private D-Bus bus that the
//! reference crate's test support starts (`reference/tests/secret_service_support`):
//! never the developer's keyring. Each keyring diagnosis of `doctor` is produced for
//! real: a bus without a Secret Service, a locked collection (`Service.Lock`), a corrupt
//! cache item.
//!
//! Without gnome-keyring these tests print SKIP and pass; with `CI` set they fail instead.

#![cfg(target_os = "linux")]

mod support;

#[path = "../../reference/tests/secret_service_support/mod.rs"]
mod secret_service_support;

use std::{path::Path, process::Command};

use identity_cache_persistence::{CachePersistence, KeyringProfile, SecretServicePersistence};
use secret_service_support::{PrivateBus, available_or_skip, keyring_or_skip};
use support::*;

/// The binary on `dir`, talking to the bus at `address`.
fn on_bus(dir: &Path, address: &str) -> Command {
    let mut command = command(dir);
    command.args(["--dbus-address", address]);
    command
}

/// Runs `args` on `dir` and the bus at `address`.
fn run_on(dir: &Path, address: &str, args: &[&str]) -> Run {
    let mut command = on_bus(dir, address);
    command.args(args);
    run(command)
}

/// Saves `blob` as the cache `name` through the library, as an SDK would: the item in
/// the profile's layout and the marker file.
fn save(dir: &Path, address: &str, profile: KeyringProfile, name: &str, blob: &[u8]) {
    SecretServicePersistence::new(dir.join(name), profile)
        .expect("persistence")
        .with_bus_address(address)
        .save(blob)
        .expect("save to the private keyring");
}

fn finding<'a>(json: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {json}"))
}

#[test]
fn doctor_is_healthy_and_list_and_show_read_the_keyring_cache() {
    let Some(keyring) =
        keyring_or_skip("doctor_is_healthy_and_list_and_show_read_the_keyring_cache")
    else {
        return;
    };
    let (_root, dir) = cache_dir();
    let address = keyring.address();
    save(
        &dir,
        address,
        KeyringProfile::AzureIdentityPython,
        "msal.cache",
        CACHE.as_bytes(),
    );

    let doctor = run_on(&dir, address, &["doctor"]);
    assert_eq!(doctor.code, 0, "{doctor:?}");
    assert_no_secret(&doctor.stdout);
    snapshot("keyring_doctor_healthy", &dir, false, &doctor.stdout);
    // The validation probe left nothing behind.
    let probes: Vec<_> = keyring
        .all_items()
        .into_iter()
        .filter(|(_, attributes)| {
            attributes.get("xdg:schema").map(String::as_str) == Some("msal.cache")
        })
        .collect();
    assert_eq!(probes.len(), 1, "only the cache item: {probes:?}");

    let list = run_on(&dir, address, &["list"]);
    assert_eq!(list.code, 0, "{list:?}");
    snapshot("keyring_list", &dir, true, &list.stdout);
    let json = run_on(&dir, address, &["list", "--json"]).json();
    let cache = &json["caches"][0];
    assert_eq!(cache["name"], "msal.cache");
    assert_eq!(cache["backend"], "secret_service");
    assert_eq!(cache["size"], CACHE.len());
    assert_eq!(cache["keyring_item"]["profile"], "azure-identity-python");
    assert_eq!(cache["keyring_item"]["locked"], false);
    assert!(json["keyring_problem"].is_null(), "{json}");

    let show = run_on(&dir, address, &["show", "msal.cache", "--json"]);
    assert_eq!(show.code, 0, "{show:?}");
    assert_no_secret(&show.stdout);
    let shown = show.json();
    assert_eq!(shown["backend"], "secret_service");
    assert_eq!(shown["accounts"][0]["username"], "alice@contoso.com");
    assert_eq!(shown["tokens"].as_array().expect("tokens").len(), 4);
}

#[test]
fn list_names_items_of_every_profile_with_and_without_markers() {
    let Some(keyring) =
        keyring_or_skip("list_names_items_of_every_profile_with_and_without_markers")
    else {
        return;
    };
    let (_root, dir) = cache_dir();
    let address = keyring.address();
    save(
        &dir,
        address,
        KeyringProfile::AzureIdentityPython,
        "msal.cache.nocae",
        b"{}",
    );
    save(
        &dir,
        address,
        KeyringProfile::AzureIdentityPython,
        "msal.cache.cae",
        b"{\"Account\": {}}",
    );
    std::fs::remove_file(dir.join("msal.cache.cae")).expect("remove the marker");
    save(
        &dir,
        address,
        KeyringProfile::AzureIdentityDotNet,
        "dotnet.cache",
        b"{}",
    );
    std::fs::remove_file(dir.join("dotnet.cache")).expect("remove the marker");
    save(&dir, address, KeyringProfile::Keytar, "keytar.cache", b"{}");
    std::fs::remove_file(dir.join("keytar.cache")).expect("remove the marker");

    let json = run_on(&dir, address, &["list", "--json"]).json();
    let rows: Vec<(String, String, String)> = json["caches"]
        .as_array()
        .expect("caches")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["backend"].as_str().expect("backend").to_owned(),
                c["keyring_item"]["profile"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
            )
        })
        .collect();
    let row = |name: &str, backend: &str, profile: &str| {
        (name.to_owned(), backend.to_owned(), profile.to_owned())
    };
    assert_eq!(
        rows,
        [
            row("(every name)", "secret_service_without_marker", "keytar"),
            row(
                "dotnet.cache",
                "secret_service_without_marker",
                "azure-identity-dotnet"
            ),
            row(
                "msal.cache.cae",
                "secret_service_without_marker",
                "azure-identity-python"
            ),
            row(
                "msal.cache.nocae",
                "secret_service",
                "azure-identity-python"
            ),
        ]
    );
    let dotnet = &json["caches"][1];
    assert_eq!(
        dotnet["size"], 2,
        "the decoded size of the Base64 item: {dotnet}"
    );

    // The .NET layout: the marker of any name is that one shared item.
    let dotnet_json = run_on(
        &dir,
        address,
        &[
            "--profile",
            "azure-identity-dotnet",
            "show",
            "dotnet.cache",
            "--json",
        ],
    );
    assert_eq!(dotnet_json.code, 0, "{dotnet_json:?}");
    assert_eq!(
        dotnet_json.json()["backend"],
        "secret_service_without_marker"
    );
}

#[test]
fn clear_deletes_the_item_and_its_marker_under_the_lock() {
    let Some(keyring) = keyring_or_skip("clear_deletes_the_item_and_its_marker_under_the_lock")
    else {
        return;
    };
    let (_root, dir) = cache_dir();
    let address = keyring.address();
    save(
        &dir,
        address,
        KeyringProfile::AzureIdentityPython,
        "msal.cache",
        CACHE.as_bytes(),
    );
    let attributes = [
        ("xdg:schema", "msal.cache"),
        ("MsalClientID", "Microsoft.Developer.IdentityService"),
    ];
    assert_eq!(keyring.search(&attributes).len(), 1);

    let mut declined = on_bus(&dir, address);
    declined.args(["clear", "msal.cache"]);
    let declined = run_with_input(declined, "no\n");
    assert_eq!(declined.code, 3, "{declined:?}");
    assert_eq!(keyring.search(&attributes).len(), 1, "kept");

    let cleared = run_on(&dir, address, &["clear", "msal.cache", "--yes"]);
    assert_eq!(cleared.code, 0, "{cleared:?}");
    assert!(
        cleared.stdout.contains("Secret Service item + marker file"),
        "{}",
        cleared.stdout
    );
    assert!(keyring.search(&attributes).is_empty(), "the item is gone");
    assert!(!dir.join("msal.cache").exists(), "the marker is gone");
    assert!(
        !dir.join("msal.cache.lockfile").exists(),
        "the lock was released"
    );

    let show = run_on(&dir, address, &["show", "msal.cache"]);
    assert_eq!(show.code, 4, "{show:?}");
}

#[test]
fn doctor_on_a_bus_without_a_secret_service() {
    if !available_or_skip("doctor_on_a_bus_without_a_secret_service") {
        return;
    }
    let bus = PrivateBus::start();
    let (_root, dir) = cache_dir();
    let doctor = run_on(&dir, bus.address(), &["doctor"]);
    assert_eq!(doctor.code, 11, "{doctor:?}");
    assert!(
        doctor.stdout.contains("gnome-keyring-daemon --unlock"),
        "{}",
        doctor.stdout
    );
    snapshot("keyring_doctor_no_service", &dir, false, &doctor.stdout);
    let json = run_on(&dir, bus.address(), &["doctor", "--json"]).json();
    assert_eq!(json["exit_code"], 11);
    assert_eq!(finding(&json, "no_service")["status"], "problem");

    // The fix doctor gives, done for real: the daemon started on the bus, which creates
    // and unlocks the login keyring. It daemonizes, and quits with its bus.
    let mut start = bus.command("gnome-keyring-daemon");
    start.args(["--unlock", "--components=secrets"]);
    let started = run_with_input(start, secret_service_support::PASSWORD);
    assert_eq!(started.code, 0, "{started:?}");
    bus.wait_for_secret_service();
    let doctor = run_on(&dir, bus.address(), &["doctor"]);
    assert_eq!(doctor.code, 0, "after the fix: {doctor:?}");
}

#[test]
fn doctor_on_a_locked_keyring() {
    let Some(keyring) = keyring_or_skip("doctor_on_a_locked_keyring") else {
        return;
    };
    let (_root, dir) = cache_dir();
    let address = keyring.address();
    save(
        &dir,
        address,
        KeyringProfile::AzureIdentityPython,
        "msal.cache",
        CACHE.as_bytes(),
    );
    keyring.lock_default_collection();

    let doctor = run_on(&dir, address, &["doctor"]);
    assert_eq!(doctor.code, 12, "{doctor:?}");
    snapshot("keyring_doctor_locked", &dir, false, &doctor.stdout);
    let json = run_on(&dir, address, &["doctor", "--json"]).json();
    assert_eq!(finding(&json, "locked")["exit_code"], 12);

    let list = run_on(&dir, address, &["list", "--json"]).json();
    assert_eq!(list["caches"][0]["backend"], "secret_service");
    assert_eq!(list["caches"][0]["keyring_item"]["locked"], true);
    assert!(list["caches"][0]["size"].is_null());

    let show = run_on(&dir, address, &["show", "msal.cache"]);
    assert_eq!(show.code, 12, "{show:?}");
    assert!(show.stderr.contains("locked"), "{}", show.stderr);

    // The fix doctor gives, done for real: the running daemon unlocks the login keyring.
    let mut unlock = keyring.command("gnome-keyring-daemon");
    unlock.args(["--replace", "--unlock", "--components=secrets"]);
    let unlocked = run_with_input(unlock, secret_service_support::PASSWORD);
    assert_eq!(unlocked.code, 0, "{unlocked:?}");
    // The replacement daemon takes the bus name a moment after the old one let it go.
    keyring.bus().wait_for_secret_service();
    let doctor = run_on(&dir, address, &["doctor"]);
    assert_eq!(doctor.code, 0, "after the fix: {doctor:?}");
}

#[test]
fn doctor_finds_a_corrupt_cache_in_the_keyring() {
    let Some(keyring) = keyring_or_skip("doctor_finds_a_corrupt_cache_in_the_keyring") else {
        return;
    };
    let (_root, dir) = cache_dir();
    let address = keyring.address();
    save(
        &dir,
        address,
        KeyringProfile::AzureIdentityPython,
        "msal.cache",
        &CACHE.as_bytes()[..100],
    );
    let doctor = run_on(&dir, address, &["doctor", "--json"]);
    assert_eq!(doctor.code, 23, "{doctor:?}");
    assert_no_secret(&doctor.stdout);
    let json = doctor.json();
    let corrupt = finding(&json, "corrupt_cache");
    assert!(
        corrupt["fix"]
            .as_str()
            .expect("fix")
            .contains("msal.cache.corrupt-<epoch seconds>"),
        "{corrupt}"
    );
}
