//! Black-box tests of the PostgreSQL source against a real, ephemeral cluster (`tests/common/pg.rs`): every
//! supported type arrives exactly, NULLs everywhere, in batches much smaller than the table, and unsupported types
//! fail naming the column.

mod common;

use common::{fails, ok, pg};

const TYPES: &str = r#"
CREATE TABLE every_type (
    id bigint PRIMARY KEY, small smallint, i integer, r real, d double precision, amount numeric(12,2),
    exact numeric, t text, v varchar(10), c char(3), b boolean, day date, at time, ts timestamp,
    tstz timestamptz, u uuid, j json, jb jsonb, raw bytea, tags text[], nums integer[]
);
INSERT INTO every_type VALUES
 (1, -7, 42, 1.5, 2.25, 12345.67, 3.14159265358979323846, 'héllo', 'abc', 'xy', true, '2026-03-02', '13:45:30.5',
  '2026-03-02 10:00:00.123456', '2026-03-02 10:00:00+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": 1}',
  '{"b": [1, 2]}', '\x00ff10', ARRAY['x', NULL, 'z'], ARRAY[1, 2, 3]),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 32767, -2147483648, -0.5, 1e300, -0.01, -12.500, '', '', '   ', false, '1970-01-01', '00:00:00',
  '1999-12-31 23:59:59', '2000-01-01 00:00:00+00', '00000000-0000-0000-0000-000000000000', 'null', '[]', '\x',
  ARRAY[]::text[], ARRAY[NULL]::integer[]);
INSERT INTO every_type (id, amount, t) SELECT g, g * 1.01, 'row ' || g FROM generate_series(4, 25003) g;
"#;

fn project(db: &str, pipeline: &str) -> tempfile::TempDir {
    let tmp = common::project("pg", &[("pipelines/p.yaml", pipeline)]);
    let url = pg::server().url(db);
    std::fs::write(
        tmp.path().join("weir.yaml"),
        format!("version: 1\nname: pg\nlake:\n  root: lake\nconnections:\n  shop: {{type: postgres, url: \"{url}\"}}\ndefaults:\n  batch_rows: 1000\n"),
    )
    .unwrap();
    tmp
}

