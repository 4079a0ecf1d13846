//! The built-in payment generator: a deterministic stream of card payments with known fraud, for the fraud demo, the
//! tests and the benchmarks. Every event's ground truth is known, so precision and recall can be measured exactly.
//!
//! Clean traffic: each card pays about every five minutes of event time (cards take turns), always in its user's home
//! country, mostly small amounts and sometimes a large one at home. Fraud comes in three shapes:
//! * **big foreign**: a payment over 5,000 in a country that is not the user's home;
//! * **impossible travel**: minutes after a genuine payment at home, the same card pays abroad;
//! * **card testing**: seconds after a genuine payment, three tiny payments on the same card.
//!
//! Some clean events can be made *late* (their event time far behind the others) to exercise the late-data output.
//! Event times start at 2026-03-25T00:00:00Z and move forward about `300s / cards` per event, with up to 2 seconds of
//! disorder.

use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::GeneratorConfig;

pub const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "ES", "IT", "NL", "BR", "IN", "JP"];
const MERCHANTS: &[&str] = &["grocer", "fuel", "electronics", "travel", "fashion", "pharmacy", "cafe", "online"];
/// 2026-03-25T00:00:00Z.
pub const START_MS: i64 = 1_774_396_800_000;
/// The disorder of clean events (the stream file's `max_out_of_orderness` should be at least this).
pub const JITTER_MS: i64 = 2_000;
/// How far behind a late event is (beyond any sensible allowed lateness).
pub const LATE_BY_MS: i64 = 3_600_000;

/// One generated payment and its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub transaction_id: String,
    pub card_id: String,
    pub user_id: String,
    pub amount: f64,
    pub country: String,
    pub merchant: String,
    pub ts_ms: i64,
    /// `legit`, `fraud` or `late` (a clean event delivered late).
    pub label: &'static str,
    /// For fraud: the pattern (`big_foreign`, `impossible_travel`, `card_testing`).
    pub pattern: &'static str,
}

impl Payment {
    pub fn to_json(&self) -> String {
        let ts = chrono::DateTime::from_timestamp_millis(self.ts_ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default();
        format!(
            r#"{{"transaction_id":"{}","card_id":"{}","user_id":"{}","amount":{:.2},"country":"{}","merchant":"{}","ts":"{}"}}"#,
            self.transaction_id, self.card_id, self.user_id, self.amount, self.country, self.merchant, ts
        )
    }
}

/// The user of a card and their home country.
pub fn home_country(card: u64) -> &'static str {
    COUNTRIES[(card.wrapping_mul(2_654_435_761) >> 7) as usize % COUNTRIES.len()]
}

/// `user_id,home_country,segment` for every card's user, the lookup table of the demo.
pub fn users_csv(cards: u64) -> String {
    let mut out = String::from("user_id,home_country,segment\n");
    for c in 0..cards {
        let segment = if c % 7 == 0 { "premium" } else { "standard" };
        out.push_str(&format!("user-{c},{},{segment}\n", home_country(c)));
    }
    out
}

#[derive(PartialEq, Eq)]
struct Pending {
    ts_ms: i64,
    seq: u64,
    card: u64,
    kind: u8,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // BinaryHeap is a max-heap: the earliest event first.
        (other.ts_ms, other.seq).cmp(&(self.ts_ms, self.seq))
    }
}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A deterministic payment sequence: the same config yields the same events, so a generator source can resume at
/// any offset by generating up to it.
pub struct PaymentGenerator {
    config: GeneratorConfig,
    rng: SmallRng,
    slot: u64,
    emitted: u64,
    step_ms: i64,
    stride: u64,
    pending: BinaryHeap<Pending>,
    seq: u64,
}

impl std::fmt::Debug for PaymentGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentGenerator").field("emitted", &self.emitted).finish()
    }
}

