//! When a failed job runs again.

use chrono::Utc;
use switchboard_domain::clock::Reading;

/// When to try a job again after its `attempts`-th attempt failed: 1 s, 5 s, 30 s, 2 min, 10 min,
/// 30 min, then hourly, each with up to 20 % jitter; a `Retry-After` the provider sent wins when
/// longer.
pub(crate) fn retry_at(clock: &Reading, attempts: i32, retry_after: Option<u64>) -> chrono::DateTime<Utc> {
    const SCHEDULE: [i64; 7] = [1, 5, 30, 120, 600, 1800, 3600];
    let jitter = switchboard_domain::crypto::random_bytes::<1>().map_or(0.5, |b| f64::from(b[0]) / 255.0);
    let step = usize::try_from(attempts.max(1) - 1).unwrap_or(0).min(SCHEDULE.len() - 1);
    let base = (SCHEDULE.get(step).copied().unwrap_or(3600) as f64 * (1.0 + 0.2 * jitter)) as i64;
    let secs = retry_after.map_or(base, |r| base.max(i64::try_from(r).unwrap_or(i64::MAX)));
    clock.now() + chrono::TimeDelta::seconds(secs.min(3600))
}
