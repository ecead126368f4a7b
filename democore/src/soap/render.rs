//! The service's answers as XML text. Written by hand, in the awkward but
//! valid shapes real SOAP stacks produce: a generated `ns7` prefix, a default
//! namespace, names in CDATA.

use super::request::Version;
use super::SERVICE_NS;
use crate::{Account, Amount};

/// The envelope around one Body child, with the usual prefix of each version.
pub(crate) fn envelope(version: Version, body: &str) -> String {
    let (prefix, ns) = match version {
        Version::V11 => ("soap", version.envelope_ns()),
        Version::V12 => ("env", version.envelope_ns()),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <{prefix}:Envelope xmlns:{prefix}=\"{ns}\">\n  \
         <{prefix}:Body>\n    {body}\n  </{prefix}:Body>\n\
         </{prefix}:Envelope>\n"
    )
}

/// Text content or attribute value, escaped.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A CDATA section; a `]]>` inside is split across two sections.
fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// All accounts are open: the demo core has no other status.
const ACCOUNT_STATUS: &str = "ACTIVE";

pub(crate) fn account(a: &Account) -> String {
    format!(
        "<ns7:GetAccountResponse xmlns:ns7=\"{SERVICE_NS}\"><ns7:account>\
         <ns7:id>{}</ns7:id><ns7:holder>{}</ns7:holder><ns7:iban>{}</ns7:iban>\
         <ns7:currency>{}</ns7:currency><ns7:status>{ACCOUNT_STATUS}</ns7:status>\
         </ns7:account></ns7:GetAccountResponse>",
        escape(&a.id),
        cdata(&a.owner),
        escape(&a.iban),
        escape(&a.currency),
    )
}

pub(crate) fn balance(account_id: &str, available: Amount, currency: &str, as_of: &str) -> String {
    format!(
        "<GetBalanceResponse xmlns=\"{SERVICE_NS}\"><balance>\
         <accountId>{}</accountId><available>{available}</available>\
         <currency>{}</currency><asOf>{}</asOf></balance></GetBalanceResponse>",
        escape(account_id),
        escape(currency),
        escape(as_of),
    )
}

pub(crate) fn transfer(transfer_id: &str, status: &str) -> String {
    format!(
        "<ns2:TransferResponse xmlns:ns2=\"{SERVICE_NS}\">\
         <ns2:transferId>{}</ns2:transferId><ns2:status>{}</ns2:status>\
         </ns2:TransferResponse>",
        escape(transfer_id),
        escape(status),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_cdata() {
        assert_eq!(escape(r#"a&b<c>"d'"#), "a&amp;b&lt;c&gt;&quot;d&apos;");
        let xml = format!("<x>{}</x>", cdata("O]]>Brien & <Co>"));
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let text: String = doc
            .root_element()
            .children()
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(text, "O]]>Brien & <Co>");
    }
}
