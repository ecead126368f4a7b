//! `api_key`: identifies the consumer by an API key sent in a header or a query parameter.
//!
//! ```toml
//! { type = "api_key", header = "x-api-key", keys_file = "partners-keys.toml",
//!   keys = [{ sha256 = "…", consumer = "acme", metadata = { plan = "gold" } }] }
//! ```
//!
//! The gateway never holds the keys themselves, only their SHA-256 digests: a leaked config
//! or memory dump gives no usable key, and keys are random enough (they are generated, not
//! chosen) that a fast hash is the right tool, unlike for passwords. A presented key is hashed
//! and its digest looked up; the key is then removed from the request, so the upstream never
//! sees it. Missing and wrong keys get the same 401, so a caller cannot tell a revoked key
//! from one that never existed.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use http::uri::PathAndQuery;
use http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::context::ConsumerCatalog;
use crate::headers::config_header_name;
use crate::{
    BuildContext, BuildError, Consumer, Filter, Flow, Problem, Reply, RequestContext, RequestHead,
};

/// The challenge of every 401. `ApiKey` is not a registered HTTP authentication scheme (there
/// is none for API keys), but RFC 9110 §11.6.1 requires a 401 to carry a challenge, and the
/// name says what to send.
const CHALLENGE: &str = "ApiKey realm=\"corridor\"";

/// Longest key accepted, in bytes. Longer ones get the plain 401 without being hashed: real
/// keys are far shorter, and the cap bounds the work an anonymous caller can cause.
const MAX_KEY_BYTES: usize = 256;

/// Header the key is read from when neither `header` nor `query` is set.
const DEFAULT_HEADER: &str = "x-api-key";

/// Config of the `api_key` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Request header carrying the key; `"x-api-key"` when neither this nor `query` is set.
    #[serde(default)]
    pub header: Option<String>,
    /// Query parameter carrying the key, instead of a header. Keys in URLs end up in browser
    /// histories and proxy logs: prefer a header when the clients can send one.
    #[serde(default)]
    pub query: Option<String>,
    /// Keys given inline. An empty list is allowed (every call is refused), so that revoking
    /// the last key is a config change like any other.
    #[serde(default)]
    pub keys: Option<Vec<KeyEntry>>,
    /// A TOML file of more keys, `[[keys]]` entries of the same shape, relative to the config
    /// file. Read when the filter is built. The gateway rebuilds a filter only when its
    /// config changes, and the file's contents are not part of that yet: to change the keys,
    /// write a new file and point `keys_file` at it.
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
}

/// One key: its digest and the consumer it identifies.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// SHA-256 of the key, 64 hex digits (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// Id of the consumer the key identifies; several keys may share one (rotation).
    pub consumer: String,
    /// Facts about the consumer (plan, tenant...); the same for every key of a consumer.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The shape of a `keys_file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

impl ApiKeyConfig {
    pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        let bad = |msg: String| BuildError(format!("api_key: {msg}"));
        let source = match (&self.header, &self.query) {
            (Some(_), Some(_)) => {
                return Err(bad("set header or query, not both".to_owned()));
            }
            (None, Some(param)) => {
                // Unreserved URI characters only: such a name is spelled the same whether
                // or not a client percent-encodes it.
                let unreserved = |b: u8| b.is_ascii_alphanumeric() || b"-._~".contains(&b);
                if param.is_empty() || !param.bytes().all(unreserved) {
                    return Err(bad(format!(
                        "query: {param:?} must be a non-empty name of letters, digits and - . _ ~"
                    )));
                }
                KeySource::Query(param.clone())
            }
            (header, None) => KeySource::Header(config_header_name(
                header.as_deref().unwrap_or(DEFAULT_HEADER),
                true,
                "api_key: header",
            )?),
        };
        if self.keys.is_none() && self.keys_file.is_none() {
            return Err(bad("set keys, keys_file or both".to_owned()));
        }

