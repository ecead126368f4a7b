//! `mtls_consumer`: identifies the consumer by the client certificate verified during the TLS
//! handshake (mTLS).
//!
//! ```toml
//! { type = "mtls_consumer", match_on = "sha256", consumers = [
//!     { value = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b", consumer = "acme" },
//! ] }
//! ```
//!
//! The listener verifies the certificate against its client CA bundle; this filter decides
//! which verified certificates are which consumer, and refuses the others. Without a
//! certificate the answer is a 401 problem `client-certificate-required`; with one that no
//! entry maps, a 403 problem `forbidden`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use http::{header, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::context::ConsumerCatalog;
use crate::{
    BuildContext, BuildError, ClientCertificate, Consumer, Filter, Flow, Problem, Reply,
    RequestContext, RequestHead,
};

/// The challenge of the 401. No HTTP authentication scheme exists for TLS client
/// certificates, but RFC 9110 §11.6.1 requires a 401 to carry a challenge: this one names
/// what is missing. Clients do not act on it; the credential goes in the TLS handshake.
const CHALLENGE: &str = "MutualTLS realm=\"corridor\"";

/// Config of the `mtls_consumer` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MtlsConsumerConfig {
    /// Which fact of the certificate the entries' values are matched against.
    #[serde(default)]
    pub match_on: MatchOn,
    /// The certificates that are consumers. An empty list is allowed (every call is refused),
    /// so that revoking the last one is a config change like any other.
    pub consumers: Vec<CertConsumer>,
}

/// The fact of a client certificate that identifies it.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MatchOn {
    /// The SHA-256 thumbprint of the certificate (the default). It names one certificate and
    /// nothing else: a CA that issues another certificate with the same names (by mistake, or
    /// to another partner) does not get that certificate in, and a renewed certificate needs
    /// its own entry, which is then an explicit approval.
    #[default]
    Sha256,
    /// The whole subject DN, as the gateway writes it (RFC 4514, e.g. `CN=acme,O=Acme Ltd`).
    Subject,
    /// The subject's common name.
    CommonName,
    /// DNS subject alternative names, compared without regard to case; the first that
    /// maps wins.
    DnsSan,
    /// URI subject alternative names (e.g. SPIFFE ids); the first that maps wins.
    UriSan,
    /// E-mail subject alternative names; the first that maps wins.
    EmailSan,
}

/// One certificate identity and the consumer it is.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertConsumer {
    /// The value of `match_on` (with `sha256`: 64 hex digits, colons and upper case allowed).
    pub value: String,
    /// Id of the consumer; several values may share one (a certificate and its renewal).
    pub consumer: String,
    /// Facts about the consumer (plan, tenant...); the same for every entry of a consumer.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl MtlsConsumerConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        let bad = |msg: String| BuildError(format!("mtls_consumer: {msg}"));
        let mut by_value: HashMap<String, (Consumer, usize)> = HashMap::new();
        let mut catalog = ConsumerCatalog::default();
        for (index, entry) in self.consumers.iter().enumerate() {
            let label = format!("consumers[{index}]");
            let value = normalize(self.match_on, &entry.value)
                .map_err(|msg| bad(format!("{label}: value {:?} {msg}", entry.value)))?;
            let consumer = catalog
                .add(&label, &entry.consumer, &entry.metadata)
                .map_err(bad)?;
            if let Some((_, first)) = by_value.get(&value) {
                return Err(bad(format!(
                    "{label}: value {:?} is the same as that of consumers[{first}]",
                    entry.value
                )));
            }
            by_value.insert(value, (consumer, index));
        }
        Ok(Arc::new(MtlsConsumerFilter {
            match_on: self.match_on,
            consumers: by_value
                .into_iter()
                .map(|(value, (consumer, _))| (value, consumer))
                .collect(),
        }))
    }
}

