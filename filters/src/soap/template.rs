//! The request envelope: the configured XML with `${source:name}` placeholders, wrapped in
//! the SOAP Envelope, Header and Body.
//!
//! Sources: `json:JSONPATH` (RFC 9535, one string, number or boolean of the body; numbers
//! keep the digits the client sent), `query:NAME` (form-decoded), `path:N` (the N-th segment
//! of the request path, 0-based, percent-decoded), `header:NAME`, `consumer:id`,
//! `consumer:KEY` (the consumer's metadata) and `attr:NAME` (an attribute set by an earlier
//! filter). `${query:currency|EUR}` gives a default; without one, a missing value (or a JSON
//! null) is a 400 that names the placeholder. Values are XML-escaped, so a value cannot add
//! markup. Placeholders may stand only in text and attribute values: the template is checked
//! for that, and for being well-formed, when the config loads.

use std::borrow::Cow;
use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, Uri};
use percent_encoding::percent_decode_str;
use roxmltree::{Document, ParsingOptions};
use serde_json::Value;
use serde_json_path::{JsonPath, NormalizedPath, PathElement};

use super::SoapVersion;
use crate::json_fields::{member_name, skip, string_end, ws};
use crate::RequestContext;

/// A compiled envelope template.
#[derive(Debug)]
pub(crate) struct Template {
    parts: Vec<Part>,
    /// Bytes of fixed text: the rendered envelope is at least this long.
    fixed_len: usize,
    /// Whether a placeholder reads the JSON body.
    reads_json: bool,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Value(Placeholder),
}

#[derive(Debug)]
struct Placeholder {
    /// As written, without its default (`json:$.reference`): what a 400 names.
    label: String,
    source: Source,
    default: Option<String>,
}

#[derive(Debug)]
enum Source {
    Json(JsonPath),
    Query(String),
    PathSegment(usize),
    Header(HeaderName),
    ConsumerId,
    ConsumerMetadata(String),
    Attribute(String),
}

/// What placeholders read.
pub(crate) struct Input<'a> {
    /// The body's text and its parse, when the template reads the body and there is one.
    pub json: Option<(&'a str, &'a Value)>,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub ctx: &'a RequestContext,
}

/// Why a request cannot fill the template. Names placeholders, never values: the messages
/// are the 400's detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("the request lacks {0}")]
    Missing(String),
    #[error("{0} selects more than one value")]
    Several(String),
    #[error("{0} is not a string, number or boolean")]
    NotScalar(String),
    #[error("{0} holds a character XML cannot carry")]
    NotXml(String),
    #[error("{0} is not UTF-8 text")]
    NotText(String),
}

/// Stands for a placeholder while a template is checked; refused in templates.
const MARK: char = '\u{E000}';

impl Template {
    /// The whole envelope: `request` in the Body, `header` (if any) in a Header, every
    /// configured namespace declared on the Envelope.
    pub(crate) fn envelope(
        version: SoapVersion,
        namespaces: &BTreeMap<String, String>,
        header: Option<&str>,
        request: &str,
    ) -> Result<Template, String> {
        let mut open = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"{}\"",
            version.namespace()
        );
        for (prefix, uri) in namespaces {
            open.push_str(&format!(" xmlns:{prefix}=\""));
            escape(&mut open, uri).map_err(|_| format!("namespaces: {prefix}: bad URI"))?;
            open.push('"');
        }
        open.push('>');

        if request.trim().is_empty() {
            return Err("request: is empty".to_owned());
        }
        let request = compile(request, "request", &open)?;
        let header = header
            .map(|header| compile(header, "soap_header", &open))
            .transpose()?;

        let mut parts = vec![Part::Text(open)];
        if let Some(header) = header {
            parts.push(Part::Text("<soap:Header>".to_owned()));
            parts.extend(header);
            parts.push(Part::Text("</soap:Header>".to_owned()));
        }
        parts.push(Part::Text("<soap:Body>".to_owned()));
        parts.extend(request);
        parts.push(Part::Text("</soap:Body></soap:Envelope>".to_owned()));

        let mut merged: Vec<Part> = Vec::with_capacity(parts.len());
        for part in parts {
            match (merged.last_mut(), part) {
                (Some(Part::Text(before)), Part::Text(text)) => before.push_str(&text),
                (_, part) => merged.push(part),
            }
        }
        let fixed_len = merged
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.len(),
                Part::Value(_) => 0,
            })
            .sum();
        let reads_json = merged.iter().any(|part| {
            matches!(
                part,
                Part::Value(Placeholder {
                    source: Source::Json(_),
                    ..
                })
            )
        });
        Ok(Template {
            parts: merged,
            fixed_len,
            reads_json,
        })
    }

    /// Whether a placeholder reads the JSON body (which is then parsed).
    pub(crate) fn reads_json(&self) -> bool {
        self.reads_json
    }

    /// The envelope for one request.
    pub(crate) fn render(&self, input: &Input<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.fixed_len + 256);
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Value(placeholder) => {
                    let value = placeholder.value(input)?;
                    let value = match (&value, &placeholder.default) {
                        (Some(value), _) => value.as_ref(),
                        (None, Some(default)) => default.as_str(),
                        (None, None) => {
                            return Err(RenderError::Missing(placeholder.label.clone()))
                        }
                    };
                    escape(&mut out, value)
                        .map_err(|_| RenderError::NotXml(placeholder.label.clone()))?;
                }
            }
        }
        Ok(out)
    }
}

