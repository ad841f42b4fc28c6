//! A linearizability checker for short histories of one register (Wing & Gong's search,
//! memoized): is there an order of the operations, each taking effect at one instant
//! between its call and its return, in which every load returns the latest save?

use std::{collections::HashSet, fmt::Write as _, time::Duration};

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// A save of the blob with this id; `ok` is whether it returned `Ok`.
    Save {
        /// Id of the saved blob.
        id: u64,
        /// The save returned `Ok`.
        ok: bool,
    },
    /// A load: the id of the whole blob it returned, `None` for absent, or why the result
    /// was not a whole saved blob (an error, a torn blob).
    Load(Result<Option<u64>, String>),
}

/// An operation with when it was called and when it returned, relative to one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The thread (or process) that performed it.
    pub thread: usize,
    /// When it was called.
    pub start: Duration,
    /// When it returned.
    pub end: Duration,
    /// What it was and what it returned.
    pub op: Op,
}

/// `Ok(())` when `events`, starting from a register holding `initial`, are linearizable;
/// otherwise the history, for the failure report. Meant for up to ~16 events.
pub fn check(initial: Option<u64>, events: &[Event]) -> Result<(), String> {
    for e in events {
        match &e.op {
            Op::Save { ok: false, .. } => {
                return Err(format!(
                    "a save failed during the history:\n{}",
                    render(events)
                ));
            }
            Op::Load(Err(why)) => {
                return Err(format!(
                    "a load returned no whole saved blob ({why}):\n{}",
                    render(events)
                ));
            }
            _ => {}
        }
    }
    if events.len() > 63 {
        return Err(format!(
            "history of {} events is too long to check",
            events.len()
        ));
    }
    let mut seen = HashSet::new();
    if search(events, 0, initial, &mut seen) {
        Ok(())
    } else {
        Err(format!(
            "no order of these operations explains the loads (register starting at {}):\n{}",
            show(initial),
            render(events)
        ))
    }
}

fn search(
    events: &[Event],
    done: u64,
    value: Option<u64>,
    seen: &mut HashSet<(u64, Option<u64>)>,
) -> bool {
    let all = (1u64 << events.len()) - 1;
    if done == all {
        return true;
    }
    if !seen.insert((done, value)) {
        return false;
    }
    let pending = |i: usize| done & (1 << i) == 0;
    for (i, event) in events.iter().enumerate() {
        if !pending(i) {
            continue;
        }
        // `event` can take effect first only if no other pending operation returned
        // before `event` was called.
        let minimal = events
            .iter()
            .enumerate()
            .all(|(j, other)| j == i || !pending(j) || other.end >= event.start);
        if !minimal {
            continue;
        }
        let next = match &event.op {
            Op::Save { id, .. } => Some(Some(*id)),
            Op::Load(Ok(got)) if *got == value => Some(value),
            _ => None,
        };
        if let Some(next) = next
            && search(events, done | (1 << i), next, seen)
        {
            return true;
        }
    }
    false
}

fn show(value: Option<u64>) -> String {
    match value {
        Some(id) => format!("blob #{:04x}", id >> 48),
        None => "absent".into(),
    }
}

fn render(events: &[Event]) -> String {
    let mut sorted: Vec<_> = events.iter().collect();
    sorted.sort_by_key(|e| e.start);
    let mut out = String::new();
    for e in sorted {
        let what = match &e.op {
            Op::Save { id, ok } => format!(
                "save {}{}",
                show(Some(*id)),
                if *ok { "" } else { " -> error" }
            ),
            Op::Load(Ok(v)) => format!("load -> {}", show(*v)),
            Op::Load(Err(why)) => format!("load -> {why}"),
        };
        let _ = writeln!(
            out,
            "  thread {} [{:>9.3}ms .. {:>9.3}ms] {what}",
            e.thread,
            e.start.as_secs_f64() * 1e3,
            e.end.as_secs_f64() * 1e3
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(thread: usize, start: u64, end: u64, op: Op) -> Event {
        Event {
            thread,
            start: Duration::from_millis(start),
            end: Duration::from_millis(end),
            op,
        }
    }

    #[test]
    fn overlapping_save_may_be_seen_or_not() {
        let h = [
            ev(0, 0, 10, Op::Save { id: 2, ok: true }),
            ev(1, 1, 2, Op::Load(Ok(Some(1)))),
            ev(1, 3, 4, Op::Load(Ok(Some(2)))),
        ];
        assert!(check(Some(1), &h).is_ok());
    }

    #[test]
    fn stale_read_after_completed_save_is_not_linearizable() {
        let h = [
            ev(0, 0, 1, Op::Save { id: 2, ok: true }),
            ev(1, 2, 3, Op::Load(Ok(Some(1)))),
        ];
        assert!(check(Some(1), &h).is_err());
    }

    #[test]
    fn reads_cannot_go_back_in_time() {
        let h = [
            ev(0, 0, 10, Op::Save { id: 2, ok: true }),
            ev(1, 1, 2, Op::Load(Ok(Some(2)))),
            ev(1, 3, 4, Op::Load(Ok(Some(1)))),
        ];
        assert!(check(Some(1), &h).is_err());
    }
}