#[test]
fn every_type_arrives_exactly_in_small_batches() {
    let server = pg::server();
    let db = server.database("types");
    server.psql(&db, TYPES).unwrap();
    let tmp = project(
        &db,
        "version: 1\ntasks:\n  - name: copy\n    source: {type: postgres, connection: shop, table: every_type}\n    sink: {type: lake, table: raw.every_type}\n",
    );
    let dir = tmp.path();
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("25,003 rows read"), "{out}");
    let row = |id: u32| {
        let q = format!(
            "SELECT small, i, r, d, CAST(amount AS VARCHAR) AS amount, exact, t, v, c, b, CAST(day AS VARCHAR) AS day, \
             CAST(at AS VARCHAR) AS at, CAST(ts AS VARCHAR) AS ts, CAST(tstz AS VARCHAR) AS tstz, u, j, jb, \
             encode(raw, 'hex') AS raw, array_to_string(tags, '|', 'NULL') AS tags, array_length(nums, 1) AS nums \
             FROM raw.every_type WHERE id = {id}"
        );
        ok(dir, &["sql", &q, "--format", "csv"]).lines().nth(1).unwrap_or_default().to_string()
    };
    assert_eq!(
        row(1),
        "-7,42,1.5,2.25,12345.67,3.14159265358979323846,héllo,abc,xy ,true,2026-03-02,13:45:30.500,2026-03-02T10:00:00.123456,2026-03-02T08:00:00Z,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,\"{\"\"a\"\": 1}\",\"{\"\"b\"\": [1, 2]}\",00ff10,x|NULL|z,3"
    );
    assert_eq!(row(2), ",,,,,,,,,,,,,,,,,,,");
    assert_eq!(
        row(3),
        "32767,-2147483648,-0.5,1e300,-0.01,-12.500,,,   ,false,1970-01-01,00:00:00,1999-12-31T23:59:59,2000-01-01T00:00:00Z,00000000-0000-0000-0000-000000000000,null,[],,,1"
    );
    let types = ok(
        dir,
        &[
            "sql",
            "SELECT arrow_typeof(amount), arrow_typeof(tstz), arrow_typeof(tags) FROM raw.every_type LIMIT 1",
            "--format",
            "csv",
        ],
    );
    assert!(
        types.contains("Decimal128(12, 2)")
            && types.contains("Timestamp(µs, \"\"UTC\"\")")
            && types.contains("List(Utf8)"),
        "{types}"
    );
    assert_eq!(common::scalar(dir, "SELECT sum(amount) FROM raw.every_type WHERE id > 3"), "315713375.00");

    // Ranges of a column read on several connections give the same rows, each once (nulls of the column too).
    server.psql(&db, "INSERT INTO every_type (id, small) VALUES (30000, NULL)").unwrap();
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        "version: 1\ntasks:\n  - name: copy\n    source: {type: postgres, connection: shop, table: every_type, partition_on: {column: small, partitions: 3}}\n    sink: {type: lake, table: raw.parallel}\n",
    )
    .unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(common::scalar(dir, "SELECT count(DISTINCT id) || '/' || count(*) FROM raw.parallel"), "25004/25004");
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        "version: 1\ntasks:\n  - name: copy\n    source: {type: postgres, connection: shop, table: every_type, partition_on: {column: id, partitions: 4}}\n    sink: {type: lake, table: raw.parallel}\n",
    )
    .unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert_eq!(common::scalar(dir, "SELECT count(DISTINCT id) || '/' || count(*) FROM raw.parallel"), "25004/25004");

    // An unsupported type names the column.
    server.psql(&db, "CREATE TABLE odd (id int, span interval); INSERT INTO odd VALUES (1, '1 day')").unwrap();
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        "version: 1\ntasks:\n  - name: copy\n    source: {type: postgres, connection: shop, query: \"SELECT * FROM odd\"}\n    sink: {type: lake, table: raw.odd}\n",
    )
    .unwrap();
    let err = fails(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(err.contains("column `span`") && err.contains("interval"), "{err}");
}

#[test]
fn the_warehouse_sink_replaces_appends_and_merges_in_one_transaction() {
    let server = pg::server();
    let db = server.database("warehouse");
    let pipeline = |mode: &str| {
        format!(
            "version: 1\ntasks:\n  - name: load\n    source: {{type: csv, path: revenue.csv, schema: {{revenue: \"decimal(12,2)\", day: date}}}}\n    checks:\n      - not_null: [country]\n    sink: {{type: postgres, connection: shop, table: public.daily_revenue, {mode}}}\n"
        )
    };
    let tmp = project(&db, &pipeline("mode: replace"));
    let dir = tmp.path();
    let csv =
        |rows: &str| std::fs::write(dir.join("revenue.csv"), format!("day,country,revenue,orders\n{rows}")).unwrap();
    let table =
        || server.psql(&db, "SELECT day, country, revenue, orders FROM daily_revenue ORDER BY day, country").unwrap();
    csv("2026-03-01,DE,100.50,3\n2026-03-01,FR,20.00,1\n");
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    assert_eq!(table(), "2026-03-01|DE|100.50|3\n2026-03-01|FR|20.00|1");
    assert_eq!(server.psql(&db, "SELECT data_type FROM information_schema.columns WHERE table_name = 'daily_revenue' AND column_name = 'revenue'").unwrap(), "numeric");
    // replace swaps in the new rows.
    csv("2026-03-02,US,7.25,1\n");
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(table(), "2026-03-02|US|7.25|1");
    // A failing error check rolls the load back: the table keeps its rows.
    csv("2026-03-03,,1.00,1\n");
    let err = fails(dir, &["run", "p", "--date", "2026-03-03"]);
    assert!(err.contains("not_null(country)"), "{err}");
    assert_eq!(table(), "2026-03-02|US|7.25|1");
    // merge on keys: updates matches, inserts the rest; the same load twice changes nothing.
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline("mode: merge, keys: [day, country]")).unwrap();
    csv("2026-03-02,US,8.00,2\n2026-03-02,BR,3.00,1\n");
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(table(), "2026-03-02|BR|3.00|1\n2026-03-02|US|8.00|2");
    // append adds; a load that fails half-way (a value the column cannot hold) leaves the table as it was.
    std::fs::write(dir.join("pipelines/p.yaml"), pipeline("mode: append")).unwrap();
    csv("2026-03-04,JP,1.00,1\n");
    ok(dir, &["run", "p", "--date", "2026-03-04"]);
    assert_eq!(server.psql(&db, "SELECT count(*) FROM daily_revenue").unwrap(), "3");
    server.psql(&db, "ALTER TABLE daily_revenue ADD CONSTRAINT small CHECK (orders < 100)").unwrap();
    csv("2026-03-05,JP,1.00,1\n2026-03-05,CN,1.00,500\n");
    let err = fails(dir, &["run", "p", "--date", "2026-03-05"]);
    assert!(err.contains("daily_revenue") && err.contains("small"), "{err}");
    assert_eq!(server.psql(&db, "SELECT count(*) FROM daily_revenue").unwrap(), "3");
}

