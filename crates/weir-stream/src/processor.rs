//! The decision step: one micro-batch of a partition's events in, decisions and late events out.
//!
//! Every SQL expression of the stream (aggregate arguments, features, the score, rule conditions) is planned once by
//! DataFusion into a physical expression over a schema where event fields are plain names, lookup columns are
//! `lookup.column` and window aggregates are `window.aggregate`, then evaluated on whole Arrow batches. Only the
//! window step walks events one by one (it must: each event's windows depend on the events before it).

use std::collections::HashMap as StdHashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Float64Builder, Int32Array, Int64Array, Int64Builder,
    RecordBatch, StringArray, StringBuilder, TimestampMillisecondArray,
};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, SortField};
use datafusion::common::{DFSchema, TableReference};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use weir_core::error::Location;
use weir_core::{Error, Result};

use crate::config::{AggFunc, Rule, ScoreConfig, StreamConfig, DECISIONS};
use crate::lookup::Lookup;
use crate::model::HttpModel;
use crate::window::{Watermark, WindowPlan, WindowState, NULL_HASH};

/// A Kafka partition (or partition 0 of a file or the generator).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionId {
    pub topic: Arc<str>,
    pub partition: i32,
}

impl std::fmt::Display for PartitionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// The state of one partition: its watermark and its windows.
#[derive(Debug, Clone)]
pub struct PartitionState {
    pub watermark: Watermark,
    pub windows: Vec<WindowState>,
}

struct CompiledWindow {
    plan: WindowPlan,
    key: usize,
    key_converter: RowConverter,
    numeric: Vec<Arc<dyn PhysicalExpr>>,
    distinct: Vec<Arc<dyn PhysicalExpr>>,
}

struct CompiledRule {
    rule: Rule,
    expr: Arc<dyn PhysicalExpr>,
    /// Position in the file (ties in priority go to the earlier rule).
    order: usize,
}

enum CompiledScore {
    Expression(Arc<dyn PhysicalExpr>),
    Http(HttpModel),
}

/// What a micro-batch produced.
#[derive(Debug)]
pub struct Decided {
    /// Every event with an event time that is not too far ahead, with its features and decision (see
    /// [`Processor::decisions_schema`]); a late event's windows are null and its `late` column is true, so only the
    /// rules that do not need its windows can match it.
    pub decisions: RecordBatch,
    /// Late events (see [`Processor::late_schema`]).
    pub late: RecordBatch,
    /// Events without an event time (the message is kept whole in the invalid output).
    pub missing_time: Vec<usize>,
    /// Events whose time is more than `max_future_skew` ahead of their message's time: (row, event time, message
    /// time) in milliseconds. They are invalid and move no watermark.
    pub from_the_future: Vec<(usize, i64, i64)>,
    /// How many events each rule matched (in file order).
    pub matched: Vec<u64>,
}

/// A stream's compiled decision logic and the state of the partitions this process owns.
pub struct Processor {
    config: Arc<StreamConfig>,
    event_schema: SchemaRef,
    time_index: usize,
    lookups: Vec<(Lookup, usize)>,
    windows: Vec<CompiledWindow>,
    features: Vec<Arc<dyn PhysicalExpr>>,
    score: Option<CompiledScore>,
    /// Rules by descending priority, then file order.
    rules: Vec<CompiledRule>,
    /// The schema expressions are evaluated on (every column so far).
    eval_schema: SchemaRef,
    decisions_schema: SchemaRef,
    late_schema: SchemaRef,
    states: StdHashMap<PartitionId, PartitionState>,
    owners: KeyOwners,
    runtime: tokio::runtime::Handle,
}

/// Which partition each live window key was seen in. Windows are kept per partition, so a key whose events arrive
/// on two partitions (a topic not keyed by the window's key) gets two half windows that undercount: that is counted
/// and warned about, never silent. One fingerprint per live key and window; a key's entry goes when its state does.
#[derive(Debug, Default)]
struct KeyOwners {
    /// Per window: key fingerprint -> partition number.
    owners: Vec<StdHashMap<u64, u32>>,
    partitions: StdHashMap<PartitionId, u32>,
    /// Keys that appeared in a partition while another partition held state for them.
    split: u64,
    warned: Vec<bool>,
}

