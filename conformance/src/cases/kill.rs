//! Kills aimed inside saves, for the `crash::kill_during_save_*` cases.
//!
//! A SIGKILL only shows a torn write when it lands while the plugin is writing. Over the
//! protocol most of a save's round trip is the request's transfer and decoding; a plugin
//! that truncates and then writes the blob in one call (as msal-extensions'
//! `FilePersistence` does) is torn for a few percent of it, near its end. Kills at random
//! moments of a loop of saves, or after a fixed guess, mostly miss that window.
//!
//! So the kills are timed from the plugin's own save time:
//!
//! 1. **Calibrate.** Each round's worker first saves, unharmed, a blob of the round's size;
//!    the median of that save's round trip and those of the two rounds before is the save
//!    time `T` (measured in the process about to be killed, just before, because a fresh
//!    process saves more slowly than a warm one and the machine's load drifts; a median,
//!    so that one slow save does not stretch it).
//! 2. **Survey.** The first third of the rounds kill their worker at phases spread over
//!    `[0, SPAN]` save times after the save started: round `i` of `N` at `(s + u) / N` of
//!    the span, where the strata `s` are a seeded shuffle of `0..N` (each used once) and
//!    `u` is seeded jitter in `[0, 1)`. Each kill shows on which side of the save's commit
//!    point it fell: it left the old blob (before), or the new one (after).
//! 3. **Aim.** A save that is not atomic is torn just before its commit point: between
//!    truncating the file and finishing the write. So the other rounds are
//!    stratified in the same way over the window where the survey saw the outcome turn from
//!    old to new, widened by [`AIM_MARGIN`] save times on each side (the commit point of
//!    one round is not that of the next: save times vary). Those strata are a few times
//!    narrower than the survey's, so a torn window of a few percent of the save time gets
//!    several kills, not one at best. With no turn seen (every kill left the same blob)
//!    the rounds go on surveying.
//!
//! A worker whose save had finished when its kill was due is spared and saves the next
//! round: the kill would show nothing, and starting a process is the dearest part of a
//! round.
//!
//! "Started" is the moment the encoded request leaves for the worker
//! ([`Worker::save_sent`]), which the suite knows; the calibration measures from the
//! same moment. The suite's own encoding of the request (tens of milliseconds for 1 MiB in
//! a debug build) comes before it, so no kill is wasted on it.

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use identity_cache_persistence::CachePersistence;

use crate::{
    blob,
    ctx::Ctx,
    factory::{Namespace, Worker},
    failure::Stop,
};

/// The size of the blobs the killed workers save: big enough that writing it takes real
/// time (and, for plugins that write in pieces, many writes), small enough that a round
/// over the protocol costs well under a second on a busy 2-core machine. Plugins with a
/// smaller `max_size` save their largest.
pub const KILL_BLOB_LEN: usize = 1 << 20;

/// Calibration saves the save time is the median of: this round's and those of the rounds
/// before (odd, for a median).
pub const CALIBRATION_SAVES: usize = 3;

/// The span the kills are spread over, in calibrated save times. Past 1, because plugins
/// write at the very end of a save (after decoding the request) and a save on a busy
/// machine runs late: stopping at 1 would leave that end uncovered whenever the killed
/// save is slower than the median.
pub const SPAN: f64 = 1.25;

/// How far beyond the survey's turn from old to new blob the aimed kills spread, on
/// each side, in save times: more than the spread of the commit point between rounds on a
/// busy machine, and wide enough to cover a torn window that starts well before the end.
pub const AIM_MARGIN: f64 = 0.05;

/// Which side of the save's commit point a kill fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The old blob was left: the kill came before the commit point.
    Before,
    /// The new blob was left, or the save finished first.
    After,
}

/// The kill phases of one case (in save times after the save started): surveyed, then
/// aimed at the commit point (see the module docs).
#[derive(Debug)]
struct KillTimer {
    survey: Vec<usize>,
    aim: Vec<usize>,
    rng: fastrand::Rng,
    /// The latest phase whose kill left the old blob.
    latest_before: Option<f64>,
    /// The earliest phase whose kill left the new blob.
    earliest_after: Option<f64>,
}

