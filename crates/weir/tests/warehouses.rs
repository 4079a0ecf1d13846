//! The conformance suite of the warehouse sinks, black-box against real servers on loopback: every sink passes the
//! same tests as the PostgreSQL sink. Each type round-trips (read back through the warehouse's own client), each
//! write mode re-runs as the README promises, a failed check, a failed statement or a killed load leaves the target
//! as it was, quarantined rows land beside the target, ambiguous merge keys are refused, and the connection's secret
//! never appears in anything weir prints.
//!
//! PostgreSQL runs on Debian's server (`common/pg.rs`); Snowflake on fakesnow (`common/snowflake.rs`); BigQuery on
//! bqemulator (`common/bigquery.rs`).

mod common;

use common::text;

/// How a column is compared: each warehouse prints values of this kind in one canonical text form (see
/// `common/snowflake.rs`): NULL as `NULL`, booleans `true`/`false`, timestamps `YYYY-MM-DD HH:MM:SS.ffffff`, with a
/// time zone in UTC marked `Z`.
#[derive(Clone, Copy)]
enum Kind {
    Plain,
    /// A decimal, printed without trailing zeros (BigQuery's NUMERIC has a fixed scale of 9).
    Decimal,
    Timestamp,
    TimestampTz,
}

/// A warehouse under test.
trait Warehouse {
    /// The sink's `type:`.
    fn kind(&self) -> &'static str;
    /// The weir.yaml connection `wh`, its password read from `${env:WH_SECRET}`.
    fn connection(&self) -> String;
    /// `schema.table` for a table of this test.
    fn table(&self, name: &str) -> String;
    /// The rows of `table`, ordered by its first column, `|`-separated in the canonical form.
    fn rows(&self, table: &str, columns: &[(&str, Kind)]) -> String;
    /// Sink settings that make a load of a few MB span several staged files (empty for a sink that streams).
    fn small_files(&self) -> &'static str {
        ", file_mb: 1"
    }
    fn count(&self, table: &str) -> String {
        self.rows(&format!("(SELECT count(*) AS n FROM {table})"), &[("n", Kind::Plain)])
    }
}

struct Postgres {
    db: String,
}

impl Postgres {
    fn new(test: &str) -> Postgres {
        Postgres { db: common::pg::server().database(&format!("wh_{test}")) }
    }
}