impl KeyOwners {
    fn partition(&mut self, p: &PartitionId) -> u32 {
        let next = self.partitions.len() as u32;
        *self.partitions.entry(p.clone()).or_insert(next)
    }

    /// A key new to `partition`'s state of window `w`: true when another partition holds it.
    fn arrived(&mut self, w: usize, key: &[u8], partition: u32) -> bool {
        if self.owners.len() <= w {
            self.owners.resize_with(w + 1, Default::default);
            self.warned.resize(w + 1, false);
        }
        match self.owners[w].entry(crate::window::key_hash(key)) {
            std::collections::hash_map::Entry::Occupied(o) if *o.get() != partition => {
                self.split += 1;
                true
            }
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(partition);
                false
            }
        }
    }

    fn dropped(&mut self, w: usize, hashes: &[u64], partition: u32) {
        if let Some(owners) = self.owners.get_mut(w) {
            for h in hashes {
                if owners.get(h) == Some(&partition) {
                    owners.remove(h);
                }
            }
        }
    }

    fn forget(&mut self, p: &PartitionId) {
        if let Some(id) = self.partitions.get(p).copied() {
            for owners in &mut self.owners {
                owners.retain(|_, owner| *owner != id);
            }
        }
    }
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").field("stream", &self.config.name).field("partitions", &self.states.len()).finish()
    }
}

/// The column type of a window aggregate: counts are whole numbers, the rest doubles.
fn aggregate_type(func: AggFunc) -> DataType {
    if matches!(func, AggFunc::Count | AggFunc::CountDistinct) {
        DataType::Int64
    } else {
        DataType::Float64
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Plans SQL expressions over a growing, qualified schema.
struct Planner {
    ctx: SessionContext,
    fields: Vec<(Option<TableReference>, Arc<Field>)>,
    file: std::path::PathBuf,
}

impl Planner {
    fn push(&mut self, qualifier: Option<&str>, field: Field) {
        self.fields.push((qualifier.map(TableReference::bare), Arc::new(field)));
    }

    fn df_schema(&self) -> Result<DFSchema> {
        DFSchema::new_with_metadata(self.fields.clone(), Default::default())
            .map_err(|e| Error::config(Location { file: Some(self.file.clone()), ..Default::default() }, e.to_string()))
    }

    fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(self.fields.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>()))
    }

    /// Plans `sql`, naming `what` and its line in errors.
    fn plan(&self, sql: &str, what: &str, line: usize) -> Result<(Arc<dyn PhysicalExpr>, DataType)> {
        let at = |e: String| {
            Error::config(
                Location { file: Some(self.file.clone()), line: Some(line), column: None },
                format!("{what}: `{sql}`: {e}"),
            )
        };
        let schema = self.df_schema()?;
        let expr = self.ctx.parse_sql_expr(sql, &schema).map_err(|e| at(e.strip_backtrace().to_string()))?;
        let physical = self.ctx.create_physical_expr(expr, &schema).map_err(|e| at(e.strip_backtrace().to_string()))?;
        let data_type = physical.data_type(schema.as_arrow()).map_err(|e| at(e.strip_backtrace().to_string()))?;
        Ok((physical, data_type))
    }
}

fn evaluate(expr: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef> {
    expr.evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| Error::data(Default::default(), format!("expression `{expr}`: {}", e.strip_backtrace())))
}

