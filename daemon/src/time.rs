//! Time as memory and the ledger record it: [`Timestamp`] (UTC milliseconds
//! since the Unix epoch) and the [`Clock`] seam that tests and benchmarks
//! replace.
//!
//! Calendar maths (UTC days and months for the ledger's "today" and "this
//! month", budget reset times) is done here with Howard Hinnant's civil-date
//! algorithms, so zend needs no date crate. Days and months are UTC on
//! purpose: they are what providers bill by, and they do not move when the
//! user travels or the zone changes its clocks.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with millisecond precision.
///
/// Serialized as an RFC 3339 string (`2025-01-31T12:34:56.789Z`) so JSON for
/// clients and the stored values read naturally; deserializes from that form
/// or from integer milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self(millis)
    }

    /// Midnight UTC starting the given calendar day.
    pub fn from_date(year: i64, month: u32, day: u32) -> Self {
        let days = days_from_civil(year, month, day).max(0) as u64;
        Self(days * MILLIS_PER_DAY)
    }

    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// (year, month 1–12, day 1–31) in UTC.
    pub fn date(self) -> (i64, u32, u32) {
        civil_from_days((self.0 / MILLIS_PER_DAY) as i64)
    }

    /// `2025-01-31`: the ledger's key for this UTC day (the date part of the RFC 3339 text).
    pub fn day_key(self) -> String {
        self.with_date_text(str::to_owned)
    }

    /// `2025-01`: the ledger's key for this UTC month.
    pub fn month_key(self) -> String {
        self.with_date_text(|date| date[..date.len() - 3].to_owned())
    }

    /// Calls `f` with the date part of this timestamp's RFC 3339 text (`2025-01-31`), from the
    /// stack when the year has four digits.
    fn with_date_text<R>(self, f: impl FnOnce(&str) -> R) -> R {
        let date = |text: &str| -> R { f(text.split_once('T').map_or(text, |(date, _)| date)) };
        match self.rfc3339() {
            Some(text) => date(text.as_str()),
            None => date(&self.to_string()),
        }
    }

    /// Midnight UTC after this instant: when a daily budget resets.
    pub fn next_day(self) -> Timestamp {
        Self((self.0 / MILLIS_PER_DAY + 1) * MILLIS_PER_DAY)
    }

    /// The first of next month, midnight UTC: when a monthly budget resets.
    pub fn next_month(self) -> Timestamp {
        let (y, m, _) = self.date();
        if m == 12 {
            Self::from_date(y + 1, 1, 1)
        } else {
            Self::from_date(y, m + 1, 1)
        }
    }

    /// `2025-01-31 12:34 UTC`: for messages people read.
    pub fn display_minutes(self) -> String {
        let (y, mo, d) = self.date();
        let in_day = self.0 % MILLIS_PER_DAY / 1000;
        let (h, mi) = (in_day / 3600, in_day / 60 % 60);
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
    }

    /// Parses the RFC 3339 form this type writes (`Z` offset, optional fraction).
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<u64> {
            text.get(range).and_then(|s| s.parse::<u64>().ok())
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
            return None;
        }
        let rest = text.get(19..)?;
        let rest = rest.strip_suffix('Z')?;
        let millis = match rest.strip_prefix('.') {
            None if rest.is_empty() => 0,
            Some(frac) if !frac.is_empty() && frac.bytes().all(|c| c.is_ascii_digit()) => {
                let digits: String = frac.chars().chain("000".chars()).take(3).collect();
                digits.parse::<u64>().ok()?
            }
            _ => return None,
        };
        let days = days_from_civil(year as i64, month as u32, day as u32);
        let days = u64::try_from(days).ok()?;
        Some(Self(
            days * MILLIS_PER_DAY + (hour * 3600 + minute * 60 + second) * 1000 + millis,
        ))
    }
}

const MILLIS_PER_DAY: u64 = 86_400_000;

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rfc3339() {
            Some(text) => f.write_str(text.as_str()),
            None => {
                let (y, mo, d) = self.date();
                let in_day = self.0 % MILLIS_PER_DAY;
                let secs = in_day / 1000;
                write!(
                    f,
                    "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60,
                    in_day % 1000
                )
            }
        }
    }
}