impl KillTimer {
    /// Phases for `rounds` rounds, drawn from `rng`.
    fn new(rounds: usize, mut rng: fastrand::Rng) -> Self {
        let strata = |n: usize, rng: &mut fastrand::Rng| {
            let mut strata: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut strata);
            strata
        };
        let surveyed = rounds.div_ceil(3);
        KillTimer {
            survey: strata(surveyed, &mut rng),
            aim: strata(rounds - surveyed, &mut rng),
            rng,
            latest_before: None,
            earliest_after: None,
        }
    }

    /// The phase of round `round`'s kill, in save times after its save started.
    fn phase(&mut self, round: usize) -> f64 {
        let aimed = round.checked_sub(self.survey.len());
        let (strata, index, window) = match (aimed, self.turn()) {
            (Some(i), Some((from, to))) => (
                &self.aim,
                i,
                ((from - AIM_MARGIN).max(0.0), to + AIM_MARGIN),
            ),
            _ => (&self.survey, round % self.survey.len().max(1), (0.0, SPAN)),
        };
        let n = strata.len().max(1);
        let stratum = strata.get(index).copied().unwrap_or(index % n);
        let share = (stratum as f64 + self.rng.f64()) / n as f64;
        window.0 + share * (window.1 - window.0)
    }

    /// Records which side of the commit point the kill at `phase` fell on.
    fn record(&mut self, phase: f64, side: Side) {
        match side {
            Side::Before => {
                self.latest_before = Some(self.latest_before.map_or(phase, |p| p.max(phase)));
            }
            Side::After => {
                self.earliest_after = Some(self.earliest_after.map_or(phase, |p| p.min(phase)));
            }
        }
    }

    /// Where the outcome turned from old to new blob, lowest phase first (the two marks
    /// cross when the commit point moved between rounds).
    fn turn(&self) -> Option<(f64, f64)> {
        let (before, after) = (self.latest_before?, self.earliest_after?);
        Some((before.min(after), before.max(after)))
    }
}

/// What a killed save answered, and its worker if it was spared.
type Outcome = (
    identity_cache_persistence::Result<()>,
    Option<Box<dyn Worker>>,
);

/// `worker` saves `data` on a thread of its own and is killed (SIGKILL to its process
/// group) `delay` after the request was sent, then reaped. What the save answered, and the
/// worker, alive, if its save had already finished at that moment: the kill would show
/// nothing, and sparing the worker spares starting another one for the next round.
fn save_killed(
    ctx: &Ctx,
    worker: Box<dyn Worker>,
    data: Vec<u8>,
    delay: Duration,
) -> Result<Outcome, Stop> {
    let pid = worker.pid();
    let done = Arc::new(AtomicBool::new(false));
    let finished = Arc::clone(&done);
    let (started_tx, started_rx) = mpsc::channel();
    let saver = thread::spawn(move || {
        let saved = worker.save_sent(&data, &mut || {
            let _ = started_tx.send(Instant::now());
        });
        finished.store(true, Ordering::SeqCst);
        (worker, saved)
    });
    if let Ok(started) = started_rx.recv() {
        thread::sleep((started + delay).saturating_duration_since(Instant::now()));
    }
    let spared = done.load(Ordering::SeqCst);
    if !spared {
        sigkill(pid);
    }
    let Ok((mut worker, saved)) = saver.join() else {
        return Err(ctx.fail("the saving thread finishes", "it panicked"));
    };
    if spared && saved.is_ok() {
        return Ok((saved, Some(worker)));
    }
    worker.kill();
    Ok((saved, None))
}

/// Rounds `1..=rounds` of killed saves of blobs of `len` bytes on `ns`.
///
/// In round `id` the worker first saves the blob last seen (blob 0 in the first round;
/// later no change to what is stored), unharmed, timed as the kills are: the median of
/// that save and the last ones of the rounds before ([`CALIBRATION_SAVES`] in all) is the
/// save time, measured close to the killed save in time and in the same process (the
/// first save of a fresh process is slower, and the machine's load drifts). Then it saves
/// blob `id` and is killed at the timer's delay for that save time. The slot, seen through
/// `local`, must then hold a whole blob no older than the last one seen or confirmed (a
/// save answered before the kill is durable), and no newer than `id`. `starting(id)` is
/// called before each killed save.
pub fn killed_saves(
    ctx: &Ctx,
    ns: &Namespace,
    local: &Arc<dyn CachePersistence>,
    len: usize,
    rounds: usize,
    starting: impl Fn(u64),
) -> Result<(), Stop> {
    let mut timer = KillTimer::new(rounds, ctx.rng());
    let mut last_seen = 0;
    let mut recent = VecDeque::with_capacity(CALIBRATION_SAVES);
    with_workers(ctx, ns, rounds, |round, worker| {
        if recent.len() == CALIBRATION_SAVES {
            recent.pop_front();
        }
        recent.push_back(save_time(
            ctx,
            &*worker,
            &blob::self_checking(last_seen, len),
        )?);
        let mut sorted: Vec<Duration> = recent.iter().copied().collect();
        sorted.sort();
        let save_time = sorted[sorted.len() / 2];
        let id = round as u64 + 1;
        let phase = timer.phase(round);
        let delay = save_time.mul_f64(phase);
        starting(id);
        let (saved, spared) = save_killed(ctx, worker, blob::self_checking(id, len), delay)?;
        let floor = if saved.is_ok() { id } else { last_seen };
        let expected = || {
            format!(
                "after killing the saver of blob {id} {delay:?} into its save (calibrated save time {save_time:?}, round {} of {rounds}), load returns a whole blob {floor}..={id}",
                round + 1
            )
        };
        match loaded_id(local) {
            Ok(seen) if (floor..=id).contains(&seen) => {
                let side = if seen == id {
                    Side::After
                } else {
                    Side::Before
                };
                timer.record(phase, side);
                last_seen = seen;
                Ok(spared)
            }
            Ok(seen) => Err(ctx.fail(
                expected(),
                format!("blob {seen}: older than a blob already seen or confirmed"),
            )),
            Err(why) => Err(ctx.fail(expected(), why)),
        }
    })
}

