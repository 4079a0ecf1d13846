//! Secrets never shown: the web UI displays pipeline files, and those hold passwords, tokens and keys in any YAML
//! style (block maps, flow maps such as `auth: {type: bearer, token: abc}`, quoted or not, at any depth). A file
//! that parses is masked node by node, by key name at every level; one that does not is masked line by line, in
//! block and flow style alike. The password of a URL (`scheme://user:secret@host`) is masked everywhere. A value
//! that refers to the environment or a file (`${env:NAME}`, `${file:path}`) is not a secret and stays.

use weir_config::yaml::{Node, Value};

/// What is shown instead of a secret.
const MASK: &str = "••••••";

/// Whether a key names a secret (`password`, `client_secret`, `token`, `api_key`, `Authorization`, storage keys).
fn secret_key(key: &str) -> bool {
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'').to_ascii_lowercase().replace('-', "_");
    ["password", "passwd", "token", "secret", "api_key", "apikey", "authorization", "private_key", "access_key"]
        .iter()
        .any(|k| key.ends_with(k))
        || ["account_key", "sas", "credentials", "x_api_key"].contains(&key.as_str())
}

fn reference(value: &str) -> bool {
    let v = value.trim().trim_matches(|c| c == '"' || c == '\'');
    v.is_empty() || v.starts_with("${")
}

/// `text` with its secrets masked.
pub fn redact(text: &str) -> String {
    let text = url_passwords(text);
    match weir_config::yaml::parse(&text) {
        Ok(root) => {
            let mut spans = Vec::new();
            secret_scalars(&root, false, &mut spans);
            mask_spans(&text, &spans)
        }
        Err(_) => text.lines().map(mask_line).collect::<Vec<_>>().join("\n"),
    }
}

/// The positions (line, column) of the scalars that are secrets: the values of secret keys, and the `value` of an
/// `api_key` auth block.
fn secret_scalars(node: &Node, secret: bool, out: &mut Vec<(usize, usize)>) {
    match &node.value {
        Value::Scalar { text, .. } if secret && !reference(text) => out.push((node.line, node.column)),
        Value::Scalar { .. } | Value::Null => {}
        Value::Seq(items) => items.iter().for_each(|i| secret_scalars(i, secret, out)),
        Value::Map(entries) => {
            let api_key = entries.iter().any(|(k, v)| {
                k.as_str() == Some("type") && v.as_str().is_some_and(|t| t.eq_ignore_ascii_case("api_key"))
            });
            for (k, v) in entries {
                let key = k.as_str().unwrap_or_default();
                secret_scalars(v, secret || secret_key(key) || (api_key && key == "value"), out);
            }
        }
    }
}

/// Masks the scalar that starts at each (line, column) (1-based; a quoted scalar up to its closing quote, a plain
/// one up to the end of its flow item or line).
fn mask_spans(text: &str, spans: &[(usize, usize)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut by_line = spans.to_vec();
    // Right to left within a line, so earlier columns stay valid.
    by_line.sort_by(|a, b| (a.0, std::cmp::Reverse(a.1)).cmp(&(b.0, std::cmp::Reverse(b.1))));
    for (line, column) in by_line {
        let Some(l) = lines.get_mut(line.saturating_sub(1)) else { continue };
        let chars: Vec<char> = l.chars().collect();
        let start = column.saturating_sub(1).min(chars.len());
        let end = match chars.get(start) {
            Some('|' | '>') => chars.len(), // a block scalar: its lines follow; the first is masked below
            _ => scalar_end(&chars, start),
        };
        let masked: String =
            chars[..start].iter().chain(MASK.chars().collect::<Vec<_>>().iter()).chain(chars[end..].iter()).collect();
        *l = masked;
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// Where a scalar that starts at `start` ends: a quoted one after its closing quote, a plain one at [`plain_end`].
fn scalar_end(chars: &[char], start: usize) -> usize {
    match chars.get(start) {
        Some(q @ ('"' | '\'')) => {
            chars[start + 1..].iter().position(|c| c == q).map_or(chars.len(), |i| start + 1 + i + 1)
        }
        _ => plain_end(chars, start),
    }
}

/// Where a plain scalar that starts at `start` ends: at a `,`, `}` or `]` of a flow collection, a ` #` comment or
/// the end of the line.
fn plain_end(chars: &[char], start: usize) -> usize {
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            ',' | '}' | ']' => break,
            '#' if i > start && chars[i - 1] == ' ' => break,
            _ => i += 1,
        }
    }
    while i > start && chars[i - 1] == ' ' {
        i -= 1;
    }
    i
}

/// A line of a file that does not parse: every `key: value` whose key names a secret, in block or flow style.
fn mask_line(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(colon) = rest.find(':') {
        let (before, after) = rest.split_at(colon);
        let key = before.rsplit(|c: char| c == '{' || c == ',' || c == ' ' || c == '-').next().unwrap_or_default();
        out.push_str(before);
        out.push(':');
        let after = &after[1..];
        if secret_key(key) && after.starts_with(' ') {
            let chars: Vec<char> = after.chars().collect();
            let lead = chars.iter().take_while(|c| **c == ' ').count();
            let end = scalar_end(&chars, lead);
            let value: String = chars[lead..end].iter().collect();
            if reference(&value) {
                out.push_str(&chars[..end].iter().collect::<String>());
            } else {
                out.push_str(&chars[..lead].iter().collect::<String>());
                out.push_str(MASK);
            }
            rest = &after[chars[..end].iter().map(|c| c.len_utf8()).sum::<usize>()..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `scheme://user:password@host` → `scheme://user:••••••@host`.
fn url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '/').unwrap_or(rest.len());
        let authority = &rest[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at && !authority[colon + 1..at].starts_with("${") => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_but_references_stay() {
        let text =
            "url: postgres://etl:hunter2@db:5432/shop\npassword: hunter2\ntoken: \"${env:TOKEN}\"\nname: orders\n\
                    other: postgres://etl:${env:PW}@db/x";
        let shown = redact(text);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://etl:••••••@db:5432/shop"), "{shown}");
        assert!(
            shown.contains("${env:TOKEN}") && shown.contains("${env:PW}") && shown.contains("name: orders"),
            "{shown}"
        );
    }

    #[test]
    fn flow_maps_nested_keys_and_api_key_values_are_masked() {
        let text = "auth: {type: bearer, token: abc1}\nx:\n  auth: {type: api_key, name: X-Key, value: 'abc2', in: header}\n\
                    headers: {Authorization: \"Bearer abc3\", Accept: json}\nlake: {storage: {account_key: abc4, sas: abc5}}\n\
                    list: [{client_secret: abc6}]\nkeep: {name: X-Key, in: header}\n";
        let shown = redact(text);
        for s in ["abc1", "abc2", "abc3", "abc4", "abc5", "abc6"] {
            assert!(!shown.contains(s), "{s} in:\n{shown}");
        }
        assert!(
            shown.contains("type: bearer") && shown.contains("Accept: json") && shown.contains("in: header"),
            "{shown}"
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_masked_line_by_line() {
        let text = "tasks: [\n  source: {auth: {type: bearer, token: abc1}, path: {{ ds }}\n  password: abc2\n";
        let shown = redact(text);
        assert!(!shown.contains("abc1") && !shown.contains("abc2"), "{shown}");
        assert!(shown.contains("type: bearer"), "{shown}");
    }
}