impl Processor {
    /// Compiles the stream. Every expression is checked against the schema it runs on, with its line in errors.
    pub fn new(
        config: Arc<StreamConfig>,
        event_schema: SchemaRef,
        lookups: Vec<Lookup>,
        runtime: tokio::runtime::Handle,
    ) -> Result<Processor> {
        let file = config.file.clone();
        let cfg_err = |line: usize, msg: String| {
            Error::config(Location { file: Some(file.clone()), line: Some(line), column: None }, msg)
        };
        let mut planner = Planner { ctx: SessionContext::new(), fields: Vec::new(), file: file.clone() };
        for f in event_schema.fields() {
            planner.push(None, f.as_ref().clone());
        }
        // Window aggregates see the event alone: a lookup is reloaded in the background, so an aggregate over its
        // columns would rebuild different window state when a partition replays after a crash or a rebalance.
        let event_planner = Planner { ctx: SessionContext::new(), fields: planner.fields.clone(), file: file.clone() };
        let time_index = event_schema.index_of(&config.event_time.field).map_err(|_| {
            cfg_err(1, format!("the event time field `{}` is not in the schema", config.event_time.field))
        })?;
        let mut compiled_lookups = Vec::new();
        for l in lookups {
            let on = event_schema.index_of(&l.config.on).map_err(|_| {
                cfg_err(l.config.line, format!("lookup `{}`: no event field `{}`", l.config.name, l.config.on))
            })?;
            for f in &l.fields {
                planner.push(Some(&l.config.name), f.as_ref().clone().with_nullable(true));
            }
            compiled_lookups.push((l, on));
        }
        let mut windows = Vec::new();
        let plan_argument = |w: &crate::config::WindowConfig, arg: &str| {
            let what = format!("window `{}`", w.name);
            event_planner.plan(arg, &what, w.line).map_err(|e| match planner.plan(arg, &what, w.line) {
                Ok(_) => cfg_err(
                    w.line,
                    format!(
                        "window `{}`: `{arg}` reads a lookup; window aggregates take event fields only (a lookup is reloaded in the background, so a replay after a crash would rebuild different window state): aggregate the event field and compare with the lookup in a feature or rule",
                        w.name
                    ),
                ),
                Err(_) => e,
            })
        };
        for w in &config.windows {
            let key = event_schema
                .index_of(&w.key)
                .map_err(|_| cfg_err(w.line, format!("window `{}`: no event field `{}`", w.name, w.key)))?;
            let key_converter = RowConverter::new(vec![SortField::new(event_schema.field(key).data_type().clone())])
                .map_err(|e| cfg_err(w.line, format!("window `{}`: key `{}`: {e}", w.name, w.key)))?;
            let (plan, numeric_args, distinct_args) = WindowPlan::new(w);
            let mut numeric = Vec::new();
            for arg in &numeric_args {
                let (expr, t) = plan_argument(w, arg)?;
                if !t.is_numeric() && !matches!(t, DataType::Boolean | DataType::Null) {
                    return Err(cfg_err(w.line, format!("window `{}`: `{arg}` is {t}, not a number", w.name)));
                }
                numeric.push(expr);
            }
            let mut distinct = Vec::new();
            for arg in &distinct_args {
                distinct.push(plan_argument(w, arg)?.0);
            }
            windows.push(CompiledWindow { plan, key, key_converter, numeric, distinct });
        }
        for w in &config.windows {
            for a in &w.aggregates {
                let t = aggregate_type(a.func);
                planner.push(Some(&w.name), Field::new(&a.name, t, true));
            }
        }
        let mut features = Vec::new();
        for f in &config.features {
            let (expr, t) = planner.plan(&f.sql, &format!("feature `{}`", f.name), f.line)?;
            features.push(expr);
            planner.push(None, Field::new(&f.name, t, true));
        }
        let score = match &config.score {
            None => None,
            Some(ScoreConfig::Expression(e)) => {
                let (expr, t) = planner.plan(&e.sql, "score", e.line)?;
                if !t.is_numeric() {
                    return Err(cfg_err(e.line, format!("score: `{}` is {t}, not a number", e.sql)));
                }
                Some(CompiledScore::Expression(expr))
            }
            Some(ScoreConfig::Http(h)) => {
                let schema = planner.arrow_schema();
                for f in &h.fields {
                    if schema.index_of(f).is_err() {
                        return Err(cfg_err(
                            1,
                            format!("score: the model's field `{f}` is not an event field or feature"),
                        ));
                    }
                }
                Some(CompiledScore::Http(HttpModel::new(h)?))
            }
        };
        if score.is_some() {
            planner.push(None, Field::new("score", DataType::Float64, true));
        }
        let mut rules = Vec::new();
        for (order, r) in config.rules.iter().enumerate() {
            let (expr, t) = planner.plan(&r.when, &format!("rule `{}`", r.name), r.line)?;
            if t != DataType::Boolean {
                return Err(cfg_err(
                    r.line,
                    format!("rule `{}`: `{}` is {t}; a rule's `when` must be true or false", r.name, r.when),
                ));
            }
            rules.push(CompiledRule { rule: r.clone(), expr, order });
        }
        rules.sort_by(|a, b| b.rule.priority.cmp(&a.rule.priority).then(a.order.cmp(&b.order)));
        let eval_schema = planner.arrow_schema();

        // Outputs: the event, its window aggregates (`window_aggregate`), features, score, decision, provenance.
        let mut out: Vec<Field> = event_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        for w in &config.windows {
            for a in &w.aggregates {
                let t = aggregate_type(a.func);
                out.push(Field::new(format!("{}_{}", w.name, a.name), t, true));
            }
        }
        let first_feature = event_schema.fields().len()
            + compiled_lookups.iter().map(|(l, _)| l.fields.len()).sum::<usize>()
            + config.windows.iter().map(|w| w.aggregates.len()).sum::<usize>();
        for f in eval_schema.fields().iter().skip(first_feature) {
            out.push(f.as_ref().clone());
        }
        out.extend(provenance_fields());
        out.push(Field::new("decision", DataType::Utf8, false));
        out.push(Field::new("rule", DataType::Utf8, true));
        out.push(Field::new("matched_rules", DataType::Utf8, false));
        out.push(Field::new("late", DataType::Boolean, false));
        let decisions_schema = Arc::new(Schema::new(out));
        let mut late: Vec<Field> = event_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        late.extend(provenance_fields());
        late.push(Field::new("watermark", ts_type(), true));
        let late_schema = Arc::new(Schema::new(late));
        for r in &config.rules {
            debug_assert!(DECISIONS.contains(&r.decision.as_str()));
        }
        Ok(Processor {
            config,
            event_schema,
            time_index,
            lookups: compiled_lookups,
            windows,
            features,
            score,
            rules,
            eval_schema,
            decisions_schema,
            late_schema,
            states: StdHashMap::new(),
            owners: KeyOwners::default(),
            runtime,
        })
    }

