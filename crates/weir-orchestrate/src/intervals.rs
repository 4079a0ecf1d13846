//! A schedule cut into data intervals, as Airflow does: a run for the interval `[start, end)` is due once `end` has
//! passed, and its logical date is `start`. With `catchup`, every missed interval is due, oldest first; without it,
//! only the latest.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use weir_config::{Every, Schedule};

/// One data interval, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    /// The run context of this interval, its dates in the schedule's time zone.
    pub fn run_context(&self, tz: Tz, run_id: String) -> weir_core::RunContext {
        use chrono::Offset;
        let (start, end) = (self.start.with_timezone(&tz), self.end.with_timezone(&tz));
        weir_core::RunContext::for_interval(start.naive_local(), end.naive_local(), run_id)
            .with_offsets(start.offset().fix().local_minus_utc(), end.offset().fix().local_minus_utc())
    }
}

/// The most intervals one scheduler pass creates for a pipeline (a catch-up over years goes in slices).
const MAX_PER_PASS: usize = 1000;

fn midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let naive = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc)).unwrap_or_else(|| naive.and_utc())
}

/// The first tick of the schedule at or after `t`.
fn tick_at_or_after(s: &Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match &s.every {
        Every::Cron(cron) => {
            let local = t.with_timezone(&s.timezone);
            cron.find_next_occurrence(&local, true).ok().map(|n| n.with_timezone(&Utc))
        }
        Every::Fixed(d) => {
            let origin = midnight(s.start_date?, s.timezone);
            let step = chrono::Duration::from_std(*d).ok()?;
            if t <= origin {
                return Some(origin);
            }
            let n = ((t - origin).num_milliseconds() + step.num_milliseconds() - 1) / step.num_milliseconds();
            Some(origin + step * n as i32)
        }
    }
}

/// The tick after `t` (strictly).
fn tick_after(s: &Schedule, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    tick_at_or_after(s, t + chrono::Duration::seconds(1))
}

/// Where a pipeline's first interval starts: its `start_date`, or else the last tick before `first_seen` (so the
/// interval running when the scheduler first saw the pipeline is its first).
pub fn first_start(s: &Schedule, first_seen: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match s.start_date {
        Some(d) => tick_at_or_after(s, midnight(d, s.timezone)),
        None => {
            // Walk back a day at a time until a tick precedes `first_seen` (cron ticks are at most a year apart).
            let mut probe = first_seen - chrono::Duration::days(1);
            for _ in 0..400 {
                if let Some(t) = tick_at_or_after(s, probe).filter(|t| *t <= first_seen) {
                    let mut last = t;
                    while let Some(n) = tick_after(s, last).filter(|n| *n <= first_seen) {
                        last = n;
                    }
                    return Some(last);
                }
                probe -= chrono::Duration::days(1);
            }
            None
        }
    }
}

