//! `concurrency`: threads and processes racing on one slot see only whole saved blobs,
//! lose no update made under the lock, and observe a linearizable register.

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use identity_cache_persistence::CachePersistence;

use crate::{
    blob,
    case::{Case, Need},
    cases::{check, lock},
    ctx::Ctx,
    failure::Stop,
    linearizability::{self, Event, Op},
};

/// The concurrency cases.
pub const CASES: &[Case] = &[
    Case {
        name: "concurrency::no_torn_reads_threads",
        rule: "while threads save, every load by other threads returns one whole blob that was saved",
        needs: &[],
        run: no_torn_reads_threads,
    },
    Case {
        name: "concurrency::no_lost_updates_threads",
        rule: "read-modify-write increments by threads holding the lock lose no update",
        needs: &[Need::Lock],
        run: no_lost_updates_threads,
    },
    Case {
        name: "concurrency::linearizable_register",
        rule: "concurrent saves and loads by threads form a linearizable history of one register",
        needs: &[],
        run: linearizable_register,
    },
    Case {
        name: "concurrency::no_torn_reads_processes",
        rule: "while another process saves, every load here returns one whole blob that was saved",
        needs: &[Need::Workers],
        run: no_torn_reads_processes,
    },
    Case {
        name: "concurrency::no_lost_updates_processes",
        rule: "read-modify-write increments by processes holding the lock lose no update",
        needs: &[Need::Lock, Need::Workers],
        run: no_lost_updates_processes,
    },
];

fn race_time(ctx: &Ctx) -> Duration {
    if ctx.thorough() {
        Duration::from_secs(10)
    } else {
        Duration::from_millis(800)
    }
}

/// Checks one loaded value against the saved ids; `Err` describes the violation.
fn verify_load(
    loaded: identity_cache_persistence::Result<Option<Vec<u8>>>,
    saved: &Mutex<HashSet<u64>>,
) -> Result<(), String> {
    match loaded {
        Ok(Some(bytes)) => {
            let id = blob::check_self_checking(&bytes)?;
            let known = saved.lock().map(|s| s.contains(&id)).unwrap_or(true);
            if known {
                Ok(())
            } else {
                Err(format!(
                    "{} is a whole blob but was never saved",
                    blob::describe(&bytes)
                ))
            }
        }
        Ok(None) => Err("None while a blob was stored all along".into()),
        Err(e) => Err(blob::describe_error(&e)),
    }
}

/// Runs writers (saving self-checking blobs) and readers (verifying) for `duration`.
fn torn_read_race(
    writers: Vec<Arc<dyn CachePersistence>>,
    readers: Vec<Arc<dyn CachePersistence>>,
    initial: u64,
    seed: u64,
    duration: Duration,
    max_len: usize,
) -> (usize, Option<String>) {
    let saved = Arc::new(Mutex::new(HashSet::from([initial])));
    let stop = Arc::new(AtomicBool::new(false));
    let problem: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let loads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut threads = Vec::new();
    for (w, p) in writers.into_iter().enumerate() {
        let (saved, stop, problem) = (Arc::clone(&saved), Arc::clone(&stop), Arc::clone(&problem));
        threads.push(thread::spawn(move || {
            let mut rng =
                fastrand::Rng::with_seed(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            while !stop.load(Ordering::SeqCst) {
                let id = rng.u64(..);
                let len = rng.usize((max_len / 64).max(64).min(max_len)..=max_len);
                if let Ok(mut s) = saved.lock() {
                    s.insert(id);
                }
                if let Err(e) = p.save(&blob::self_checking(id, len)) {
                    if let Ok(mut slot) = problem.lock() {
                        slot.get_or_insert(format!(
                            "a concurrent save failed: {}",
                            blob::describe_error(&e)
                        ));
                    }
                    return;
                }
            }
        }));
    }
    for p in readers {
        let (saved, stop, problem, loads) = (
            Arc::clone(&saved),
            Arc::clone(&stop),
            Arc::clone(&problem),
            Arc::clone(&loads),
        );
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                loads.fetch_add(1, Ordering::SeqCst);
                if let Err(why) = verify_load(p.load(), &saved) {
                    if let Ok(mut slot) = problem.lock() {
                        slot.get_or_insert(why);
                    }
                    return;
                }
            }
        }));
    }
    thread::sleep(duration);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    let found = problem.lock().ok().and_then(|mut p| p.take());
    (loads.load(Ordering::SeqCst), found)
}

