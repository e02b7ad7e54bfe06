//! Time helpers: epoch seconds, naive local/UTC timestamps at microsecond precision, and the bot's
//! `DATETIME` text format `YYYY-MM-DD HH:MM:SS.ffffff`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{NaiveDateTime, Timelike};

/// The text format of `DATETIME` columns (SQLite storage and JSON rows).
pub const DATETIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.6f";

/// Now, as epoch seconds.
pub fn now_epoch() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Now as a naive local timestamp, truncated to microseconds.
pub fn now_local() -> NaiveDateTime {
    truncate_micros(chrono::Local::now().naive_local())
}

/// Now as a naive UTC timestamp, truncated to microseconds.
pub fn now_utc() -> NaiveDateTime {
    truncate_micros(chrono::Utc::now().naive_utc())
}

/// Drops sub-microsecond digits (every backend stores microseconds).
pub fn truncate_micros(t: NaiveDateTime) -> NaiveDateTime {
    let nanos = t.nanosecond();
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}

/// Formats as `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn format_datetime(t: &NaiveDateTime) -> String {
    t.format(DATETIME_FORMAT).to_string()
}

/// The years every backend stores as written (MySQL's `DATETIME` range; PostgreSQL and SQLite hold more).
pub const DATETIME_YEARS: std::ops::RangeInclusive<i32> = 1000..=9999;

/// Parses `YYYY-MM-DD HH:MM:SS[.f…]` (a `T` in place of the space is accepted too), only where every backend
/// stores exactly that instant: years within [`DATETIME_YEARS`], and no leap second (second 60: MySQL
/// stores a zero date, PostgreSQL the next minute, SQLite the text).
pub fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    const FORMATS: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];
    let t = FORMATS.iter().find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    let leap = t.nanosecond() >= 1_000_000_000;
    (!leap && DATETIME_YEARS.contains(&chrono::Datelike::year(&t))).then(|| truncate_micros(t))
}

static LAST_MICROS: AtomicU64 = AtomicU64::new(0);

/// Microseconds since the epoch, strictly increasing within this process: two calls in the same
/// microsecond get different values (used for `action_id`).
pub fn unique_epoch_micros() -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    let mut prev = LAST_MICROS.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST_MICROS.compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_round_trips_with_six_digits() {
        let t = parse_datetime("2025-01-02 03:04:05").unwrap();
        assert_eq!(format_datetime(&t), "2025-01-02 03:04:05.000000");
        let t = parse_datetime("2025-01-02T03:04:05.1234567").unwrap();
        assert_eq!(format_datetime(&t), "2025-01-02 03:04:05.123456");
        assert!(parse_datetime("yesterday").is_none());
        // Only instants every backend stores identically.
        assert!(parse_datetime("2025-06-30 23:59:60").is_none(), "a leap second");
        assert!(parse_datetime("2025-06-30 23:59:60.5").is_none(), "a leap second");
        assert!(parse_datetime("0999-12-31 23:59:59").is_none(), "before MySQL's range");
        assert!(parse_datetime("1000-01-01 00:00:00").is_some());
        assert!(parse_datetime("9999-12-31 23:59:59.999999").is_some());
        assert!(parse_datetime("+10000-01-01 00:00:00").is_none(), "after it");
    }

    #[test]
    fn unique_micros_strictly_increase() {
        let a = unique_epoch_micros();
        let b = unique_epoch_micros();
        assert!(b > a);
        assert_eq!(a.to_string().len(), 16);
    }
}