/// A configured value in the form requests are looked up by.
fn normalize(match_on: MatchOn, value: &str) -> Result<String, &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    match match_on {
        MatchOn::Sha256 => {
            // As tools print it: `openssl x509 -fingerprint` writes `AB:CD:...`.
            let hex: String = value
                .chars()
                .filter(|&c| c != ':')
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(hex)
            } else {
                Err("is not a SHA-256 thumbprint (64 hex digits)")
            }
        }
        MatchOn::DnsSan => Ok(value.to_ascii_lowercase()),
        MatchOn::Subject | MatchOn::CommonName | MatchOn::UriSan | MatchOn::EmailSan => {
            Ok(value.to_owned())
        }
    }
}

struct MtlsConsumerFilter {
    match_on: MatchOn,
    /// Consumers by normalized value.
    consumers: HashMap<String, Consumer>,
}

impl MtlsConsumerFilter {
    fn consumer_of(&self, cert: &ClientCertificate) -> Option<&Consumer> {
        let first_of = |names: &[String]| names.iter().find_map(|n| self.consumers.get(n));
        match self.match_on {
            MatchOn::Sha256 => self.consumers.get(&cert.sha256_hex()),
            MatchOn::Subject => self.consumers.get(&cert.subject),
            MatchOn::CommonName => cert
                .common_name
                .as_ref()
                .and_then(|cn| self.consumers.get(cn)),
            MatchOn::DnsSan => cert
                .dns_names
                .iter()
                .find_map(|n| self.consumers.get(&n.to_ascii_lowercase())),
            MatchOn::UriSan => first_of(&cert.uris),
            MatchOn::EmailSan => first_of(&cert.emails),
        }
    }
}

