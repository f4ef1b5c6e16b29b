//! Wall-clock time, in one place.
//!
//! Two clocks matter to Switchboard. The **process clock** ([`now`]) stamps rows and decides what
//! a request sees (is this access token still valid?). The **database clock**
//! ([`crate::store::Store::database_now`]) decides everything that several processes must agree
//! on — leases, what is due, when a refreshed token expires and when it is due again — so that a
//! worker whose host clock is minutes off can neither steal a live lease nor schedule refreshes in
//! the past of its peers.
//!
//! Fault tests set `SWITCHBOARD_TEST_CLOCK_SKEW_SECS` to run a whole process with a wrong clock
//! (read once, at first use; unset in production). `chrono::Utc::now` is a disallowed method in
//! `clippy.toml` so that nothing reads the clock around this module.

use std::sync::OnceLock;

use chrono::{DateTime, TimeDelta, Utc};

/// The process clock: the host's wall clock, shifted by the test skew when one is set.
#[must_use]
pub fn now() -> DateTime<Utc> {
    #[expect(clippy::disallowed_methods, reason = "the one place that reads the host clock")]
    let host = Utc::now();
    host + skew()
}

/// The test skew of this process (zero unless `SWITCHBOARD_TEST_CLOCK_SKEW_SECS` is set).
#[must_use]
pub fn skew() -> TimeDelta {
    static SKEW: OnceLock<TimeDelta> = OnceLock::new();
    *SKEW.get_or_init(|| {
        std::env::var("SWITCHBOARD_TEST_CLOCK_SKEW_SECS")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .map_or(TimeDelta::zero(), TimeDelta::seconds)
    })
}

/// A reading of the database clock carried forward by the monotonic clock: what a worker uses
/// between two round trips to the database.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    at: DateTime<Utc>,
    taken: std::time::Instant,
}

impl Reading {
    #[must_use]
    pub fn new(at: DateTime<Utc>) -> Self {
        Self { at, taken: std::time::Instant::now() }
    }

    /// The database time now, as far as this reading tells.
    #[must_use]
    pub fn now(&self) -> DateTime<Utc> {
        self.at + TimeDelta::from_std(self.taken.elapsed()).unwrap_or(TimeDelta::zero())
    }

    /// How long ago the reading was taken (monotonic: immune to clock jumps).
    #[must_use]
    pub fn age(&self) -> std::time::Duration {
        self.taken.elapsed()
    }
}