#[test]
fn incremental_extraction_reads_only_rows_past_the_committed_cursor() {
    let server = pg::server();
    let db = server.database("incremental");
    server
        .psql(&db, "CREATE TABLE events (id int, updated_at timestamptz); INSERT INTO events SELECT g, timestamptz '2026-03-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(1, 100) g")
        .unwrap();
    let tmp = project(
        &db,
        "version: 1\ntasks:\n  - name: events\n    source: {type: postgres, connection: shop, table: events, incremental: {cursor_field: updated_at}}\n    sink: {type: lake, table: raw.events, partition: \"date={{ ds }}\", format: delta}\n",
    );
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    server
        .psql(&db, "INSERT INTO events SELECT g, timestamptz '2026-03-01 00:00:00+00' + g * interval '1 minute' FROM generate_series(101, 130) g; UPDATE events SET updated_at = now() WHERE id = 5")
        .unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(common::scalar(dir, "SELECT count(*) FROM raw.events WHERE date = '2026-03-02'"), "31");
    ok(dir, &["run", "p", "--date", "2026-03-03"]);
    assert_eq!(common::scalar(dir, "SELECT count(*) FROM raw.events WHERE date = '2026-03-03'"), "0");
    ok(dir, &["run", "p", "--date", "2026-03-04", "--full-refresh"]);
    assert_eq!(common::scalar(dir, "SELECT count(*) FROM raw.events WHERE date = '2026-03-04'"), "130");
}

#[test]
fn check_connections_names_the_ones_that_do_not_answer() {
    let server = pg::server();
    let tmp = project("postgres", "version: 1\ntasks: []\n");
    let dir = tmp.path();
    let out = ok(dir, &["check", "connections"]);
    assert!(out.contains("✓ shop") && out.contains("database postgres, PostgreSQL 1"), "{out}");
    std::fs::write(
        dir.join("weir.yaml"),
        format!(
            "version: 1\nname: pg\nconnections:\n  shop: {{type: postgres, url: \"{}\"}}\n  old: {{type: postgres, host: 127.0.0.1, port: \"1\", user: weir, password: \"${{env:NO_SUCH_VAR}}\", dbname: x}}\n",
            server.url("postgres")
        ),
    )
    .unwrap();
    let err = fails(dir, &["check", "connections"]);
    assert!(err.contains("✓ shop") && err.contains("✗ old") && err.contains("NO_SUCH_VAR"), "{err}");
}

