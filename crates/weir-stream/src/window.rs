//! Per-key windows in event time, and the watermark that bounds them.
//!
//! Each partition keeps, per window and per key, the retained events (event time, the numeric inputs of its
//! aggregates, the hashes of its `count(distinct ...)` inputs) sorted by event time. For every event the window's
//! aggregates are computed over the retained events of its key that fall in its window:
//! * `sliding`: event times in `[t - size, t]`, as SQL's `RANGE BETWEEN size PRECEDING AND CURRENT ROW`;
//! * `tumbling`: event times in `[bucket start, t]`, the bucket being `size` aligned on the epoch.
//!
//! Events are processed one at a time in offset order, so the result does not depend on how messages were batched.
//! The watermark is the largest event time seen minus `max_out_of_orderness`; an event older than the watermark minus
//! `allowed_lateness` is *late*: it goes to the late output and into no window. Retained events older than what any
//! non-late event can still need (`watermark - allowed_lateness - size`) are evicted, which bounds memory by event
//! time instead of by key count.

use std::collections::VecDeque;

use ahash::RandomState;
use bytes::{Buf, BufMut};
use hashbrown::HashMap;

use crate::config::{AggFunc, WindowConfig, WindowKind};

/// The retained events of one key.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyEvents {
    ts: VecDeque<i64>,
    /// `numeric` values per event, flattened.
    nums: VecDeque<f64>,
    /// `distinct` hashes per event, flattened.
    hashes: VecDeque<u64>,
}

/// One window's state in one partition.
#[derive(Debug, Clone)]
pub struct WindowState {
    keys: HashMap<Box<[u8]>, KeyEvents, RandomState>,
}

impl Default for WindowState {
    fn default() -> Self {
        WindowState { keys: HashMap::with_hasher(fixed_hasher()) }
    }
}

/// A fixed hasher: state maps are rebuilt from checkpoints, and a fixed seed keeps runs reproducible.
fn fixed_hasher() -> RandomState {
    RandomState::with_seeds(0x5eed, 0xfeed, 0xbeef, 0xcafe)
}

/// A window key's fingerprint (its row-encoded bytes hashed with the fixed hasher).
pub fn key_hash(key: &[u8]) -> u64 {
    fixed_hasher().hash_one(key)
}

/// How a window computes its aggregates, compiled from its config.
#[derive(Debug, Clone)]
pub struct WindowPlan {
    pub name: String,
    pub kind: WindowKind,
    pub size_ms: i64,
    /// Number of numeric inputs (sum/avg/max/min/count(x) arguments).
    pub numeric: usize,
    /// Number of distinct inputs.
    pub distinct: usize,
    /// Per aggregate: its function and the index of its input (numeric or distinct).
    pub aggs: Vec<(AggFunc, Option<usize>)>,
}

impl WindowPlan {
    /// Plans `config`'s aggregates; `arg_index` maps an aggregate argument to its input slot.
    pub fn new(config: &WindowConfig) -> (WindowPlan, Vec<String>, Vec<String>) {
        let mut numeric: Vec<String> = Vec::new();
        let mut distinct: Vec<String> = Vec::new();
        let mut aggs = Vec::new();
        for a in &config.aggregates {
            let slot = match (&a.arg, a.func) {
                (None, _) => None,
                (Some(arg), AggFunc::CountDistinct) => Some(slot_of(&mut distinct, arg)),
                (Some(arg), _) => Some(slot_of(&mut numeric, arg)),
            };
            aggs.push((a.func, slot));
        }
        let plan = WindowPlan {
            name: config.name.clone(),
            kind: config.kind,
            size_ms: config.size_ms,
            numeric: numeric.len(),
            distinct: distinct.len(),
            aggs,
        };
        (plan, numeric, distinct)
    }

    /// The first event time inside the window of an event at `t`.
    fn window_start(&self, t: i64) -> i64 {
        match self.kind {
            WindowKind::Sliding => t.saturating_sub(self.size_ms),
            WindowKind::Tumbling => t.div_euclid(self.size_ms) * self.size_ms,
        }
    }
}

