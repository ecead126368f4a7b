//! The per-request context that every filter of a chain shares.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Who is calling, as established by an authentication filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    /// Stable consumer id (a partner's id), used by rate limits, permissions and audit.
    pub id: String,
    /// Extra facts about the consumer (plan, tenant...), from its credential's config.
    pub metadata: BTreeMap<String, String>,
}

/// The consumers named by the credentials of one filter's config, checked as they are read.
/// Several credentials may name one consumer (a key being rotated, a renewed certificate), but
/// only with the same metadata: otherwise what a request gets would depend on which of its
/// consumer's credentials it used.
#[derive(Debug, Default)]
pub(crate) struct ConsumerCatalog {
    /// Each consumer seen, with the first entry that named it (for error messages).
    seen: HashMap<String, (BTreeMap<String, String>, String)>,
}

impl ConsumerCatalog {
    /// Checks the consumer of the config entry `entry` (e.g. `keys[3]`) and returns it.
    /// The id is 1 to 128 visible ASCII characters, as it goes into logs, rate limit keys and
    /// headers unescaped.
    pub(crate) fn add(
        &mut self,
        entry: &str,
        id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Consumer, String> {
        if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{entry}: consumer must be 1 to 128 visible ASCII characters (no spaces)"
            ));
        }
        match self.seen.get(id) {
            Some((first_metadata, first_entry)) if first_metadata != metadata => {
                return Err(format!(
                    "{entry}: consumer {id:?} is also named by {first_entry} with different \
                     metadata; give every entry of a consumer the same metadata"
                ));
            }
            Some(_) => {}
            None => {
                self.seen
                    .insert(id.to_owned(), (metadata.clone(), entry.to_owned()));
            }
        }
        Ok(Consumer {
            id: id.to_owned(),
            metadata: metadata.clone(),
        })
    }
}

/// One audited action of a filter. Never holds a value, a token or a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// What was done, a stable snake_case name (e.g. `"detokenize"`).
    pub action: &'static str,
    /// Where in the request, as the rule names it (e.g. `body $.card.pan`, `header x-account`).
    pub field: String,
    /// Version of the key the token was made with.
    pub key_version: u32,
}

/// The client certificate verified during the TLS handshake (mTLS), as filters see it.
/// Parsed once per connection by the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject distinguished name, RFC 4514 style (e.g. `CN=acme,O=Acme Ltd`).
    pub subject: String,
    /// The subject's common name, when it has one.
    pub common_name: Option<String>,
    /// Subject alternative names of type DNS.
    pub dns_names: Vec<String>,
    /// Subject alternative names of type URI (e.g. SPIFFE ids).
    pub uris: Vec<String>,
    /// Subject alternative names of type e-mail.
    pub emails: Vec<String>,
    /// SHA-256 of the leaf certificate's DER: the thumbprint of RFC 8705 (`x5t#S256`).
    pub sha256: [u8; 32],
}

impl ClientCertificate {
    /// The SHA-256 thumbprint as lowercase hex: what `openssl x509 -noout -fingerprint
    /// -sha256` prints, without its colons.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// The SHA-256 thumbprint as base64url without padding: the `x5t#S256` member of the
    /// `cnf` claim that binds an access token to this certificate (RFC 8705 §3.1).
    pub fn thumbprint_b64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }
}

/// State of one request that filters read and write. Created by the gateway before the chain
/// runs, and dropped when the access log line is written.
#[derive(Debug)]
pub struct RequestContext {
    /// The request id, also sent as X-Request-ID and in every problem body.
    pub request_id: String,
    /// Id of the matched route.
    pub route_id: Arc<str>,
    /// The client's address as the gateway trusts it (after trusted-proxy handling).
    pub client_ip: Option<IpAddr>,
    /// The verified client certificate, when the connection is mTLS and the client sent one.
    pub client_cert: Option<Arc<ClientCertificate>>,
    /// Set by an authentication filter.
    pub consumer: Option<Consumer>,
    /// Free-form facts for later filters (e.g. a verified claim); never logged whole.
    pub attributes: BTreeMap<String, String>,
    /// What filters did that an auditor must see (each detokenization), written by the
    /// gateway to the audit log with the time, request id, consumer and route.
    pub audit: Vec<AuditEntry>,
    /// What filters keep from their request phase for their response phase, by owner.
    kept: Vec<(u64, Box<dyn Any + Send + Sync>)>,
    /// Notable things filters saw (a store fell back, a cache refreshed), counted by the
    /// gateway as `corridor_filter_events_total{route, event}`. Names are stable snake_case.
    pub events: Vec<&'static str>,
}

impl RequestContext {
    pub fn new(request_id: String, route_id: Arc<str>, client_ip: Option<IpAddr>) -> Self {
        RequestContext {
            request_id,
            route_id,
            client_ip,
            client_cert: None,
            consumer: None,
            attributes: BTreeMap::new(),
            audit: Vec::new(),
            kept: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Keeps `value` for the filter instance `owner` (an id unique to it) until its
    /// response phase takes it back. Typed, so it costs no formatting or parsing, and it is
    /// not seen by other filters, unlike [`RequestContext::attributes`].
    pub fn keep<T: Any + Send + Sync>(&mut self, owner: u64, value: T) {
        self.kept.retain(|(kept_by, _)| *kept_by != owner);
        self.kept.push((owner, Box::new(value)));
    }

    /// Takes back what `owner` kept, if it kept a `T`.
    pub fn take_kept<T: Any>(&mut self, owner: u64) -> Option<T> {
        let index = self
            .kept
            .iter()
            .position(|(kept_by, _)| *kept_by == owner)?;
        let (_, value) = self.kept.swap_remove(index);
        value.downcast().ok().map(|value| *value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_in_hex_and_base64url() {
        // SHA-256 of "abc", from FIPS 180-2's test vectors.
        let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let cert = ClientCertificate {
            subject: "CN=acme".into(),
            common_name: Some("acme".into()),
            dns_names: vec![],
            uris: vec![],
            emails: vec![],
            sha256: hex::decode(digest).unwrap().try_into().unwrap(),
        };
        assert_eq!(cert.sha256_hex(), digest);
        // Unpadded, with `-` and `_` where standard base64 has `+` and `/`.
        assert_eq!(
            cert.thumbprint_b64url(),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn a_consumer_keeps_its_metadata_across_entries() {
        let gold = BTreeMap::from([("plan".to_owned(), "gold".to_owned())]);
        let mut catalog = ConsumerCatalog::default();
        let acme = catalog.add("keys[0]", "acme", &gold).unwrap();
        assert_eq!(acme.id, "acme");
        assert_eq!(acme.metadata, gold);
        // A second credential of the same consumer, same metadata: fine.
        assert_eq!(catalog.add("keys[1]", "acme", &gold).unwrap(), acme);
        let err = catalog
            .add("keys[2]", "acme", &BTreeMap::new())
            .unwrap_err();
        assert!(err.starts_with("keys[2]: "), "{err}");
        assert!(err.contains("keys[0]"), "{err}");
        for bad in ["", "two words", "tab\there", "é", &"x".repeat(129)] {
            let err = catalog.add("keys[3]", bad, &gold).unwrap_err();
            assert!(err.contains("1 to 128 visible ASCII"), "{bad:?}: {err}");
        }
        assert!(catalog.add("keys[4]", &"x".repeat(128), &gold).is_ok());
    }
}