/// A timestamp's RFC 3339 text on the stack: written digit by digit, because the store and the
/// ledger write several per call and `write!` with seven padded numbers cost ~4k instructions each.
pub(crate) struct Rfc3339 {
    bytes: [u8; 24],
}

impl Rfc3339 {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }
}

/// Writes `value` as exactly `width` decimal digits at `out[at..]`.
fn digits(out: &mut [u8], at: usize, width: usize, mut value: u64) {
    for i in (0..width).rev() {
        out[at + i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl Timestamp {
    /// `2025-01-31T12:34:56.789Z`, or `None` past the year 9999 (written the slow way).
    pub(crate) fn rfc3339(&self) -> Option<Rfc3339> {
        let (y, mo, d) = self.date();
        let year = u64::try_from(y).ok().filter(|y| *y <= 9999)?;
        let in_day = self.0 % MILLIS_PER_DAY;
        let secs = in_day / 1000;
        let mut bytes = *b"0000-00-00T00:00:00.000Z";
        digits(&mut bytes, 0, 4, year);
        digits(&mut bytes, 5, 2, u64::from(mo));
        digits(&mut bytes, 8, 2, u64::from(d));
        digits(&mut bytes, 11, 2, secs / 3600);
        digits(&mut bytes, 14, 2, secs / 60 % 60);
        digits(&mut bytes, 17, 2, secs % 60);
        digits(&mut bytes, 20, 3, in_day % 1000);
        Some(Rfc3339 { bytes })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339() {
            Some(text) => serializer.serialize_str(text.as_str()),
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 UTC time or milliseconds since the Unix epoch")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let yoe = year - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Where the store reads "now" from: thread expiry, turn times, ledger days.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }
}

/// A clock that moves only when told to; for tests and benchmarks.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicU64::new(start.as_millis()))
    }

    pub fn set(&self, now: Timestamp) {
        self.0.store(now.as_millis(), Ordering::SeqCst);
    }

    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp::from_date(2024, 2, 29)
            .saturating_add(Duration::from_millis(13 * 3_600_000 + 5 * 60_000 + 7_089));
        assert_eq!(t.to_string(), "2024-02-29T13:05:07.089Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2024-02-29T13:05:07Z"),
            Some(Timestamp(t.0 - 89))
        );
        assert_eq!(Timestamp::parse_rfc3339("2024-02-29 13:05:07Z"), None);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(
            serde_json::from_str::<Timestamp>("1000").unwrap(),
            Timestamp(1000)
        );
    }

    #[test]
    fn years_past_9999_are_still_written() {
        let t = Timestamp::from_date(12_345, 6, 7);
        assert!(t.rfc3339().is_none());
        assert_eq!(t.to_string(), "12345-06-07T00:00:00.000Z");
        assert_eq!(t.day_key(), "12345-06-07");
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"12345-06-07T00:00:00.000Z\""
        );
        assert_eq!(
            Timestamp::parse_rfc3339("9999-12-31T23:59:59.999Z")
                .unwrap()
                .to_string(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn calendar_boundaries() {
        let t = Timestamp::parse_rfc3339("2024-12-31T23:59:59.999Z").unwrap();
        assert_eq!(t.day_key(), "2024-12-31");
        assert_eq!(t.month_key(), "2024-12");
        assert_eq!(t.next_day().to_string(), "2025-01-01T00:00:00.000Z");
        assert_eq!(t.next_month().to_string(), "2025-01-01T00:00:00.000Z");
        let leap = Timestamp::parse_rfc3339("2024-02-10T08:00:00Z").unwrap();
        assert_eq!(leap.next_month().day_key(), "2024-03-01");
        assert_eq!(leap.display_minutes(), "2024-02-10 08:00 UTC");
        for days in [0_i64, 59, 60, 365, 10_957, 19_782, 50_000] {
            let t = Timestamp(days as u64 * MILLIS_PER_DAY + 45_296_007);
            let (y, m, d) = civil_from_days(days);
            assert_eq!(t.to_string(), format!("{y:04}-{m:02}-{d:02}T12:34:56.007Z"));
            assert_eq!(t.day_key(), format!("{y:04}-{m:02}-{d:02}"));
            assert_eq!(t.month_key(), format!("{y:04}-{m:02}"));
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
