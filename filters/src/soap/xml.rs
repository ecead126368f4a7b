//! Reading the core's answer safely: its content coding undone under a size cap (so a
//! decompression bomb stops at the cap), a BOM and UTF-16 handled, any document type
//! declaration refused before parsing (no external entity is fetched, no entity expanded),
//! its shape checked against [`limits`] (so the parser's work stays bounded), then a
//! namespace-aware tree from roxmltree, which without a DTD knows only the five predefined
//! entities and character references.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use http::header::CONTENT_ENCODING;
use http::HeaderMap;
use roxmltree::{Document, Node, ParsingOptions};

use super::limits::{self, Exceeded};
use super::SoapVersion;

pub(crate) const SOAP11_ENVELOPE: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const SOAP12_ENVELOPE: &str = "http://www.w3.org/2003/05/soap-envelope";
/// XML Schema instance: `xsi:nil`, `xsi:type`.
pub(crate) const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Why the core's answer could not be read. The messages go to logs; none quotes the answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("the answer is over {0} bytes once decoded")]
    TooLarge(u64),
    #[error("the answer has a content coding other than gzip or deflate")]
    Coding,
    #[error("the compressed answer is corrupt")]
    Corrupt,
    #[error("the answer is not UTF-8 or UTF-16 text")]
    NotText,
    #[error("the answer has a document type declaration (refused)")]
    Dtd,
    #[error("the answer refers to an entity at line {line} column {column} (refused)")]
    Entity { line: u32, column: u32 },
    #[error("the answer is refused: {0}")]
    Shape(Exceeded),
    #[error("the answer is not well-formed XML (line {line} column {column})")]
    Syntax { line: u32, column: u32 },
    #[error("the answer is not a SOAP envelope")]
    NotEnvelope,
    #[error("the envelope has no Body")]
    NoBody,
}

/// `body` with its content coding (gzip, x-gzip or deflate) undone; at most `limit` bytes.
pub(crate) fn decode<'b>(
    headers: &HeaderMap,
    body: &'b [u8],
    limit: u64,
) -> Result<Cow<'b, [u8]>, ReadError> {
    let mut codings = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity"));
    let coding = codings.next();
    if codings.next().is_some() {
        return Err(ReadError::Coding);
    }
    let Some(coding) = coding else {
        if body.len() as u64 > limit {
            return Err(ReadError::TooLarge(limit));
        }
        return Ok(Cow::Borrowed(body));
    };
    let decoded = if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
    {
        inflate(MultiGzDecoder::new(body), limit)?
    } else if coding.eq_ignore_ascii_case(b"deflate") {
        // HTTP's deflate is zlib-wrapped, but some servers send raw deflate.
        match inflate(ZlibDecoder::new(body), limit) {
            Err(ReadError::Corrupt) => inflate(DeflateDecoder::new(body), limit)?,
            other => other?,
        }
    } else {
        return Err(ReadError::Coding);
    };
    Ok(Cow::Owned(decoded))
}

/// Everything `reader` gives, or TooLarge as soon as it gives more than `limit` bytes.
fn inflate(reader: impl Read, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|_| ReadError::Corrupt)?;
    if out.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(out)
}

/// The document's text: UTF-8 (a BOM is dropped), or UTF-16 announced by its BOM.
pub(crate) fn text(bytes: &[u8]) -> Result<Cow<'_, str>, ReadError> {
    match bytes {
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest),
        [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes),
        _ => utf8(bytes),
    }
}

fn utf8(bytes: &[u8]) -> Result<Cow<'_, str>, ReadError> {
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .map_err(|_| ReadError::NotText)
}

fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Result<Cow<'static, str>, ReadError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(ReadError::NotText);
    }
    let units = bytes.chunks_exact(2).map(|pair| unit([pair[0], pair[1]]));
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map(Cow::Owned)
        .map_err(|_| ReadError::NotText)
}

/// The parsed document. A DOCTYPE is refused whatever it holds (even an empty one, which the
/// parser alone would accept), so neither XXE nor entity expansion can start; so is a shape
/// over the [`limits`].
pub(crate) fn parse(text: &str) -> Result<Document<'_>, ReadError> {
    if has_doctype(text) {
        return Err(ReadError::Dtd);
    }
    limits::check(text).map_err(ReadError::Shape)?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: limits::MAX_NODES,
        ..ParsingOptions::default()
    };
    Document::parse_with_options(text, options).map_err(|e| {
        let pos = e.pos();
        let (line, column) = (pos.row, pos.col);
        match e {
            roxmltree::Error::DtdDetected => ReadError::Dtd,
            roxmltree::Error::NodesLimitReached => ReadError::Shape(Exceeded::Nodes),
            roxmltree::Error::UnknownEntityReference(..)
            | roxmltree::Error::EntityReferenceLoop(_) => ReadError::Entity { line, column },
            _ => ReadError::Syntax { line, column },
        }
    })
}

/// Whether the prolog (what comes before the root element: the XML declaration, comments,
/// processing instructions) holds a DOCTYPE, the only place one can be. The parser refuses
/// DTDs too, but its documentation allows empty ones: this check does not depend on that.
pub(super) fn has_doctype(text: &str) -> bool {
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([' ', '\t', '\r', '\n']);
        let skip_to = if rest.starts_with("<?") {
            rest.find("?>").map(|end| end + 2)
        } else if let Some(comment) = rest.strip_prefix("<!--") {
            comment.find("-->").map(|end| 4 + end + 3)
        } else {
            // Case-blind: a parser that took `<!doctype` must not slip past.
            return rest
                .get(..9)
                .is_some_and(|start| start.eq_ignore_ascii_case("<!DOCTYPE"));
        };
        match skip_to {
            Some(end) => rest = &rest[end..],
            // Unclosed: not well-formed, which the parser reports.
            None => return false,
        }
    }
}

/// The envelope's version (from its namespace, whatever was asked) and its Body.
pub(crate) fn envelope<'a, 'i>(
    doc: &'a Document<'i>,
) -> Result<(SoapVersion, Node<'a, 'i>), ReadError> {
    let root = doc.root_element();
    let version = match (root.tag_name().namespace(), root.tag_name().name()) {
        (Some(SOAP11_ENVELOPE), "Envelope") => SoapVersion::V1_1,
        (Some(SOAP12_ENVELOPE), "Envelope") => SoapVersion::V1_2,
        _ => return Err(ReadError::NotEnvelope),
    };
    let body = elements(root)
        .find(|node| is(node, version.namespace(), "Body"))
        .ok_or(ReadError::NoBody)?;
    Ok((version, body))
}

/// The element children of `node`.
pub(crate) fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

/// Whether `node` is the element `local` in namespace `ns`.
pub(crate) fn is(node: &Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.tag_name().namespace() == Some(ns) && node.tag_name().name() == local
}

/// The text of an element: its text descendants (CDATA included) joined.
pub(crate) fn text_content<'a>(node: Node<'a, '_>) -> Cow<'a, str> {
    let mut texts = node
        .descendants()
        .filter(Node::is_text)
        .filter_map(|n| n.text());
    let Some(first) = texts.next() else {
        return Cow::Borrowed("");
    };
    match texts.next() {
        None => Cow::Borrowed(first),
        Some(second) => {
            let mut joined = format!("{first}{second}");
            texts.for_each(|t| joined.push_str(t));
            Cow::Owned(joined)
        }
    }
}

/// Whether the element says `xsi:nil="true"`.
pub(crate) fn is_nil(node: &Node<'_, '_>) -> bool {
    node.attribute((XSI, "nil"))
        .is_some_and(|v| matches!(v.trim(), "true" | "1"))
}
