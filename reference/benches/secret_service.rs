//! Save and load through the Secret Service at 2 KiB, 100 KiB and 1 MiB, next to
//! `secret-tool store` / `secret-tool lookup` of the same payload, all on one private
//! gnome-keyring started for the run (never the developer's).
//!
//! - `ours`: one handle, its connection open (how the cache plugin uses it); a save is
//!   one `CreateItem` plus the atomic marker rewrite, a load `SearchItems` + `GetSecret`.
//! - `ours, new handle`: a fresh handle per operation, so connecting and opening the
//!   encrypted session are included, as they are in every `secret-tool` run.
//! - `secret-tool`: a process per operation (libsecret: connect, session, call). It stores
//!   at most 8191 bytes read from stdin, so `secret-tool store` is measured at 2 KiB only;
//!   `secret-tool lookup` at every size.
//!
//! `cargo bench -p identity-cache-persistence --bench secret_service`. Without
//! gnome-keyring it prints SKIP and measures nothing.

#[cfg(all(target_os = "linux", feature = "secret-service"))]
#[path = "../tests/secret_service_support/daemons.rs"]
mod keyring;

#[cfg(all(target_os = "linux", feature = "secret-service"))]
fn main() {
    linux::main()
}

#[cfg(not(all(target_os = "linux", feature = "secret-service")))]
fn main() {
    eprintln!("SKIP secret_service bench: the Secret Service backend is Linux-only");
}

#[cfg(all(target_os = "linux", feature = "secret-service"))]
mod linux {
    use std::{hint::black_box, time::Duration};

    use criterion::{BenchmarkId, Criterion, Throughput};
    use identity_cache_persistence::{CachePersistence, KeyringProfile, SecretServicePersistence};

    use super::keyring::{PrivateKeyring, missing_packages};

    const SIZES: [(usize, &str); 3] = [
        (2 * 1024, "2KiB"),
        (100 * 1024, "100KiB"),
        (1024 * 1024, "1MiB"),
    ];

    /// The attributes both sides use: those of the default (Python) profile, so that
    /// `secret-tool` and we store and look up the same kind of item.
    const SCHEMA: &str = "bench.cache";

    /// `secret-tool store` refuses a secret of this many bytes or more on stdin.
    const SECRET_TOOL_MAX_STDIN: usize = 8192;

    pub fn main() {
        let missing = missing_packages();
        if !missing.is_empty() {
            eprintln!(
                "SKIP secret_service bench: needs the Debian packages {}",
                missing.join(", ")
            );
            return;
        }
        let keyring = PrivateKeyring::start();
        let dir = keyring.scratch("bench");
        let mut criterion = Criterion::default()
            .configure_from_args()
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        let fresh = || {
            SecretServicePersistence::new(dir.join(SCHEMA), KeyringProfile::AzureIdentityPython)
                .expect("path")
                .with_bus_address(keyring.address())
        };
        let ours = fresh();
        // The same attributes as `secret-tool store` below writes.
        let tool_item = SecretServicePersistence::new(
            dir.join("secret-tool.cache"),
            KeyringProfile::AzureIdentityPython,
        )
        .expect("path")
        .with_bus_address(keyring.address());
        let tool = dir.join("secret-tool.cache");
        let tool_schema = tool
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_owned();
        let attributes = [
            ("xdg:schema", tool_schema.as_str()),
            ("MsalClientID", "Microsoft.Developer.IdentityService"),
        ];

        for (size, label) in SIZES {
            // Printable bytes: secret-tool stores what it reads as text.
            let payload: Vec<u8> = (0..size).map(|i| b'A' + (i % 26) as u8).collect();
            let mut save = criterion.benchmark_group("secret_service/save");
            save.throughput(Throughput::Bytes(size as u64));
            save.bench_with_input(BenchmarkId::new("ours", label), &payload, |b, p| {
                b.iter(|| ours.save(black_box(p)).expect("save"))
            });
            save.bench_with_input(
                BenchmarkId::new("ours, new handle", label),
                &payload,
                |b, p| b.iter(|| fresh().save(black_box(p)).expect("save")),
            );
            // secret-tool reads at most 8191 bytes of secret from stdin ("password is
            // too long"), so it can only be measured storing the smallest payload.
            if size < SECRET_TOOL_MAX_STDIN {
                save.bench_with_input(
                    BenchmarkId::new("secret-tool store", label),
                    &payload,
                    |b, p| {
                        b.iter(|| keyring.secret_tool_store("MSALCache", &attributes, black_box(p)))
                    },
                );
            }
            save.finish();
            // The item secret-tool looks up, whatever size secret-tool can store.
            tool_item.save(&payload).expect("seed the secret-tool item");

            let mut load = criterion.benchmark_group("secret_service/load");
            load.throughput(Throughput::Bytes(size as u64));
            load.bench_function(BenchmarkId::new("ours", label), |b| {
                b.iter(|| {
                    let got = ours.load().expect("load").expect("stored");
                    assert_eq!(got.len(), size);
                })
            });
            load.bench_function(BenchmarkId::new("ours, new handle", label), |b| {
                b.iter(|| {
                    let got = fresh().load().expect("load").expect("stored");
                    assert_eq!(got.len(), size);
                })
            });
            load.bench_function(BenchmarkId::new("secret-tool lookup", label), |b| {
                b.iter(|| {
                    let got = keyring.secret_tool_lookup(&attributes).expect("stored");
                    assert_eq!(got.len(), size);
                })
            });
            load.finish();
        }
        criterion.final_summary();
    }
}
