//! `client_cert_headers`: tells the upstream about the verified client certificate, in
//! request headers the route names.
//!
//! ```toml
//! { type = "client_cert_headers", subject = "x-client-subject", sha256 = "x-client-cert-sha256" }
//! ```
//!
//! Client-sent copies of every configured header are removed first, on every request: the
//! upstream trusts these headers, so only the gateway may set them. They are then set from
//! the certificate verified in the TLS handshake, when there is one.
//!
//! Values are percent-encoded (RFC 3986 style, over their UTF-8 bytes): every byte that is not
//! visible ASCII, and `%` itself, becomes `%XX`. Names in certificates may hold spaces,
//! non-ASCII letters and even control characters, which a header cannot carry as they are;
//! percent-decoding gives the exact value back. List values (SANs) are joined with `,`, and a
//! `,` inside an item is encoded too, so the list splits back unambiguously.

use std::sync::Arc;

use async_trait::async_trait;
use http::{HeaderName, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::Deserialize;

use crate::headers::config_header_name;
use crate::{
    BuildContext, BuildError, ClientCertificate, Filter, Flow, RequestContext, RequestHead,
};

/// Bytes encoded in single values: controls and non-ASCII (always, by the crate), space
/// (not visible, and trimmed by HTTP parsers at the ends), and `%` (so decoding is exact).
const VALUE: &AsciiSet = &CONTROLS.add(b' ').add(b'%');
/// Bytes encoded in the items of list values: also the separator.
const LIST_ITEM: &AsciiSet = &VALUE.add(b',');

/// Config of the `client_cert_headers` filter: for each fact of the certificate, the request
/// header that carries it to the upstream. Each is optional; at least one is required.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientCertHeadersConfig {
    /// The subject DN (RFC 4514, e.g. `CN=acme,O=Acme Ltd`).
    pub subject: Option<String>,
    /// The subject's common name; not set when it has none.
    pub common_name: Option<String>,
    /// The SHA-256 thumbprint, lowercase hex.
    pub sha256: Option<String>,
    /// DNS subject alternative names, comma-separated; not set when there are none.
    pub dns_sans: Option<String>,
    /// URI subject alternative names, comma-separated; not set when there are none.
    pub uri_sans: Option<String>,
    /// E-mail subject alternative names, comma-separated; not set when there are none.
    pub email_sans: Option<String>,
}

/// A fact of the certificate that can be forwarded.
#[derive(Debug, Clone, Copy)]
enum Fact {
    Subject,
    CommonName,
    Sha256,
    DnsSans,
    UriSans,
    EmailSans,
}

impl ClientCertHeadersConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        let mut headers: Vec<(Fact, HeaderName)> = Vec::new();
        for (option, fact, raw) in [
            ("subject", Fact::Subject, &self.subject),
            ("common_name", Fact::CommonName, &self.common_name),
            ("sha256", Fact::Sha256, &self.sha256),
            ("dns_sans", Fact::DnsSans, &self.dns_sans),
            ("uri_sans", Fact::UriSans, &self.uri_sans),
            ("email_sans", Fact::EmailSans, &self.email_sans),
        ] {
            let Some(raw) = raw else { continue };
            let name = config_header_name(raw, true, &format!("client_cert_headers: {option}"))?;
            // Two facts in one header would make each value ambiguous.
            if headers.iter().any(|(_, n)| *n == name) {
                return Err(BuildError(format!(
                    "client_cert_headers: {option}: header {name:?} is already used for \
                     another fact"
                )));
            }
            headers.push((fact, name));
        }
        if headers.is_empty() {
            return Err(BuildError(
                "client_cert_headers: name at least one header (subject, common_name, sha256, \
                 dns_sans, uri_sans or email_sans)"
                    .to_owned(),
            ));
        }
        Ok(Arc::new(ClientCertHeadersFilter { headers }))
    }
}

struct ClientCertHeadersFilter {
    headers: Vec<(Fact, HeaderName)>,
}