    pub fn event_schema(&self) -> &SchemaRef {
        &self.event_schema
    }

    pub fn decisions_schema(&self) -> &SchemaRef {
        &self.decisions_schema
    }

    pub fn late_schema(&self) -> &SchemaRef {
        &self.late_schema
    }

    pub fn plans(&self) -> Vec<WindowPlan> {
        self.windows.iter().map(|w| w.plan.clone()).collect()
    }

    /// Rule names in file order (the order of [`Decided::matched`]).
    pub fn rule_names(&self) -> Vec<String> {
        self.config.rules.iter().map(|r| r.name.clone()).collect()
    }

    pub fn new_state(&self) -> PartitionState {
        PartitionState {
            watermark: Watermark::new(
                self.config.event_time.max_out_of_orderness_ms,
                self.config.event_time.allowed_lateness_ms,
            ),
            windows: self.windows.iter().map(|_| WindowState::default()).collect(),
        }
    }

    pub fn install(&mut self, partition: PartitionId, state: PartitionState) {
        self.states.insert(partition, state);
    }

    pub fn remove(&mut self, partition: &PartitionId) -> Option<PartitionState> {
        self.owners.forget(partition);
        self.states.remove(partition)
    }

    /// Window keys that appeared in a partition while another partition held state for them (see `KeyOwners`).
    pub fn split_keys(&self) -> u64 {
        self.owners.split
    }

    pub fn state(&self, partition: &PartitionId) -> Option<&PartitionState> {
        self.states.get(partition)
    }

    pub fn partitions(&self) -> impl Iterator<Item = &PartitionId> {
        self.states.keys()
    }

    /// Drops retained window events no on-time event can need (run before checkpoints).
    pub fn evict(&mut self) {
        let mut dropped = Vec::new();
        for (p, state) in &mut self.states {
            if let Some(oldest) = state.watermark.oldest_on_time() {
                let partition = self.owners.partition(p);
                for (i, (w, s)) in self.windows.iter().zip(state.windows.iter_mut()).enumerate() {
                    dropped.clear();
                    s.evict(&w.plan, oldest, &mut dropped);
                    self.owners.dropped(i, &dropped, partition);
                }
            }
        }
    }