/// The intervals due at `now` whose start is at or after `next_start` (the end of the last interval created).
pub fn due(s: &Schedule, next_start: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Interval> {
    let end_limit = s.end_date.map(|d| midnight(d.succ_opt().unwrap_or(d), s.timezone));
    let mut out = Vec::new();
    let Some(mut start) = tick_at_or_after(s, next_start) else { return out };
    while let Some(end) = tick_after(s, start) {
        if end > now || end_limit.is_some_and(|limit| start >= limit) {
            break;
        }
        out.push(Interval { start, end });
        if out.len() >= MAX_PER_PASS && s.catchup {
            break;
        }
        start = end;
    }
    if !s.catchup && out.len() > 1 {
        out.drain(..out.len() - 1);
    }
    out
}

/// The next time a run becomes due, for display.
pub fn next_due(s: &Schedule, next_start: DateTime<Utc>) -> Option<DateTime<Utc>> {
    tick_at_or_after(s, next_start).and_then(|start| tick_after(s, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(yaml: &str) -> Schedule {
        let node = weir_config::yaml::parse(yaml).unwrap_or_else(|d| panic!("{d}"));
        let mut diags = Vec::new();
        let s = node.get("schedule").and_then(|n| weir_config::orchestration::parse_schedule(n, &mut diags));
        assert!(diags.is_empty(), "{diags:?}");
        s.unwrap_or_else(|| panic!("no schedule"))
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn daily_catchup_gives_every_missed_day_in_order() {
        let s = schedule("schedule: {cron: \"@daily\", start_date: 2026-03-01, catchup: true}");
        let start = first_start(&s, at("2026-03-10T12:00:00Z")).unwrap_or_else(|| panic!("no start"));
        assert_eq!(start, at("2026-03-01T00:00:00Z"));
        let due = due(&s, start, at("2026-03-04T00:00:05Z"));
        let days: Vec<String> = due.iter().map(|i| i.start.format("%F").to_string()).collect();
        assert_eq!(days, ["2026-03-01", "2026-03-02", "2026-03-03"]);
        assert_eq!(due[2].end, at("2026-03-04T00:00:00Z"));
        let ctx = due[0].run_context(s.timezone, "r".into());
        assert_eq!(ctx.ds(), "2026-03-01");
    }

    #[test]
    fn the_two_hours_that_share_a_local_start_at_the_autumn_change_render_apart() {
        // Fixed hours in Berlin: 02:00 local comes twice on 2026-10-25, first at +02:00, then at +01:00.
        let s = schedule("schedule: {every: 1h, timezone: Europe/Berlin, start_date: 2026-10-24, catchup: true}");
        let due = due(&s, at("2026-10-24T22:00:00Z"), at("2026-10-25T03:00:00Z"));
        let rendered: Vec<String> = due
            .iter()
            .map(|i| weir_config::template::render("{{ ts }}", &i.run_context(s.timezone, "r".into())).unwrap())
            .collect();
        assert!(rendered.contains(&"2026-10-25T02:00:00+02:00".to_string()), "{rendered:?}");
        assert!(rendered.contains(&"2026-10-25T02:00:00+01:00".to_string()), "{rendered:?}");
        let mut unique = rendered.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), rendered.len(), "{rendered:?}");
    }

    #[test]
    fn without_catchup_only_the_latest_interval_runs() {
        let s = schedule("schedule: {cron: \"0 * * * *\", start_date: 2026-03-01}");
        let due = due(&s, at("2026-03-01T00:00:00Z"), at("2026-03-01T05:30:00Z"));
        assert_eq!(due, [Interval { start: at("2026-03-01T04:00:00Z"), end: at("2026-03-01T05:00:00Z") }]);
    }

    #[test]
    fn time_zones_and_end_dates_are_honoured() {
        let s = schedule(
            "schedule: {cron: \"0 6 * * *\", timezone: Europe/Berlin, start_date: 2026-03-27, end_date: 2026-03-29, catchup: true}",
        );
        let start = first_start(&s, at("2026-03-27T00:00:00Z")).unwrap_or_else(|| panic!("no start"));
        let due = due(&s, start, at("2026-04-10T00:00:00Z"));
        let starts: Vec<DateTime<Utc>> = due.iter().map(|i| i.start).collect();
        // 06:00 in Berlin is 05:00 UTC before the clocks change on 29 March, 04:00 after.
        assert_eq!(starts, [at("2026-03-27T05:00:00Z"), at("2026-03-28T05:00:00Z"), at("2026-03-29T04:00:00Z")]);
    }

    #[test]
    fn fixed_intervals_count_from_the_start_date() {
        let s = schedule("schedule: {every: 6h, start_date: 2026-03-01, catchup: true}");
        let due = due(&s, at("2026-03-01T00:00:00Z"), at("2026-03-02T00:00:00Z"));
        assert_eq!(due.len(), 4);
        assert_eq!(due[3].start, at("2026-03-01T18:00:00Z"));
        assert_eq!(tick_at_or_after(&s, at("2026-03-01T07:00:00Z")), Some(at("2026-03-01T12:00:00Z")));
    }
}