/// The demo, with its orders taken from PostgreSQL (the shop's database) and its daily revenue loaded into
/// PostgreSQL (the warehouse): re-running the days leaves the warehouse table unchanged.
#[test]
fn the_demo_pipeline_reads_orders_from_postgres_and_publishes_revenue_to_postgres() {
    let server = pg::server();
    let db = server.database("demo");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["demo", "--generate-only", "--rows", "3000", "--days", "2", "--dir", "."]);
    server
        .psql(&db, "CREATE TABLE shop_orders (transaction_id text, order_ts text, country text, currency text, amount text, discount_amount text, order_status text, customer_name text, day date)")
        .unwrap();
    for day in ["2026-03-24", "2026-03-25"] {
        let csv = dir.join(format!("landing/orders/{day}.csv"));
        server.psql(&db, &format!("\\copy shop_orders (transaction_id, order_ts, country, currency, amount, discount_amount, order_status, customer_name) FROM '{}' (FORMAT csv, HEADER)", csv.display())).unwrap();
        server.psql(&db, &format!("UPDATE shop_orders SET day = '{day}' WHERE day IS NULL")).unwrap();
    }
    let yaml = std::fs::read_to_string(dir.join("weir.yaml")).unwrap();
    std::fs::write(
        dir.join("weir.yaml"),
        yaml.replace(
            "connections: {}",
            &format!("connections:\n  shop: {{type: postgres, url: \"{}\"}}", server.url(&db)),
        ),
    )
    .unwrap();
    let pipeline_file = std::fs::read_dir(dir.join("pipelines")).unwrap().next().unwrap().unwrap().path();
    let pipeline = std::fs::read_to_string(&pipeline_file).unwrap();
    let from_csv =
        "    source:\n      type: csv\n      path: \"landing/orders/{{ ds }}.csv\"\n      infer_types: false\n";
    assert!(pipeline.contains(from_csv), "{pipeline}");
    let pipeline = pipeline.replace(
        from_csv,
        "    source:\n      type: postgres\n      connection: shop\n      query: \"SELECT transaction_id, order_ts, country, currency, amount, discount_amount, order_status, customer_name FROM shop_orders WHERE day = '{{ ds }}'\"\n",
    ) + "\n  - name: publish\n    depends_on: [daily_revenue]\n    source: {type: lake, table: gold.daily_revenue, where: \"date = '{{ ds }}'\"}\n    steps:\n      - drop: [date]\n    sink: {type: postgres, connection: shop, table: public.daily_revenue, mode: merge, keys: [order_date, country]}\n";
    std::fs::write(&pipeline_file, pipeline).unwrap();
    let name = pipeline_file.file_stem().unwrap().to_string_lossy().to_string();
    let warehouse = || {
        server.psql(&db, "SELECT order_date, country, orders, revenue_usd FROM daily_revenue ORDER BY 1, 2").unwrap()
    };
    for day in ["2026-03-24", "2026-03-25"] {
        ok(dir, &["run", &name, "--date", day]);
    }
    let first = warehouse();
    assert_eq!(first.lines().count(), 16, "{first}");
    assert_eq!(
        first,
        ok(
            dir,
            &[
                "sql",
                "SELECT order_date, country, orders, revenue_usd FROM gold.daily_revenue ORDER BY 1, 2",
                "--format",
                "csv"
            ]
        )
        .lines()
        .skip(1)
        .map(|l| l.replace(',', "|"))
        .collect::<Vec<_>>()
        .join("\n")
    );
    for day in ["2026-03-24", "2026-03-25"] {
        ok(dir, &["run", &name, "--date", day]);
    }
    assert_eq!(warehouse(), first, "re-running the days changed the warehouse");
}

/// `fact_orders` rows `from..=to` (the handbook's columns), as one INSERT.
fn insert_orders(from: u64, to: u64) -> String {
    format!(
        "INSERT INTO fact_orders SELECT g, 1 + g % 5000, 1 + g % 700, (g % 9 + 1) * 3.25, 1 + g % 4, \
         timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', (ARRAY['DE','FR','US','BR'])[1 + g % 4], \
         'card', 'paid' FROM generate_series({from}, {to}) g"
    )
}