    /// Decides a micro-batch of `partition`'s events (`events` in offset order, `offsets[i]` the offset of row `i`,
    /// `produced_ms[i]` its message's own time).
    pub fn process(
        &mut self,
        partition: &PartitionId,
        events: &RecordBatch,
        offsets: &[i64],
        produced_ms: &[i64],
        now_ms: i64,
    ) -> Result<Decided> {
        let n = events.num_rows();
        let times = cast(events.column(self.time_index), &DataType::Int64).map_err(|e| {
            Error::data(Default::default(), format!("event time `{}`: {e}", self.config.event_time.field))
        })?;
        let times = times.as_primitive::<arrow::datatypes::Int64Type>();
        let missing_time: Vec<usize> = (0..n).filter(|&i| times.is_null(i)).collect();

        // Lookups, then the columns aggregate arguments read.
        let mut columns: Vec<ArrayRef> = events.columns().to_vec();
        for (l, on) in &self.lookups {
            columns.extend(l.table().join(events.column(*on))?);
        }
        let base_fields = columns.len();
        let base_schema = Arc::new(Schema::new(self.eval_schema.fields()[..base_fields].to_vec()));
        let base = RecordBatch::try_new(base_schema, columns.clone()).map_err(|e| Error::engine("stream batch", e))?;

        struct Inputs {
            keys: arrow::row::Rows,
            key_valid: Vec<bool>,
            numeric: Vec<Float64Array>,
            hashes: Vec<Vec<u64>>,
        }
        let mut inputs = Vec::with_capacity(self.windows.len());
        for w in &self.windows {
            let key_col = events.column(w.key);
            let keys = w
                .key_converter
                .convert_columns(std::slice::from_ref(key_col))
                .map_err(|e| Error::engine("window key", e))?;
            let key_valid = (0..n).map(|i| key_col.is_valid(i)).collect();
            let mut numeric = Vec::new();
            for e in &w.numeric {
                let v = cast(&evaluate(e, &base)?, &DataType::Float64).map_err(|e| Error::engine("window input", e))?;
                numeric.push(v.as_primitive::<arrow::datatypes::Float64Type>().clone());
            }
            let mut hashes = Vec::new();
            for e in &w.distinct {
                let v = evaluate(e, &base)?;
                let mut h = vec![0u64; n];
                let random = datafusion::common::hash_utils::RandomState::with_seed(0x5eed);
                datafusion::common::hash_utils::create_hashes([&v], &random, &mut h)
                    .map_err(|e| Error::engine("window distinct", e))?;
                for (i, x) in h.iter_mut().enumerate() {
                    if v.is_null(i) {
                        *x = NULL_HASH;
                    } else if *x == NULL_HASH {
                        *x = 1;
                    }
                }
                hashes.push(h);
            }
            inputs.push(Inputs { keys, key_valid, numeric, hashes });
        }

        // Event by event: lateness against the watermark so far, then every window.
        let partition_number = self.owners.partition(partition);
        let state = match self.states.get_mut(partition) {
            Some(s) => s,
            None => {
                let fresh = PartitionState {
                    watermark: Watermark::new(
                        self.config.event_time.max_out_of_orderness_ms,
                        self.config.event_time.allowed_lateness_ms,
                    ),
                    windows: self.windows.iter().map(|_| WindowState::default()).collect(),
                };
                self.states.entry(partition.clone()).or_insert(fresh)
            }
        };
        let total_aggs: usize = self.windows.iter().map(|w| w.plan.aggs.len()).sum();
        let mut agg_values: Vec<Vec<Option<f64>>> = (0..total_aggs).map(|_| Vec::with_capacity(n)).collect();
        let mut on_time = vec![false; n];
        let mut is_late = vec![false; n];
        let mut watermark_at = vec![None; n];
        let mut late_count = 0;
        let mut from_the_future = Vec::new();
        let skew = self.config.event_time.max_future_skew_ms;
        let mut out = Vec::new();
        let mut nums = Vec::new();
        let mut hs = Vec::new();
        let mut scratch = Vec::new();
        for i in 0..n {
            if times.is_null(i) {
                continue;
            }
            let t = times.value(i);
            // Judged against the message's own time, so that a replay decides the same.
            let produced = produced_ms.get(i).copied().unwrap_or(now_ms);
            if t > produced.saturating_add(skew) {
                from_the_future.push((i, t, produced));
                continue;
            }
            watermark_at[i] = state.watermark.current();
            if state.watermark.is_late(t) {
                // Too late for the windows (they are null), not for the rules that do not need them.
                late_count += 1;
                is_late[i] = true;
                for a in &mut agg_values {
                    a.push(None);
                }
                continue;
            }
            on_time[i] = true;
            let evict_before = state.watermark.oldest_on_time();
            let mut slot = 0;
            for (window_index, ((w, input), ws)) in
                self.windows.iter().zip(&inputs).zip(state.windows.iter_mut()).enumerate()
            {
                let k = w.plan.aggs.len();
                if !input.key_valid[i] {
                    for a in &mut agg_values[slot..slot + k] {
                        a.push(None);
                    }
                    slot += k;
                    continue;
                }
                nums.clear();
                nums.extend(input.numeric.iter().map(|c| if c.is_null(i) { f64::NAN } else { c.value(i) }));
                hs.clear();
                hs.extend(input.hashes.iter().map(|h| h[i]));
                out.clear();
                out.resize(k, None);
                let key = input.keys.row(i);
                let new_key =
                    ws.add_and_aggregate(&w.plan, key.as_ref(), t, &nums, &hs, evict_before, &mut out, &mut scratch);
                if new_key && self.owners.arrived(window_index, key.as_ref(), partition_number) {
                    if !self.owners.warned[window_index] {
                        self.owners.warned[window_index] = true;
                        let value =
                            arrow::util::display::array_value_to_string(events.column(w.key), i).unwrap_or_default();
                        tracing::warn!(window = %w.plan.name, key = %value, partition = %partition, "a window key arrived on two partitions: windows are kept per partition, so its aggregates undercount; produce the topic keyed by the window's key");
                    }
                }
                for (a, v) in agg_values[slot..slot + k].iter_mut().zip(&out) {
                    a.push(*v);
                }
                slot += k;
            }
            state.watermark.observe(t);
        }

        // The decided events (on time or late) with their window columns.
        let decided: Vec<bool> = (0..n).map(|i| on_time[i] || is_late[i]).collect();
        let keep = BooleanArray::from(decided.clone());
        let mut eval_columns: Vec<ArrayRef> = columns
            .iter()
            .map(|c| arrow::compute::filter(c, &keep).map_err(|e| Error::engine("stream filter", e)))
            .collect::<Result<_>>()?;
        let mut slot = 0;
        for w in &self.windows {
            for (func, _) in &w.plan.aggs {
                let values = &agg_values[slot];
                let col: ArrayRef = if matches!(func, AggFunc::Count | AggFunc::CountDistinct) {
                    let mut b = Int64Builder::with_capacity(values.len());
                    values.iter().for_each(|v| b.append_option(v.map(|x| x as i64)));
                    Arc::new(b.finish())
                } else {
                    let mut b = Float64Builder::with_capacity(values.len());
                    values.iter().for_each(|v| b.append_option(*v));
                    Arc::new(b.finish())
                };
                eval_columns.push(col);
                slot += 1;
            }
        }
        let rows = n - missing_time.len() - from_the_future.len();
        let batch_so_far = |cols: &Vec<ArrayRef>| -> Result<RecordBatch> {
            let schema = Arc::new(Schema::new(self.eval_schema.fields()[..cols.len()].to_vec()));
            RecordBatch::try_new_with_options(
                schema,
                cols.clone(),
                &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
            )
            .map_err(|e| Error::engine("stream batch", e))
        };
        for f in &self.features {
            let b = batch_so_far(&eval_columns)?;
            eval_columns.push(evaluate(f, &b)?);
        }
        match &self.score {
            None => {}
            Some(CompiledScore::Expression(e)) => {
                let b = batch_so_far(&eval_columns)?;
                let v = cast(&evaluate(e, &b)?, &DataType::Float64).map_err(|e| Error::engine("score", e))?;
                eval_columns.push(v);
            }
            Some(CompiledScore::Http(model)) => {
                let b = batch_so_far(&eval_columns)?;
                let scores = self.runtime.block_on(model.score(&b))?;
                eval_columns.push(Arc::new(scores));
            }
        }
        let evaluated = batch_so_far(&eval_columns)?;

        // Rules: the matching rule of highest priority decides.
        let mut matched_by_rule = vec![0u64; self.config.rules.len()];
        let mut masks = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let v = evaluate(&r.expr, &evaluated)?;
            let b = v.as_boolean().clone();
            matched_by_rule[r.order] = b.true_count() as u64;
            masks.push(b);
        }
        let mut decision = StringBuilder::with_capacity(rows, rows * 7);
        let mut rule = StringBuilder::with_capacity(rows, rows * 4);
        let mut matched = StringBuilder::with_capacity(rows, rows * 2);
        let mut names = String::new();
        for i in 0..rows {
            let mut first: Option<&CompiledRule> = None;
            names.clear();
            for (r, m) in self.rules.iter().zip(&masks) {
                if m.is_valid(i) && m.value(i) {
                    if first.is_none() {
                        first = Some(r);
                    }
                    if !names.is_empty() {
                        names.push(',');
                    }
                    names.push_str(&r.rule.name);
                }
            }
            match first {
                Some(r) => {
                    decision.append_value(&r.rule.decision);
                    rule.append_value(&r.rule.name);
                }
                None => {
                    decision.append_value("approve");
                    rule.append_null();
                }
            }
            matched.append_value(&names);
        }

