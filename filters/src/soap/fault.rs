//! SOAP Faults, found in the envelope whatever the HTTP status: who is to blame (the
//! caller, or the core) and the codes that name the fault.
//!
//! SOAP 1.1: `faultcode` is a QName such as `soap:Client.AccountNotFound` (class `Client`,
//! code `AccountNotFound`); SOAP 1.2: `Code/Value` is `env:Sender` and each
//! `Code/Subcode/Value` a code. In both, the first element of `detail` (1.2: `Detail`) names
//! a code too. Codes are local names: prefixes are meaningless, and a core's own namespace
//! for its codes is its business. Fault children are matched by local name in any
//! namespace, since cores qualify them inconsistently.

use roxmltree::Node;

use super::config::is_ncname;
use super::xml::{elements, is, text_content};
use super::SoapVersion;

/// A fault, as far as the gateway cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    pub class: FaultClass,
    /// Candidate codes, most specific first: the faultcode's suffix or the subcodes, then
    /// the detail's first element.
    pub codes: Vec<String>,
    /// faultstring (1.2: the first Reason/Text), as the core wrote it.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultClass {
    /// SOAP 1.1 Client, 1.2 Sender: the request was wrong.
    Caller,
    /// Server, Receiver, and anything else (VersionMismatch, MustUnderstand, a core's own).
    Core,
}

/// The Body's Fault, if it holds one.
pub(crate) fn find(body: Node<'_, '_>, version: SoapVersion) -> Option<Fault> {
    let fault = elements(body).find(|node| is(node, version.namespace(), "Fault"))?;
    Some(match version {
        SoapVersion::V1_1 => soap11(fault),
        SoapVersion::V1_2 => soap12(fault),
    })
}

fn soap11(fault: Node<'_, '_>) -> Fault {
    let mut class = FaultClass::Core;
    let mut codes = Vec::new();
    if let Some(code) = child(fault, "faultcode") {
        let text = text_content(code);
        let (standard, local) = qname(code, text.trim(), SoapVersion::V1_1);
        let (head, tail) = local.split_once('.').unwrap_or((local, ""));
        let classes = ["Client", "Server", "VersionMismatch", "MustUnderstand"];
        if standard && classes.contains(&head) {
            if head == "Client" {
                class = FaultClass::Caller;
            }
            push_code(&mut codes, tail);
        } else {
            // A core's own code in place of the standard ones.
            push_code(&mut codes, local);
        }
    }
    if let Some(code) = detail_code(fault, "detail") {
        push_code(&mut codes, code);
    }
    Fault {
        class,
        codes,
        reason: child(fault, "faultstring").map(|n| text_content(n).into_owned()),
    }
}

fn soap12(fault: Node<'_, '_>) -> Fault {
    let mut class = FaultClass::Core;
    let mut codes = Vec::new();
    if let Some(code) = child(fault, "Code") {
        if let Some(value) = child(code, "Value") {
            let text = text_content(value);
            let (standard, local) = qname(value, text.trim(), SoapVersion::V1_2);
            if standard && local == "Sender" {
                class = FaultClass::Caller;
            }
        }
        let mut subcode = child(code, "Subcode");
        while let Some(sub) = subcode {
            if let Some(value) = child(sub, "Value") {
                let text = text_content(value);
                let (_, local) = qname(value, text.trim(), SoapVersion::V1_2);
                push_code(&mut codes, local);
            }
            subcode = child(sub, "Subcode");
        }
        // Innermost first: the most specific.
        codes.reverse();
    }
    if let Some(code) = detail_code(fault, "Detail") {
        push_code(&mut codes, code);
    }
    Fault {
        class,
        codes,
        reason: child(fault, "Reason")
            .and_then(|reason| child(reason, "Text"))
            .map(|n| text_content(n).into_owned()),
    }
}

/// The first child element named `local`, in any namespace.
fn child<'a, 'i>(node: Node<'a, 'i>, local: &str) -> Option<Node<'a, 'i>> {
    elements(node).find(|n| n.tag_name().name() == local)
}

/// The local name of the detail's first element.
fn detail_code<'a>(fault: Node<'a, '_>, detail: &str) -> Option<&'a str> {
    let first = elements(child(fault, detail)?).next()?;
    Some(first.tag_name().name())
}

/// The longest code kept: codes are names, and go to logs.
const MAX_CODE_LEN: usize = 128;

/// Adds `code` if it is a name. A core may write anything in a faultcode; what is not a
/// name matches no config key, and is not logged.
fn push_code(codes: &mut Vec<String>, code: &str) {
    if code.len() <= MAX_CODE_LEN && is_ncname(code) {
        codes.push(code.to_owned());
    }
}

/// A QName's local part, and whether it is one of the envelope namespace's own codes (its
/// prefix is bound to the envelope namespace, or it has none, or an undeclared one, as
/// careless cores write).
fn qname<'t>(node: Node<'_, '_>, text: &'t str, version: SoapVersion) -> (bool, &'t str) {
    match text.split_once(':') {
        Some((prefix, local)) => {
            let namespace = node.lookup_namespace_uri(Some(prefix));
            let standard = namespace.is_none_or(|ns| ns == version.namespace());
            (standard, local)
        }
        None => (true, text),
    }
}
