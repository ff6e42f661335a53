//! Panics: what one said, and its report sent where the logs go.
//!
//! Rust's own hook writes a panic's report to standard error as bare lines, outside the logs:
//! in JSON logs a collector files them as noise, or not at all, and nothing ties them to the
//! request that met the defect. Reported through `tracing` instead, a panic is one event at
//! ERROR like any other — its message, where it happened, the thread, a backtrace when
//! `RUST_BACKTRACE` asks for one — inside the span it happened in (a worker's execution, with
//! its ids).

use std::backtrace::{Backtrace, BacktraceStatus};
use std::sync::Once;

/// What a caught panic said: its message, whether fixed (`panic!("…")`) or formatted.
pub fn message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Reports every panic from now on as a `tracing` event, on any thread that has a subscriber
/// to receive it; elsewhere (a thread with none, or one already inside the subscriber — a
/// panic in the logging itself) the hook that was in place reports it as before. Installed
/// once however often called.
pub fn report_through_tracing() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // `get_default` gives the no-op dispatcher where none is set, and inside the
            // dispatcher's own work on this thread.
            let listened =
                tracing::dispatcher::get_default(|d| !d.is::<tracing::subscriber::NoSubscriber>());
            if !listened {
                return before(info);
            }
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            let backtrace = Backtrace::capture();
            let backtrace =
                (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());
            tracing::error!(
                panic = %message(info.payload()),
                location = location.as_deref(),
                thread = std::thread::current().name().unwrap_or("unnamed"),
                backtrace = backtrace.as_deref(),
                "a panic: a defect; the work it interrupted is answered as an internal failure where it is caught"
            );
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_panic_is_one_json_event_in_the_span_it_happened_in() {
        report_through_tracing();
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        let caught = tracing::subscriber::with_default(subscriber, || {
            let _execution = tracing::info_span!("execution", execution = "e-7").entered();
            let empty: Vec<u8> = Vec::new();
            let index = empty.len() + 7;
            std::panic::catch_unwind(|| empty[index])
        });
        assert!(caught.is_err());
        let text = String::from_utf8(logs.0.lock().expect("lock").clone()).expect("UTF-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "one event: {text}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
        assert_eq!(event["level"], "ERROR", "{event}");
        let said = event["panic"].as_str().unwrap_or_default();
        assert!(said.contains("index out of bounds"), "{event}");
        let at = event["location"].as_str().unwrap_or_default();
        assert!(at.starts_with("core/src/panics.rs:"), "{event}");
        assert_eq!(event["span"]["execution"], "e-7", "{event}");
    }
}
