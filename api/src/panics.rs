//! Panics: logged once, with their backtrace, and counted (`switchboard_panics_total`).
//!
//! No panic should be reachable from input — clippy's `indexing_slicing`, `string_slice`,
//! `unwrap_used` and `expect_used` keep slicing and unwrapping out of non-test code, and the
//! parsers of outside input are property-tested. This is the net under that: the request
//! middleware catches a handler's panic and answers a 500 problem without detail, so the
//! connection and the worker thread survive; the hook installed here logs it (a background
//! task's panic too) and counts it.

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;

/// Every panic of the process since it started. A process-wide counter: the panic hook, which
/// is process-wide itself, is what increments it.
pub static PANICS: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Replaces the default hook (which prints to stderr, bypassing the log format) with one that
/// logs the panic as an error event, with its location and a backtrace, and counts it.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.inc();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(panic.message = %message, panic.location = %location, backtrace = %backtrace, "panic");
    }));
}