        let mut entries: Vec<(String, &KeyEntry)> = Vec::new();
        for (index, entry) in self.keys.iter().flatten().enumerate() {
            entries.push((format!("keys[{index}]"), entry));
        }
        let from_file = match &self.keys_file {
            Some(path) => {
                // Errors name the file as read, so the operator sees where it was looked for.
                let text = ctx
                    .read_text_file(path)
                    .map_err(|e| bad(format!("keys_file {e}")))?;
                let path = ctx.resolve(path);
                let keys = parse_keys_file(&path, &text).map_err(bad)?;
                Some((path, keys))
            }
            None => None,
        };
        if let Some((path, keys)) = &from_file {
            for (index, entry) in keys.iter().enumerate() {
                entries.push((
                    format!("keys_file {}: keys[{index}]", path.display()),
                    entry,
                ));
            }
        }

        let mut keys = KeyTable::default();
        let mut catalog = ConsumerCatalog::default();
        let mut first_of_digest: HashMap<[u8; 32], &str> = HashMap::new();
        for (label, entry) in &entries {
            // Never echo the value: whoever pastes the key itself in place of its digest must
            // not see it again in an error message, a log or a CI transcript.
            let digest: [u8; 32] = hex::decode(&entry.sha256)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| {
                    bad(format!(
                        "{label}: sha256 must be 64 hex digits, the SHA-256 of the key \
                         (never the key itself)"
                    ))
                })?;
            if let Some(first) = first_of_digest.insert(digest, label) {
                return Err(bad(format!("{label}: the same sha256 as {first}")));
            }
            let consumer = catalog
                .add(label, &entry.consumer, &entry.metadata)
                .map_err(bad)?;
            keys.insert(digest, consumer);
        }

        let location = match &source {
            KeySource::Header(name) => format!("in the {name} header"),
            KeySource::Query(param) => format!("in the {param} query parameter"),
        };
        Ok(Arc::new(ApiKeyFilter {
            source,
            keys,
            detail: format!("a valid API key is required {location}"),
        }))
    }
}

/// Reads a keys file; errors name the file but never quote its contents.
fn parse_keys_file(path: &Path, text: &str) -> Result<Vec<KeyEntry>, String> {
    let file: KeysFile = toml::from_str(text).map_err(|e| {
        // The error's Display quotes the offending line, and its message may quote a value
        // (`invalid type: string "…"`); either may be a key pasted by mistake. Give the
        // position and the message with quoted values blanked.
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(" at line {line}, column {column}")
        });
        format!(
            "keys_file {}{at}: {}",
            path.display(),
            blank_quoted(e.message())
        )
    })?;
    Ok(file.keys)
}

/// `message` with the text between each pair of double quotes replaced by `…`. Field names,
/// which serde quotes with backticks, stay.
fn blank_quoted(message: &str) -> String {
    message
        .split('"')
        .enumerate()
        .map(|(index, piece)| if index % 2 == 1 { "…" } else { piece })
        .collect::<Vec<_>>()
        .join("\"")
}

/// Where requests carry the key.
enum KeySource {
    Header(HeaderName),
    Query(String),
}

/// The consumers by key digest, for a lookup in constant time with respect to the stored
/// digests.
///
/// A map keyed by the whole digest would compare digests with `==`, which stops at the first
/// differing byte. Scanning every digest with `ct_eq` would avoid that but costs O(keys) per
/// request. Instead the map is keyed by the digest's first 8 bytes only, and the candidates
/// found there (practically always one) are compared in full with `ct_eq`. The map's timing can
/// only tell whether some stored digest starts like the digest of the caller's guess, and
/// finding such a guess is itself a 2^64 search, which would reveal nothing about the key
/// anyway: SHA-256 cannot be reversed. The bytes that decide a match are compared in constant
/// time.
#[derive(Default)]
struct KeyTable {
    by_prefix: HashMap<u64, Vec<([u8; 32], Consumer)>>,
}

