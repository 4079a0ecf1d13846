//! Black-box tests of the MySQL/MariaDB source against a real, ephemeral MariaDB (`tests/common/mysql.rs`).

mod common;

use common::{fails, mysql, ok, scalar};

#[test]
fn every_mysql_type_arrives_exactly() {
    let server = mysql::server();
    server
        .sql(
            "CREATE DATABASE shop; USE shop;
             CREATE TABLE every_type (id BIGINT PRIMARY KEY, tiny TINYINT, small SMALLINT, i INT, u INT UNSIGNED,
               big BIGINT UNSIGNED, f FLOAT, d DOUBLE, amount DECIMAL(12,2), t VARCHAR(20), txt TEXT, e ENUM('a','b'),
               raw VARBINARY(8), day DATE, at DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME, j JSON, y YEAR);
             SET time_zone = '+00:00';
             INSERT INTO every_type VALUES
               (1, -8, 300, -70000, 4000000000, 18000000000000000000, 1.5, 2.25, -12345.67, 'héllo', 'long text', 'b',
                X'00FF10', '2026-03-02', '2026-03-02 10:00:00.123456', '2026-03-02 10:00:00.500', '13:45:30', '{\"a\": 1}', 2026),
               (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
             INSERT INTO every_type (id, amount) SELECT seq, seq / 100 FROM seq_3_to_5002;",
        )
        .unwrap();
    let tmp = common::project(
        "my",
        &[(
            "pipelines/p.yaml",
            "version: 1\ntasks:\n  - name: copy\n    source: {type: mysql, connection: shop, table: every_type}\n    sink: {type: lake, table: raw.every_type}\n",
        )],
    );
    let dir = tmp.path();
    std::fs::write(
        dir.join("weir.yaml"),
        format!("version: 1\nname: my\nlake:\n  root: lake\nconnections:\n  shop: {{type: mysql, url: \"{}\"}}\ndefaults:\n  batch_rows: 1000\n", server.url("shop")),
    )
    .unwrap();
    let out = ok(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(out.contains("5,002 rows read"), "{out}");
    let q = "SELECT tiny, small, i, u, big, f, d, CAST(amount AS VARCHAR) AS amount, t, txt, e, encode(raw, 'hex') AS raw, \
             CAST(day AS VARCHAR) AS day, CAST(at AS VARCHAR) AS at, CAST(ts AS VARCHAR) AS ts, CAST(tm AS VARCHAR) AS tm, j, y \
             FROM raw.every_type WHERE id IN (1, 2) ORDER BY id";
    let rows = ok(dir, &["sql", q, "--format", "csv"]);
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(
        lines[1],
        "-8,300,-70000,4000000000,18000000000000000000,1.5,2.25,-12345.67,héllo,long text,b,00ff10,2026-03-02,2026-03-02T10:00:00.123456,2026-03-02T10:00:00.500Z,13:45:30,\"{\"\"a\"\": 1}\",2026"
    );
    assert_eq!(lines[2], ",,,,,,,,,,,,,,,,,");
    assert_eq!(scalar(dir, "SELECT sum(amount) FROM raw.every_type WHERE id > 2"), "125125.00");
    assert_eq!(scalar(dir, "SELECT arrow_typeof(amount) FROM raw.every_type LIMIT 1"), "\"Decimal128(12, 2)\"");

    let check = ok(dir, &["check", "connections"]);
    assert!(check.contains("✓ shop") && check.contains("MariaDB"), "{check}");

    // A value Arrow cannot hold names its row and column.
    server
        .sql("USE shop; CREATE TABLE odd (id INT, span TIME); INSERT INTO odd VALUES (1, '10:00:00'), (2, '-30:00:00')")
        .unwrap();
    std::fs::write(
        dir.join("pipelines/p.yaml"),
        "version: 1\ntasks:\n  - name: copy\n    source: {type: mysql, connection: shop, query: \"SELECT * FROM odd\"}\n    sink: {type: lake, table: raw.odd}\n",
    )
    .unwrap();
    let err = fails(dir, &["run", "p", "--date", "2026-03-25"]);
    assert!(err.contains("row 2, column `span`") && err.contains("duration"), "{err}");
}
