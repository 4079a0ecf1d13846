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
        }
    }

    /// A run for the interval `[start, end)` (a scheduled run); its logical date is the day `start` falls on.
    pub fn for_interval(start: NaiveDateTime, end: NaiveDateTime, run_id: impl Into<String>) -> Self {
        RunContext {
            logical_date: start.date(),
            data_interval_start: start,
            data_interval_end: end,
            run_id: run_id.into(),
        }
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
