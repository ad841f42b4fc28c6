//! Captures what a plugin logs, so cases can check it: `tracing` output on the current
//! thread, and the stderr of plugin processes.
//!
//! Of an in-process plugin, only events and spans emitted on the calling thread while
//! [`capture`] runs are seen (threads the plugin spawns are outside its view). Of a plugin
//! process (`exec:`, and workers), every line it wrote to stderr, if it was started on the
//! calling thread and exited inside the capture: see `protocol::stderr`.

use std::{
    fmt::{self, Write as _},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};

/// Runs `f` with a subscriber that records every event and span field as text; returns
/// `f`'s result and the text, followed by the stderr lines of the plugin processes `f`
/// started (never those of other cases running at the same time).
pub fn capture<T>(f: impl FnOnce() -> T) -> (T, String) {
    let collector = Collector::default();
    let text = Arc::clone(&collector.text);
    let (result, stderr) =
        crate::protocol::stderr::collect(|| tracing::subscriber::with_default(collector, f));
    let mut text = text.lock().map(|t| t.clone()).unwrap_or_default();
    text.push_str(&stderr.text());
    (result, text)
}

#[derive(Default)]
struct Collector {
    text: Arc<Mutex<String>>,
    next_id: AtomicU64,
}

impl Collector {
    fn append(&self, metadata: &Metadata<'_>, fields: impl FnOnce(&mut TextVisitor)) {
        let mut visitor = TextVisitor(String::new());
        fields(&mut visitor);
        if let Ok(mut text) = self.text.lock() {
            let _ = writeln!(
                text,
                "{} {}:{}",
                metadata.level(),
                metadata.target(),
                visitor.0
            );
        }
    }
}

struct TextVisitor(String);

impl Visit for TextVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        let _ = write!(
            self.0,
            " {}={}",
            field.name(),
            String::from_utf8_lossy(value)
        );
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.append(span.metadata(), |v| span.record(v));
        Id::from_u64(self.next_id.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut visitor = TextVisitor(String::new());
        values.record(&mut visitor);
        if let Ok(mut text) = self.text.lock() {
            let _ = writeln!(text, "span record:{}", visitor.0);
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        self.append(event.metadata(), |v| event.record(v));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_event_fields_and_messages() {
        let ((), text) = capture(|| {
            let span = tracing::info_span!("op", slot = "s1");
            let _entered = span.enter();
            tracing::warn!(bytes = ?b"abc", "saving {}", "token-xyz");
        });
        assert!(text.contains("token-xyz"), "{text}");
        assert!(text.contains("slot=s1"), "{text}");
    }
}
