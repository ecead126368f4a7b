//! The values that JSONPath rules (RFC 9535, `serde_json_path`) select in a JSON body, and
//! the body with some of them replaced.
//!
//! The paths are evaluated on the parsed document, but the edits are spliced into the body's
//! own bytes: everything else keeps its exact text (key order, number digits such as
//! `10.50`, escapes, whitespace). Re-serializing the parsed document would need serde_json's
//! `preserve_order` and `arbitrary_precision` features, which change `serde_json::Value` for
//! every crate of the build, and would still rewrite escapes and spacing.
//!
//! A query gives normalized paths (`$['cards'][0]['pan']`); they are merged into a tree, and
//! one walk over the text finds their places. Member names are compared decoded, and every
//! duplicate of a member is followed (the parsed document keeps only the last one), so no
//! copy of a selected value slips through unchanged.

use std::collections::HashMap;
use std::ops::Range;

use bytes::Bytes;
use serde_json::Value;
use serde_json_path::{JsonPath, PathElement};

use crate::json_fields::{member_name, skip, string_end, ws};

/// A value a rule selected.
#[derive(Debug, PartialEq)]
pub(crate) struct Found {
    /// Index of the rule whose path selected it; the first one when several did.
    pub rule: usize,
    /// Where its JSON text is in the body.
    pub span: Range<usize>,
    pub value: Selected,
}

/// What a selected value is.
#[derive(PartialEq)]
pub(crate) enum Selected {
    /// A string, unescaped.
    String(String),
    Number,
    Null,
    /// `true`, `false`, an object or an array.
    Other,
}

// Strings are what rules tokenize: never in debug output.
impl std::fmt::Debug for Selected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Selected::String(_) => "String(<redacted>)",
            Selected::Number => "Number",
            Selected::Null => "Null",
            Selected::Other => "Other",
        })
    }
}

/// Why a body cannot be read as JSON; the detail never quotes the body.
pub(crate) fn parse(body: &[u8]) -> Result<(&str, Value), String> {
    let text = std::str::from_utf8(body)
        .map_err(|e| format!("the body is not UTF-8 (byte {})", e.valid_up_to()))?;
    let value = serde_json::from_str(text).map_err(|e| {
        let what = if e.is_eof() {
            "the body ends early"
        } else {
            "syntax error"
        };
        format!("{what} at line {} column {}", e.line(), e.column())
    })?;
    Ok((text, value))
}

/// The values that `paths`, each with the index of its rule, select in `json` (whose parsed
/// form is `value`), in document order.
pub(crate) fn select<'p>(
    json: &str,
    value: &Value,
    paths: impl IntoIterator<Item = (usize, &'p JsonPath)>,
) -> Vec<Found> {
    let mut tree = Node::default();
    for (rule, path) in paths {
        for located in path.query_located(value) {
            let mut node = &mut tree;
            for element in located.location().iter() {
                node = match element {
                    PathElement::Name(name) => node.names.entry((*name).to_owned()).or_default(),
                    PathElement::Index(index) => node.indices.entry(*index).or_default(),
                };
            }
            node.rule.get_or_insert(rule);
        }
    }
    let mut found = Vec::new();
    if tree.rule.is_some() || !tree.is_leaf() {
        let start = ws(json.as_bytes(), 0);
        visit(json, start, &tree, &mut found);
        found.sort_by_key(|f| f.span.start);
    }
    found
}

/// `body` with each span replaced by its JSON text. Spans must not overlap.
pub(crate) fn splice(body: &[u8], mut edits: Vec<(Range<usize>, String)>) -> Bytes {
    edits.sort_by_key(|(span, _)| span.start);
    let grown: usize = edits.iter().map(|(_, text)| text.len()).sum();
    let mut out = Vec::with_capacity(body.len() + grown);
    let mut at = 0;
    for (span, text) in edits {
        out.extend_from_slice(&body[at..span.start]);
        out.extend_from_slice(text.as_bytes());
        at = span.end;
    }
    out.extend_from_slice(&body[at..]);
    Bytes::from(out)
}

/// The selected places, as a tree of member names and array indices.
#[derive(Default)]
struct Node {
    /// The rule that selected the value here, if one did.
    rule: Option<usize>,
    names: HashMap<String, Node>,
    indices: HashMap<usize, Node>,
}

impl Node {
    fn is_leaf(&self) -> bool {
        self.names.is_empty() && self.indices.is_empty()
    }
}

