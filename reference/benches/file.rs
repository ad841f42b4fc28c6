//! Save and load of `FilePersistence` next to the plain file operations they are built on,
//! measured in the same run: the ratio is what matters, not the absolute time.
//!
//! - save baseline: write a new file, fsync it, rename it over the target, fsync the
//!   directory (the least any crash-safe save does);
//! - load baseline: `std::fs::read`.

use std::{fs, hint::black_box, io::Write, path::Path};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use identity_cache_persistence::{CachePersistence, FilePersistence};

const SIZES: [(usize, &str); 3] = [
    (2 * 1024, "2KiB"),
    (100 * 1024, "100KiB"),
    (1024 * 1024, "1MiB"),
];

fn baseline_save(dir: &Path, target: &Path, data: &[u8]) {
    let temp = dir.join("baseline.tmp");
    let mut file = fs::File::create(&temp).expect("create");
    file.write_all(data).expect("write");
    file.sync_all().expect("fsync");
    fs::rename(&temp, target).expect("rename");
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("fsync dir");
}

fn save(c: &mut Criterion) {
    let mut group = c.benchmark_group("save");
    for (size, label) in SIZES {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let data = vec![b'x'; size];
        let ours = FilePersistence::new(dir.path().join("msal.cache")).expect("new");
        let target = dir.path().join("baseline");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("baseline", label), &data, |b, data| {
            b.iter(|| baseline_save(dir.path(), &target, data));
        });
        group.bench_with_input(
            BenchmarkId::new("FilePersistence", label),
            &data,
            |b, data| {
                b.iter(|| ours.save(data).expect("save"));
            },
        );
    }
    group.finish();
}

fn load(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    for (size, label) in SIZES {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let ours = FilePersistence::new(dir.path().join("msal.cache")).expect("new");
        ours.save(&vec![b'x'; size]).expect("save");
        let path = dir.path().join("msal.cache");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("baseline", label), |b| {
            b.iter(|| black_box(fs::read(&path).expect("read")));
        });
        group.bench_function(BenchmarkId::new("FilePersistence", label), |b| {
            b.iter(|| black_box(ours.load().expect("load")));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = save, load
}
criterion_main!(benches);
