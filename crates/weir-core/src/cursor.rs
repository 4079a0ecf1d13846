//! Incremental cursors: the highest value of a growing field (`updated_at`, `id`) that a source has loaded. Values
//! are kept as text (as the source gave them) and compared in their type: as exact numbers when both are numbers
//! (integers past 2^53 included), as instants when both are dates or timestamps (`…:00.5Z` is after `…:00Z`, and
//! `+02:00` is two hours before `Z`; a timestamp without an offset is read as UTC), else as text.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// Whether cursor value `a` is past `b`.
pub fn greater(a: &str, b: &str) -> bool {
    compare(a, b) == Ordering::Greater
}

/// Orders two cursor values in their type (see the module doc).
pub fn compare(a: &str, b: &str) -> Ordering {
    if let (Some(x), Some(y)) = (Decimal::parse(a), Decimal::parse(b)) {
        return x.cmp(&y);
    }
    if let (Ok(x), Ok(y)) = (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
        if let Some(o) = x.partial_cmp(&y) {
            return o;
        }
    }
    if let (Some(x), Some(y)) = (instant(a), instant(b)) {
        return x.cmp(&y);
    }
    a.cmp(b)
}

/// A date or timestamp as a UTC instant, when `v` is one.
pub fn instant(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(v, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// A plain decimal number (`-12`, `3.50`), compared exactly whatever its size.
#[derive(PartialEq, Eq)]
struct Decimal<'a> {
    negative: bool,
    /// Without leading zeros.
    whole: &'a str,
    /// Without trailing zeros.
    fraction: &'a str,
}

impl<'a> Decimal<'a> {
    fn parse(v: &'a str) -> Option<Decimal<'a>> {
        let v = v.trim();
        let (negative, digits) = match v.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, v.strip_prefix('+').unwrap_or(v)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let is_digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
        if whole.is_empty() && fraction.is_empty() || !is_digits(whole) || !is_digits(fraction) {
            return None;
        }
        let whole = whole.trim_start_matches('0');
        let fraction = fraction.trim_end_matches('0');
        // -0 and 0 are one number.
        let negative = negative && !(whole.is_empty() && fraction.is_empty());
        Some(Decimal { negative, whole, fraction })
    }

    fn magnitude_cmp(&self, other: &Self) -> Ordering {
        self.whole
            .len()
            .cmp(&other.whole.len())
            .then_with(|| self.whole.cmp(other.whole))
            .then_with(|| self.fraction.cmp(other.fraction))
    }
}

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.magnitude_cmp(other),
            (true, true) => other.magnitude_cmp(self),
        }
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// `value` less `lookback`, in the value's own form: units for a number, seconds for a timestamp (RFC 3339 or
/// without an offset) or a date (whole days, rounded up). Anything else is returned as it is.
pub fn minus(value: &str, lookback: f64) -> String {
    let v = value.trim();
    if let Ok(n) = v.parse::<i64>() {
        return (n - lookback.ceil() as i64).to_string();
    }
    if let Ok(n) = v.parse::<f64>() {
        return (n - lookback).to_string();
    }
    let back = chrono::Duration::milliseconds((lookback * 1000.0) as i64);
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return (t - back).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, v.ends_with('Z'));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            let fmt = if f.contains('T') { "%Y-%m-%dT%H:%M:%S%.6f" } else { "%Y-%m-%d %H:%M:%S%.6f" };
            return (t - back).format(fmt).to_string();
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let days = (lookback / 86_400.0).ceil() as i64;
        return (d - chrono::Duration::days(days)).format("%Y-%m-%d").to_string();
    }
    value.to_string()
}

/// The rows an incremental read takes: `after < cursor <= up_to` (an absent bound is open; no `after` means from the
/// source's `initial`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CursorWindow {
    pub after: Option<String>,
    pub up_to: Option<String>,
}

impl CursorWindow {
    /// Past `after`: everything newer than what was committed.
    pub fn after(after: Option<String>) -> CursorWindow {
        CursorWindow { after, up_to: None }
    }

    /// Whether `value` is past the window's upper bound (a row of a later interval).
    pub fn beyond(&self, value: &str) -> bool {
        self.up_to.as_deref().is_some_and(|u| greater(value, u))
    }
}

/// The key a task's cursor is stored under in its table: `<pipeline>/<task>`.
pub fn key(pipeline: &str, task: &str) -> String {
    format!("{pipeline}/{task}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_past_two_to_the_53_stay_distinct() {
        assert!(greater("9007199254740993", "9007199254740992"));
        assert!(greater("10", "9") && greater("-1", "-2") && !greater("-0", "0") && !greater("0", "-0"));
        assert!(greater("100000000000000000000000001", "100000000000000000000000000"));
        assert!(greater("1.5", "1.25") && greater("2", "1.999") && greater("0.5", "-3"));
        assert_eq!(compare("1.50", "1.5"), Ordering::Equal);
    }

    #[test]
    fn timestamps_compare_as_instants() {
        assert!(greater("2026-03-01T00:00:00.5Z", "2026-03-01T00:00:00Z"));
        assert!(greater("2026-03-01T10:00:00+00:00", "2026-03-01T11:00:00+02:00"));
        assert!(greater("2026-03-02", "2026-03-01T23:59:59Z"));
        assert!(greater("2026-03-01 00:00:00.000001", "2026-03-01T00:00:00Z"));
        assert!(greater("2026-03-02T00:00:00Z", "2026-03-01T23:59:59Z"));
    }

    #[test]
    fn lookback_goes_back_in_the_values_own_form() {
        assert_eq!(minus("2026-03-02T00:00:00Z", 3600.0), "2026-03-01T23:00:00Z");
        assert_eq!(minus("5000", 3600.0), "1400");
        assert_eq!(minus("2026-03-02T00:00:00.000000", 60.0), "2026-03-01T23:59:00.000000");
        assert_eq!(minus("2026-03-02", 3600.0), "2026-03-01");
    }

    #[test]
    fn other_values_compare_as_text() {
        assert!(greater("b", "a") && greater("order-10", "order-1"));
    }
}