impl Warehouse for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn small_files(&self) -> &'static str {
        ""
    }

    fn connection(&self) -> String {
        let port =
            common::pg::server().url(&self.db).rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
        format!(
            "{{type: postgres, host: 127.0.0.1, port: \"{port}\", user: weir, dbname: {}, password: \"${{env:WH_SECRET}}\"}}",
            self.db
        )
    }

    fn table(&self, name: &str) -> String {
        format!("public.{name}")
    }

    fn rows(&self, table: &str, columns: &[(&str, Kind)]) -> String {
        let exprs: Vec<String> = columns
            .iter()
            .map(|(c, kind)| {
                let text = match kind {
                    Kind::Plain => format!("{c}::text"),
                    Kind::Decimal => format!("trim_scale({c})::text"),
                    Kind::Timestamp => format!("to_char({c}, 'YYYY-MM-DD HH24:MI:SS.US')"),
                    Kind::TimestampTz => format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || 'Z'"),
                };
                format!("COALESCE({text}, 'NULL')")
            })
            .collect();
        let sql = format!("SELECT concat_ws('|', {}) FROM {table} AS t ORDER BY 1", exprs.join(", "));
        // One text per row, so `ORDER BY 1` orders by every column.
        common::pg::server().psql(&self.db, &sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

struct Snowflake;

impl Warehouse for Snowflake {
    fn kind(&self) -> &'static str {
        "snowflake"
    }

    fn connection(&self) -> String {
        format!(
            "{{type: snowflake, account: weir, user: loader, password: \"${{env:WH_SECRET}}\", database: WEIR, schema: MARTS, url: \"{}\"}}",
            common::snowflake::server().url()
        )
    }

    fn table(&self, name: &str) -> String {
        format!("marts.{name}")
    }

    fn rows(&self, table: &str, columns: &[(&str, Kind)]) -> String {
        let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let order: Vec<String> = (1..=names.len()).map(|i| i.to_string()).collect();
        // fakesnow answers a NULL timestamp as 1970-01-01 (its Arrow encoding loses the null), so each column's
        // nullness is read too, and NULL put back here.
        let nulls: Vec<String> = names.iter().map(|c| format!("{c} IS NULL")).collect();
        let sql =
            format!("SELECT {}, {} FROM {table} ORDER BY {}", names.join(", "), nulls.join(", "), order.join(", "));
        let text = common::snowflake::server().query(&sql);
        text.lines()
            .map(|line| {
                // The flags are the last fields; the values before them may hold `|` (text).
                let mut fields: Vec<&str> = line.rsplitn(names.len() + 1, '|').collect();
                let values = fields.pop().unwrap_or_default();
                fields.reverse();
                if !fields.contains(&"true") {
                    return values.to_string();
                }
                let parts = values.splitn(names.len(), '|').zip(&fields);
                parts.map(|(v, null)| if *null == "true" { "NULL" } else { v }).collect::<Vec<_>>().join("|")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

struct BigQuery;

impl Warehouse for BigQuery {
    fn kind(&self) -> &'static str {
        "bigquery"
    }

    fn connection(&self) -> String {
        // The emulator takes no token, so this connection holds no secret (the secrets test does not run here; the
        // service account's key is kept out of `Debug` and errors by `bigquery_client`'s own tests).
        format!(
            "{{type: bigquery, project: {}, url: \"{}\"}}",
            common::bigquery::PROJECT,
            common::bigquery::server().url()
        )
    }

    fn table(&self, name: &str) -> String {
        format!("marts.{name}")
    }

    fn rows(&self, table: &str, columns: &[(&str, Kind)]) -> String {
        let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let order: Vec<String> = (1..=names.len()).map(|i| i.to_string()).collect();
        common::bigquery::server().query(&format!(
            "SELECT {} FROM {table} ORDER BY {}",
            names.join(", "),
            order.join(", ")
        ))
    }
}

const SECRET: &str = "s3cr3t-Pa55word-never-printed";

/// A project whose pipeline `p` loads `in.csv` (typed by `schema`) into `sink`.
fn project(wh: &dyn Warehouse, schema: &str, steps: &str, sink: &str) -> tempfile::TempDir {
    let tmp = common::project("wh", &[]);
    std::fs::write(
        tmp.path().join("weir.yaml"),
        format!("version: 1\nname: wh\nlake:\n  root: lake\nconnections:\n  wh: {}\n", wh.connection()),
    )
    .unwrap();
    set_pipeline(tmp.path(), schema, steps, sink);
    tmp
}

fn set_pipeline(dir: &std::path::Path, schema: &str, steps: &str, sink: &str) {
    std::fs::create_dir_all(dir.join("pipelines")).unwrap();
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        format!(
            "version: 1\ntasks:\n  - name: load\n    source: {{type: csv, path: in.csv, schema: {{{schema}}}}}\n{steps}    sink: {{connection: wh, {sink}}}\n"
        ),
    )
    .unwrap();
}

fn run(dir: &std::path::Path, date: &str) -> String {
    let o = common::command(dir, &["run", "p", "--date", date]).env("WH_SECRET", SECRET).output().unwrap();
    assert!(o.status.success(), "weir run failed:\n{}", text(&o));
    text(&o)
}

fn run_fails(dir: &std::path::Path, date: &str) -> String {
    let o = common::command(dir, &["run", "p", "--date", date]).env("WH_SECRET", SECRET).output().unwrap();
    assert!(!o.status.success(), "weir run should have failed:\n{}", text(&o));
    text(&o)
}

fn csv(dir: &std::path::Path, header: &str, rows: &str) {
    std::fs::write(dir.join("in.csv"), format!("{header}\n{rows}")).unwrap();
}

const TYPED: &str = "id: bigint, amount: \"decimal(12,2)\", ratio: double, flag: boolean, day: date, seen_at: timestamp, paid_at: timestamptz, small: int";

fn every_type_round_trips(wh: &dyn Warehouse) {
    let table = wh.table("every_type");
    let tmp = project(wh, TYPED, "", &format!("type: {}, table: {table}, mode: replace", wh.kind()));
    let dir = tmp.path();
    csv(
        dir,
        "id,amount,ratio,flag,day,seen_at,paid_at,small,name",
        "1,100.50,0.1,true,2026-03-01,2026-03-01 10:00:00.123456,2026-03-01T10:00:00+02:00,-7,\"héllo \"\"quoted\"\", | pipe\"\n\
         2,,,,,,,,\n\
         3,-0.01,-1e300,false,1970-01-01,1999-12-31 23:59:59,2000-01-01T00:00:00Z,2147483647,zürich\n\
         9007199254740993,9999999999.99,2.5e-10,true,2262-04-11,1900-01-01 00:00:00.000001,2262-04-11T23:47:16.854775Z,0,x\n",
    );
    run(dir, "2026-03-01");
    let columns = [
        ("id", Kind::Plain),
        ("amount", Kind::Decimal),
        ("ratio", Kind::Plain),
        ("flag", Kind::Plain),
        ("day", Kind::Plain),
        ("seen_at", Kind::Timestamp),
        ("paid_at", Kind::TimestampTz),
        ("small", Kind::Plain),
        ("name", Kind::Plain),
    ];
    assert_eq!(
        wh.rows(&table, &columns),
        "1|100.5|0.1|true|2026-03-01|2026-03-01 10:00:00.123456|2026-03-01 08:00:00.000000Z|-7|héllo \"quoted\", | pipe\n\
         2|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n\
         3|-0.01|-1e+300|false|1970-01-01|1999-12-31 23:59:59.000000|2000-01-01 00:00:00.000000Z|2147483647|zürich\n\
         9007199254740993|9999999999.99|2.5e-10|true|2262-04-11|1900-01-01 00:00:00.000001|2262-04-11 23:47:16.854775Z|0|x"
    );
}

/// replace twice leaves the latest rows; merge twice leaves the same table; append twice adds the rows again; a new
/// output column is added to the table.
fn modes_rerun_as_documented(wh: &dyn Warehouse) {
    let table = wh.table("revenue");
    let schema = "revenue: \"decimal(12,2)\", day: date";
    let sink = |mode: &str| format!("type: {}, table: {table}, {mode}", wh.kind());
    let tmp = project(wh, schema, "", &sink("mode: replace"));
    let dir = tmp.path();
    let rows = || wh.rows(&table, &[("day", Kind::Plain), ("country", Kind::Plain), ("revenue", Kind::Decimal)]);
    let header = "day,country,revenue";
    csv(dir, header, "2026-03-01,DE,100.50\n2026-03-01,FR,20.00\n");
    run(dir, "2026-03-01");
    csv(dir, header, "2026-03-02,US,7.25\n");
    run(dir, "2026-03-02");
    run(dir, "2026-03-02");
    assert_eq!(rows(), "2026-03-02|US|7.25");

    set_pipeline(dir, schema, "", &sink("mode: merge, keys: [day, country]"));
    csv(dir, header, "2026-03-02,US,8.00\n2026-03-02,BR,3.00\n");
    run(dir, "2026-03-02");
    run(dir, "2026-03-02");
    assert_eq!(rows(), "2026-03-02|BR|3\n2026-03-02|US|8");

    set_pipeline(dir, schema, "", &sink("mode: append"));
    csv(dir, header, "2026-03-04,JP,1.00\n");
    run(dir, "2026-03-04");
    run(dir, "2026-03-04");
    assert_eq!(rows(), "2026-03-02|BR|3\n2026-03-02|US|8\n2026-03-04|JP|1\n2026-03-04|JP|1");

    // A new output column joins the table; the rows already there have NULL in it.
    csv(dir, "day,country,revenue,orders", "2026-03-05,CN,2.00,4\n");
    run(dir, "2026-03-05");
    assert_eq!(
        wh.rows(&table, &[("day", Kind::Plain), ("country", Kind::Plain), ("orders", Kind::Plain)]),
        "2026-03-02|BR|NULL\n2026-03-02|US|NULL\n2026-03-04|JP|NULL\n2026-03-04|JP|NULL\n2026-03-05|CN|4"
    );
}

/// A failed error check, ambiguous merge keys and a process killed just before the commit each leave the target as
/// it was; the next run loads.
fn failures_leave_the_target_as_it_was(wh: &dyn Warehouse) {
    let table = wh.table("guarded");
    let schema = "revenue: \"decimal(12,2)\"";
    let checks = "    checks:\n      - not_null: [country]\n";
    let sink = |mode: &str| format!("type: {}, table: {table}, {mode}", wh.kind());
    let tmp = project(wh, schema, checks, &sink("mode: replace"));
    let dir = tmp.path();
    let rows = || wh.rows(&table, &[("country", Kind::Plain), ("revenue", Kind::Decimal)]);
    let header = "country,revenue";
    csv(dir, header, "DE,1.00\nFR,2.00\n");
    run(dir, "2026-03-01");
    let before = "DE|1\nFR|2";
    assert_eq!(rows(), before);

    csv(dir, header, ",3.00\nUS,4.00\n");
    let err = run_fails(dir, "2026-03-02");
    assert!(err.contains("not_null(country)"), "{err}");
    assert_eq!(rows(), before);

    set_pipeline(dir, schema, checks, &sink("mode: merge, keys: [country]"));
    csv(dir, header, "US,1.00\nUS,2.00\n");
    let err = run_fails(dir, "2026-03-02");
    assert!(err.contains("more than once") && err.contains("(US)"), "{err}");
    assert_eq!(rows(), before);

    // Killed after every statement of the load ran, before its commit.
    csv(dir, header, "DE,9.00\nUS,4.00\n");
    let crashed = common::command(dir, &["run", "p", "--date", "2026-03-03"])
        .env("WH_SECRET", SECRET)
        .env("WEIR_FAILPOINT", "warehouse_before_commit")
        .output()
        .unwrap();
    assert!(text(&crashed).contains("WEIR_FAILPOINT: stopping at"), "{}", text(&crashed));
    assert_eq!(rows(), before);
    run(dir, "2026-03-03");
    assert_eq!(rows(), "DE|9\nFR|2\nUS|4");
}

/// A load larger than one staged file arrives whole: every row once, twice over (merge re-run), the sums exact.
fn large_loads_span_many_files(wh: &dyn Warehouse) {
    let table = wh.table("large");
    let sink = format!("type: {}, table: {table}, mode: merge, keys: [id]{}", wh.kind(), wh.small_files());
    let tmp = project(wh, "id: bigint, amount: \"decimal(12,2)\"", "", &sink);
    let dir = tmp.path();
    let rows: String =
        (0..300_000u64).map(|i| format!("{i},{}.{:02},customer-{}\n", i % 99991, i % 100, i * 7919)).collect();
    csv(dir, "id,amount,customer", &rows);
    run(dir, "2026-03-01");
    run(dir, "2026-03-01");
    // In cents, as an integer: an emulator may sum decimals as floats (fakesnow does).
    let totals = wh.rows(
        &format!("(SELECT count(*) AS n, count(DISTINCT id) AS ids, sum(CAST(amount * 100 AS BIGINT)) AS cents FROM {table})"),
        &[("n", Kind::Plain), ("ids", Kind::Plain), ("cents", Kind::Plain)],
    );
    let cents: u64 = (0..300_000u64).map(|i| (i % 99991) * 100 + i % 100).sum();
    assert_eq!(totals, format!("300000|300000|{cents}"));
}

/// Rows a step sets aside land in `<table>__rejected` beside the target, in the same transaction: added by merge and
/// append, replaced by replace.
fn quarantined_rows_land_beside_the_target(wh: &dyn Warehouse) {
    let table = wh.table("prices");
    let steps = "    steps:\n      - cast: {columns: {amount: double}, on_error: quarantine}\n";
    let sink = |mode: &str| format!("type: {}, table: {table}, {mode}", wh.kind());
    let tmp = project(wh, "sku: text", steps, &sink("mode: merge, keys: [sku]"));
    let dir = tmp.path();
    csv(dir, "sku,amount", "a,1\nb,2\nc,oops\n");
    let out = run(dir, "2026-03-01");
    run(dir, "2026-03-01");
    assert_eq!(wh.rows(&table, &[("sku", Kind::Plain), ("amount", Kind::Plain)]), "a|1\nb|2", "{out}");
    let rejected = format!("{table}__rejected");
    assert_eq!(wh.rows(&rejected, &[("value", Kind::Plain), ("task", Kind::Plain)]), "oops|load\noops|load");

    set_pipeline(dir, "sku: text", steps, &sink("mode: replace"));
    csv(dir, "sku,amount", "x,1\ny,bad\n");
    run(dir, "2026-03-02");
    assert_eq!(wh.rows(&rejected, &[("value", Kind::Plain)]), "bad");
    csv(dir, "sku,amount", "x,1\n");
    run(dir, "2026-03-03");
    assert_eq!(wh.count(&rejected), "0");
}

/// The connection's password never appears in what weir prints, whether the load succeeds or fails, even in debug
/// logs.
fn secrets_never_appear_in_output(wh: &dyn Warehouse) {
    let table = wh.table("secretive");
    let tmp = project(wh, "n: int", "", &format!("type: {}, table: {table}, mode: merge, keys: [n]", wh.kind()));
    let dir = tmp.path();
    let weir =
        |args: &[&str]| common::command(dir, args).env("WH_SECRET", SECRET).env("WEIR_LOG", "debug").output().unwrap();
    csv(dir, "n", "1\n2\n");
    for o in [weir(&["run", "p", "--date", "2026-03-01"]), weir(&["runs"]), weir(&["validate"])] {
        assert!(o.status.success(), "{}", text(&o));
        assert!(!text(&o).contains(SECRET), "{}", text(&o));
    }
    csv(dir, "n", "1\n1\n");
    let o = weir(&["run", "p", "--date", "2026-03-02"]);
    assert!(!o.status.success() && !text(&o).contains(SECRET), "{}", text(&o));
}

macro_rules! conformance {
    ($module:ident, $warehouse:expr $(, $secrets:ident)?) => {
        mod $module {
            use super::*;

            #[test]
            fn every_type_round_trips() {
                super::every_type_round_trips(&$warehouse("types"));
            }

            #[test]
            fn modes_rerun_as_documented() {
                super::modes_rerun_as_documented(&$warehouse("modes"));
            }

            #[test]
            fn failures_leave_the_target_as_it_was() {
                super::failures_leave_the_target_as_it_was(&$warehouse("failures"));
            }

            #[test]
            fn large_loads_span_many_files() {
                super::large_loads_span_many_files(&$warehouse("large"));
            }

            #[test]
            fn quarantined_rows_land_beside_the_target() {
                super::quarantined_rows_land_beside_the_target(&$warehouse("quarantine"));
            }

            $(
                #[test]
                fn secrets_never_appear_in_output() {
                    let _: &str = stringify!($secrets);
                    super::secrets_never_appear_in_output(&$warehouse("secrets"));
                }
            )?        }
    };
}

conformance!(postgres, Postgres::new, secrets);
conformance!(snowflake, |_: &str| Snowflake, secrets);
conformance!(bigquery, |_: &str| BigQuery);

/// Snowflake's own: a key-pair login, JSON text stored as VARIANT (queried by path), a name that is not plain kept
/// exactly, and a bad key refused before anything is loaded.
#[test]
fn snowflake_logs_in_with_a_key_pair_and_stores_json_as_variant() {
    let server = common::snowflake::server();
    let tmp = common::project("wh", &[]);
    let dir = tmp.path();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../weir-connect/testdata/snowflake_test_key.p8"),
        dir.join("key.p8"),
    )
    .unwrap();
    let weir_yaml = |key: &str| {
        format!(
            "version: 1\nname: wh\nlake:\n  root: lake\nconnections:\n  wh: {{type: snowflake, account: weir, user: loader, private_key: \"${{file:{key}}}\", database: WEIR, schema: MARTS, url: \"{}\"}}\n",
            server.url()
        )
    };
    std::fs::write(dir.join("weir.yaml"), weir_yaml("key.p8")).unwrap();
    set_pipeline(dir, "id: int", "", "type: snowflake, table: marts.events, mode: merge, keys: [id], variant: [attrs]");
    csv(dir, "id,attrs,Event Name", "1,\"{\"\"a\"\": 1, \"\"tags\"\": [\"\"x\"\"]}\",opened\n2,[1],closed\n3,,\n");
    run(dir, "2026-03-01");
    run(dir, "2026-03-01");
    assert_eq!(
        server.query("SELECT id, attrs:a::int, \"Event Name\", attrs IS NULL FROM marts.events ORDER BY id"),
        "1|1|opened|false\n2|NULL|closed|false\n3|NULL|NULL|true"
    );
    // A value that is not JSON fails the load, naming it; the table keeps its rows.
    csv(dir, "id,attrs,Event Name", "4,{oops,x\n");
    let err = run_fails(dir, "2026-03-02");
    assert!(err.contains("PARSE_JSON") || err.contains("JSON"), "{err}");
    assert_eq!(server.query("SELECT count(*) FROM marts.events"), "3");

    // A key that is not a PKCS#8 key is refused, naming the setting.
    std::fs::write(dir.join("bad.p8"), "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n")
        .unwrap();
    std::fs::write(dir.join("weir.yaml"), weir_yaml("bad.p8")).unwrap();
    let err = run_fails(dir, "2026-03-03");
    assert!(err.contains("private_key"), "{err}");
}

/// BigQuery's own: JSON text stored as JSON (queried by path), and a failed job reported with BigQuery's error list,
/// the table keeping its rows.
#[test]
fn bigquery_stores_json_and_reports_a_failed_job_with_its_errors() {
    let server = common::bigquery::server();
    let tmp = project(
        &BigQuery,
        "id: int",
        "",
        "type: bigquery, table: marts.events, mode: merge, keys: [id], json: [attrs]",
    );
    let dir = tmp.path();
    csv(dir, "id,attrs", "1,\"{\"\"a\"\": 1, \"\"tags\"\": [\"\"x\"\"]}\"\n2,[1]\n3,\n");
    run(dir, "2026-03-01");
    run(dir, "2026-03-01");
    assert_eq!(
        server.query("SELECT id, JSON_VALUE(attrs, '$.a'), attrs IS NULL FROM marts.events ORDER BY id"),
        "1|1|false\n2|NULL|false\n3|NULL|true"
    );
    csv(dir, "id,attrs", "4,{oops\n");
    let err = run_fails(dir, "2026-03-02");
    assert!(err.contains("bigquery job") && err.contains("failed:"), "{err}");
    assert_eq!(server.query("SELECT count(*) FROM marts.events"), "3");
}

/// The handbook's scenario end to end (`examples/daily_sales`, unchanged): two days of messy orders land in a lake
/// in S3 (moto), are cleaned and aggregated, and daily revenue is published to Snowflake (fakesnow), all under the
/// scheduler (`weir serve` catching up the two days). Snowflake then holds exactly the lake's gold table; re-running a
/// day leaves it the same.
#[test]
fn the_daily_sales_example_lands_in_s3_and_publishes_to_snowflake_under_the_scheduler() {
    let s3 = common::s3::server();
    let (status, body) = s3.request("PUT", "/weir-example");
    assert!(status == 200 || body.contains("BucketAlready"), "create bucket: {status} {body}");
    let snowflake = common::snowflake::server();
    snowflake.query("CREATE DATABASE IF NOT EXISTS ANALYTICS");
    snowflake.query("CREATE SCHEMA IF NOT EXISTS ANALYTICS.MARTS");

    let tmp = common::daily_sales_example();
    let dir = tmp.path();

    let env = [
        ("S3_ENDPOINT", s3.endpoint()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
        ("SNOWFLAKE_ACCOUNT", "weir".to_string()),
        ("SNOWFLAKE_USER", "loader".to_string()),
        ("SNOWFLAKE_PASSWORD", SECRET.to_string()),
        ("SNOWFLAKE_URL", snowflake.url()),
    ];
    let weir = |args: &[&str]| {
        let mut c = common::command(dir, args);
        c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    };
    let mut serve = weir(&["serve", "--bind", "127.0.0.1:0", "--parallelism", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _api = common::address_of(&mut serve);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(240);
    let runs = || {
        let o = weir(&["runs"]).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    while runs().matches("success").count() < 2 {
        if runs().contains("failed") {
            let again = weir(&["run", "daily_sales", "--date", "2026-03-24"]).output().unwrap();
            panic!("a run failed:\n{}\nrun again by hand:\n{}", runs(), text(&again));
        }
        assert!(std::time::Instant::now() < deadline, "the two days did not finish:\n{}", runs());
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    serve.kill().unwrap();
    let _ = serve.wait();

    let gold = |date: &str| {
        let o = weir(&[
            "sql",
            &format!("SELECT order_date, country, orders, revenue_usd FROM gold.daily_revenue WHERE date = '{date}' ORDER BY country"),
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).lines().skip(1).map(|l| l.replace(',', "|")).collect::<Vec<_>>().join("\n")
    };
    let published = |date: &str| {
        snowflake.query(&format!(
            "SELECT order_date, country, orders, revenue_usd FROM ANALYTICS.MARTS.DAILY_REVENUE WHERE order_date = '{date}' ORDER BY country"
        ))
    };
    for date in ["2026-03-24", "2026-03-25"] {
        let lake = gold(date);
        assert!(lake.lines().count() >= 3, "{lake}");
        assert_eq!(published(date), lake, "{date}");
    }
    // Re-running a day publishes the same rows again: merge on (order_date, country) changes nothing.
    let o = weir(&["run", "daily_sales", "--date", "2026-03-25"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(published("2026-03-25"), gold("2026-03-25"));
    assert_eq!(
        snowflake.query("SELECT count(*) FROM ANALYTICS.MARTS.DAILY_REVENUE"),
        (gold("2026-03-24").lines().count() + gold("2026-03-25").lines().count()).to_string()
    );
    let (_, listing) = s3.request("GET", "/weir-example?list-type=2&prefix=lake/silver/orders/_delta_log/");
    assert!(listing.contains("<Key>lake/silver/orders/_delta_log/"), "{listing}");
}

/// Redshift has no emulator, so its two halves are tested apart: the SQL word for word (`redshift.rs`'s unit tests),
/// and here the S3 half against moto, with PostgreSQL (whose protocol Redshift speaks) standing in for the cluster
/// up to the COPY, which only Redshift parses. The staged Parquet files hold every row with the output's columns;
/// after a load that failed they are deleted, and the transaction that had created the table rolled back.
#[test]
fn redshift_stages_parquet_in_s3_and_rolls_back_when_the_copy_fails() {
    let s3 = common::s3::server();
    let pg = common::pg::server();
    let db = pg.database("wh_redshift");
    let port = pg.url(&db).rsplit(':').next().unwrap().split('/').next().unwrap().to_string();
    let prefix = format!("redshift-{}", std::process::id());
    let tmp = common::project("wh", &[]);
    let dir = tmp.path();
    std::fs::write(
        dir.join("weir.yaml"),
        format!(
            "version: 1\nname: wh\nlake:\n  root: lake\nconnections:\n  wh:\n    type: redshift\n    host: 127.0.0.1\n    port: \"{port}\"\n    user: weir\n    dbname: {db}\n    staging: s3://{}/{prefix}\n    iam_role: arn:aws:iam::123456789012:role/RedshiftCopy\n    storage: {{endpoint: \"{}\", region: us-east-1, allow_http: \"true\", access_key_id: test, secret_access_key: test}}\n",
            common::s3::BUCKET,
            s3.endpoint()
        ),
    )
    .unwrap();
    set_pipeline(
        dir,
        "amount: \"decimal(12,2)\", day: date",
        "",
        "type: redshift, table: public.revenue, mode: merge, keys: [day, country]",
    );
    let rows: String = (0..5000).map(|i| format!("2026-03-01,C{i},{i}.25\n")).collect();
    csv(dir, "day,country,amount", &rows);

    // Stopped once the files are staged: they hold every row.
    let crashed = common::command(dir, &["run", "p", "--date", "2026-03-01"])
        .env("WEIR_FAILPOINT", "redshift_after_staging")
        .output()
        .unwrap();
    assert!(text(&crashed).contains("WEIR_FAILPOINT: stopping at"), "{}", text(&crashed));
    let keys = s3.keys_under(&prefix);
    assert!(!keys.is_empty() && keys.iter().all(|k| k.contains("/rows/part-") && k.ends_with(".parquet")), "{keys:?}");
    let mut staged = 0;
    for key in &keys {
        let file = dir.join("staged.parquet");
        s3.download(key, &file);
        let reader =
            datafusion::parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let meta = datafusion::parquet::file::reader::FileReader::metadata(&reader);
        let columns: Vec<&str> = meta.file_metadata().schema_descr().columns().iter().map(|c| c.name()).collect();
        assert_eq!(columns, ["day", "country", "amount"]);
        staged += meta.file_metadata().num_rows();
    }
    assert_eq!(staged, 5000);

    // PostgreSQL refuses Redshift's COPY: the load fails naming it, the transaction that had created the table
    // rolls back, and the files go.
    let err = run_fails(dir, "2026-03-01");
    assert!(err.contains("COPY \"revenue__weir_load\"") && err.contains("IAM_ROLE"), "{err}");
    assert_eq!(pg.psql(&db, "SELECT to_regclass('public.revenue') IS NULL").unwrap(), "t");
    let left: Vec<String> = s3.keys_under(&prefix).into_iter().filter(|k| !keys.contains(k)).collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A sink pointed at a connection of another kind says which connection, which kind it is, and which the sink needs
/// (it said "invalid connection string", or asked a Snowflake connection for a PostgreSQL URL).
#[test]
fn a_sink_on_a_connection_of_another_kind_names_both() {
    let tmp = common::project("wh", &[]);
    let dir = tmp.path();
    std::fs::write(
        dir.join("weir.yaml"),
        "version: 1\nname: wh\nlake:\n  root: lake\nconnections:\n  bq: {type: bigquery, project: p, url: \"http://127.0.0.1:9\"}\n  pg: {type: postgres, url: \"postgres://weir@127.0.0.1:9/db\"}\n",
    )
    .unwrap();
    csv(dir, "n", "1\n");
    for (sink, connection, kind) in [
        ("type: postgres, table: public.t", "bq", "bigquery"),
        ("type: snowflake, table: marts.t", "pg", "postgres"),
        ("type: bigquery, table: marts.t", "pg", "postgres"),
        ("type: redshift, table: public.t", "bq", "bigquery"),
    ] {
        let needs = sink.split(',').next().unwrap().trim_start_matches("type: ");
        std::fs::create_dir_all(dir.join("pipelines")).unwrap();
        std::fs::write(
            dir.join("pipelines/p.yaml"),
            format!("version: 1\ntasks:\n  - name: load\n    source: {{type: csv, path: in.csv}}\n    sink: {{connection: {connection}, {sink}}}\n"),
        )
        .unwrap();
        let err = run_fails(dir, "2026-03-01");
        assert!(
            err.contains(&format!("connection `{connection}` is a {kind} connection"))
                && err.contains(&format!("a {needs} sink needs a {needs} connection")),
            "{sink}: {err}"
        );
    }
}
