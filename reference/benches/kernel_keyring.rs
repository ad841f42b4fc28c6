//! Save and load of `KernelKeyringPersistence` next to `FilePersistence`, at 2 KiB,
//! 100 KiB and 1 MiB, in the same run: the ratio is the price of the kernel key lookup
//! and AES-256-GCM with base64url (the file write is the same atomic save).
//!
//! `cargo bench -p identity-cache-persistence --bench kernel_keyring`. Off Linux, or
//! where keyctl is refused, it prints SKIP and measures nothing.

#[cfg(all(target_os = "linux", feature = "kernel-keyring"))]
fn main() {
    linux::main()
}

#[cfg(not(all(target_os = "linux", feature = "kernel-keyring")))]
fn main() {
    eprintln!("SKIP kernel_keyring bench: the kernel-keyring backend is Linux-only");
}

#[cfg(all(target_os = "linux", feature = "kernel-keyring"))]
mod linux {
    use std::{hint::black_box, time::Duration};

    use criterion::{BenchmarkId, Criterion, Throughput};
    use identity_cache_persistence::{CachePersistence, FilePersistence, KernelKeyringPersistence};

    const SIZES: [(usize, &str); 3] = [
        (2 * 1024, "2KiB"),
        (100 * 1024, "100KiB"),
        (1024 * 1024, "1MiB"),
    ];

    pub fn main() {
        let probe_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let probe = KernelKeyringPersistence::new(probe_dir.path().join("probe")).expect("new");
        if let Err(e) = probe.validate() {
            eprintln!("SKIP kernel_keyring bench: no usable kernel keyring: {e}");
            return;
        }
        let mut c = Criterion::default()
            .sample_size(30)
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        bench(&mut c);
        c.final_summary();
    }

    /// One key per bench run, unlinked at the end.
    fn key_name() -> String {
        format!("identity-cache-bench-{}", std::process::id())
    }

    fn bench(c: &mut Criterion) {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let kernel = KernelKeyringPersistence::with_key_description(
            dir.path().join("msal.cache"),
            key_name(),
        )
        .expect("new");
        let file = FilePersistence::new(dir.path().join("plain.cache")).expect("new");
        let mut save = c.benchmark_group("kernel_keyring_save");
        for (size, label) in SIZES {
            let data = vec![b'x'; size];
            save.throughput(Throughput::Bytes(size as u64));
            save.bench_with_input(BenchmarkId::new("FilePersistence", label), &data, |b, d| {
                b.iter(|| file.save(d).expect("save"));
            });
            save.bench_with_input(
                BenchmarkId::new("KernelKeyringPersistence", label),
                &data,
                |b, d| b.iter(|| kernel.save(d).expect("save")),
            );
        }
        save.finish();
        let mut load = c.benchmark_group("kernel_keyring_load");
        for (size, label) in SIZES {
            let data = vec![b'x'; size];
            file.save(&data).expect("save");
            kernel.save(&data).expect("save");
            load.throughput(Throughput::Bytes(size as u64));
            load.bench_function(BenchmarkId::new("FilePersistence", label), |b| {
                b.iter(|| black_box(file.load().expect("load")));
            });
            load.bench_function(BenchmarkId::new("KernelKeyringPersistence", label), |b| {
                b.iter(|| black_box(kernel.load().expect("load")));
            });
        }
        load.finish();
        let _ = kernel.remove_key();
    }
}
