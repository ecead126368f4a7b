//! The values that JSONPath rules (RFC 9535) select in a JSON body, and the body with some of
//! them replaced.
//!
//! The edits are spliced into the body's own bytes: everything else keeps its exact text
//! (key order, number digits such as `10.50`, escapes, whitespace). Re-serializing a parsed
//! document would need serde_json's `preserve_order` and `arbitrary_precision` features,
//! which change `serde_json::Value` for every crate of the build, and would still rewrite
//! escapes and spacing.
//!
//! Paths are selected one of two ways:
//!
//! - **Simple paths**, made only of member names, wildcards and array indices counted from
//!   the start, in child or descendant segments (`$.cards[*].pan`, `$..iban`), which is
//!   nearly every rule: followed in one walk over the text, after serde_json has checked
//!   it without building it. No document is built and nothing is copied but what is
//!   selected; the walk keeps one frame per container a path is followed into, at most
//!   128 deep. This is what makes the `tokenize` route cheap (BENCHMARKS.md).
//! - **Other paths** (filters, slices, negative indices) need the document: serde_json
//!   parses it, `serde_json_path` evaluates the query, and the normalized paths it gives
//!   are found in the text by one walk. Bodies whose rules have one such path all go this
//!   way.
//!
//! Member names are compared decoded, and every duplicate of a member is followed, so no
//! copy of a selected value slips through unchanged. (A parsed document keeps only the last
//! duplicate: with the second way, a path through an earlier duplicate is not selected at
//! all; with the first way it is.)

mod document;
mod simple;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde_json_path::JsonPath;

/// A rule's JSONPath, parsed once, at build.
#[derive(Clone)]
pub(crate) struct RulePath {
    query: JsonPath,
    /// The same path as plain segments, when it is simple (module doc).
    simple: Option<Vec<simple::Segment>>,
}

impl RulePath {
    /// `path` parsed; the error says why it is not a JSONPath.
    pub(crate) fn parse(path: &str) -> Result<RulePath, String> {
        let query = JsonPath::parse(path).map_err(|e| e.to_string())?;
        Ok(RulePath {
            query,
            simple: simple::segments(path),
        })
    }
}

/// The body paths of a filter's rules, each with its rule's index, ready to select.
pub(crate) struct Paths {
    queries: Vec<(usize, JsonPath)>,
    /// The same paths as segments, when every one of them is simple.
    simple: Option<Vec<(usize, Vec<simple::Segment>)>>,
}

impl Paths {
    pub(crate) fn new<'p>(paths: impl IntoIterator<Item = (usize, &'p RulePath)>) -> Paths {
        let paths: Vec<(usize, &RulePath)> = paths.into_iter().collect();
        Paths {
            queries: (paths.iter())
                .map(|&(rule, path)| (rule, path.query.clone()))
                .collect(),
            simple: (paths.iter())
                .map(|&(rule, path)| Some((rule, path.simple.clone()?)))
                .collect(),
        }
    }

    /// The values the paths select in `body`, in document order; or why the body is not
    /// JSON (the detail never quotes the body).
    pub(crate) fn select<'b>(&self, body: &'b [u8]) -> Result<Vec<Found<'b>>, String> {
        let json = std::str::from_utf8(body)
            .map_err(|e| format!("the body is not UTF-8 (byte {})", e.valid_up_to()))?;
        match &self.simple {
            Some(simple) => {
                // Checks the whole text without building it (and without serde_json's
                // depth limit: the walk is not recursive); the walk relies on it.
                serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(syntax_error)?;
                simple::select(json, simple)
            }
            None => {
                let value = serde_json::from_str(json).map_err(syntax_error)?;
                let queries = self.queries.iter().map(|(rule, query)| (*rule, query));
                Ok(document::select(json, &value, queries))
            }
        }
    }
}

/// A value a rule selected, in a body of lifetime `'b`.
#[derive(Debug, PartialEq)]
pub(crate) struct Found<'b> {
    /// Index of the rule whose path selected it; the first one when several did.
    pub rule: usize,
    /// Where its JSON text is in the body.
    pub span: Range<usize>,
    pub value: Selected<'b>,
}

