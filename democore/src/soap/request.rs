//! Reading a SOAP request: the version and action from the HTTP head, the
//! operation and its parameters from the envelope.
//!
//! XML goes through roxmltree with DTDs refused, so no entity can be declared,
//! expanded or fetched (no XXE, no billion laughs).

use axum::http::{header, HeaderMap};
use roxmltree::{Document, Node, ParsingOptions};

use super::fault::Fault;
use super::SERVICE_NS;

/// XML nodes a request may have: far more than any real one, far fewer than
/// the body limit would otherwise allow.
const MAX_NODES: u32 = 2_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V11,
    V12,
}

impl Version {
    pub(crate) fn envelope_ns(self) -> &'static str {
        match self {
            Version::V11 => "http://schemas.xmlsoap.org/soap/envelope/",
            Version::V12 => "http://www.w3.org/2003/05/soap-envelope",
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Version::V11 => "text/xml; charset=utf-8",
            Version::V12 => "application/soap+xml; charset=utf-8",
        }
    }
}

/// The SOAP version the Content-Type names, and its parameters; `None` when
/// it names neither (the caller answers 415).
pub(crate) fn version(headers: &HeaderMap) -> Option<(Version, Vec<(String, String)>)> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut parts = value.split(';');
    let media_type = parts.next()?.trim();
    let version = if media_type.eq_ignore_ascii_case("text/xml") {
        Version::V11
    } else if media_type.eq_ignore_ascii_case("application/soap+xml") {
        Version::V12
    } else {
        return None;
    };
    let params = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), unquote(v.trim()).to_owned()))
        .collect();
    Some((version, params))
}

/// The action the client names: SOAP 1.1's SOAPAction header (which must be
/// there, if only as `""`), SOAP 1.2's `action` media type parameter (optional).
/// Also refuses a charset other than UTF-8.
pub(crate) fn action(
    version: Version,
    params: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Option<String>, Fault> {
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    if param("charset").is_some_and(|c| !c.eq_ignore_ascii_case("utf-8")) {
        return Err(Fault::invalid("only UTF-8 requests are supported"));
    }
    let action = match version {
        Version::V11 => {
            let value = headers
                .get("soapaction")
                .ok_or_else(|| Fault::invalid("the SOAPAction header is required"))?
                .to_str()
                .map_err(|_| Fault::invalid("the SOAPAction header is not ASCII"))?;
            unquote(value.trim()).to_owned()
        }
        Version::V12 => param("action").cloned().unwrap_or_default(),
    };
    Ok(Some(action).filter(|a| !a.is_empty()))
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// A request the service understood.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    GetAccount { account_id: String },
    GetBalance { account_id: String },
    Transfer(Transfer),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Transfer {
    pub(crate) from_account: String,
    pub(crate) to_account: String,
    pub(crate) amount: String,
    pub(crate) currency: String,
    pub(crate) reference: String,
}

/// Parses the envelope and its one operation. `action`, when given, must name
/// that operation (`urn:corridor:democore:accounts:1#GetBalance`).
pub(crate) fn operation(
    version: Version,
    action: Option<&str>,
    body: &[u8],
) -> Result<Operation, Fault> {
    let text = std::str::from_utf8(body).map_err(|_| Fault::invalid("the body is not UTF-8"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: MAX_NODES,
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => Fault::invalid("DTDs are not allowed"),
        e => Fault::invalid(format!("malformed XML at {}", e.pos())),
    })?;
    let envelope = doc.root_element();
    if envelope.tag_name().name() != "Envelope" {
        return Err(Fault::invalid("the document is not a SOAP envelope"));
    }
    if envelope.tag_name().namespace() != Some(version.envelope_ns()) {
        return Err(Fault::version_mismatch());
    }
    let body = elements(envelope)
        .find(|n| {
            n.tag_name().namespace() == Some(version.envelope_ns()) && n.tag_name().name() == "Body"
        })
        .ok_or_else(|| Fault::invalid("the envelope has no Body"))?;
    let op = elements(body)
        .next()
        .ok_or_else(|| Fault::invalid("the Body is empty"))?;
    if op.tag_name().namespace() != Some(SERVICE_NS) {
        return Err(Fault::invalid("unknown operation"));
    }
    let name = op.tag_name().name();
    let named =
        |a: &str| a.strip_prefix(SERVICE_NS).and_then(|a| a.strip_prefix('#')) == Some(name);
    if action.is_some_and(|a| !named(a)) {
        return Err(Fault::invalid(
            "the SOAP action does not match the operation",
        ));
    }
    let param = |local: &'static str| param(op, local);
    match name {
        "GetAccount" => Ok(Operation::GetAccount {
            account_id: param("accountId")?,
        }),
        "GetBalance" => Ok(Operation::GetBalance {
            account_id: param("accountId")?,
        }),
        "Transfer" => Ok(Operation::Transfer(Transfer {
            from_account: param("fromAccount")?,
            to_account: param("toAccount")?,
            amount: param("amount")?,
            currency: param("currency")?,
            reference: param("reference")?,
        })),
        _ => Err(Fault::invalid("unknown operation")),
    }
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(Node::is_element)
}

/// A parameter's text, trimmed: a child element in the service namespace or
/// in none (clients disagree on elementFormDefault).
fn param(op: Node, local: &'static str) -> Result<String, Fault> {
    elements(op)
        .find(|n| {
            n.tag_name().name() == local
                && matches!(n.tag_name().namespace(), None | Some(SERVICE_NS))
        })
        .map(|n| n.text().unwrap_or_default().trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Fault::invalid(format!("{local} is required")))
}