/// One template (`option` names it in errors), checked inside the envelope's opening tag
/// `open` (which declares the namespaces).
fn compile(text: &str, option: &str, open: &str) -> Result<Vec<Part>, String> {
    if text.contains(MARK) {
        return Err(format!("{option}: holds U+E000, which is reserved"));
    }
    let parts = placeholders(text).map_err(|e| format!("{option}: {e}"))?;
    check_xml(&parts, open).map_err(|e| format!("{option}: {e}"))?;
    Ok(parts)
}

/// The template cut into fixed text and placeholders.
fn placeholders(text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let inner_start = start + 2;
        let (end, bar) = placeholder_end(&rest[inner_start..])
            .ok_or("a `${` has no closing `}` (write `&#36;{` for a literal `${`)")?;
        let inner = &rest[inner_start..inner_start + end];
        let placeholder =
            Placeholder::parse(inner, bar).map_err(|e| format!("${{{inner}}}: {e}"))?;
        parts.push(Part::Value(placeholder));
        rest = &rest[inner_start + end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

/// Where the placeholder starting `text` ends (its `}`), and its default's `|` if any;
/// quoted text (in a JSONPath) may hold either.
fn placeholder_end(text: &str) -> Option<(usize, Option<usize>)> {
    let mut quote = None;
    let mut bar = None;
    for (at, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') if bar.is_none() => quote = Some(c),
            (None, '|') if bar.is_none() => bar = Some(at),
            (None, '}') => return Some((at, bar)),
            (None, _) => {}
        }
    }
    None
}

/// Checks that the template is well-formed XML whose prefixes are declared, with its
/// placeholders only in text and attribute values (not in names, comments or CDATA).
fn check_xml(parts: &[Part], open: &str) -> Result<(), String> {
    let mut marked = String::new();
    let mut marks = 0;
    for part in parts {
        match part {
            Part::Text(text) => marked.push_str(text),
            Part::Value(_) => {
                marked.push(MARK);
                marks += 1;
            }
        }
    }
    let mut rest = marked.as_str();
    while let Some(start) = rest.find("<![CDATA[") {
        let section = &rest[start..];
        let end = section.find("]]>").map_or(section.len(), |end| end + 3);
        if section[..end].contains(MARK) {
            return Err("a placeholder cannot stand in a CDATA section".to_owned());
        }
        rest = &section[end..];
    }

    // The template starts on line 2, so the parser's line numbers are the template's + 1.
    let wrapped = format!("{open}<soap:Body>\n{marked}\n</soap:Body></soap:Envelope>");
    let options = ParsingOptions {
        allow_dtd: false,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(&wrapped, options).map_err(|e| {
        let pos = e.pos();
        let lines = marked.lines().count().max(1) as u32;
        let at = if (2..=lines + 1).contains(&pos.row) {
            format!("line {} column {}", pos.row - 1, pos.col)
        } else {
            "the end".to_owned()
        };
        let message = e.to_string().replace(&pos.to_string(), &at);
        format!("not well-formed XML: {message}")
    })?;
    let count = |text: &str| text.matches(MARK).count();
    let placed: usize = doc
        .descendants()
        .map(|node| {
            if node.is_text() {
                node.text().map_or(0, count)
            } else {
                node.attributes().map(|a| count(a.value())).sum()
            }
        })
        .sum();
    if placed != marks {
        return Err(
            "a placeholder may stand only in text or an attribute value (not in a name, a \
             comment or a processing instruction)"
                .to_owned(),
        );
    }
    Ok(())
}

impl Placeholder {
    fn parse(inner: &str, bar: Option<usize>) -> Result<Self, String> {
        let (spec, default) = match bar {
            Some(at) => (&inner[..at], Some(&inner[at + 1..])),
            None => (inner, None),
        };
        let (kind, name) = spec.split_once(':').ok_or(
            "write `${source:name}` (source: json, query, path, header, consumer or attr)",
        )?;
        let named = |what: &str| match name.is_empty() {
            true => Err(format!("{kind}: give the {what}")),
            false => Ok(name.to_owned()),
        };
        let source = match kind {
            "json" => {
                Source::Json(JsonPath::parse(name).map_err(|e| format!("not a JSONPath: {e}"))?)
            }
            "query" => Source::Query(named("parameter name")?),
            "path" => Source::PathSegment(
                name.parse()
                    .map_err(|_| "path: give the segment's index (0 is the first)")?,
            ),
            "header" => Source::Header(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("header: {name:?} is not a header name"))?,
            ),
            "consumer" if name == "id" => Source::ConsumerId,
            "consumer" => Source::ConsumerMetadata(named("metadata key (or id)")?),
            "attr" => Source::Attribute(named("attribute name")?),
            other => {
                return Err(format!(
                    "unknown source {other:?} (json, query, path, header, consumer or attr)"
                ))
            }
        };
        if let Some(default) = default {
            escape(&mut String::new(), default)
                .map_err(|_| "the default holds a character XML cannot carry")?;
        }
        Ok(Placeholder {
            label: spec.to_owned(),
            source,
            default: default.map(str::to_owned),
        })
    }

    /// The value, None when the request has none.
    fn value<'a>(&self, input: &Input<'a>) -> Result<Option<Cow<'a, str>>, RenderError> {
        let not_text = || RenderError::NotText(self.label.clone());
        Ok(match &self.source {
            Source::Json(path) => return self.json_value(path, input),
            Source::Query(name) => input.uri.query().and_then(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .find(|(key, _)| key == name)
                    .map(|(_, value)| value)
            }),
            Source::PathSegment(index) => {
                let path = input.uri.path();
                let segment = path
                    .strip_prefix('/')
                    .unwrap_or(path)
                    .split('/')
                    .nth(*index);
                match segment.filter(|s| !s.is_empty()) {
                    Some(segment) => Some(
                        percent_decode_str(segment)
                            .decode_utf8()
                            .map_err(|_| not_text())?,
                    ),
                    None => None,
                }
            }
            Source::Header(name) => match input.headers.get(name) {
                Some(value) => Some(Cow::Borrowed(
                    std::str::from_utf8(value.as_bytes()).map_err(|_| not_text())?,
                )),
                None => None,
            },
            Source::ConsumerId => input.ctx.consumer.as_ref().map(|c| Cow::Borrowed(&*c.id)),
            Source::ConsumerMetadata(key) => input
                .ctx
                .consumer
                .as_ref()
                .and_then(|c| c.metadata.get(key))
                .map(|v| Cow::Borrowed(v.as_str())),
            Source::Attribute(name) => input
                .ctx
                .attributes
                .get(name)
                .map(|v| Cow::Borrowed(v.as_str())),
        })
    }

    fn json_value<'a>(
        &self,
        path: &JsonPath,
        input: &Input<'a>,
    ) -> Result<Option<Cow<'a, str>>, RenderError> {
        let Some((text, value)) = input.json else {
            return Ok(None);
        };
        let mut found = path.query_located(value).into_iter();
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            return Err(RenderError::Several(self.label.clone()));
        }
        Ok(match first.node() {
            Value::Null => None,
            Value::String(s) => Some(Cow::Borrowed(s.as_str())),
            Value::Bool(true) => Some(Cow::Borrowed("true")),
            Value::Bool(false) => Some(Cow::Borrowed("false")),
            // The digits as sent: parsing would turn 10.50 into 10.5, and round long ones.
            Value::Number(number) => Some(match value_text(text, first.location()) {
                Some(digits) => Cow::Borrowed(digits),
                None => Cow::Owned(number.to_string()),
            }),
            Value::Array(_) | Value::Object(_) => {
                return Err(RenderError::NotScalar(self.label.clone()))
            }
        })
    }
}