/// Walks the (valid) value at `i`, records what `node` selects in it, and returns the index
/// just past it. Recursion follows the tree, which is no deeper than the parsed document
/// (serde_json refuses more than 128 levels).
fn visit(json: &str, i: usize, node: &Node, found: &mut Vec<Found>) -> usize {
    let b = json.as_bytes();
    let end = match b[i] {
        b'{' if !node.names.is_empty() => {
            let mut at = ws(b, i + 1);
            while b[at] != b'}' {
                let name_end = string_end(b, at);
                let value = ws(b, ws(b, name_end) + 1);
                // The document parsed, so every name decodes.
                let child = member_name(&json[at..name_end])
                    .ok()
                    .and_then(|name| node.names.get(&*name));
                at = match child {
                    Some(child) => visit(json, value, child, found),
                    None => skip(b, value),
                };
                at = ws(b, at);
                if b[at] == b',' {
                    at = ws(b, at + 1);
                }
            }
            at + 1
        }
        b'[' if !node.indices.is_empty() => {
            let mut at = ws(b, i + 1);
            let mut index = 0;
            while b[at] != b']' {
                at = match node.indices.get(&index) {
                    Some(child) => visit(json, at, child, found),
                    None => skip(b, at),
                };
                index += 1;
                at = ws(b, at);
                if b[at] == b',' {
                    at = ws(b, at + 1);
                }
            }
            at + 1
        }
        _ => skip(b, i),
    };
    if let Some(rule) = node.rule {
        let text = &json[i..end];
        let value = match b[i] {
            b'"' => match serde_json::from_str(text) {
                Ok(string) => Selected::String(string),
                Err(_) => Selected::Other,
            },
            b'-' | b'0'..=b'9' => Selected::Number,
            b'n' => Selected::Null,
            _ => Selected::Other,
        };
        found.push(Found {
            rule,
            span: i..end,
            value,
        });
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(json: &str, paths: &[&str]) -> Vec<(usize, String)> {
        let paths: Vec<JsonPath> = paths.iter().map(|p| JsonPath::parse(p).unwrap()).collect();
        let (text, value) = parse(json.as_bytes()).unwrap();
        select(text, &value, paths.iter().enumerate())
            .into_iter()
            .map(|f| (f.rule, json[f.span].to_owned()))
            .collect()
    }

    #[test]
    fn finds_what_the_paths_select_in_document_order() {
        let json =
            r#"{"cards":[{"pan":"4111","n":1},{"x":{"pan":"5555"}},{"pan":"4000"}],"pan":7}"#;
        assert_eq!(
            found(json, &["$.cards[*].pan"]),
            [(0, "\"4111\"".into()), (0, "\"4000\"".into())]
        );
        assert_eq!(
            found(json, &["$.pan", "$..pan"]),
            [
                (1, "\"4111\"".into()),
                (1, "\"5555\"".into()),
                (1, "\"4000\"".into()),
                (0, "7".into()),
            ]
        );
        // Filters and slices are the query's business; only their results matter here.
        assert_eq!(
            found(json, &["$.cards[?@.n == 1].pan", "$.cards[-1:].pan"]),
            [(0, "\"4111\"".into()), (1, "\"4000\"".into())]
        );
        // A container and a value inside it.
        assert_eq!(
            found(r#"{"a":{"b":"x"}}"#, &["$.a", "$.a.b"]),
            [(0, r#"{"b":"x"}"#.into()), (1, "\"x\"".into())]
        );
        assert!(found(json, &["$.none", "$.cards[9].pan"]).is_empty());
        assert_eq!(found(" \"s\" ", &["$"]), [(0, "\"s\"".into())]);
    }

    #[test]
    fn names_are_matched_decoded_and_every_duplicate_is_found() {
        let json = r#"{ "p\u0061n" : "1", "pan":"2" , "x":[ null , "a\"b" ]}"#;
        assert_eq!(
            found(json, &["$.pan", "$.x[*]"]),
            [
                (0, "\"1\"".into()),
                (0, "\"2\"".into()),
                (1, "null".into()),
                (1, r#""a\"b""#.into()),
            ]
        );
        let paths = [JsonPath::parse("$.x[*]").unwrap()];
        let (text, value) = parse(json.as_bytes()).unwrap();
        let values: Vec<Selected> = select(text, &value, paths.iter().enumerate())
            .into_iter()
            .map(|f| f.value)
            .collect();
        assert_eq!(values, [Selected::Null, Selected::String("a\"b".into())]);
        let shown = format!("{:?}", Selected::String("4111111111111111".into()));
        assert_eq!(shown, "String(<redacted>)");
    }

    #[test]
    fn splices_edits_and_keeps_every_other_byte() {
        let body =
            br#"{"amount": 10.50, "pan" : "4111111111111111", "big":1e400000000000000000000}"#;
        let start = body.windows(3).position(|w| w == b"\"41").unwrap();
        let out = splice(body, vec![(start..start + 18, "\"tok\"".into())]);
        assert_eq!(
            &out[..],
            &br#"{"amount": 10.50, "pan" : "tok", "big":1e400000000000000000000}"#[..]
        );
    }

    #[test]
    fn parse_errors_never_quote_the_body() {
        for (body, expected) in [
            (&br#"{"pan":"4111111111111111""#[..], "ends early"),
            (br#"{"pan":4111111111111111x}"#, "syntax error"),
            (b"{\"pan\":\"\xff4111\"}", "not UTF-8"),
        ] {
            let err = parse(body).unwrap_err();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("4111"), "{err}");
        }
    }
}