fn slot_of(list: &mut Vec<String>, arg: &str) -> usize {
    match list.iter().position(|a| a == arg) {
        Some(i) => i,
        None => {
            list.push(arg.to_string());
            list.len() - 1
        }
    }
}

/// The watermark of one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watermark {
    /// The largest event time seen (`i64::MIN` before the first event).
    pub max_event_ms: i64,
    pub out_of_orderness_ms: i64,
    pub allowed_lateness_ms: i64,
}

impl Watermark {
    pub fn new(out_of_orderness_ms: i64, allowed_lateness_ms: i64) -> Self {
        Watermark { max_event_ms: i64::MIN, out_of_orderness_ms, allowed_lateness_ms }
    }

    /// The current watermark (`None` before the first event).
    pub fn current(&self) -> Option<i64> {
        (self.max_event_ms != i64::MIN).then(|| self.max_event_ms - self.out_of_orderness_ms)
    }

    /// Whether an event at `t` is too late for the windows.
    pub fn is_late(&self, t: i64) -> bool {
        self.current().is_some_and(|w| t < w - self.allowed_lateness_ms)
    }

    /// The oldest event time a non-late event can be.
    pub fn oldest_on_time(&self) -> Option<i64> {
        self.current().map(|w| w - self.allowed_lateness_ms)
    }

    pub fn observe(&mut self, t: i64) {
        if t > self.max_event_ms {
            self.max_event_ms = t;
        }
    }
}

impl WindowState {
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    pub fn retained_events(&self) -> usize {
        self.keys.values().map(|k| k.ts.len()).sum()
    }

    /// Adds one on-time event for `key` and writes its window's aggregates into `out` (one value per aggregate;
    /// `None` is SQL null: a sum/avg/max/min over no non-null value). True when the key had no state yet.
    #[allow(clippy::too_many_arguments)]
    pub fn add_and_aggregate(
        &mut self,
        plan: &WindowPlan,
        key: &[u8],
        t: i64,
        nums: &[f64],
        hashes: &[u64],
        evict_before: Option<i64>,
        out: &mut [Option<f64>],
        scratch: &mut Vec<u64>,
    ) -> bool {
        let mut new_key = false;
        let entry = match self.keys.get_mut(key) {
            Some(e) => e,
            None => {
                new_key = true;
                self.keys.entry(key.into()).or_default()
            }
        };
        if let Some(bound) = evict_before {
            let bound = bound.saturating_sub(plan.size_ms);
            while entry.ts.front().is_some_and(|&f| f < bound) {
                entry.ts.pop_front();
                entry.nums.drain(..plan.numeric);
                entry.hashes.drain(..plan.distinct);
            }
        }
        // Insert after every retained event with the same or an earlier time (most events arrive in order: the end).
        let pos = entry.ts.partition_point(|&x| x <= t);
        if pos == entry.ts.len() {
            entry.ts.push_back(t);
            entry.nums.extend(nums.iter().copied());
            entry.hashes.extend(hashes.iter().copied());
        } else {
            entry.ts.insert(pos, t);
            for (i, v) in nums.iter().enumerate() {
                entry.nums.insert(pos * plan.numeric + i, *v);
            }
            for (i, v) in hashes.iter().enumerate() {
                entry.hashes.insert(pos * plan.distinct + i, *v);
            }
        }
        let hi = pos + 1; // exclusive: up to and including this event
        let start = plan.window_start(t);
        let lo = entry.ts.partition_point(|&x| x < start);
        for (slot, (func, input)) in out.iter_mut().zip(&plan.aggs) {
            *slot = aggregate(entry, plan, *func, *input, lo, hi, scratch);
        }
        new_key
    }

    /// Drops retained events no on-time event can need any more, and keys left with none (their `key_hash` goes
    /// to `dropped`).
    pub fn evict(&mut self, plan: &WindowPlan, oldest_on_time: i64, dropped: &mut Vec<u64>) {
        let bound = oldest_on_time.saturating_sub(plan.size_ms);
        self.keys.retain(|k, e| {
            while e.ts.front().is_some_and(|&f| f < bound) {
                e.ts.pop_front();
                e.nums.drain(..plan.numeric);
                e.hashes.drain(..plan.distinct);
            }
            if e.ts.is_empty() {
                dropped.push(key_hash(k));
            }
            !e.ts.is_empty()
        });
    }
}