const FACT_ORDERS: &str = "CREATE TABLE fact_orders (order_id bigint PRIMARY KEY, customer_id int, product_id int, \
    amount numeric(12,2), quantity int, created_at timestamptz, country text, payment_method text, status text)";

#[test]
fn peak_memory_does_not_grow_with_the_table() {
    let server = pg::server();
    let db = server.database("bounded");
    server.psql(&db, &format!("{FACT_ORDERS}; {}", insert_orders(1, 100_000))).unwrap();
    let tmp = project(
        &db,
        "version: 1\ntasks:\n  - name: orders\n    source: {type: postgres, connection: shop, table: fact_orders}\n    sink: {type: lake, table: raw.orders, row_group_rows: 20000}\n",
    );
    let dir = tmp.path();
    let run = |ds: &str| {
        let (success, peak) = common::weir_peak_memory(dir, &["run", "p", "--date", ds]);
        assert!(success, "weir run failed");
        peak
    };
    let small = run("2026-03-01");
    // Ten times the rows (1,000 batches of 1,000): the peak stays where it was.
    server.psql(&db, &insert_orders(100_001, 1_000_000)).unwrap();
    let large = run("2026-03-02");
    assert_eq!(common::scalar(dir, "SELECT count(*) FROM raw.orders"), "1000000");
    eprintln!("peak memory: {} MB for 100,000 rows, {} MB for 1,000,000", small >> 20, large >> 20);
    let mb = |b: u64| b / (1 << 20);
    assert!(
        large < small + small / 4 + (16 << 20),
        "peak memory grew with the table: {} MB for 100,000 rows, {} MB for 1,000,000",
        mb(small),
        mb(large)
    );
}

#[test]
fn a_killed_incremental_extraction_resumes_from_its_spooled_chunks() {
    let server = pg::server();
    let db = server.database("resume");
    server.psql(&db, &format!("{FACT_ORDERS}; {}", insert_orders(1, 600_000))).unwrap();
    let tmp = project(
        &db,
        "version: 1\ntasks:\n  - name: orders\n    source: {type: postgres, connection: shop, table: fact_orders, incremental: {cursor_field: order_id}}\n    sink: {type: lake, table: raw.orders, partition: \"date={{ ds }}\", format: delta}\n",
    );
    let dir = tmp.path();
    let spool = dir.join(".weir/spool/p/orders/2026-03-01");
    let state =
        || -> Option<serde_json::Value> { serde_json::from_slice(&std::fs::read(spool.join("state.json")).ok()?).ok() };
    // Kill the run once a few chunks are on disk.
    let mut child = common::spawn(dir, &["run", "p", "--date", "2026-03-01"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while state().and_then(|s| s["chunks"].as_u64()).unwrap_or(0) < 5 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(std::time::Instant::now() < deadline, "no chunks spooled");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = state().unwrap();
    let watermark: u64 = killed["watermark"].as_str().unwrap().parse().unwrap();
    assert!(watermark < 600_000, "{killed}");
    assert_eq!(killed["rows"].as_u64(), Some(watermark), "chunks hold every row up to the watermark: {killed}");
    assert!(!dir.join("lake/raw/orders/_delta_log").exists(), "a killed run committed nothing");

    // The spooled rows are deleted at the source: only a run that takes them from the spool still has them.
    server.psql(&db, &format!("DELETE FROM fact_orders WHERE order_id <= {watermark}")).unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-01"]);
    assert_eq!(
        common::scalar(
            dir,
            "SELECT concat(count(*), '/', count(DISTINCT order_id), '/', max(order_id)) FROM raw.orders"
        ),
        "600000/600000/600000"
    );
    assert!(!spool.exists(), "the spool is cleared once the rows are committed");
    // The cursor committed with them: the next run reads only new rows.
    server.psql(&db, &insert_orders(600_001, 600_010)).unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-02"]);
    assert_eq!(common::scalar(dir, "SELECT count(*) FROM raw.orders WHERE date = '2026-03-02'"), "10");
}