/// The text of the value at `location` in `json` (valid JSON). A duplicated member is read
/// at its last copy, as the parsed document has it.
fn value_text<'j>(json: &'j str, location: &NormalizedPath<'_>) -> Option<&'j str> {
    let b = json.as_bytes();
    let mut at = ws(b, 0);
    for element in location.iter() {
        match (element, b.get(at)?) {
            (PathElement::Name(name), b'{') => {
                let mut found = None;
                let mut i = ws(b, at + 1);
                while b[i] != b'}' {
                    let name_end = string_end(b, i);
                    let value = ws(b, ws(b, name_end) + 1);
                    if member_name(&json[i..name_end]).is_ok_and(|n| n == *name) {
                        found = Some(value);
                    }
                    i = ws(b, skip(b, value));
                    if b[i] == b',' {
                        i = ws(b, i + 1);
                    }
                }
                at = found?;
            }
            (PathElement::Index(index), b'[') => {
                let mut i = ws(b, at + 1);
                for _ in 0..*index {
                    if b[i] == b']' {
                        return None;
                    }
                    i = ws(b, skip(b, i));
                    if b[i] == b',' {
                        i = ws(b, i + 1);
                    }
                }
                if b[i] == b']' {
                    return None;
                }
                at = i;
            }
            _ => return None,
        }
    }
    Some(&json[at..skip(b, at)])
}

/// A value holds a character XML 1.0 cannot carry (control characters, U+FFFE, U+FFFF).
#[derive(Debug)]
pub(crate) struct Unrepresentable;

/// `value` XML-escaped onto `out`, for text or an attribute value.
pub(crate) fn escape(out: &mut String, value: &str) -> Result<(), Unrepresentable> {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // As references, so an attribute value keeps them (a parser would make spaces).
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => return Err(Unrepresentable),
            c => out.push(c),
        }
    }
    Ok(())
}
