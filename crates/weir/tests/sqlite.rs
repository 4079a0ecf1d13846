//! Black-box tests of SQLite as a sink (replace, merge, append in one transaction) and as a source (declared types,
//! values that do not fit named by row and column).

mod common;

use common::{fails, ok, scalar};

fn pipeline(sink: &str, source: &str) -> String {
    format!("version: 1\ntasks:\n  - name: t\n    source: {source}\n    sink: {sink}\n")
}

#[test]
fn sqlite_round_trips_and_loads_idempotently() {
    let csv_source = "{type: csv, path: prices.csv}";
    let tmp = common::project(
        "lite",
        &[
            ("prices.csv", "sku,price,stock,active\na,1.5,3,true\nb,2.25,,false\n"),
            (
                "pipelines/p.yaml",
                &pipeline("{type: sqlite, path: marts.db, table: prices, mode: merge, keys: [sku]}", csv_source),
            ),
        ],
    );
    let dir = tmp.path();
    ok(dir, &["run", "p", "--date", "2026-03-25"]);
    std::fs::write(dir.join("prices.csv"), "sku,price,stock,active\nb,3.0,7,true\nc,4.0,1,true\n").unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-26"]);
    ok(dir, &["run", "p", "--date", "2026-03-26"]);
    let db = rusqlite::Connection::open(dir.join("marts.db")).unwrap();
    let rows: Vec<(String, f64, Option<i64>)> = db
        .prepare("SELECT sku, price, stock FROM prices ORDER BY sku")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows, vec![("a".into(), 1.5, Some(3)), ("b".into(), 3.0, Some(7)), ("c".into(), 4.0, Some(1))]);

    // Back out of SQLite into the lake, with the declared types.
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        pipeline("{type: lake, table: raw.prices}", "{type: sqlite, path: marts.db, table: prices}"),
    )
    .unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-26"]);
    assert_eq!(scalar(dir, "SELECT sum(price) FROM raw.prices"), "8.5");
    assert_eq!(scalar(dir, "SELECT arrow_typeof(stock) FROM raw.prices LIMIT 1"), "Int64");
    assert_eq!(scalar(dir, "SELECT count(*) FROM raw.prices WHERE active"), "3");

    // SQLite lets a column hold anything; weir names the value that does not fit.
    db.execute("INSERT INTO prices (sku, price, stock) VALUES ('d', 1.0, 'many')", []).unwrap();
    let err = fails(dir, &["run", "p", "--date", "2026-03-26"]);
    assert!(err.contains("row 4, column `stock`") && err.contains("'many'"), "{err}");

    // replace swaps the table in one transaction; a failing check leaves the old one.
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        "version: 1\ntasks:\n  - name: t\n    source: {type: csv, path: prices.csv}\n    checks:\n      - not_null: [price]\n    sink: {type: sqlite, path: marts.db, table: prices, mode: replace}\n",
    )
    .unwrap();
    std::fs::write(dir.join("prices.csv"), "sku,price,stock,active\nz,,1,true\n").unwrap();
    fails(dir, &["run", "p", "--date", "2026-03-27"]);
    let count: i64 = db.query_row("SELECT count(*) FROM prices", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 4);
    std::fs::write(dir.join("prices.csv"), "sku,price,stock,active\nz,9.0,1,true\n").unwrap();
    ok(dir, &["run", "p", "--date", "2026-03-27"]);
    let count: i64 = db.query_row("SELECT count(*) FROM prices", [], |r| r.get(0)).unwrap();
    assert_eq!(count, 1);
}
