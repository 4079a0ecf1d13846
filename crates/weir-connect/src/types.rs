//! Column type names as users write them in `schema:` and `cast:` (SQL-style), mapped to Arrow types.

use arrow::datatypes::{DataType, TimeUnit};

pub const TYPE_NAMES: &[&str] = &[
    "string",
    "text",
    "varchar",
    "int",
    "integer",
    "bigint",
    "smallint",
    "double",
    "float",
    "real",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
    "decimal(p,s)",
];

pub fn parse_type(name: &str) -> Result<DataType, String> {
    let n = name.trim().to_ascii_lowercase();
    let t = match n.as_str() {
        "string" | "text" | "varchar" | "utf8" | "str" => DataType::Utf8,
        "int" | "integer" | "int32" | "int4" => DataType::Int32,
        "bigint" | "int64" | "long" | "int8" => DataType::Int64,
        "smallint" | "int16" | "int2" => DataType::Int16,
        "double" | "float" | "float64" | "float8" | "double precision" => DataType::Float64,
        "real" | "float32" | "float4" => DataType::Float32,
        "bool" | "boolean" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp" | "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" | "timestamp with time zone" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ if n.starts_with("decimal(") || n.starts_with("numeric(") => {
            let inner = n.split_once('(').and_then(|(_, r)| r.strip_suffix(')')).unwrap_or("");
            let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
            let p: u8 = p.trim().parse().map_err(|_| format!("bad precision in `{name}`"))?;
            let s: i8 = s.trim().parse().map_err(|_| format!("bad scale in `{name}`"))?;
            if p == 0 || p > 38 || s < 0 || s as u8 > p {
                return Err(format!("`{name}`: precision must be 1..=38 and scale 0..=precision"));
            }
            DataType::Decimal128(p, s)
        }
        _ => return Err(format!("unknown type `{name}`; {}", weir_config::diag::suggest(&n, TYPE_NAMES))),
    };
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_sql_names() {
        assert_eq!(parse_type("BIGINT").unwrap(), DataType::Int64);
        assert_eq!(parse_type("decimal(12, 2)").unwrap(), DataType::Decimal128(12, 2));
        assert!(parse_type("integr").unwrap_err().contains("did you mean `integer`?"));
    }
}