        // Provenance of each decided event.
        let kept_offsets: Vec<i64> = (0..n).filter(|&i| decided[i]).map(|i| offsets[i]).collect();
        let late_flags = BooleanArray::from((0..n).filter(|&i| decided[i]).map(|i| is_late[i]).collect::<Vec<_>>());
        let mut out_columns: Vec<ArrayRef> = evaluated.columns()[..self.event_schema.fields().len()].to_vec();
        // Window aggregates, features and the score (lookup columns stay out of the output).
        out_columns.extend(evaluated.columns()[base_fields..].iter().cloned());
        out_columns.extend(provenance(partition, kept_offsets, now_ms));
        out_columns.push(Arc::new(decision.finish()));
        out_columns.push(Arc::new(rule.finish()));
        out_columns.push(Arc::new(matched.finish()));
        out_columns.push(Arc::new(late_flags));
        let decisions = RecordBatch::try_new(self.decisions_schema.clone(), out_columns)
            .map_err(|e| Error::engine("decisions batch", e))?;

        let late_mask = is_late;
        let late = if late_count == 0 {
            RecordBatch::new_empty(self.late_schema.clone())
        } else {
            let mask = BooleanArray::from(late_mask.clone());
            let ev = filter_record_batch(events, &mask).map_err(|e| Error::engine("late filter", e))?;
            let late_offsets: Vec<i64> = (0..n).filter(|&i| late_mask[i]).map(|i| offsets[i]).collect();
            let wms: Vec<Option<i64>> = (0..n).filter(|&i| late_mask[i]).map(|i| watermark_at[i]).collect();
            let mut cols = ev.columns().to_vec();
            cols.extend(provenance(partition, late_offsets, now_ms));
            cols.push(Arc::new(TimestampMillisecondArray::from(wms).with_timezone("UTC")));
            RecordBatch::try_new(self.late_schema.clone(), cols).map_err(|e| Error::engine("late batch", e))?
        };
        Ok(Decided { decisions, late, missing_time, from_the_future, matched: matched_by_rule })
    }
}

/// `_topic`, `_partition`, `_offset` and `decided_at`: where an output row came from and when it was decided.
pub fn provenance_fields() -> Vec<Field> {
    vec![
        Field::new("_topic", DataType::Utf8, false),
        Field::new("_partition", DataType::Int32, false),
        Field::new("_offset", DataType::Int64, false),
        Field::new("decided_at", ts_type(), false),
    ]
}

fn provenance(partition: &PartitionId, offsets: Vec<i64>, now_ms: i64) -> Vec<ArrayRef> {
    let n = offsets.len();
    vec![
        Arc::new(StringArray::from(vec![partition.topic.as_ref(); n])),
        Arc::new(Int32Array::from(vec![partition.partition; n])),
        Arc::new(Int64Array::from(offsets)),
        Arc::new(TimestampMillisecondArray::from(vec![now_ms; n]).with_timezone("UTC")),
    ]
}
