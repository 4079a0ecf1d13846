//! Database connections as weir.yaml names them (`connections: {shop: {type: postgres, ...}}`) and the settings
//! every database source shares: where to connect (`connection` or `url`) and what to read (`table` or `query`).

use weir_config::{Diagnostic, Node};
use weir_core::{Error, Result};

/// The URL of a `connections:` entry: its `url`, or one built from `host`, `port`, `user`, `password`, `dbname` (and
/// `sslmode`, `sslrootcert`)
/// with the scheme and default port of its `type` (postgres, mysql). `${env:..}` and `${file:..}` are resolved here,
/// never at validation.
pub fn connection_url(connection: &weir_config::project::Connection) -> Result<String> {
    let at = |msg: String| Error::config(Default::default(), format!("connection `{}`: {msg}", connection.name));
    let get = |k: &str| connection.node.get(k).and_then(|n| n.as_str()).map(str::to_string);
    let resolve = |v: String| weir_config::project::resolve_env(&v).map_err(at);
    if let Some(url) = get("url") {
        return resolve(url);
    }
    // Redshift speaks PostgreSQL's protocol on its own default port.
    let (scheme, default_port) = match connection.kind.as_str() {
        "postgres" => ("postgres", "5432"),
        "redshift" => ("postgres", "5439"),
        "mysql" => ("mysql", "3306"),
        other => return Err(at(format!("type `{other}` has no URL; use postgres, redshift or mysql"))),
    };
    let host = get("host").unwrap_or_else(|| "localhost".into());
    let port = get("port").unwrap_or_else(|| default_port.into());
    let user = get("user").ok_or_else(|| at("needs `url`, or `host`, `user` and `dbname`".into()))?;
    let db = get("dbname").or_else(|| get("database")).ok_or_else(|| at("needs `dbname`".into()))?;
    let password = match get("password") {
        Some(p) => format!(":{}", url::form_urlencoded::byte_serialize(resolve(p)?.as_bytes()).collect::<String>()),
        None => String::new(),
    };
    let (user, host, port, db) = (resolve(user)?, resolve(host)?, resolve(port)?, resolve(db)?);
    // TLS (PostgreSQL): `sslmode` and `sslrootcert`, as libpq names them (see `crate::postgres_tls`).
    let tls: Vec<String> = ["sslmode", "sslrootcert"]
        .iter()
        .filter_map(|k| get(k).map(|v| (k, v)))
        .map(|(k, v)| {
            Ok(format!("{k}={}", url::form_urlencoded::byte_serialize(resolve(v)?.as_bytes()).collect::<String>()))
        })
        .collect::<Result<_>>()?;
    let query = if tls.is_empty() { String::new() } else { format!("?{}", tls.join("&")) };
    Ok(format!("{scheme}://{user}{password}@{host}:{port}/{db}{query}"))
}

/// A setting of a `connections:` entry, its `${env:..}` and `${file:..}` resolved (at run time, never at validation).
pub fn setting(connection: &weir_config::project::Connection, key: &str) -> Result<Option<String>> {
    match connection.node.get(key).and_then(|n| n.as_str()) {
        Some(v) => weir_config::project::resolve_env(v)
            .map(Some)
            .map_err(|e| Error::config(Default::default(), format!("connection `{}`: `{key}`: {e}", connection.name))),
        None => Ok(None),
    }
}

/// The first words of a SQL statement on one line, for messages.
pub fn statement_head(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        format!("{}...", one_line.chars().take(120).collect::<String>())
    } else {
        one_line
    }
}

/// The problems with a database source's choices: exactly one of `connection`/`url`, and of `table`/`query`.
pub fn check_source_choices(
    node: &Node,
    connection: bool,
    url: bool,
    table: bool,
    query: bool,
) -> Result<(), Vec<Diagnostic>> {
    let mut diags = Vec::new();
    if connection == url {
        diags.push(Diagnostic::at(node, "give either `connection` (a weir.yaml connection) or `url`"));
    }
    if table == query {
        diags.push(Diagnostic::at(node, "give either `table` or `query`"));
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(diags)
    }
}