impl PaymentGenerator {
    pub fn new(config: &GeneratorConfig) -> PaymentGenerator {
        let cards = config.cards.max(1);
        // A stride coprime with the number of cards visits every card once per `cards` slots, in a scrambled order.
        let mut stride = (cards as f64 * 0.618_033_988_7) as u64 | 1;
        while gcd(stride, cards) != 1 {
            stride += 1;
        }
        PaymentGenerator {
            config: config.clone(),
            rng: SmallRng::seed_from_u64(config.seed),
            slot: 0,
            emitted: 0,
            step_ms: (300_000 / cards as i64).max(1),
            stride: stride % cards.max(2),
            pending: BinaryHeap::new(),
            seq: 0,
        }
    }

    /// Events generated so far (the offset of the next one).
    pub fn position(&self) -> u64 {
        self.emitted
    }

    pub fn finished(&self) -> bool {
        self.emitted >= self.config.events
    }

    fn id(&mut self) -> String {
        let id = format!("tx-{:010}", self.seq);
        self.seq += 1;
        id
    }

    fn foreign(&mut self, card: u64) -> &'static str {
        let home = home_country(card);
        loop {
            let c = COUNTRIES[self.rng.random_range(0..COUNTRIES.len())];
            if c != home {
                return c;
            }
        }
    }

    fn merchant(&mut self) -> String {
        MERCHANTS[self.rng.random_range(0..MERCHANTS.len())].to_string()
    }

    fn payment(
        &mut self,
        card: u64,
        ts_ms: i64,
        amount: f64,
        country: &str,
        label: &'static str,
        pattern: &'static str,
    ) -> Payment {
        let merchant = self.merchant();
        Payment {
            transaction_id: self.id(),
            card_id: format!("card-{card}"),
            user_id: format!("user-{card}"),
            amount: (amount * 100.0).round() / 100.0,
            country: country.to_string(),
            merchant,
            ts_ms,
            label,
            pattern,
        }
    }

    /// The next payment, or `None` after `events`.
    pub fn next_payment(&mut self) -> Option<Payment> {
        if self.finished() {
            return None;
        }
        let slot_ts = START_MS + self.slot as i64 * self.step_ms;
        if let Some(p) = self.pending.peek() {
            if p.ts_ms <= slot_ts {
                let p = self.pending.pop().expect("peeked");
                let payment = match p.kind {
                    0 => {
                        let amount = self.rng.random_range(20.0..900.0);
                        let country = self.foreign(p.card);
                        self.payment(p.card, p.ts_ms, amount, country, "fraud", "impossible_travel")
                    }
                    _ => {
                        let amount = self.rng.random_range(1.0..20.0);
                        let home = home_country(p.card);
                        self.payment(p.card, p.ts_ms, amount, home, "fraud", "card_testing")
                    }
                };
                self.emitted += 1;
                return Some(payment);
            }
        }
        let cards = self.config.cards.max(1);
        let card = (self.slot * self.stride) % cards;
        self.slot += 1;
        let ts = slot_ts - self.rng.random_range(0..=JITTER_MS.min(self.step_ms * 4));
        let home = home_country(card);
        let roll: f64 = self.rng.random();
        // Each pattern makes about `per` fraud events; share the fraud rate among the three.
        let rate = self.config.fraud_rate;
        let payment = if roll < rate / 3.0 {
            let amount = self.rng.random_range(5_000.5..9_999.0);
            let country = self.foreign(card);
            self.payment(card, ts, amount, country, "fraud", "big_foreign")
        } else {
            let mut anchor = false;
            if roll < rate / 3.0 + rate / 3.0 {
                // A genuine payment now, the cloned card abroad a few minutes later.
                let later = slot_ts + self.rng.random_range(30_000..170_000);
                self.pending.push(Pending { ts_ms: later, seq: self.slot, card, kind: 0 });
                anchor = true;
            } else if roll < rate / 3.0 + rate / 3.0 + rate / 9.0 {
                // A genuine payment now, three tiny test payments within the next half minute.
                for (i, after) in [5_000, 15_000, 30_000].into_iter().enumerate() {
                    self.pending.push(Pending { ts_ms: slot_ts + after, seq: self.slot * 4 + i as u64, card, kind: 1 });
                }
                anchor = true;
            }
            let big = self.rng.random_bool(0.01);
            let amount =
                if big { self.rng.random_range(5_000.5..12_000.0) } else { self.rng.random_range(20.0..400.0) };
            // The genuine payment a fraud pattern follows is never late: the pattern is judged against it.
            let late = !anchor && self.config.late_rate > 0.0 && self.rng.random_bool(self.config.late_rate);
            if late {
                self.payment(card, ts - LATE_BY_MS, amount, home, "late", "")
            } else {
                self.payment(card, ts, amount, home, "legit", "")
            }
        };
        self.emitted += 1;
        Some(payment)
    }

    /// Skips to `offset` (the generator is deterministic, so this regenerates and drops the events before it).
    pub fn seek(&mut self, offset: u64) {
        *self = PaymentGenerator::new(&self.config);
        while self.emitted < offset && self.next_payment().is_some() {}
    }

    /// Up to `max` events as an Arrow batch of the demo's payment schema.
    pub fn next_batch(&mut self, max: usize) -> Option<RecordBatch> {
        let mut b = BatchBuilder::with_capacity(max);
        while b.len < max {
            match self.next_payment() {
                Some(p) => b.push(&p),
                None => break,
            }
        }
        (b.len > 0).then(|| b.finish())
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The schema of generated payments (as the demo stream file declares it).
pub fn payment_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("transaction_id", DataType::Utf8, true),
        Field::new("card_id", DataType::Utf8, true),
        Field::new("user_id", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("merchant", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
    ]))
}

