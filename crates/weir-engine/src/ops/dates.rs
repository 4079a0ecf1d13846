//! Lenient multi-format date parsing: each value is tried against the formats in order; a value that matches none
//! becomes null and is counted (never silently lost, never a crash on the first bad value as `to_timestamp` does).
//!
//! Formats made only of `%Y %m %d %H %M %S %f` and literal characters run on a hand-written byte matcher (the
//! common case, about 10x faster than chrono's general parser); any other format falls back to chrono.

use arrow::array::{Array, ArrayRef, Date32Array, TimestampMicrosecondArray};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use weir_config::steps::DateTarget;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Fraction,
    Lit(u8),
}

/// Whether a strftime format reads a time of day.
pub fn has_time(format: &str) -> bool {
    ["%H", "%M", "%S", "%T", "%I", "%R", "%p"].iter().any(|s| format.contains(s))
}

/// Whether `parse_dates` gives dates: as its `to:` says, or else when none of its formats reads a time of day (then
/// timestamps). The local step and its Spark SQL form decide alike.
pub fn converts_to_date<'a>(to: Option<DateTarget>, mut formats: impl Iterator<Item = &'a str>) -> bool {
    match to {
        Some(DateTarget::Date) => true,
        Some(DateTarget::Timestamp) => false,
        None => !formats.any(has_time),
    }
}

#[derive(Debug, Clone)]
pub struct DateFormat {
    pub text: String,
    fast: Option<Vec<Tok>>,
    pub has_time: bool,
}

impl DateFormat {
    pub fn new(text: &str) -> Result<DateFormat, String> {
        // Validate with chrono so bad specifiers fail at compile time, not per value.
        let items: Vec<_> = chrono::format::StrftimeItems::new(text).collect();
        if items.iter().any(|i| matches!(i, chrono::format::Item::Error)) {
            return Err(format!("`{text}` is not a valid strftime format"));
        }
        Ok(DateFormat { text: text.to_string(), fast: compile_fast(text), has_time: has_time(text) })
    }

    /// Microseconds since the epoch, if `s` matches this format exactly.
    pub fn parse_micros(&self, s: &str) -> Option<i64> {
        match &self.fast {
            Some(toks) => parse_fast(toks, s.as_bytes()),
            None => {
                if self.has_time {
                    NaiveDateTime::parse_from_str(s, &self.text).ok().map(|d| d.and_utc().timestamp_micros())
                } else {
                    NaiveDate::parse_from_str(s, &self.text)
                        .ok()
                        .map(|d| d.and_time(NaiveTime::MIN).and_utc().timestamp_micros())
                }
            }
        }
    }
}

fn compile_fast(text: &str) -> Option<Vec<Tok>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let spec = *b.get(i + 1)?;
            let tok = match spec {
                b'Y' => Tok::Year,
                b'm' => Tok::Month,
                b'd' => Tok::Day,
                b'H' => Tok::Hour,
                b'M' => Tok::Minute,
                b'S' => Tok::Second,
                b'f' => Tok::Fraction,
                b'.' if b.get(i + 2) == Some(&b'f') => {
                    out.push(Tok::Lit(b'.'));
                    i += 1;
                    Tok::Fraction
                }
                _ => return None,
            };
            out.push(tok);
            i += 2;
        } else {
            if b[i] >= 0x80 {
                return None;
            }
            out.push(Tok::Lit(b[i]));
            i += 1;
        }
    }
    Some(out)
}

#[inline]
fn digits(s: &[u8], pos: &mut usize, min: usize, max: usize) -> Option<u32> {
    let start = *pos;
    let mut v: u32 = 0;
    while *pos < s.len() && *pos - start < max && s[*pos].is_ascii_digit() {
        v = v * 10 + (s[*pos] - b'0') as u32;
        *pos += 1;
    }
    (*pos - start >= min).then_some(v)
}

fn parse_fast(toks: &[Tok], s: &[u8]) -> Option<i64> {
    let (mut y, mut mo, mut d, mut h, mut mi, mut sec, mut micros) = (1970i32, 1u32, 1u32, 0u32, 0u32, 0u32, 0u32);
    let mut pos = 0;
    for t in toks {
        match *t {
            Tok::Year => y = digits(s, &mut pos, 4, 4)? as i32,
            Tok::Month => mo = digits(s, &mut pos, 1, 2)?,
            Tok::Day => d = digits(s, &mut pos, 1, 2)?,
            Tok::Hour => h = digits(s, &mut pos, 1, 2)?,
            Tok::Minute => mi = digits(s, &mut pos, 2, 2)?,
            Tok::Second => sec = digits(s, &mut pos, 2, 2)?,
            Tok::Fraction => {
                let start = pos;
                let f = digits(s, &mut pos, 1, 9)?;
                let n = (pos - start) as u32;
                micros = if n <= 6 { f * 10u32.pow(6 - n) } else { f / 10u32.pow(n - 6) };
            }
            Tok::Lit(c) => {
                if s.get(pos) != Some(&c) {
                    return None;
                }
                pos += 1;
            }
        }
    }
    if pos != s.len() || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(y, mo, d)?;
    let days = date.signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days();
    Some(days * 86_400_000_000 + (h as i64 * 3600 + mi as i64 * 60 + sec as i64) * 1_000_000 + micros as i64)
}

