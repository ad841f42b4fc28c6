//! Where the time of a hand-off goes, measured inside real hand-offs: the lock marks each
//! step with a trace event (`step` field, see `lock/mod.rs`), and this recorder, installed
//! in both processes only for the profiled rounds, notes the wall-clock time of each. Both
//! processes run on one machine, so their clocks agree to well under a microsecond.

use std::{
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context, prelude::*};

/// The steps from the holder's release to the waiter holding the lock, in order: the
/// holder's two, the waiter's helper thread granted its shared lock of the lock file (the
/// kernel's wake-up), then the waiter's own.
pub const STEPS: [&str; 8] = [
    "lock file removed",
    "OS locks dropped",
    "helper granted",
    "woken",
    "guard taken",
    "lock file created",
    "OS lock taken",
    "left the line",
];

static MARKS: Mutex<Vec<(&'static str, u128)>> = Mutex::new(Vec::new());

/// Starts recording the lock's steps in this process, for good.
pub fn install() {
    tracing_subscriber::registry().with(Recorder).init();
}

/// The steps recorded since the last call, with their wall-clock times in nanoseconds.
pub fn take() -> Vec<(&'static str, u128)> {
    std::mem::take(&mut *MARKS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Formats recorded steps for the holder's answer line: `name=ns;name=ns`.
pub fn encode(marks: &[(&'static str, u128)]) -> String {
    marks
        .iter()
        .map(|(step, at)| format!("{step}={at}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Reads what [`encode`] wrote.
pub fn decode(line: &str) -> Vec<(&'static str, u128)> {
    line.split(';')
        .filter_map(|mark| {
            let (step, at) = mark.split_once('=')?;
            Some((known(step)?, at.parse().ok()?))
        })
        .collect()
}

fn known(step: &str) -> Option<&'static str> {
    STEPS.iter().find(|known| **known == step).copied()
}

struct Recorder;

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut field = StepField(None);
        event.record(&mut field);
        if let Some(step) = field.0 {
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            MARKS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((step, at));
        }
    }
}

/// The `step` field of an event, when it is one of [`STEPS`].
struct StepField(Option<&'static str>);

impl Visit for StepField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "step" {
            self.0 = known(value);
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// Per step, the median time since the step before it and since the release, over rounds
/// of `(release time, marks of both processes)`. The last mark of each step in a round
/// counts: a waiter may wake several times before the release.
pub fn report(rounds: &[(u128, Vec<(&'static str, u128)>)]) -> String {
    let released: Vec<i128> = rounds.iter().map(|(at, _)| *at as i128).collect();
    let mut previous = released.clone();
    let mut parts = Vec::new();
    for step in STEPS {
        let at: Vec<Option<i128>> = rounds
            .iter()
            .map(|(_, marks)| {
                let last = marks.iter().rev().find(|(s, _)| *s == step);
                last.map(|(_, t)| *t as i128)
            })
            .collect();
        let deltas = |from: &[i128]| -> Vec<i128> {
            at.iter()
                .zip(from)
                .filter_map(|(t, f)| t.map(|t| t - f))
                .collect()
        };
        let (since_previous, since_release) = (deltas(&previous), deltas(&released));
        if since_previous.is_empty() {
            continue;
        }
        parts.push(format!(
            "{step} +{:.1} µs (at {:.1} µs)",
            median(since_previous) as f64 / 1e3,
            median(since_release) as f64 / 1e3
        ));
        previous = at
            .iter()
            .zip(previous)
            .map(|(t, p)| t.unwrap_or(p))
            .collect();
    }
    parts.join("; ")
}

fn median(mut values: Vec<i128>) -> i128 {
    values.sort_unstable();
    values[values.len() / 2]
}