/// Two writer threads and two reader threads race; readers see only whole saved blobs.
pub fn no_torn_reads_threads(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let first = ctx.plugin(&ns)?;
    let initial = blob::self_checking(0, ctx.size_up_to(4096));
    check::save(ctx, &*first, &initial, "initial blob")?;
    let writers = vec![first, ctx.plugin(&ns)?];
    let readers = vec![ctx.plugin(&ns)?, ctx.plugin(&ns)?];
    let duration = race_time(ctx);
    let seed = ctx.rng().u64(..);
    let max_len = ctx.size_up_to(512 * 1024);
    let (loads, problem) = ctx.within(
        duration + Duration::from_secs(60),
        "the save/load race",
        move || torn_read_race(writers, readers, 0, seed, duration, max_len),
    )?;
    match problem {
        None => Ok(()),
        Some(why) => Err(ctx.fail(
            "every load during concurrent saves returns one whole saved blob",
            format!("{why} (after {loads} loads)"),
        )),
    }
}

/// Increments a decimal counter under the lock.
fn locked_increment(p: &dyn CachePersistence) -> Result<(), String> {
    let guard = p
        .lock(lock::GRANT)
        .map_err(|e| format!("lock: {}", blob::describe_error(&e)))?;
    let current = match p
        .load()
        .map_err(|e| format!("load: {}", blob::describe_error(&e)))?
    {
        None => 0,
        Some(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                format!(
                    "the counter blob is not a number: {}",
                    blob::describe(&bytes)
                )
            })?,
    };
    // Widen the read-modify-write window, so that without real exclusion other
    // increments land in it and get lost (a fast plugin would otherwise hide a no-op lock).
    thread::sleep(Duration::from_millis(1));
    p.save((current + 1).to_string().as_bytes())
        .map_err(|e| format!("save: {}", blob::describe_error(&e)))?;
    guard
        .release()
        .map_err(|e| format!("release: {}", blob::describe_error(&e)))
}

fn read_counter(ctx: &Ctx, p: &dyn CachePersistence) -> Result<u64, Stop> {
    let loaded = ctx.ok("load of the final counter", p.load())?;
    loaded
        .as_deref()
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            ctx.fail(
                "the final counter is a number",
                blob::describe_loaded(&loaded),
            )
        })
}

/// Four threads each increment a counter under the lock; no increment is lost.
pub fn no_lost_updates_threads(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let threads = 4u64;
    let rounds = if ctx.thorough() { 100 } else { 15 };
    let mut handles = Vec::new();
    for _ in 0..threads {
        handles.push(ctx.plugin(&ns)?);
    }
    let check_handle = ctx.plugin(&ns)?;
    let errors = ctx.within(
        Duration::from_secs(90),
        "the increment threads",
        move || {
            let workers: Vec<_> = handles
                .into_iter()
                .map(|p| thread::spawn(move || (0..rounds).try_for_each(|_| locked_increment(&*p))))
                .collect();
            workers
                .into_iter()
                .filter_map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err("a thread panicked".into()))
                        .err()
                })
                .collect::<Vec<_>>()
        },
    )?;
    if let Some(e) = errors.first() {
        return Err(ctx.fail("every locked increment completes", e.clone()));
    }
    let total = read_counter(ctx, &*check_handle)?;
    let expected = threads * rounds;
    if total == expected {
        Ok(())
    } else {
        Err(ctx.fail(
            format!("counter = {expected} after {threads} threads x {rounds} locked increments"),
            format!(
                "counter = {total}: {} updates lost",
                expected.saturating_sub(total)
            ),
        ))
    }
}