impl KeyTable {
    fn prefix(digest: &[u8; 32]) -> u64 {
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    fn insert(&mut self, digest: [u8; 32], consumer: Consumer) {
        self.by_prefix
            .entry(Self::prefix(&digest))
            .or_default()
            .push((digest, consumer));
    }

    fn find(&self, digest: &[u8; 32]) -> Option<&Consumer> {
        let candidates = self.by_prefix.get(&Self::prefix(digest))?;
        // Every candidate is compared, without stopping at a match (digests are unique).
        let mut found = None;
        for (stored, consumer) in candidates {
            if bool::from(stored.ct_eq(digest)) {
                found = Some(consumer);
            }
        }
        found
    }
}

struct ApiKeyFilter {
    source: KeySource,
    keys: KeyTable,
    /// The 401's detail, made once; the same whatever went wrong.
    detail: String,
}

/// What a request presents.
enum Presented<'a> {
    /// No key, or an empty one.
    Missing,
    /// Something that cannot be a valid key: sent twice, or over [`MAX_KEY_BYTES`].
    Invalid,
    Key(Cow<'a, [u8]>),
}

impl<'a> Presented<'a> {
    fn of(value: Cow<'a, [u8]>) -> Self {
        match value.len() {
            0 => Presented::Missing,
            n if n > MAX_KEY_BYTES => Presented::Invalid,
            _ => Presented::Key(value),
        }
    }
}

/// The key in the header `name`: exactly one value is accepted.
fn find_in_header<'h>(headers: &'h http::HeaderMap, name: &HeaderName) -> Presented<'h> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Presented::Missing,
        (Some(value), None) => Presented::of(Cow::Borrowed(value.as_bytes())),
        (Some(_), Some(_)) => Presented::Invalid,
    }
}

/// The key in the query string `query`, and the query without it. Names are compared
/// decoded, so no spelling of the parameter (`api%5Fkey`) reaches the upstream; values are
/// decoded as `application/x-www-form-urlencoded` (`+` is a space), as client libraries
/// encode them. Exactly one value is accepted.
fn find_in_query<'q>(query: &'q str, param: &str) -> (Presented<'q>, String) {
    let mut values = Vec::new();
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match form_urlencoded::parse(pair.as_bytes()).next() {
            Some((name, value)) if name == param => values.push(value),
            _ => rest.push(pair),
        }
    }
    let presented = match values.pop() {
        None => Presented::Missing,
        Some(value) if values.is_empty() => Presented::of(match value {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        }),
        Some(_) => Presented::Invalid,
    };
    (presented, rest.join("&"))
}

/// `uri` with its query replaced by `query` (dropped when empty).
fn with_query(uri: &Uri, query: &str) -> Uri {
    let path_and_query = if query.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{query}", uri.path())
    };
    let mut parts = uri.clone().into_parts();
    // Both hold: the new target is made of pieces of a valid one, joined by `?` and `&`.
    parts.path_and_query =
        Some(PathAndQuery::try_from(path_and_query).expect("pieces of a valid target"));
    Uri::from_parts(parts).expect("the parts of a valid URI with another target")
}

impl ApiKeyFilter {
    fn unauthorized(&self, ctx: &mut RequestContext, event: &'static str) -> Flow {
        ctx.events.push(event);
        let mut reply = Reply::problem(
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
                .with_detail(self.detail.clone()),
        );
        reply.headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
        Flow::Respond(reply)
    }
}

