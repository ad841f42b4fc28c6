//! Instants as RFC 3339 UTC text.

use std::time::SystemTime;

/// `2026-11-25T22:52:02Z`; `None` for an instant jiff cannot represent.
pub fn rfc3339(at: SystemTime) -> Option<String> {
    let at = jiff::Timestamp::try_from(at).ok()?;
    epoch(at.as_second())
}

/// Epoch seconds as [`rfc3339`].
pub fn epoch(secs: i64) -> Option<String> {
    jiff::Timestamp::from_second(secs)
        .ok()
        .map(|t| t.to_string())
}

/// Now, in epoch seconds.
pub fn now_epoch() -> i64 {
    jiff::Timestamp::now().as_second()
}