/// Result of parsing one column.
pub struct Parsed {
    pub array: ArrayRef,
    /// Non-null inputs that matched no format.
    pub failed: usize,
    /// Up to five of those values.
    pub samples: Vec<String>,
    /// Row (within the batch) of the first failure.
    pub first_failed_row: Option<usize>,
}

/// Parses text values (leading and trailing spaces ignored) into dates or timestamps.
pub fn parse_column<'a>(
    values: impl Iterator<Item = Option<&'a str>>,
    len: usize,
    formats: &[DateFormat],
    to_date: bool,
) -> Parsed {
    let mut out: Vec<Option<i64>> = Vec::with_capacity(len);
    let mut failed = 0;
    let mut samples = Vec::new();
    let mut first_failed_row = None;
    // The format that matched last is tried first: data is usually consistent in runs.
    let mut last_hit = 0usize;
    for (row, v) in values.enumerate() {
        let Some(v) = v else {
            out.push(None);
            continue;
        };
        let t = v.trim();
        if t.is_empty() {
            out.push(None);
            continue;
        }
        let mut hit = formats.get(last_hit).and_then(|f| f.parse_micros(t));
        if hit.is_none() {
            for (i, f) in formats.iter().enumerate() {
                if i == last_hit {
                    continue;
                }
                if let Some(m) = f.parse_micros(t) {
                    last_hit = i;
                    hit = Some(m);
                    break;
                }
            }
        }
        if hit.is_none() {
            failed += 1;
            first_failed_row.get_or_insert(row);
            if samples.len() < 5 && !samples.iter().any(|s| s == v) {
                samples.push(v.to_string());
            }
        }
        out.push(hit);
    }
    let array: ArrayRef = if to_date {
        std::sync::Arc::new(Date32Array::from_iter(
            out.into_iter().map(|m| m.map(|m| m.div_euclid(86_400_000_000) as i32)),
        ))
    } else {
        std::sync::Arc::new(TimestampMicrosecondArray::from_iter(out))
    };
    Parsed { array, failed, samples, first_failed_row }
}

pub fn is_null_or_empty(a: &dyn Array) -> bool {
    a.null_count() == a.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    fn fmts(list: &[&str]) -> Vec<DateFormat> {
        list.iter().map(|f| DateFormat::new(f).unwrap()).collect()
    }

    #[test]
    fn parses_every_listed_format_and_counts_the_rest() {
        let formats = fmts(&["%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y"]);
        let values = ["2026-03-01", "2026/03/02", " 2026/03/02 ", "04.03.2026", "not-a-date", "2026-02-30", ""];
        let p = parse_column(values.iter().map(|s| Some(*s)), values.len(), &formats, true);
        let a = p.array.as_primitive::<arrow::datatypes::Date32Type>();
        let day = |y, m, d| {
            NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                .num_days() as i32
        };
        assert_eq!(a.value(0), day(2026, 3, 1));
        assert_eq!(a.value(1), day(2026, 3, 2));
        assert_eq!(a.value(2), day(2026, 3, 2));
        assert_eq!(a.value(3), day(2026, 3, 4));
        assert!(a.is_null(4) && a.is_null(5) && a.is_null(6));
        assert_eq!(p.failed, 2, "the empty value is a null, not a failure");
        assert_eq!(p.samples, ["not-a-date", "2026-02-30"]);
        assert_eq!(p.first_failed_row, Some(4));
    }

    #[test]
    fn timestamps_with_fractions_and_chrono_fallback() {
        let f = DateFormat::new("%Y-%m-%dT%H:%M:%S%.f").unwrap();
        assert_eq!(f.parse_micros("1970-01-01T00:00:01.5"), Some(1_500_000));
        let month_names = DateFormat::new("%d %b %Y").unwrap();
        assert!(month_names.fast.is_none());
        assert_eq!(month_names.parse_micros("02 Jan 1970"), Some(86_400_000_000));
        assert!(DateFormat::new("%Q").is_err());
    }
}
