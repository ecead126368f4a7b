//! JSON objects parsed strictly: a member name repeated at any depth is an error.
//!
//! `serde_json` keeps the last of duplicate members, while another parser (the IdP's, the
//! core's, an auditor's) may keep the first; a token with `"sub":"alice", ..., "sub":"bob"`
//! would then mean different callers to different readers (RFC 7519 §4 lets a recipient
//! reject such a token, and we do). The visitor below builds an ordinary `serde_json::Value`
//! and refuses repeated names while doing so.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `bytes` as one JSON object with no repeated member names, at any depth.
pub(super) fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Some(map),
        _ => None,
    }
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON without repeated member names")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            let Strict(value) = access.next_value()?;
            if map.insert(name, value).is_some() {
                // The name is not echoed: errors never carry token content.
                return Err(de::Error::custom("a member name is repeated"));
            }
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_object;

    #[test]
    fn refuses_repeated_names_at_any_depth() {
        assert!(parse_object(br#"{"sub":"a","n":{"x":1,"y":[1,{"z":true}]}}"#).is_some());
        assert!(parse_object(br#"{"sub":"alice","sub":"bob"}"#).is_none());
        assert!(parse_object(br#"{"cnf":{"x5t#S256":"a","x5t#S256":"b"}}"#).is_none());
        assert!(parse_object(br#"{"a":[{"k":1,"k":2}]}"#).is_none());
        // "sub" and "su\u0062" are the same name once unescaped.
        assert!(parse_object(br#"{"sub":"a","su\u0062":"b"}"#).is_none());
    }

    #[test]
    fn refuses_what_is_not_one_json_object() {
        for bad in [
            &b"[1,2]"[..],
            b"\"sub\"",
            b"{\"a\":1} {}",
            b"{\"a\":1,}",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\xff\"}",
            b"",
        ] {
            assert!(parse_object(bad).is_none(), "{bad:?}");
        }
        // Nesting past serde_json's recursion limit is an error, not a stack overflow.
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_object(deep.as_bytes()).is_none());
    }
}
