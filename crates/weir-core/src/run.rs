//! The context of one run of a pipeline: its logical date and data interval, as Airflow defines them, and the run id.
//! Templates (`{{ ds }}`) and sinks (the partition a daily load replaces) read it.

use chrono::{Duration, NaiveDate, NaiveDateTime};

#[derive(Debug, Clone)]
pub struct RunContext {
    /// The logical date of the run (Airflow's `ds`): the day whose data this run processes.
    pub logical_date: NaiveDate,
    /// Start of the data interval (inclusive), midnight of the logical date for a daily run.
    pub data_interval_start: NaiveDateTime,
    /// End of the data interval (exclusive).
    pub data_interval_end: NaiveDateTime,
    /// Unique id of this run, used in file names so concurrent or repeated runs never collide.
    pub run_id: String,
    /// The schedule's UTC offsets (seconds east of UTC) at the interval's start and end: the times above are local
    /// to the schedule's time zone, and at an autumn clock change two hourly intervals share a local start.
    pub start_offset_secs: i32,
    pub end_offset_secs: i32,
}

fn with_offset(local: NaiveDateTime, offset_secs: i32) -> chrono::DateTime<chrono::FixedOffset> {
    let offset = chrono::FixedOffset::east_opt(offset_secs).unwrap_or(chrono::FixedOffset::east_opt(0).expect("UTC"));
    chrono::DateTime::from_naive_utc_and_offset(local - Duration::seconds(offset_secs as i64), offset)
}

impl RunContext {
    /// A daily run for `logical_date`: the interval is that whole day.
    pub fn daily(logical_date: NaiveDate, run_id: impl Into<String>) -> Self {
        let start = logical_date.and_hms_opt(0, 0, 0).unwrap_or_default();
        RunContext {
            logical_date,
            data_interval_start: start,
            data_interval_end: start + Duration::days(1),
            run_id: run_id.into(),
            start_offset_secs: 0,
            end_offset_secs: 0,
        }
    }

    /// A run for the interval `[start, end)` (a scheduled run); its logical date is the day `start` falls on.
    pub fn for_interval(start: NaiveDateTime, end: NaiveDateTime, run_id: impl Into<String>) -> Self {
        RunContext {
            logical_date: start.date(),
            data_interval_start: start,
            data_interval_end: end,
            run_id: run_id.into(),
            start_offset_secs: 0,
            end_offset_secs: 0,
        }
    }

    /// The same run with the schedule's UTC offsets at the interval's start and end.
    pub fn with_offsets(mut self, start_offset_secs: i32, end_offset_secs: i32) -> Self {
        self.start_offset_secs = start_offset_secs;
        self.end_offset_secs = end_offset_secs;
        self
    }

    /// The interval's start as an instant with its offset (`2026-10-25T02:00:00+01:00`), Airflow's `ts`.
    pub fn start_with_offset(&self) -> chrono::DateTime<chrono::FixedOffset> {
        with_offset(self.data_interval_start, self.start_offset_secs)
    }

    /// The interval's end as an instant with its offset.
    pub fn end_with_offset(&self) -> chrono::DateTime<chrono::FixedOffset> {
        with_offset(self.data_interval_end, self.end_offset_secs)
    }

    /// Whether the data interval is one whole day (midnight to midnight).
    pub fn is_one_day(&self) -> bool {
        self.data_interval_start.time() == chrono::NaiveTime::MIN
            && self.data_interval_end == self.data_interval_start + Duration::days(1)
    }

    /// `YYYY-MM-DD`, Airflow's `ds`.
    pub fn ds(&self) -> String {
        self.logical_date.format("%Y-%m-%d").to_string()
    }
}