/// What a selected value is.
#[derive(PartialEq)]
pub(crate) enum Selected<'b> {
    /// A string, unescaped (borrowed from the body when it has no escapes).
    String(Cow<'b, str>),
    /// A number, as written.
    Number(&'b str),
    Null,
    /// `true`, `false`, an object or an array.
    Other,
}

// Strings are what rules tokenize, and numbers may be card numbers: never in debug output.
impl std::fmt::Debug for Selected<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Selected::String(_) => "String(<redacted>)",
            Selected::Number(_) => "Number(<redacted>)",
            Selected::Null => "Null",
            Selected::Other => "Other",
        })
    }
}

fn syntax_error(e: serde_json::Error) -> String {
    let what = if e.is_eof() {
        "the body ends early"
    } else {
        "syntax error"
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// `body` with each span replaced by its text as a JSON string. Spans must not overlap.
pub(crate) fn splice(body: &[u8], mut edits: Vec<(Range<usize>, String)>) -> Bytes {
    edits.sort_by_key(|(span, _)| span.start);
    // Quotes, plus room for a few escapes.
    let grown: usize = edits.iter().map(|(_, text)| text.len() + 8).sum();
    let mut out = Vec::with_capacity(body.len() + grown);
    let mut at = 0;
    for (span, text) in edits {
        out.extend_from_slice(&body[at..span.start]);
        // Tokens and masks rarely need escapes: then the text goes in as it is.
        let plain = (text.bytes()).all(|c| c >= 0x20 && c != b'"' && c != b'\\');
        if plain {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        } else {
            serde_json::to_writer(&mut out, &text).expect("a string always serializes");
        }
        at = span.end;
    }
    out.extend_from_slice(&body[at..]);
    Bytes::from(out)
}

impl<'b> Selected<'b> {
    /// What the (valid) JSON text of a selected value is.
    fn of(text: &'b str) -> Selected<'b> {
        match text.as_bytes()[0] {
            // Only after serde_json parsed the document, which refuses strings that are not
            // Unicode (a lone surrogate escape): the `None` is not reached.
            b'"' => string_at(text, 0)
                .0
                .map_or(Selected::Other, Selected::String),
            b'-' | b'0'..=b'9' => Selected::Number(text),
            b'n' => Selected::Null,
            _ => Selected::Other,
        }
    }
}

/// The (valid) string literal whose opening quote is at `json[i]`: its text decoded
/// (borrowed when it has no escapes), `None` when it is not Unicode (a lone surrogate
/// escape); and the index just past its closing quote.
fn string_at(json: &str, i: usize) -> (Option<Cow<'_, str>>, usize) {
    let (end, escaped) = string_end(json.as_bytes(), i);
    let text = if escaped {
        serde_json::from_str(&json[i..end]).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(&json[i + 1..end - 1]))
    };
    (text, end)
}

/// The index just past the (valid) string literal whose opening quote is at `b[i]`, and
/// whether it has escapes.
fn string_end(b: &[u8], i: usize) -> (usize, bool) {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        // Strings are most of a body's bytes: look for a quote or a backslash eight bytes at
        // a time. `(x − 0x01…01) & !x & 0x80…80` marks x's zero bytes, the lowest mark
        // exactly (a borrow can only add marks above a zero byte).
        while let Some(chunk) = b.get(j..j + 8) {
            let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            let zeros = |v: u64| v.wrapping_sub(0x0101_0101_0101_0101) & !v;
            let marks = (zeros(x ^ u64::from_le_bytes([b'"'; 8]))
                | zeros(x ^ u64::from_le_bytes([b'\\'; 8])))
                & 0x8080_8080_8080_8080;
            if marks != 0 {
                j += marks.trailing_zeros() as usize / 8;
                break;
            }
            j += 8;
        }
        match b[j] {
            b'"' => return (j + 1, escaped),
            b'\\' => {
                escaped = true;
                j += 2;
            }
            _ => j += 1,
        }
    }
}