/// Short concurrent histories of saves and loads are checked against a register.
pub fn linearizable_register(ctx: &Ctx) -> Result<(), Stop> {
    let histories = if ctx.thorough() { 200 } else { 12 };
    let threads = 3;
    let ops_per_thread = 4;
    let mut rng = ctx.rng();
    // One slot and one handle per thread for all histories: each history starts from a
    // fresh value saved after the previous one ended, and plugins served out of process
    // are not started anew for every history.
    let ns = ctx.namespace()?;
    let setup = ctx.plugin(&ns)?;
    let mut handles = Vec::new();
    for _ in 0..threads {
        handles.push(ctx.plugin(&ns)?);
    }
    for round in 0..histories {
        let initial_id = rng.u64(..);
        check::save(
            ctx,
            &*setup,
            &blob::self_checking(initial_id, 64),
            "initial value",
        )?;
        let mut plans = Vec::new();
        for (t, handle) in handles.iter().enumerate() {
            let plan: Vec<Option<(u64, usize)>> = (0..ops_per_thread)
                .map(|_| rng.bool().then(|| (rng.u64(..), rng.usize(64..16 * 1024))))
                .collect();
            plans.push((t, Arc::clone(handle), plan));
        }
        let origin = Instant::now();
        let events = ctx.within(
            Duration::from_secs(60),
            "the history's threads",
            move || {
                let workers: Vec<_> = plans
                    .into_iter()
                    .map(|(t, p, plan)| {
                        thread::spawn(move || {
                            let mut events = Vec::new();
                            for step in plan {
                                let start = origin.elapsed();
                                let op = match step {
                                    Some((id, len)) => {
                                        let ok = p.save(&blob::self_checking(id, len)).is_ok();
                                        Op::Save { id, ok }
                                    }
                                    None => Op::Load(match p.load() {
                                        Ok(Some(bytes)) => {
                                            blob::check_self_checking(&bytes).map(Some)
                                        }
                                        Ok(None) => Ok(None),
                                        Err(e) => Err(blob::describe_error(&e)),
                                    }),
                                };
                                events.push(Event {
                                    thread: t,
                                    start,
                                    end: origin.elapsed(),
                                    op,
                                });
                            }
                            events
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_default())
                    .collect::<Vec<_>>()
            },
        )?;
        if let Err(why) = linearizability::check(Some(initial_id), &events) {
            return Err(ctx.fail(
                format!("history {round} ({threads} threads x {ops_per_thread} ops) is linearizable as a register"),
                why,
            ));
        }
    }
    Ok(())
}

/// A worker process saves while this process loads.
pub fn no_torn_reads_processes(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let local = ctx.plugin(&ns)?;
    let initial = blob::self_checking(0, ctx.size_up_to(4096));
    check::save(ctx, &*local, &initial, "initial blob")?;
    let mut worker = ctx.worker(&ns)?;
    let saved = Mutex::new(HashSet::from([0u64]));
    let stop = AtomicBool::new(false);
    let mut rng = ctx.rng();
    let duration = race_time(ctx);
    let max_len = ctx.size_up_to(512 * 1024);
    let mut problem = None;
    let mut loads = 0usize;
    thread::scope(|s| {
        let saver = &*worker;
        let (saved, stop) = (&saved, &stop);
        let writer = s.spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let id = rng.u64(..);
                if let Ok(mut set) = saved.lock() {
                    set.insert(id);
                }
                if let Err(e) = saver.save(&blob::self_checking(
                    id,
                    rng.usize((max_len / 64).max(64).min(max_len)..=max_len),
                )) {
                    return Some(format!(
                        "the worker's save failed: {}",
                        blob::describe_error(&e)
                    ));
                }
            }
            None
        });
        let started = Instant::now();
        while started.elapsed() < duration && problem.is_none() {
            loads += 1;
            problem = verify_load(local.load(), saved).err();
        }
        stop.store(true, Ordering::SeqCst);
        if let Ok(Some(e)) = writer.join() {
            problem.get_or_insert(e);
        }
    });
    worker.kill();
    match problem {
        None => Ok(()),
        Some(why) => Err(ctx.fail(
            "every load while another process saves returns one whole saved blob",
            format!("{why} (after {loads} loads)"),
        )),
    }
}

/// Two worker processes and this process increment under the lock; nothing is lost.
pub fn no_lost_updates_processes(ctx: &Ctx) -> Result<(), Stop> {
    let ns = ctx.namespace()?;
    let local = ctx.plugin(&ns)?;
    let rounds = if ctx.thorough() { 50 } else { 10 };
    let mut workers = vec![ctx.worker(&ns)?, ctx.worker(&ns)?];
    let mut errors = Vec::new();
    thread::scope(|s| {
        let mut joins = Vec::new();
        for w in &workers {
            let w: &dyn CachePersistence = &**w;
            joins.push(s.spawn(move || (0..rounds).try_for_each(|_| locked_increment(w))));
        }
        let local = &*local;
        joins.push(s.spawn(move || (0..rounds).try_for_each(|_| locked_increment(local))));
        for j in joins {
            if let Err(e) = j.join().unwrap_or_else(|_| Err("a thread panicked".into())) {
                errors.push(e);
            }
        }
    });
    for w in &mut workers {
        w.kill();
    }
    if let Some(e) = errors.first() {
        return Err(ctx.fail("every locked increment completes", e.clone()));
    }
    let expected = 3 * rounds;
    let total = read_counter(ctx, &*local)?;
    if total == expected {
        Ok(())
    } else {
        Err(ctx.fail(
            format!("counter = {expected} after 3 processes x {rounds} locked increments"),
            format!(
                "counter = {total}: {} updates lost",
                expected.saturating_sub(total)
            ),
        ))
    }
}
