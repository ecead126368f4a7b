//! The SOAP Body → JSON: declared fields with types, or the generic mapping.
//!
//! The generic mapping of an element: text only → a string; `xsi:nil="true"` → null;
//! otherwise an object whose members are its attributes (`"@name"`), its child elements by
//! local name (an array when a name repeats) and its text (`"#text"`, when not only
//! whitespace). Namespaces and prefixes are dropped, values stay strings: nothing is guessed.
//!
//! JSON is written straight into a buffer with a size cap, so no answer can make more than
//! the cap, and nesting is capped at [`MAX_DEPTH`].

use std::collections::HashMap;

use roxmltree::Node;

use super::path::{ElementPath, Target};
use super::xml::{elements, is_nil, text_content, XSI};

/// The deepest nesting of JSON made (deeper XML is refused: clients' parsers have limits).
pub(crate) const MAX_DEPTH: usize = 64;

/// How the Body becomes JSON.
#[derive(Debug)]
pub(crate) struct Mapping {
    /// From the Body; None: the Body's first element.
    pub root: Option<ElementPath>,
    pub shape: Shape,
}

/// What JSON an element (or attribute) gives.
#[derive(Debug)]
pub(crate) enum Shape {
    Scalar(Scalar),
    Object(Vec<Field>),
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar {
    String,
    Number,
    Boolean,
}

/// One JSON member of a declared mapping.
#[derive(Debug)]
pub(crate) struct Field {
    /// For errors.
    name: String,
    /// `"name":`, escaped once.
    key: Vec<u8>,
    path: ElementPath,
    /// An array of every element the path reaches.
    many: bool,
    shape: Shape,
}

impl Field {
    pub(crate) fn new(name: &str, path: ElementPath, many: bool, shape: Shape) -> Self {
        let mut key = Vec::with_capacity(name.len() + 3);
        escape_into(&mut key, name);
        key.push(b':');
        Field {
            name: name.to_owned(),
            key,
            path,
            many,
            shape,
        }
    }
}

/// Why an answer gave no JSON. Names config fields, never values: these go to logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MapError {
    #[error("the JSON would be over {0} bytes")]
    TooLarge(usize),
    #[error("the answer nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("response.root is not in the answer")]
    NoRoot,
    #[error("field {0}: not a number")]
    NotANumber(String),
    #[error("field {0}: not a boolean")]
    NotABoolean(String),
}

impl Mapping {
    /// The JSON for the Body `body`, at most `limit` bytes.
    pub(crate) fn to_json(&self, body: Node<'_, '_>, limit: usize) -> Result<Vec<u8>, MapError> {
        let mut out = Json::new(limit);
        let root = match &self.root {
            Some(path) => match path.first(body) {
                Some(Target::Element(root)) => Some(root),
                _ => return Err(MapError::NoRoot),
            },
            None => elements(body).next(),
        };
        match (root, &self.shape) {
            (Some(root), Shape::Object(fields)) => out.fields(fields, root, 0)?,
            (Some(root), _) => out.generic(root, 0)?,
            (None, Shape::Object(_)) => return Err(MapError::NoRoot),
            // An empty Body (a one-way operation's answer).
            (None, _) => out.raw(b"{}")?,
        }
        Ok(out.buf)
    }
}

/// A JSON text being written, refused past `limit` bytes.
struct Json {
    buf: Vec<u8>,
    limit: usize,
}