fn aggregate(
    e: &KeyEvents,
    plan: &WindowPlan,
    func: AggFunc,
    input: Option<usize>,
    lo: usize,
    hi: usize,
    scratch: &mut Vec<u64>,
) -> Option<f64> {
    let values = |i: usize| (lo..hi).map(move |r| e.nums[r * plan.numeric + i]).filter(|v| !v.is_nan());
    match (func, input) {
        (AggFunc::Count, None) => Some((hi - lo) as f64),
        (AggFunc::Count, Some(i)) => Some(values(i).count() as f64),
        (AggFunc::Sum, Some(i)) => {
            let mut it = values(i).peekable();
            it.peek()?;
            Some(it.sum())
        }
        (AggFunc::Avg, Some(i)) => {
            let (n, s) = values(i).fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
            (n > 0).then(|| s / n as f64)
        }
        (AggFunc::Max, Some(i)) => values(i).reduce(f64::max),
        (AggFunc::Min, Some(i)) => values(i).reduce(f64::min),
        (AggFunc::CountDistinct, Some(i)) => {
            scratch.clear();
            scratch.extend((lo..hi).map(|r| e.hashes[r * plan.distinct + i]).filter(|&h| h != NULL_HASH));
            scratch.sort_unstable();
            scratch.dedup();
            Some(scratch.len() as f64)
        }
        _ => None,
    }
}

/// The hash recorded for a null `count(distinct ...)` input (nulls are not counted).
pub const NULL_HASH: u64 = 0;

/// Serialises one partition's window states (`version 1`: little-endian counts, keys and columns).
pub fn encode_states(states: &[WindowState], plans: &[WindowPlan], out: &mut Vec<u8>) {
    out.put_u32_le(states.len() as u32);
    for (state, plan) in states.iter().zip(plans) {
        out.put_u64_le(state.keys.len() as u64);
        for (key, e) in &state.keys {
            out.put_u32_le(key.len() as u32);
            out.put_slice(key);
            out.put_u32_le(e.ts.len() as u32);
            for t in &e.ts {
                out.put_i64_le(*t);
            }
            debug_assert_eq!(e.nums.len(), e.ts.len() * plan.numeric);
            for v in &e.nums {
                out.put_f64_le(*v);
            }
            for h in &e.hashes {
                out.put_u64_le(*h);
            }
        }
    }
}

