//! One syntax for every duration a file or a flag sets: a whole number and a unit, `500ms`, `30s`, `5m` (or
//! `5min`), `1h`, `2d`, `1w`. A bare number is refused with the form to write instead: `timeout: 2` meant seconds in
//! one place and could mean minutes to a reader, and a silent guess is worse than an error.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// The units, for messages.
const FORM: &str = "a number and a unit: `500ms`, `30s`, `5m`, `1h`, `2d` or `1w`";

/// Parses `500ms`, `30s`, `5m`, `5min`, `1h`, `2d`, `1w`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if unit.trim().is_empty() && !num.is_empty() {
        return Err(bare_number(t));
    }
    let n: u64 = num.parse().map_err(|_| format!("`{text}` is not a duration: write {FORM}"))?;
    let millis: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        other => return Err(format!("`{text}`: unknown unit `{other}`; write {FORM}")),
    };
    n.checked_mul(millis).map(Duration::from_millis).ok_or_else(|| format!("`{text}` is too long a duration"))
}

fn bare_number(number: &str) -> String {
    format!(
        "`{number}` has no unit: write {FORM} (a bare number used to mean seconds in some settings; `{number}` seconds is `{number}s`)"
    )
}

/// Reads a duration setting with [`parse`]: for `#[serde(deserialize_with = "weir_config::duration::deserialize")]`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a duration, {FORM}")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Err(E::custom(bare_number(&v.to_string())))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            Err(E::custom(bare_number(&v.to_string())))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Err(E::custom(format!(
                "`{v}` has no unit: write {FORM} (a bare number used to mean seconds in some settings; `{v}` seconds is `{}ms`)",
                (v * 1000.0).round()
            )))
        }
    }

    d.deserialize_any(DurationVisitor)
}

/// Reads an incremental source's `lookback`: a duration (`10m`) for a time cursor, or a number of units for a
/// numeric cursor (`lookback: 500` ids). Returns seconds or units.
pub fn deserialize_lookback<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct LookbackVisitor;

    impl Visitor<'_> for LookbackVisitor {
        type Value = Option<f64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a duration ({FORM}) for a time cursor, or a number for a numeric cursor")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<f64>, E> {
            match v.trim().parse::<f64>() {
                Ok(n) => Ok(Some(n)),
                Err(_) => parse(v).map(|d| Some(d.as_secs_f64())).map_err(E::custom),
            }
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<f64>, E> {
            Ok(Some(v as f64))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<f64>, E> {
            Ok(Some(v as f64))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<f64>, E> {
            Ok(Some(v))
        }
    }

    d.deserialize_any(LookbackVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses_and_a_bare_number_is_refused_with_the_form_to_write() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("5min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse(" 1h "), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("2d"), Ok(Duration::from_secs(2 * 86_400)));
        assert_eq!(parse("1w"), Ok(Duration::from_secs(7 * 86_400)));
        let bare = parse("2").unwrap_err();
        assert!(bare.contains("no unit") && bare.contains("`2s`"), "{bare}");
        assert!(parse("2 parsecs").unwrap_err().contains("unknown unit"));
        assert!(parse("s").unwrap_err().contains("not a duration"));
        assert!(parse("1.5h").is_err(), "whole numbers only: 90m");
        assert!(parse("99999999999999999w").unwrap_err().contains("too long"));
    }
}
