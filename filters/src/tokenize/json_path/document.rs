//! Selection on the parsed document, for paths that need it (filters, slices, negative
//! indices): `serde_json_path` gives normalized paths (`$['cards'][0]['pan']`); they are
//! merged into a tree, and one walk over the text finds their places.

use std::collections::HashMap;

use serde_json::Value;
use serde_json_path::{JsonPath, PathElement};

use super::{Found, Selected};
use crate::json_fields::{member_name, skip, string_end, ws};

/// The values that `paths`, each with the index of its rule, select in `json` (whose parsed
/// form is `value`), in document order.
pub(super) fn select<'b, 'p>(
    json: &'b str,
    value: &Value,
    paths: impl IntoIterator<Item = (usize, &'p JsonPath)>,
) -> Vec<Found<'b>> {
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
fn visit<'b>(json: &'b str, i: usize, node: &Node, found: &mut Vec<Found<'b>>) -> usize {
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
        found.push(Found {
            rule,
            span: i..end,
            value: Selected::of(&json[i..end]),
        });
    }
    end
}