/// Reads what [`encode_states`] wrote.
pub fn decode_states(mut buf: &[u8], plans: &[WindowPlan]) -> Result<Vec<WindowState>, String> {
    let need =
        |buf: &[u8], n: usize| if buf.remaining() < n { Err("truncated window state".to_string()) } else { Ok(()) };
    need(buf, 4)?;
    let windows = buf.get_u32_le() as usize;
    if windows != plans.len() {
        return Err(format!("the checkpoint holds {windows} windows, the stream has {}", plans.len()));
    }
    let mut states = Vec::with_capacity(windows);
    for plan in plans {
        need(buf, 8)?;
        let keys = buf.get_u64_le() as usize;
        let mut state = WindowState::default();
        state.keys.reserve(keys);
        for _ in 0..keys {
            need(buf, 4)?;
            let klen = buf.get_u32_le() as usize;
            need(buf, klen + 4)?;
            let key: Box<[u8]> = buf[..klen].into();
            buf.advance(klen);
            let n = buf.get_u32_le() as usize;
            need(buf, n * 8 * (1 + plan.numeric + plan.distinct))?;
            let mut e = KeyEvents::default();
            e.ts.extend((0..n).map(|_| buf.get_i64_le()));
            e.nums.extend((0..n * plan.numeric).map(|_| buf.get_f64_le()));
            e.hashes.extend((0..n * plan.distinct).map(|_| buf.get_u64_le()));
            state.keys.insert(key, e);
        }
        states.push(state);
    }
    if buf.has_remaining() {
        return Err("trailing bytes after the window state".into());
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Aggregate;

    fn window(kind: WindowKind, size_ms: i64) -> WindowPlan {
        let agg = |name: &str, func, arg: Option<&str>| Aggregate {
            name: name.into(),
            func,
            arg: arg.map(str::to_string),
            line: 1,
        };
        let config = WindowConfig {
            name: "w".into(),
            key: "k".into(),
            kind,
            size_ms,
            aggregates: vec![
                agg("n", AggFunc::Count, None),
                agg("s", AggFunc::Sum, Some("x")),
                agg("m", AggFunc::Max, Some("x")),
                agg("d", AggFunc::CountDistinct, Some("c")),
                agg("a", AggFunc::Avg, Some("x")),
            ],
            line: 1,
        };
        let (plan, numeric, distinct) = WindowPlan::new(&config);
        assert_eq!((numeric.len(), distinct.len()), (1, 1), "x is shared by sum, max and avg");
        plan
    }

    fn run(plan: &WindowPlan, state: &mut WindowState, events: &[(&str, i64, f64, u64)]) -> Vec<Vec<Option<f64>>> {
        let mut scratch = Vec::new();
        events
            .iter()
            .map(|(k, t, x, c)| {
                let mut out = vec![None; plan.aggs.len()];
                let _ = state.add_and_aggregate(plan, k.as_bytes(), *t, &[*x], &[*c], None, &mut out, &mut scratch);
                out
            })
            .collect()
    }

    #[test]
    fn sliding_windows_include_the_size_before_each_event() {
        let plan = window(WindowKind::Sliding, 10);
        let mut state = WindowState::default();
        let out = run(
            &plan,
            &mut state,
            &[("a", 0, 1.0, 7), ("a", 5, 2.0, 8), ("b", 6, 9.0, 7), ("a", 10, 4.0, 7), ("a", 11, f64::NAN, 9)],
        );
        assert_eq!(out[2], vec![Some(1.0), Some(9.0), Some(9.0), Some(1.0), Some(9.0)], "keys are separate");
        assert_eq!(out[3], vec![Some(3.0), Some(7.0), Some(4.0), Some(2.0), Some(7.0 / 3.0)], "t-size is inside");
        // At 11 the event at 0 has left; the null x is counted by count(*) but not by sum.
        assert_eq!(out[4], vec![Some(3.0), Some(6.0), Some(4.0), Some(3.0), Some(3.0)]);
    }

    #[test]
    fn tumbling_windows_restart_at_each_bucket_and_late_arrivals_slot_in() {
        let plan = window(WindowKind::Tumbling, 10);
        let mut state = WindowState::default();
        let out = run(&plan, &mut state, &[("a", 3, 1.0, 1), ("a", 9, 1.0, 1), ("a", 12, 5.0, 1), ("a", 7, 2.0, 2)]);
        assert_eq!(out[1][0], Some(2.0));
        assert_eq!(out[2][..2], [Some(1.0), Some(5.0)], "a new bucket at 10");
        // The out-of-order event at 7 sees its bucket's events up to 7 only.
        assert_eq!(out[3][..2], [Some(2.0), Some(3.0)]);
    }

    #[test]
    fn the_watermark_decides_lateness() {
        let mut w = Watermark::new(5, 10);
        assert!(!w.is_late(0));
        w.observe(100);
        assert_eq!(w.current(), Some(95));
        assert!(!w.is_late(85) && w.is_late(84));
    }

    #[test]
    fn eviction_keeps_what_on_time_events_need_and_state_round_trips() {
        let plan = window(WindowKind::Sliding, 10);
        let mut state = WindowState::default();
        run(&plan, &mut state, &[("a", 0, 1.0, 1), ("a", 20, 1.0, 1), ("b", 1, 1.0, 1)]);
        state.evict(&plan, 25, &mut Vec::new());
        assert_eq!((state.keys(), state.retained_events()), (1, 1));
        let mut bytes = Vec::new();
        encode_states(std::slice::from_ref(&state), std::slice::from_ref(&plan), &mut bytes);
        let back = decode_states(&bytes, std::slice::from_ref(&plan)).unwrap();
        assert_eq!(back[0].keys, state.keys);
        assert!(decode_states(&bytes[..bytes.len() - 3], std::slice::from_ref(&plan)).is_err());
    }
}
