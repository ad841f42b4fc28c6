//! Where the time of one hand-off goes (see `lock/mod.rs`, "Waking at the release"): each
//! step the releasing holder and the woken waiter take, timed on its own with the same
//! system calls on files in the same directory, median of many repetitions.
//!
//! The steps, in order, from the holder's release to the waiter holding the lock:
//! 1. holder: check that the path still names its file (`lstat` + `fstat`), unlink it;
//! 2. holder: unlock the guard, unlock the lock file;
//! 3. kernel: wake the waiter's helper thread, blocked in a shared `flock` (timed by
//!    the baseline of `handoff`, a blocking `flock` waiter in another process);
//! 4. helper: wake the waiting thread through a condition variable;
//! 5. waiter: take the guard (`flock` + `fstat`);
//! 6. waiter: check its stock (`fstat`), link it to the lock path, lock it (`flock`);
//! 7. waiter: leave the line (unlink its ticket and close it).

use std::{
    fs::{self, File},
    os::unix::fs::MetadataExt,
    path::Path,
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

const REPS: usize = 2000;

/// The median of `REPS` runs of `step`.
fn median(mut step: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..REPS).map(|_| step()).collect();
    times.sort();
    times[REPS / 2]
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

pub fn steps(dir: &Path) -> Vec<(&'static str, Duration)> {
    let lock = dir.join("steps.lockfile");
    let guard = File::create(dir.join("steps.lockfile.guard")).expect("guard");
    let stock_path = dir.join(".lockfile.steps.tmp");
    fs::write(&stock_path, "12345 /path/of/the/program").expect("stock");
    let stock = File::open(&stock_path).expect("open stock");
    let line = dir.join("steps.lockfile.queue");

    let release_unlink = median(|| {
        fs::hard_link(&stock_path, &lock).expect("link");
        timed(|| {
            let at_path = fs::symlink_metadata(&lock).expect("lstat");
            let held = stock.metadata().expect("fstat");
            assert_eq!((at_path.dev(), at_path.ino()), (held.dev(), held.ino()));
            fs::remove_file(&lock).expect("unlink");
        })
    });
    let release_unlock = median(|| {
        guard.lock().expect("flock");
        stock.lock().expect("flock");
        timed(|| {
            guard.unlock().expect("unlock");
            stock.unlock().expect("unlock");
        })
    });
    let condvar = median(condvar_wake);
    let take_guard = median(|| {
        let t = timed(|| {
            guard.try_lock().expect("free");
            assert!(guard.metadata().expect("fstat").nlink() > 0);
        });
        guard.unlock().expect("unlock");
        t
    });
    let link = median(|| {
        let t = timed(|| {
            assert_eq!(stock.metadata().expect("fstat").nlink(), 1);
            fs::hard_link(&stock_path, &lock).expect("link");
            stock.try_lock().expect("free");
        });
        fs::remove_file(&lock).expect("unlink");
        stock.unlock().expect("unlock");
        t
    });
    // The line's directory stays (see `lock/queue.rs`); only the ticket goes.
    fs::create_dir_all(&line).expect("mkdir");
    let ticket = line.join("00000000000000000001-1");
    let leave_line = median(|| {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&ticket)
            .expect("ticket");
        file.lock().expect("flock");
        timed(|| {
            fs::remove_file(&ticket).expect("unlink");
            drop(file);
        })
    });
    vec![
        ("1. holder: path check + unlink", release_unlink),
        ("2. holder: unlock guard + lock file", release_unlock),
        ("4. helper thread wakes the waiter (condvar)", condvar),
        ("5. waiter: take the guard", take_guard),
        ("6. waiter: check stock, link, flock", link),
        ("7. waiter: leave the line", leave_line),
    ]
}

/// The time from a `notify_all` in one thread to the return of `wait` in another.
fn condvar_wake() -> Duration {
    let pair = Arc::new((Mutex::new(None::<Instant>), Condvar::new()));
    let waiter = {
        let pair = Arc::clone(&pair);
        std::thread::spawn(move || {
            let (slot, cv) = &*pair;
            let mut notified = slot.lock().expect("mutex");
            while notified.is_none() {
                notified = cv.wait(notified).expect("wait");
            }
            notified.take().map(|at| at.elapsed()).unwrap_or_default()
        })
    };
    // Let the waiter block first, as the real one has.
    std::thread::sleep(Duration::from_micros(300));
    {
        let (slot, cv) = &*pair;
        *slot.lock().expect("mutex") = Some(Instant::now());
        cv.notify_all();
    }
    waiter.join().expect("waiter")
}
