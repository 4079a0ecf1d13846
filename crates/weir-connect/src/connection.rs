//! Database connections as weir.yaml names them (`connections: {shop: {type: postgres, ...}}`) and the settings
//! every database source shares: where to connect (`connection` or `url`) and what to read (`table` or `query`).

use weir_config::{Diagnostic, Node};
use weir_core::{Error, Result};

/// The URL of a `connections:` entry: its `url`, or one built from `host`, `port`, `user`, `password` and `dbname`
/// with the scheme and default port of its `type` (postgres, mysql). `${env:..}` and `${file:..}` are resolved here,
/// never at validation.
pub fn connection_url(connection: &weir_config::project::Connection) -> Result<String> {
    let at = |msg: String| Error::config(Default::default(), format!("connection `{}`: {msg}", connection.name));
    let get = |k: &str| connection.node.get(k).and_then(|n| n.as_str()).map(str::to_string);
    let resolve = |v: String| weir_config::project::resolve_env(&v).map_err(at);
    if let Some(url) = get("url") {
        return resolve(url);
    }
    let default_port = match connection.kind.as_str() {
        "postgres" => "5432",
        "mysql" => "3306",
        other => return Err(at(format!("type `{other}` has no URL; use postgres or mysql"))),
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
    Ok(format!("{}://{user}{password}@{host}:{port}/{db}", connection.kind))
}

/// The problems with a database source's choices: exactly one of `connection`/`url`, and of `table`/`query`.
pub fn check_source_choices(node: &Node, connection: bool, url: bool, table: bool, query: bool) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    if connection == url {
        diags.push(Diagnostic::at(node, "give either `connection` (a weir.yaml connection) or `url`"));
    }
    if table == query {
        diags.push(Diagnostic::at(node, "give either `table` or `query`"));
    }
    diags
}