/// The header value for `fact`, or `None` when the certificate does not have it.
fn value_of(fact: Fact, cert: &ClientCertificate) -> Option<HeaderValue> {
    let text = match fact {
        Fact::Subject => utf8_percent_encode(&cert.subject, VALUE).to_string(),
        Fact::CommonName => utf8_percent_encode(cert.common_name.as_deref()?, VALUE).to_string(),
        Fact::Sha256 => cert.sha256_hex(),
        Fact::DnsSans => list(&cert.dns_names)?,
        Fact::UriSans => list(&cert.uris)?,
        Fact::EmailSans => list(&cert.emails)?,
    };
    if text.is_empty() {
        return None;
    }
    Some(HeaderValue::try_from(text).expect("percent-encoded text is visible ASCII"))
}

/// The items encoded and joined with `,`; `None` for no items.
fn list(items: &[String]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let encoded: Vec<String> = items
        .iter()
        .map(|item| utf8_percent_encode(item, LIST_ITEM).to_string())
        .collect();
    Some(encoded.join(","))
}

#[async_trait]
impl Filter for ClientCertHeadersFilter {
    fn name(&self) -> &'static str {
        "client_cert_headers"
    }

    async fn on_request(&self, req: &mut dyn RequestHead, ctx: &mut RequestContext) -> Flow {
        for (_, name) in &self.headers {
            req.remove_header(name);
        }
        if let Some(cert) = &ctx.client_cert {
            for (fact, name) in &self.headers {
                if let Some(value) = value_of(*fact, cert) {
                    req.set_header(name.clone(), value);
                }
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;

    const ALL: &str = r#"type = "client_cert_headers"
subject = "x-client-subject"
common_name = "x-client-cn"
sha256 = "x-client-cert-sha256"
dns_sans = "x-client-dns-sans"
uri_sans = "x-client-uri-sans"
email_sans = "x-client-email-sans""#;

    const HEADERS: [&str; 6] = [
        "x-client-subject",
        "x-client-cn",
        "x-client-cert-sha256",
        "x-client-dns-sans",
        "x-client-uri-sans",
        "x-client-email-sans",
    ];

    fn build(src: &str) -> Result<Arc<dyn Filter>, String> {
        let config: FilterConfig = toml::from_str(src).map_err(|e| e.to_string())?;
        config.build(&BuildContext::default()).map_err(|e| e.0)
    }

    fn cert() -> ClientCertificate {
        ClientCertificate {
            subject: "CN=acme-client,O=Acme Ltd,C=FR".into(),
            common_name: Some("acme-client".into()),
            dns_names: vec!["edge.acme.example".into(), "api.acme.example".into()],
            uris: vec!["spiffe://acme.example/edge".into()],
            emails: vec!["ops@acme.example".into()],
            sha256: [0xab; 32],
        }
    }

    /// A request carrying a spoofed copy of every header, through the filter with `cert`.
    async fn run(f: &Arc<dyn Filter>, cert: Option<ClientCertificate>) -> http::HeaderMap {
        let mut b = http::Request::builder().header("x-other", "kept");
        for name in HEADERS {
            b = b.header(name, "spoofed").header(name, "twice");
        }
        let (mut req, _) = b.body(()).unwrap().into_parts();
        let mut ctx = RequestContext::new("r-1".into(), "route".into(), None);
        ctx.client_cert = cert.map(Arc::new);
        assert!(matches!(
            f.on_request(&mut req, &mut ctx).await,
            Flow::Continue
        ));
        assert_eq!(req.headers["x-other"], "kept");
        req.headers
    }

    fn values<'h>(h: &'h http::HeaderMap, name: &str) -> Vec<&'h str> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn forwards_the_verified_facts_in_place_of_the_clients_copies() {
        let f = build(ALL).unwrap();
        assert_eq!(f.name(), "client_cert_headers");
        let h = run(&f, Some(cert())).await;
        assert_eq!(
            values(&h, "x-client-subject"),
            ["CN=acme-client,O=Acme%20Ltd,C=FR"]
        );
        assert_eq!(values(&h, "x-client-cn"), ["acme-client"]);
        assert_eq!(values(&h, "x-client-cert-sha256"), ["ab".repeat(32)]);
        assert_eq!(
            values(&h, "x-client-dns-sans"),
            ["edge.acme.example,api.acme.example"]
        );
        assert_eq!(
            values(&h, "x-client-uri-sans"),
            ["spiffe://acme.example/edge"]
        );
        assert_eq!(values(&h, "x-client-email-sans"), ["ops@acme.example"]);
    }

    #[tokio::test]
    async fn without_a_certificate_the_clients_copies_are_still_removed() {
        let h = run(&build(ALL).unwrap(), None).await;
        for name in HEADERS {
            assert!(!h.contains_key(name), "{name}");
        }
    }

    #[tokio::test]
    async fn facts_the_certificate_lacks_are_not_set() {
        let mut bare = cert();
        bare.common_name = None;
        bare.dns_names.clear();
        bare.uris.clear();
        bare.emails.clear();
        bare.subject = "O=Acme Ltd".into();
        let h = run(&build(ALL).unwrap(), Some(bare)).await;
        assert_eq!(values(&h, "x-client-subject"), ["O=Acme%20Ltd"]);
        assert!(h.contains_key("x-client-cert-sha256"));
        for name in [
            "x-client-cn",
            "x-client-dns-sans",
            "x-client-uri-sans",
            "x-client-email-sans",
        ] {
            assert!(!h.contains_key(name), "{name}");
        }
    }

    #[tokio::test]
    async fn only_configured_headers_are_touched() {
        let f = build("type = \"client_cert_headers\"\nsha256 = \"X-Client-Cert-SHA256\"").unwrap();
        let h = run(&f, Some(cert())).await;
        assert_eq!(values(&h, "x-client-cert-sha256"), ["ab".repeat(32)]);
        // Not configured: the client's copies pass (strip them with `headers` if needed).
        assert_eq!(values(&h, "x-client-subject"), ["spoofed", "twice"]);
    }

    #[tokio::test]
    async fn values_that_are_not_visible_ascii_are_percent_encoded() {
        let mut odd = cert();
        odd.subject = "CN=Zoë\r\nX-Injected: 1,O=50%".into();
        odd.common_name = Some("Zoë\t".into());
        odd.uris = vec!["urn:a,b".into(), "urn:c d".into()];
        let h = run(&build(ALL).unwrap(), Some(odd)).await;
        assert_eq!(
            values(&h, "x-client-subject"),
            ["CN=Zo%C3%AB%0D%0AX-Injected:%201,O=50%25"]
        );
        assert_eq!(values(&h, "x-client-cn"), ["Zo%C3%AB%09"]);
        // Commas inside items are encoded; the separator is not.
        assert_eq!(values(&h, "x-client-uri-sans"), ["urn:a%2Cb,urn:c%20d"]);
        assert!(!h.contains_key("x-injected"));
    }

    #[test]
    fn config_errors() {
        let err = build("type = \"client_cert_headers\"").err().unwrap();
        assert!(err.contains("at least one header"), "{err}");
        let err = build("type = \"client_cert_headers\"\nsubject = \"bad name\"")
            .err()
            .unwrap();
        assert!(
            err.contains("client_cert_headers: subject: invalid header name"),
            "{err}"
        );
        for protected in ["host", "content-length", "transfer-encoding", "connection"] {
            let err = build(&format!(
                "type = \"client_cert_headers\"\nsha256 = \"{protected}\""
            ))
            .err()
            .unwrap();
            assert!(err.contains("owned by the gateway"), "{protected}: {err}");
        }
        let err = build(
            "type = \"client_cert_headers\"\nsubject = \"x-client\"\ncommon_name = \"X-Client\"",
        )
        .err()
        .unwrap();
        assert!(
            err.contains("common_name: header \"x-client\" is already used"),
            "{err}"
        );
        let err = build("type = \"client_cert_headers\"\nissuer = \"x-issuer\"")
            .err()
            .unwrap();
        assert!(err.contains("issuer"), "{err}");
    }
}