impl Json {
    fn new(limit: usize) -> Self {
        Json {
            buf: Vec::with_capacity(limit.min(4096)),
            limit,
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), MapError> {
        self.buf.extend_from_slice(bytes);
        self.check()
    }

    fn string(&mut self, text: &str) -> Result<(), MapError> {
        escape_into(&mut self.buf, text);
        self.check()
    }

    fn check(&self) -> Result<(), MapError> {
        if self.buf.len() > self.limit {
            return Err(MapError::TooLarge(self.limit));
        }
        Ok(())
    }

    fn fields(
        &mut self,
        fields: &[Field],
        from: Node<'_, '_>,
        depth: usize,
    ) -> Result<(), MapError> {
        if depth >= MAX_DEPTH {
            return Err(MapError::TooDeep);
        }
        self.raw(b"{")?;
        for (index, field) in fields.iter().enumerate() {
            if index > 0 {
                self.raw(b",")?;
            }
            self.raw(&field.key)?;
            if field.many {
                self.raw(b"[")?;
                for (index, node) in field.path.all(from).into_iter().enumerate() {
                    if index > 0 {
                        self.raw(b",")?;
                    }
                    self.value(field, Target::Element(node), depth + 1)?;
                }
                self.raw(b"]")?;
            } else {
                match field.path.first(from) {
                    Some(target) => self.value(field, target, depth + 1)?,
                    None => self.raw(b"null")?,
                }
            }
        }
        self.raw(b"}")
    }

    fn value(
        &mut self,
        field: &Field,
        target: Target<'_, '_>,
        depth: usize,
    ) -> Result<(), MapError> {
        let node = match target {
            Target::Attribute(value) => {
                return match field.shape {
                    Shape::Scalar(scalar) => self.scalar(field, scalar, value),
                    _ => self.string(value),
                }
            }
            Target::Element(node) => node,
        };
        if is_nil(&node) {
            return self.raw(b"null");
        }
        match &field.shape {
            Shape::Scalar(scalar) => self.scalar(field, *scalar, &text_content(node)),
            Shape::Object(fields) => self.fields(fields, node, depth),
            Shape::Generic => self.generic(node, depth),
        }
    }

    /// A typed value. Numbers and booleans of empty elements are null.
    fn scalar(&mut self, field: &Field, scalar: Scalar, text: &str) -> Result<(), MapError> {
        let trimmed = text.trim_matches(XML_SPACE);
        match scalar {
            Scalar::String => self.string(text),
            _ if trimmed.is_empty() => self.raw(b"null"),
            Scalar::Number => match json_number(trimmed) {
                Some(number) => self.raw(number.as_bytes()),
                None => Err(MapError::NotANumber(field.name.clone())),
            },
            Scalar::Boolean => match trimmed {
                "true" | "1" => self.raw(b"true"),
                "false" | "0" => self.raw(b"false"),
                _ => Err(MapError::NotABoolean(field.name.clone())),
            },
        }
    }

    fn generic(&mut self, node: Node<'_, '_>, depth: usize) -> Result<(), MapError> {
        if depth >= MAX_DEPTH {
            return Err(MapError::TooDeep);
        }
        if is_nil(&node) {
            return self.raw(b"null");
        }
        // `xsi:` attributes (nil, type) are typing hints, not data.
        let mut attributes = node.attributes().filter(|a| a.namespace() != Some(XSI));
        let mut children = elements(node).peekable();
        let first_attribute = attributes.next();
        if first_attribute.is_none() && children.peek().is_none() {
            return self.string(&text_content(node));
        }

        self.raw(b"{")?;
        let mut first = true;
        let mut seen_attributes: Vec<&str> = Vec::new();
        for attribute in first_attribute.into_iter().chain(attributes) {
            // Two attributes of one local name in two namespaces: the first one counts.
            if seen_attributes.contains(&attribute.name()) {
                continue;
            }
            seen_attributes.push(attribute.name());
            self.member(&mut first)?;
            self.buf.extend_from_slice(b"\"@");
            escape_body(&mut self.buf, attribute.name());
            self.raw(b"\":")?;
            self.string(attribute.value())?;
        }

        // Children grouped by local name, in the order each name first appears.
        let mut groups: Vec<(&str, Vec<Node<'_, '_>>)> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut has_children = false;
        for child in children {
            has_children = true;
            let name = child.tag_name().name();
            match index.get(name) {
                Some(&at) => groups[at].1.push(child),
                None => {
                    index.insert(name, groups.len());
                    groups.push((name, vec![child]));
                }
            }
        }
        for (name, nodes) in groups {
            self.member(&mut first)?;
            escape_into(&mut self.buf, name);
            self.raw(b":")?;
            if let [only] = nodes[..] {
                self.generic(only, depth + 1)?;
            } else {
                self.raw(b"[")?;
                for (index, node) in nodes.into_iter().enumerate() {
                    if index > 0 {
                        self.raw(b",")?;
                    }
                    self.generic(node, depth + 1)?;
                }
                self.raw(b"]")?;
            }
        }

        let text = direct_text(node);
        let meaningful = if has_children {
            !text.trim_matches(XML_SPACE).is_empty()
        } else {
            !text.is_empty()
        };
        if meaningful {
            self.member(&mut first)?;
            self.raw(b"\"#text\":")?;
            self.string(&text)?;
        }
        self.raw(b"}")
    }

    /// A comma before every member but the first.
    fn member(&mut self, first: &mut bool) -> Result<(), MapError> {
        if !std::mem::take(first) {
            return self.raw(b",");
        }
        Ok(())
    }
}

const XML_SPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// The element's own text nodes joined (not its descendants').
fn direct_text(node: Node<'_, '_>) -> String {
    node.children()
        .filter(Node::is_text)
        .filter_map(|n| n.text())
        .collect()
}

/// `text` as a JSON string literal, appended to `out`.
fn escape_into(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    escape_body(out, text);
    out.push(b'"');
}

/// `text` escaped for inside a JSON string, appended to `out`.
fn escape_body(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut start = 0;
    for (at, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..at]);
        out.extend_from_slice(escaped);
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// An XML Schema decimal or double (`+1.50`, `.5`, `5.`, `007`, `1.5E3`) as a JSON number
/// with the same digits; None for anything else (`INF`, `NaN`, `1,5`, `0x10`).
pub(crate) fn json_number(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (integer.is_empty() && fraction.is_empty()) || !digits(integer) || !digits(fraction) {
        return None;
    }
    let mut number = String::with_capacity(text.len() + 1);
    if negative {
        number.push('-');
    }
    let integer = integer.trim_start_matches('0');
    number.push_str(if integer.is_empty() { "0" } else { integer });
    if !fraction.is_empty() {
        number.push('.');
        number.push_str(fraction);
    }
    if let Some(exponent) = exponent {
        let exponent_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        if exponent_digits.is_empty() || !digits(exponent_digits) {
            return None;
        }
        number.push('e');
        number.push_str(exponent);
    }
    Some(number)
}