/// A SQL identifier in double quotes (PostgreSQL and SQLite).
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Queries that find what makes a merge ambiguous in the rows loaded into `staging`: keys that appear more than once
/// (which row would win?) and keys with a NULL (which never equals anything, so the row would be inserted again on
/// every run). Each returns up to five examples as text, one column per key; a sink fails naming them.
/// `quoted` are the key columns as the database quotes them.
pub fn merge_key_problems(staging: &str, quoted: &[String], as_text: &dyn Fn(&str) -> String) -> [(String, String); 2] {
    let shown = quoted.iter().map(|k| as_text(k)).collect::<Vec<_>>().join(", ");
    let any_null = quoted.iter().map(|k| format!("{k} IS NULL")).collect::<Vec<_>>().join(" OR ");
    [
        (
            format!(
                "SELECT {shown} FROM {staging} GROUP BY {} HAVING count(*) > 1 LIMIT 5",
                quoted.join(", ")
            ),
            "appear more than once in this load; a merge needs one row per key (deduplicate with `dedupe: {columns: [...], order_by: ..., keep: last}`)".to_string(),
        ),
        (
            format!("SELECT {shown} FROM {staging} WHERE {any_null} LIMIT 5"),
            "have a NULL key column in this load; NULL matches no row, so it would be inserted again on every run"
                .to_string(),
        ),
    ]
}

/// The key values a problem query of [`merge_key_problems`] found, as `(a, b)` examples (NULL named).
pub fn key_examples(rows: &[Vec<Option<String>>]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            let values: Vec<&str> = r.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
            format!("({})", values.join(", "))
        })
        .collect()
}

/// The error of a merge whose keys are ambiguous (see [`merge_key_problems`]), naming a few of them.
pub fn merge_key_error(table: &str, keys: &[String], what: &str, examples: &[String]) -> Error {
    Error::data(
        Default::default(),
        format!(
            "merge into {table}: keys ({}) {what}: e.g. {}; nothing was loaded",
            keys.join(", "),
            examples.join(", ")
        ),
    )
}

/// Each name in double quotes (see [`quote_ident`]).
pub fn quoted_all(names: &[String]) -> Vec<String> {
    names.iter().map(|n| quote_ident(n)).collect()
}

/// The statements of a merge from a loaded `staging` table into `target` on `keys`: matching rows are updated
/// (`UPDATE ... FROM`, which PostgreSQL, SQLite 3.33+ and Snowflake read), the others inserted, so merging the same rows
/// twice leaves the same table. `target` and `staging` are quoted already; `columns` are the loaded columns.
pub fn merge_statements(target: &str, staging: &str, columns: &[String], keys: &[String]) -> String {
    let copied = |c: &str| format!("s.{}", quote_ident(c));
    merge_statement_list(target, staging, columns, keys, &copied).iter().map(|s| format!("{s};")).collect()
}

/// The statements of [`merge_statements`] one by one, for a database that takes one statement per request;
/// `value(column)` is what the staging row `s` gives the column (`s."C"`, or a conversion of it).
pub fn merge_statement_list(
    target: &str,
    staging: &str,
    columns: &[String],
    keys: &[String],
    value: &dyn Fn(&str) -> String,
) -> Vec<String> {
    let on = keys.iter().map(|k| format!("t.{0} = s.{0}", quote_ident(k))).collect::<Vec<_>>().join(" AND ");
    let set: Vec<String> =
        columns.iter().filter(|c| !keys.contains(c)).map(|c| format!("{} = {}", quote_ident(c), value(c))).collect();
    let cols = columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let scols = columns.iter().map(|c| value(c)).collect::<Vec<_>>().join(", ");
    let mut statements = Vec::new();
    if !set.is_empty() {
        statements.push(format!("UPDATE {target} AS t SET {} FROM {staging} AS s WHERE {on}", set.join(", ")));
    }
    statements.push(format!(
        "INSERT INTO {target} ({cols}) SELECT {scols} FROM {staging} AS s WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {on})"
    ));
    statements
}

/// The rows a task set aside (the quarantine), loaded by a database sink into `<table>__rejected` in the same
/// transaction as the table itself, so they land or vanish together with the load.
pub struct RejectRows {
    pub schema: arrow::datatypes::SchemaRef,
    pub batches: Box<dyn Iterator<Item = Result<arrow::array::RecordBatch>> + Send>,
}

impl RejectRows {
    /// The quarantine table of `table` (`schema.orders` -> `schema.orders__rejected`).
    pub fn table_of(table: &str) -> String {
        format!("{table}__rejected")
    }

    /// The first non-empty batch, or None when nothing was set aside.
    pub fn first(&mut self) -> Result<Option<arrow::array::RecordBatch>> {
        for b in self.batches.by_ref() {
            let b = b?;
            if b.num_rows() > 0 {
                return Ok(Some(b));
            }
        }
        Ok(None)
    }
}