#[async_trait]
impl Filter for ApiKeyFilter {
    fn name(&self) -> &'static str {
        "api_key"
    }

    async fn on_request(&self, req: &mut dyn RequestHead, ctx: &mut RequestContext) -> Flow {
        // The query without the key, to forward once the key is accepted (headers are
        // removed by name instead).
        let (presented, rest_of_query) = match &self.source {
            KeySource::Header(name) => (find_in_header(req.headers(), name), String::new()),
            KeySource::Query(param) => find_in_query(req.uri().query().unwrap_or(""), param),
        };
        let digest: [u8; 32] = match presented {
            Presented::Missing => return self.unauthorized(ctx, "api_key_missing"),
            Presented::Invalid => return self.unauthorized(ctx, "api_key_unknown"),
            Presented::Key(key) => Sha256::digest(&key).into(),
        };
        let Some(consumer) = self.keys.find(&digest) else {
            return self.unauthorized(ctx, "api_key_unknown");
        };
        ctx.consumer = Some(consumer.clone());
        match &self.source {
            KeySource::Header(name) => req.remove_header(name),
            KeySource::Query(_) => {
                let uri = with_query(req.uri(), &rest_of_query);
                req.set_uri(uri);
            }
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;

    const ACME_KEY: &str = "ak_live_3f9c2e7a41b04d8e9a6b";
    const GLOBEX_KEY: &str = "ak_live_77d01c5e9f2a4b3c8e10";

    fn sha256_hex(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    /// Inline keys for acme (gold) and globex, then `extra` lines.
    fn config(extra: &str) -> String {
        format!(
            r#"type = "api_key"
keys = [
  {{ sha256 = "{}", consumer = "acme", metadata = {{ plan = "gold" }} }},
  {{ sha256 = "{}", consumer = "globex" }},
]
{extra}"#,
            sha256_hex(ACME_KEY),
            sha256_hex(GLOBEX_KEY)
        )
    }

    fn build_in(src: &str, base_dir: &Path) -> Result<Arc<dyn Filter>, String> {
        let config: FilterConfig = toml::from_str(src).map_err(|e| e.to_string())?;
        let ctx = BuildContext::new(base_dir);
        config.build(&ctx).map_err(|e| e.0)
    }

    fn build(src: &str) -> Result<Arc<dyn Filter>, String> {
        build_in(src, Path::new(""))
    }

    fn build_err(src: &str) -> String {
        build(src).err().expect("must be refused")
    }

    fn request(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri);
        for (name, value) in headers {
            b = b.header(*name, *value);
        }
        b.body(()).unwrap().into_parts().0
    }

    /// Runs the filter; the problem it answered with, if any, and the context.
    async fn run(
        f: &Arc<dyn Filter>,
        req: &mut http::request::Parts,
    ) -> (Option<Reply>, RequestContext) {
        let mut ctx = RequestContext::new("r-1".into(), "route".into(), None);
        match f.on_request(req, &mut ctx).await {
            Flow::Continue => (None, ctx),
            Flow::Respond(reply) => (Some(reply), ctx),
        }
    }

    /// Checks the one 401 every failure gets, and returns the event it recorded.
    fn assert_unauthorized(reply: Option<Reply>, ctx: &RequestContext) -> &'static str {
        let reply = reply.expect("refused");
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let problem = reply.problem.expect("a problem");
        assert_eq!(problem.kind, "unauthorized");
        assert_eq!(problem.title, "Unauthorized");
        assert_eq!(
            problem.detail.as_deref(),
            Some("a valid API key is required in the x-api-key header")
        );
        assert_eq!(
            reply.headers.get("www-authenticate").unwrap(),
            "ApiKey realm=\"corridor\""
        );
        assert!(ctx.consumer.is_none());
        assert_eq!(ctx.events.len(), 1, "{:?}", ctx.events);
        ctx.events[0]
    }

    #[tokio::test]
    async fn a_known_key_identifies_the_consumer_and_is_not_forwarded() {
        let f = build(&config("")).unwrap();
        assert_eq!(f.name(), "api_key");
        let mut req = request("/accounts", &[("x-api-key", ACME_KEY), ("x-other", "1")]);
        let (reply, ctx) = run(&f, &mut req).await;
        assert!(reply.is_none());
        let consumer = ctx.consumer.unwrap();
        assert_eq!(consumer.id, "acme");
        assert_eq!(consumer.metadata["plan"], "gold");
        assert!(ctx.events.is_empty());
        assert!(!req.headers.contains_key("x-api-key"));
        assert_eq!(req.headers["x-other"], "1");

        let mut req = request("/", &[("X-API-Key", GLOBEX_KEY)]);
        let (_, ctx) = run(&f, &mut req).await;
        assert_eq!(ctx.consumer.unwrap().id, "globex");
    }

    #[tokio::test]
    async fn missing_and_unknown_keys_get_the_same_401() {
        let f = build(&config("")).unwrap();
        for (headers, event) in [
            (&[][..], "api_key_missing"),
            (&[("x-api-key", "")][..], "api_key_missing"),
            (&[("x-api-key", "ak_live_nope")][..], "api_key_unknown"),
            // A near miss: one character off.
            (
                &[("x-api-key", "ak_live_3f9c2e7a41b04d8e9a6c")][..],
                "api_key_unknown",
            ),
            // Case matters: keys are compared as bytes.
            (
                &[("x-api-key", "AK_LIVE_3F9C2E7A41B04D8E9A6B")][..],
                "api_key_unknown",
            ),
            // Sent twice, even with a valid key among them.
            (
                &[("x-api-key", ACME_KEY), ("x-api-key", ACME_KEY)][..],
                "api_key_unknown",
            ),
            // In another header.
            (&[("authorization", ACME_KEY)][..], "api_key_missing"),
        ] {
            let mut req = request("/", headers);
            let (reply, ctx) = run(&f, &mut req).await;
            assert_eq!(assert_unauthorized(reply, &ctx), event, "{headers:?}");
        }
    }

    #[tokio::test]
    async fn an_over_long_key_is_refused_without_a_lookup() {
        // A key of exactly the limit is looked up; one byte more is not.
        let long_key = "k".repeat(MAX_KEY_BYTES);
        let f = build(&format!(
            "type = \"api_key\"\nkeys = [{{ sha256 = \"{}\", consumer = \"long\" }}]",
            sha256_hex(&long_key)
        ))
        .unwrap();
        let mut req = request("/", &[("x-api-key", &long_key)]);
        assert_eq!(run(&f, &mut req).await.1.consumer.unwrap().id, "long");

        let too_long = format!("{long_key}k");
        let mut req = request("/", &[("x-api-key", &too_long)]);
        let (reply, ctx) = run(&f, &mut req).await;
        assert_eq!(assert_unauthorized(reply, &ctx), "api_key_unknown");
    }

    #[test]
    fn lookups_compare_whole_digests_within_a_prefix() {
        let consumer = |id: &str| Consumer {
            id: id.into(),
            metadata: BTreeMap::new(),
        };
        // Two digests that share their first 8 bytes land in one bucket: the full compare
        // tells them apart, and a third with that prefix matches neither.
        let mut a = [0x11u8; 32];
        let mut b = a;
        b[31] = 0x22;
        let mut table = KeyTable::default();
        table.insert(a, consumer("a"));
        table.insert(b, consumer("b"));
        assert_eq!(table.by_prefix.len(), 1);
        assert_eq!(table.find(&a).unwrap().id, "a");
        assert_eq!(table.find(&b).unwrap().id, "b");
        a[20] = 0;
        assert!(table.find(&a).is_none());
        assert!(table.find(&[0u8; 32]).is_none());
    }

    #[tokio::test]
    async fn query_key_is_removed_from_the_uri_and_other_parameters_kept() {
        let f = build(&config("query = \"api_key\"")).unwrap();
        let mut req = request(
            &format!("/accounts?page=2&api_key={ACME_KEY}&sort=asc%20x"),
            &[],
        );
        let (reply, ctx) = run(&f, &mut req).await;
        assert!(reply.is_none());
        assert_eq!(ctx.consumer.unwrap().id, "acme");
        assert_eq!(req.uri, "/accounts?page=2&sort=asc%20x");

        // The only parameter: the query goes with it; an absolute-form target keeps its
        // authority.
        let mut req = request(
            &format!("http://api.bank.example/x?api_key={ACME_KEY}"),
            &[],
        );
        assert!(run(&f, &mut req).await.0.is_none());
        assert_eq!(req.uri, "http://api.bank.example/x");

        // A percent-encoded name or value is the same parameter.
        let encoded: String = ACME_KEY.bytes().map(|b| format!("%{b:02X}")).collect();
        let mut req = request(&format!("/x?api%5Fkey={encoded}&a=1"), &[]);
        let (reply, ctx) = run(&f, &mut req).await;
        assert!(reply.is_none());
        assert_eq!(ctx.consumer.unwrap().id, "acme");
        assert_eq!(req.uri, "/x?a=1");

        // The header is not looked at in query mode, and is left alone.
        let mut req = request("/x?a=1", &[("x-api-key", ACME_KEY)]);
        let (reply, ctx) = run(&f, &mut req).await;
        let problem = reply.unwrap().problem.unwrap();
        assert_eq!(
            problem.detail.as_deref(),
            Some("a valid API key is required in the api_key query parameter")
        );
        assert_eq!(ctx.events, ["api_key_missing"]);
    }

    #[tokio::test]
    async fn query_key_failures() {
        let f = build(&config("query = \"api_key\"")).unwrap();
        for (uri, event) in [
            ("/x", "api_key_missing"),
            ("/x?", "api_key_missing"),
            ("/x?api_key=", "api_key_missing"),
            ("/x?api_key", "api_key_missing"),
            ("/x?api_keys=1", "api_key_missing"),
            ("/x?api_key=nope", "api_key_unknown"),
            (
                &format!("/x?api_key={ACME_KEY}&api_key={ACME_KEY}"),
                "api_key_unknown",
            ),
            (
                &format!("/x?api_key={}", "k".repeat(MAX_KEY_BYTES + 1)),
                "api_key_unknown",
            ),
        ] {
            let mut req = request(uri, &[]);
            let (reply, ctx) = run(&f, &mut req).await;
            assert_eq!(reply.unwrap().status, StatusCode::UNAUTHORIZED, "{uri}");
            assert_eq!(ctx.events, [event], "{uri}");
        }
    }

    #[tokio::test]
    async fn keys_file_is_read_relative_to_the_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("partners-keys.toml"),
            format!(
                "[[keys]]\nsha256 = \"{}\"\nconsumer = \"initech\"\nmetadata = {{ tenant = \"t-9\" }}\n",
                sha256_hex("ak_file_key")
            ),
        )
        .unwrap();
        let f = build_in(
            &config("header = \"x-partner-key\"\nkeys_file = \"partners-keys.toml\""),
            dir.path(),
        )
        .unwrap();
        // Keys from both places work.
        for (key, id) in [("ak_file_key", "initech"), (ACME_KEY, "acme")] {
            let mut req = request("/", &[("x-partner-key", key)]);
            let (reply, ctx) = run(&f, &mut req).await;
            assert!(reply.is_none(), "{id}");
            assert_eq!(ctx.consumer.as_ref().unwrap().id, id);
            assert!(!req.headers.contains_key("x-partner-key"));
        }

        // A keys file alone, which may be empty: everyone is refused.
        std::fs::write(dir.path().join("empty.toml"), "").unwrap();
        let f = build_in("type = \"api_key\"\nkeys_file = \"empty.toml\"", dir.path()).unwrap();
        let mut req = request("/", &[("x-api-key", ACME_KEY)]);
        assert_eq!(run(&f, &mut req).await.1.events, ["api_key_unknown"]);
    }

    #[test]
    fn keys_file_errors_name_the_file_but_not_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_in("type = \"api_key\"\nkeys_file = \"nope.toml\"", dir.path())
            .err()
            .unwrap();
        // The file as looked for, resolved against the config's directory.
        let file = |name: &str| dir.path().join(name).display().to_string();
        assert!(
            err.starts_with(&format!(
                "api_key: keys_file cannot read {}:",
                file("nope.toml")
            )),
            "{err}"
        );

        // Not TOML, with a key pasted in: the position, never the line.
        std::fs::write(
            dir.path().join("broken.toml"),
            "[[keys]]\nsha256 = ak_live_s3cret\n",
        )
        .unwrap();
        let err = build_in(
            "type = \"api_key\"\nkeys_file = \"broken.toml\"",
            dir.path(),
        )
        .err()
        .unwrap();
        assert!(
            err.contains(&format!("{} at line 2, column 10", file("broken.toml"))),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");

        // An unknown key in an entry.
        std::fs::write(
            dir.path().join("typo.toml"),
            "[[keys]]\nsha256 = \"00\"\nconsumr = \"acme\"\n",
        )
        .unwrap();
        let err = build_in("type = \"api_key\"\nkeys_file = \"typo.toml\"", dir.path())
            .err()
            .unwrap();
        assert!(err.contains("typo.toml"), "{err}");
        assert!(err.contains("consumr"), "{err}");

        // A value of the wrong type, which serde's message would quote.
        std::fs::write(
            dir.path().join("type.toml"),
            "[[keys]]\nsha256 = \"00\"\nconsumer = \"acme\"\nmetadata = \"ak_live_s3cret\"\n",
        )
        .unwrap();
        let err = build_in("type = \"api_key\"\nkeys_file = \"type.toml\"", dir.path())
            .err()
            .unwrap();
        assert!(err.contains("invalid type: string \"…\""), "{err}");
        assert!(!err.contains("s3cret"), "{err}");

        // A bad entry is named by file and index.
        std::fs::write(
            dir.path().join("bad.toml"),
            "[[keys]]\nsha256 = \"ak_live_s3cret\"\nconsumer = \"acme\"\n",
        )
        .unwrap();
        let err = build_in("type = \"api_key\"\nkeys_file = \"bad.toml\"", dir.path())
            .err()
            .unwrap();
        assert!(
            err.contains(&format!(
                "keys_file {}: keys[0]: sha256 must be",
                file("bad.toml")
            )),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn key_entries_are_checked() {
        let acme = sha256_hex(ACME_KEY);
        let globex = sha256_hex(GLOBEX_KEY);
        // Bad hex and wrong lengths name the entry, never the value.
        for bad in [
            ACME_KEY.to_owned(),
            acme[..62].to_owned(),
            format!("{acme}00"),
            format!("{}zz", &acme[..62]),
            String::new(),
        ] {
            let err = build_err(&format!(
                "type = \"api_key\"\nkeys = [{{ sha256 = \"{globex}\", consumer = \"g\" }}, {{ sha256 = \"{bad}\", consumer = \"a\" }}]"
            ));
            assert!(
                err.starts_with("api_key: keys[1]: sha256 must be 64 hex digits"),
                "{err}"
            );
            if !bad.is_empty() {
                assert!(!err.contains(&bad), "{err}");
            }
        }
        // Upper-case hex is the same digest.
        assert!(build(&format!(
            "type = \"api_key\"\nkeys = [{{ sha256 = \"{}\", consumer = \"a\" }}]",
            acme.to_uppercase()
        ))
        .is_ok());

        // The same key twice, even for the same consumer, in either case.
        let err = build_err(&format!(
            "type = \"api_key\"\nkeys = [{{ sha256 = \"{acme}\", consumer = \"a\" }}, {{ sha256 = \"{}\", consumer = \"a\" }}]",
            acme.to_uppercase()
        ));
        assert_eq!(err, "api_key: keys[1]: the same sha256 as keys[0]");

        // One consumer, two keys (rotation): fine with the same metadata, refused otherwise.
        let two = |meta0: &str, meta1: &str| {
            format!(
                "type = \"api_key\"\nkeys = [{{ sha256 = \"{acme}\", consumer = \"a\", metadata = {{ {meta0} }} }}, {{ sha256 = \"{globex}\", consumer = \"a\", metadata = {{ {meta1} }} }}]"
            )
        };
        assert!(build(&two("plan = \"gold\"", "plan = \"gold\"")).is_ok());
        let err = build_err(&two("plan = \"gold\"", "plan = \"silver\""));
        assert!(err.starts_with("api_key: keys[1]: consumer \"a\""), "{err}");
        assert!(err.contains("keys[0]"), "{err}");

        let err = build_err(&format!(
            "type = \"api_key\"\nkeys = [{{ sha256 = \"{acme}\", consumer = \"two words\" }}]"
        ));
        assert!(err.contains("keys[0]: consumer must be"), "{err}");
    }

    #[test]
    fn where_the_key_comes_from_is_checked() {
        assert_eq!(
            build_err(&config("header = \"x-k\"\nquery = \"k\"")),
            "api_key: set header or query, not both"
        );
        for bad in ["", "api key", "a&b", "a=b", "k%41"] {
            let err = build_err(&config(&format!("query = \"{bad}\"")));
            assert!(err.starts_with("api_key: query:"), "{bad:?}: {err}");
        }
        let err = build_err(&config("header = \"bad header\""));
        assert!(
            err.contains("api_key: header: invalid header name"),
            "{err}"
        );
        let err = build_err(&config("header = \"host\""));
        assert!(err.contains("owned by the gateway"), "{err}");
        assert_eq!(
            build_err("type = \"api_key\""),
            "api_key: set keys, keys_file or both"
        );
        // Unknown options, here and in entries, are config errors.
        assert!(build_err(&config("heder = \"x\"")).contains("heder"));
        let err = build_err(
            "type = \"api_key\"\nkeys = [{ sha256 = \"00\", consumer = \"a\", plan = \"x\" }]",
        );
        assert!(err.contains("plan"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_inline_list_refuses_everyone() {
        let f = build("type = \"api_key\"\nkeys = []").unwrap();
        let mut req = request("/", &[("x-api-key", ACME_KEY)]);
        let (reply, ctx) = run(&f, &mut req).await;
        assert_eq!(assert_unauthorized(reply, &ctx), "api_key_unknown");
    }
}
