//! Small helpers shared across zend: formatting, and locks that survive a panic.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Locks `mutex`, also after a thread panicked while holding it: zend's locks guard data that
/// stays consistent between statements (maps, counters), and one failed call must not take
/// every later one down with it.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for reading an `RwLock`.
pub fn read<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for writing an `RwLock`.
pub fn write<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// "3d 4h", "2h 5m", "4m 2s", "12s".
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// A dollar amount with the precision it has: cents from a dollar up
/// ("$12.34"), up to four decimals below ("$0.0123", "$0.50"), and two
/// significant digits under a cent ("$0.001", "$0.00042"), so a small budget
/// or a cheap call never reads "$0.00".
pub fn usd(amount: f64) -> String {
    if !amount.is_finite() {
        return "$?".to_owned();
    }
    let sign = if amount < 0.0 { "-" } else { "" };
    let amount = amount.abs();
    if amount == 0.0 {
        return "$0.00".to_owned();
    }
    if amount >= 1.0 {
        return format!("{sign}${amount:.2}");
    }
    let decimals = if amount >= 0.01 {
        4
    } else {
        // Two significant digits: 0.00042 → 5 decimals.
        let leading_zeros = (-amount.log10()).floor() as usize;
        (leading_zeros + 2).min(12)
    };
    let text = format!("{amount:.decimals$}");
    // Trailing zeros add nothing past the cents.
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let fraction = fraction.trim_end_matches('0');
    let fraction = if fraction.len() < 2 {
        format!("{fraction:0<2}")
    } else {
        fraction.to_owned()
    };
    format!("{sign}${whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_keeps_its_precision() {
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(usd(0.001), "$0.001");
        assert_eq!(usd(0.00102), "$0.001");
        assert_eq!(usd(0.0010234), "$0.001");
        assert_eq!(usd(0.00042), "$0.00042");
        assert_eq!(usd(0.0000123), "$0.000012");
        assert_eq!(usd(0.0095), "$0.0095");
        assert_eq!(usd(0.0123), "$0.0123");
        assert_eq!(usd(0.5), "$0.50");
        assert_eq!(usd(0.12345), "$0.1235");
        assert_eq!(usd(1.0), "$1.00");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd(-0.002), "-$0.002");
        assert_eq!(usd(f64::NAN), "$?");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_secs(12)), "12s");
        assert_eq!(human_duration(Duration::from_secs(242)), "4m 2s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 4h"
        );
    }
}