struct BatchBuilder {
    len: usize,
    id: StringBuilder,
    card: StringBuilder,
    user: StringBuilder,
    amount: Float64Builder,
    country: StringBuilder,
    merchant: StringBuilder,
    ts: TimestampMillisecondBuilder,
}

impl BatchBuilder {
    fn with_capacity(n: usize) -> Self {
        BatchBuilder {
            len: 0,
            id: StringBuilder::with_capacity(n, n * 13),
            card: StringBuilder::with_capacity(n, n * 10),
            user: StringBuilder::with_capacity(n, n * 10),
            amount: Float64Builder::with_capacity(n),
            country: StringBuilder::with_capacity(n, n * 2),
            merchant: StringBuilder::with_capacity(n, n * 8),
            ts: TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC"),
        }
    }

    fn push(&mut self, p: &Payment) {
        self.len += 1;
        self.id.append_value(&p.transaction_id);
        self.card.append_value(&p.card_id);
        self.user.append_value(&p.user_id);
        self.amount.append_value(p.amount);
        self.country.append_value(&p.country);
        self.merchant.append_value(&p.merchant);
        self.ts.append_value(p.ts_ms);
    }

    fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.card.finish()),
            Arc::new(self.user.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.merchant.finish()),
            Arc::new(self.ts.finish()),
        ];
        RecordBatch::try_new(payment_schema(), columns).expect("generator columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(events: u64) -> GeneratorConfig {
        GeneratorConfig { events, seed: 7, cards: 500, fraud_rate: 0.05, late_rate: 0.0 }
    }

    #[test]
    fn the_sequence_is_deterministic_and_seekable() {
        let mut a = PaymentGenerator::new(&config(3_000));
        let all: Vec<Payment> = std::iter::from_fn(|| a.next_payment()).collect();
        assert_eq!(all.len(), 3_000);
        let mut b = PaymentGenerator::new(&config(3_000));
        b.seek(1_234);
        assert_eq!(b.next_payment().as_ref(), Some(&all[1_234]));
        let patterns: std::collections::HashSet<&str> = all.iter().map(|p| p.pattern).collect();
        for p in ["big_foreign", "impossible_travel", "card_testing"] {
            assert!(patterns.contains(p), "{p} never generated");
        }
        // Clean payments always happen at home; a card's clean payments are minutes apart.
        assert!(all.iter().filter(|p| p.label == "legit").all(|p| {
            let card: u64 = p.card_id[5..].parse().unwrap();
            p.country == home_country(card)
        }));
    }

    #[test]
    fn batches_carry_every_event() {
        let mut g = PaymentGenerator::new(&config(2_500));
        let mut rows = 0;
        while let Some(b) = g.next_batch(1_000) {
            rows += b.num_rows();
        }
        assert_eq!(rows, 2_500);
    }
}
