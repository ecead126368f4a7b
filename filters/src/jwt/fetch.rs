//! Fetching a JWKS from the IdP: directly from `jwks_url`, or through OpenID Connect
//! discovery. Every fetch is HTTPS (plain HTTP only to a loopback address, for a local IdP),
//! follows no redirect, reads at most [`MAX_DOCUMENT_BYTES`] and is bounded by a timeout.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Client, Url};
use serde_json::Value;

use super::json;
use super::keys::KeySet;

/// The largest discovery document or JWKS read; a real one is a few kilobytes.
pub(super) const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Connecting to the IdP may take at most this long, within the fetch timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the keys come from.
pub(super) enum Source {
    Jwks(Url),
    /// `{issuer}/.well-known/openid-configuration`, whose `jwks_uri` names the JWKS.
    Discovery {
        document: Url,
        issuer: String,
    },
}

pub(super) struct Fetcher {
    client: Client,
    source: Source,
    /// The `jwks_uri` found by discovery, kept until a JWKS fetch from it fails (then the next
    /// attempt discovers again, in case the IdP moved its keys).
    discovered: Mutex<Option<Url>>,
}

impl Fetcher {
    /// Makes the HTTP client; touches no network, so it works without a runtime. `ca_file` is
    /// the CA bundle trusted besides the system's, with the path it was read from.
    pub(super) fn new(
        source: Source,
        ca_file: Option<(PathBuf, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<Fetcher, String> {
        let mut builder = Client::builder()
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            // A redirect could lead from HTTPS to plain HTTP or to another host.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("corridor/", env!("CARGO_PKG_VERSION")));
        if let Some((path, pem)) = ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|certs| !certs.is_empty())
                .ok_or_else(|| format!("ca_file: {} holds no PEM certificate", path.display()))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot make the HTTP client: {e}"))?;
        Ok(Fetcher {
            client,
            source,
            discovered: Mutex::new(None),
        })
    }

    /// Fetches and reads the JWKS. Errors are safe to log: a URL and a reason, never a body.
    pub(super) async fn fetch(&self) -> Result<KeySet, String> {
        let url = match &self.source {
            Source::Jwks(url) => url.clone(),
            Source::Discovery { document, issuer } => {
                let known = self.discovered.lock().expect("not poisoned").clone();
                match known {
                    Some(url) => url,
                    None => {
                        let url = self.discover(document, issuer).await?;
                        *self.discovered.lock().expect("not poisoned") = Some(url.clone());
                        url
                    }
                }
            }
        };
        let result = match self.get(&url).await {
            Ok(body) => KeySet::parse(&body).map_err(|e| format!("{url}: {e}")),
            Err(e) => Err(e),
        };
        if result.is_err() {
            *self.discovered.lock().expect("not poisoned") = None;
        }
        result
    }

    /// Reads the discovery document and returns its `jwks_uri`, checking that it describes
    /// the configured issuer (OpenID Connect Discovery §4.3).
    async fn discover(&self, document: &Url, issuer: &str) -> Result<Url, String> {
        let body = self.get(document).await?;
        let doc = json::parse_object(&body)
            .ok_or_else(|| format!("{document}: not a JSON object (or repeats a member name)"))?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err(format!(
                "{document}: its \"issuer\" is not the configured issuer"
            ));
        }
        let jwks_uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{document}: no \"jwks_uri\""))?;
        remote_url(jwks_uri).map_err(|e| format!("{document}: jwks_uri: {e}"))
    }

    /// GETs `url` and returns its body, refusing more than [`MAX_DOCUMENT_BYTES`].
    async fn get(&self, url: &Url) -> Result<Vec<u8>, String> {
        let failed = |e: reqwest::Error| format!("{url}: {}", causes(&e.without_url()));
        let mut response = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(failed)?;
        if !response.status().is_success() {
            return Err(format!("{url}: answered {}", response.status()));
        }
        let too_large = || format!("{url}: the document is over {MAX_DOCUMENT_BYTES} bytes");
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// An error and its causes, `a: b: c`: what failed (refused, timed out, certificate not
/// trusted...) is often only in a cause.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Parses an IdP URL: `https://`, or `http://` to a loopback host only (a local test IdP or
/// sidecar, never across a network); no user name or password in it.
pub(super) fn remote_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|_| "is not a valid URL".to_owned())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold credentials".to_owned());
    }
    let Some(host) = url.host_str() else {
        return Err("has no host".to_owned());
    };
    // An IPv6 host comes in brackets.
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("must be https:// (http:// only to a loopback address)".to_owned()),
    }
}