#[async_trait]
impl Filter for MtlsConsumerFilter {
    fn name(&self) -> &'static str {
        "mtls_consumer"
    }

    async fn on_request(&self, _req: &mut dyn RequestHead, ctx: &mut RequestContext) -> Flow {
        let Some(cert) = ctx.client_cert.clone() else {
            ctx.events.push("mtls_no_certificate");
            let mut reply = Reply::problem(
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "client-certificate-required",
                    "Client certificate required",
                )
                .with_detail("this API needs a TLS client certificate"),
            );
            reply.headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
            return Flow::Respond(reply);
        };
        match self.consumer_of(&cert) {
            Some(consumer) => {
                ctx.consumer = Some(consumer.clone());
                Flow::Continue
            }
            None => {
                ctx.events.push("mtls_unknown_certificate");
                Flow::reject(
                    Problem::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden")
                        .with_detail("this client certificate is not allowed here"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;

    const THUMBPRINT: &str = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b";

    fn cert() -> ClientCertificate {
        ClientCertificate {
            subject: "CN=acme-client,O=Acme Ltd,C=FR".into(),
            common_name: Some("acme-client".into()),
            dns_names: vec!["edge.acme.example".into(), "API.Acme.Example".into()],
            uris: vec![
                "spiffe://acme.example/edge".into(),
                "spiffe://acme.example/api".into(),
            ],
            emails: vec!["ops@acme.example".into()],
            sha256: hex::decode(THUMBPRINT).unwrap().try_into().unwrap(),
        }
    }

    fn build(src: &str) -> Result<Arc<dyn Filter>, String> {
        let config: FilterConfig = toml::from_str(src).map_err(|e| e.to_string())?;
        config.build(&BuildContext::default()).map_err(|e| e.0)
    }

    fn build_err(src: &str) -> String {
        build(src).err().expect("must be refused")
    }

    /// The filter with `match_on` and `entries` (a TOML array's contents).
    fn filter(match_on: &str, entries: &str) -> Arc<dyn Filter> {
        build(&format!(
            "type = \"mtls_consumer\"\nmatch_on = \"{match_on}\"\nconsumers = [{entries}]"
        ))
        .unwrap()
    }

    async fn run(f: &Arc<dyn Filter>, cert: Option<ClientCertificate>) -> (Flow, RequestContext) {
        let (mut req, _) = http::Request::builder().body(()).unwrap().into_parts();
        let mut ctx = RequestContext::new("r-1".into(), "route".into(), None);
        ctx.client_cert = cert.map(Arc::new);
        let flow = f.on_request(&mut req, &mut ctx).await;
        (flow, ctx)
    }

    /// The consumer id a request with `cert` gets, or panics with the refusal.
    async fn consumer_id(f: &Arc<dyn Filter>, cert: ClientCertificate) -> String {
        match run(f, Some(cert)).await {
            (Flow::Continue, ctx) => ctx.consumer.unwrap().id,
            (Flow::Respond(reply), _) => panic!("refused: {reply:?}"),
        }
    }

    /// The problem a request with `cert` is refused with, and the events.
    async fn refusal(
        f: &Arc<dyn Filter>,
        cert: Option<ClientCertificate>,
    ) -> (Reply, Vec<&'static str>) {
        match run(f, cert).await {
            (Flow::Respond(reply), ctx) => {
                assert!(ctx.consumer.is_none());
                (reply, ctx.events)
            }
            (Flow::Continue, ctx) => panic!("allowed as {:?}", ctx.consumer),
        }
    }

    #[tokio::test]
    async fn thumbprint_is_the_default_and_accepts_the_forms_tools_print() {
        let f = build(&format!(
            "type = \"mtls_consumer\"\nconsumers = [{{ value = \"{THUMBPRINT}\", consumer = \"acme\", metadata = {{ plan = \"gold\" }} }}]"
        ))
        .unwrap();
        assert_eq!(f.name(), "mtls_consumer");
        let (flow, ctx) = run(&f, Some(cert())).await;
        assert!(matches!(flow, Flow::Continue));
        let consumer = ctx.consumer.unwrap();
        assert_eq!(consumer.id, "acme");
        assert_eq!(consumer.metadata["plan"], "gold");
        assert!(ctx.events.is_empty());

        // openssl's `AB:CD:...` form is the same thumbprint.
        let openssl_form = hex::decode(THUMBPRINT)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let f = filter(
            "sha256",
            &format!("{{ value = \"{openssl_form}\", consumer = \"acme\" }}"),
        );
        assert_eq!(consumer_id(&f, cert()).await, "acme");

        // Another certificate with the very same names is not let in.
        let mut twin = cert();
        twin.sha256[0] ^= 1;
        let (reply, events) = refusal(&f, Some(twin)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert_eq!(events, ["mtls_unknown_certificate"]);
    }

    #[tokio::test]
    async fn each_fact_can_identify_the_consumer() {
        let cases = [
            ("subject", "CN=acme-client,O=Acme Ltd,C=FR"),
            ("common_name", "acme-client"),
            ("uri_san", "spiffe://acme.example/api"),
            ("email_san", "ops@acme.example"),
            // DNS names without regard to case, on both sides.
            ("dns_san", "api.acme.EXAMPLE"),
        ];
        for (match_on, value) in cases {
            let f = filter(
                match_on,
                &format!("{{ value = \"{value}\", consumer = \"acme\" }}"),
            );
            assert_eq!(consumer_id(&f, cert()).await, "acme", "{match_on}");
        }
        // Other facts are exact.
        for (match_on, value) in [
            ("subject", "CN=acme-client, O=Acme Ltd, C=FR"),
            ("common_name", "ACME-client"),
            ("uri_san", "spiffe://acme.example/API"),
            ("email_san", "OPS@acme.example"),
        ] {
            let f = filter(
                match_on,
                &format!("{{ value = \"{value}\", consumer = \"acme\" }}"),
            );
            let (reply, _) = refusal(&f, Some(cert())).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{match_on}");
        }
        // A value of another kind does not match: the CN is not a DNS name here.
        let f = filter(
            "dns_san",
            "{ value = \"acme-client\", consumer = \"acme\" }",
        );
        assert_eq!(
            refusal(&f, Some(cert())).await.0.status,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn the_first_san_that_maps_wins() {
        let f = filter(
            "uri_san",
            r#"{ value = "spiffe://acme.example/api", consumer = "second" },
               { value = "spiffe://acme.example/edge", consumer = "first" }"#,
        );
        assert_eq!(consumer_id(&f, cert()).await, "first");
        // Unmapped SANs before a mapped one are skipped.
        let f = filter(
            "dns_san",
            r#"{ value = "api.acme.example", consumer = "second" }"#,
        );
        assert_eq!(consumer_id(&f, cert()).await, "second");
    }

    #[tokio::test]
    async fn no_certificate_is_401_and_an_unknown_one_403() {
        let f = filter(
            "common_name",
            "{ value = \"acme-client\", consumer = \"acme\" }",
        );
        let (reply, events) = refusal(&f, None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let problem = reply.problem.unwrap();
        assert_eq!(problem.kind, "client-certificate-required");
        assert_eq!(problem.title, "Client certificate required");
        assert_eq!(
            reply.headers.get("www-authenticate").unwrap(),
            "MutualTLS realm=\"corridor\""
        );
        assert_eq!(events, ["mtls_no_certificate"]);

        let mut other = cert();
        other.common_name = Some("globex-client".into());
        other.subject = "CN=globex-client,O=Globex".into();
        let (reply, events) = refusal(&f, Some(other.clone())).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
        assert!(reply.headers.is_empty());
        let problem = reply.problem.unwrap();
        assert_eq!(problem.kind, "forbidden");
        assert_eq!(problem.title, "Forbidden");
        // The refusal names nothing of the certificate.
        assert!(!problem.detail.unwrap().contains("globex"));
        assert_eq!(events, ["mtls_unknown_certificate"]);

        // A certificate without a common name, matched on it.
        other.common_name = None;
        assert_eq!(
            refusal(&f, Some(other)).await.0.status,
            StatusCode::FORBIDDEN
        );
    }

    #[tokio::test]
    async fn an_empty_list_refuses_everyone() {
        let f = filter("sha256", "");
        assert_eq!(
            refusal(&f, Some(cert())).await.0.status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn entries_are_checked() {
        let one = |match_on: &str, value: &str| {
            format!(
                "type = \"mtls_consumer\"\nmatch_on = \"{match_on}\"\nconsumers = [{{ value = \"{value}\", consumer = \"acme\" }}]"
            )
        };
        for bad in [
            "",
            "abc",
            &THUMBPRINT[1..],
            &format!("{THUMBPRINT}00"),
            &format!("{}zz", &THUMBPRINT[2..]),
        ] {
            let err = build_err(&one("sha256", bad));
            assert!(
                err.starts_with("mtls_consumer: consumers[0]: value"),
                "{bad:?}: {err}"
            );
        }
        assert!(build_err(&one("common_name", "")).contains("is empty"));

        let err = build_err(
            r#"type = "mtls_consumer"
match_on = "dns_san"
consumers = [{ value = "api.acme.example", consumer = "a" }, { value = "API.acme.example", consumer = "b" }]"#,
        );
        assert_eq!(
            err,
            "mtls_consumer: consumers[1]: value \"API.acme.example\" is the same as that of consumers[0]"
        );
        let err = build_err(
            r#"type = "mtls_consumer"
match_on = "common_name"
consumers = [{ value = "a", consumer = "acme", metadata = { plan = "gold" } }, { value = "b", consumer = "acme" }]"#,
        );
        assert!(
            err.starts_with("mtls_consumer: consumers[1]: consumer \"acme\""),
            "{err}"
        );
        let err = build_err(
            "type = \"mtls_consumer\"\nmatch_on = \"common_name\"\nconsumers = [{ value = \"a\", consumer = \"\" }]",
        );
        assert!(err.contains("consumers[0]: consumer must be"), "{err}");

        // Config shape: consumers required, match_on from the list, unknown keys refused.
        assert!(build_err("type = \"mtls_consumer\"").contains("consumers"));
        assert!(
            build_err("type = \"mtls_consumer\"\nmatch_on = \"cn\"\nconsumers = []").contains("cn")
        );
        assert!(
            build_err("type = \"mtls_consumer\"\nconsumers = [{ value = \"a\", consumer = \"b\", plan = \"x\" }]")
                .contains("plan")
        );
    }
}