/// How long `worker` takes to save `data`, timed from the moment its request was sent,
/// as the kills are.
fn save_time(ctx: &Ctx, worker: &dyn Worker, data: &[u8]) -> Result<Duration, Stop> {
    let mut sent = Instant::now();
    ctx.ok(
        &format!("a calibration save of {} by a worker", blob::describe(data)),
        worker.save_sent(data, &mut || sent = Instant::now()),
    )?;
    Ok(sent.elapsed())
}

/// Runs `round(i, worker)` for `i` in `0..rounds`, each with a new worker on `ns`, or with
/// the worker the previous round gave back.
///
/// Starting a worker can take longer than a round (an interpreter's start-up on a busy
/// machine): the next worker starts while a round runs.
fn with_workers(
    ctx: &Ctx,
    ns: &Namespace,
    rounds: usize,
    mut round: impl FnMut(usize, Box<dyn Worker>) -> Result<Option<Box<dyn Worker>>, Stop>,
) -> Result<(), Stop> {
    thread::scope(|scope| {
        let mut next = Some(scope.spawn(|| ctx.worker(ns)));
        let mut spare = None;
        for i in 0..rounds {
            let worker = match spare.take() {
                Some(worker) => worker,
                None => {
                    let Some(starting) = next.take() else {
                        break;
                    };
                    let worker = starting.join().map_err(|_| {
                        ctx.fail("a worker process starts", "the starting thread panicked")
                    })??;
                    if i + 1 < rounds {
                        next = Some(scope.spawn(|| ctx.worker(ns)));
                    }
                    worker
                }
            };
            spare = round(i, worker)?;
        }
        Ok(())
    })
}

/// What the slot holds after a kill: the id of a whole blob the suite saved, or why not.
fn loaded_id(local: &Arc<dyn CachePersistence>) -> Result<u64, String> {
    match local.load() {
        Ok(Some(bytes)) => blob::check_self_checking(&bytes),
        Ok(None) => Err("absent (None): the blob was lost".to_string()),
        Err(e) => Err(blob::describe_error(&e)),
    }
}

/// SIGKILLs `pid` and the process group it leads (a `sh -c` line's children too), without
/// reaping it: the worker's own `kill` reaps it afterwards, so the pid cannot be reused in
/// between.
fn sigkill(pid: u32) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            if libc::kill(-pid, libc::SIGKILL) != 0 {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    #[cfg(not(unix))]
    let _ = pid;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_survey_uses_each_stratum_of_the_span_once() {
        let mut timer = KillTimer::new(8, fastrand::Rng::with_seed(1));
        let mut strata: Vec<usize> = (0..4)
            .map(|round| (timer.phase(round) / SPAN * 4.0) as usize)
            .collect();
        strata.sort();
        assert_eq!(strata, [0, 1, 2, 3]);
    }

    #[test]
    fn aimed_kills_fall_around_the_turn_from_old_to_new() {
        let mut timer = KillTimer::new(40, fastrand::Rng::with_seed(2));
        for (phase, side) in [(0.3, Side::Before), (0.8, Side::Before), (0.9, Side::After)] {
            timer.record(phase, side);
        }
        timer.record(1.1, Side::After);
        for round in 20..40 {
            let phase = timer.phase(round);
            assert!((0.7..=1.0).contains(&phase), "round {round}: {phase}");
        }
    }

    #[test]
    fn with_no_turn_seen_the_rounds_go_on_surveying() {
        let mut timer = KillTimer::new(4, fastrand::Rng::with_seed(3));
        timer.record(0.5, Side::Before);
        let phases: Vec<f64> = (2..4).map(|round| timer.phase(round)).collect();
        assert!(
            phases.iter().all(|p| (0.0..=SPAN).contains(p)),
            "{phases:?}"
        );
    }
}
