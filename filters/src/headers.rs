//! `headers`: rename, remove, set and add request and response headers.
//!
//! ```toml
//! { type = "headers", request = { set = { "x-channel" = "partner" }, remove = ["x-debug"] } }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use http::{header, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::{
    BuildContext, BuildError, Filter, Flow, HttpMessage, RequestContext, RequestHead, ResponseHead,
};

/// Config of the `headers` filter: edits to the request on its way upstream and to the
/// response on its way back. Within a section, edits run in the order rename, remove, set, add.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HeadersConfig {
    /// Edits to the request before it goes upstream.
    pub request: HeaderEdits,
    /// Edits to the response (the upstream's, or a filter's reply) before it goes to the client.
    pub response: HeaderEdits,
}

/// The header edits of one direction. Framing and hop-by-hop headers (Content-Length,
/// Transfer-Encoding, Connection, ..., and Host on requests) belong to the gateway and are
/// refused in every list.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderEdits {
    /// Headers to replace: every existing value of the name is dropped, this one is sent.
    pub set: BTreeMap<String, String>,
    /// Headers to append, keeping the values already there.
    pub add: BTreeMap<String, String>,
    /// Headers to drop, all their values.
    pub remove: Vec<String>,
    /// Headers to move, `from = "to"`: when `from` is present, all its values replace those of
    /// `to`; when it is absent, nothing changes.
    pub rename: BTreeMap<String, String>,
}

impl HeadersConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        Ok(Arc::new(HeadersFilter {
            request: Edits::compile(&self.request, "request")?,
            response: Edits::compile(&self.response, "response")?,
        }))
    }
}

/// Whether config may not change `name`: message framing and hop-by-hop fields belong to the
/// gateway (letting config touch them could desynchronise framing between client, gateway and
/// upstream). `Host` is protected on requests only: routing and virtual hosts depend on it.
pub(crate) fn is_protected(name: &HeaderName, request: bool) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "content-length"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    ) || (request && name == header::HOST)
}

/// Parses a header name from config, refusing the ones the gateway owns.
pub(crate) fn config_header_name(
    raw: &str,
    request: bool,
    what: &str,
) -> Result<HeaderName, BuildError> {
    let name = HeaderName::from_bytes(raw.as_bytes())
        .map_err(|_| BuildError(format!("{what}: invalid header name {raw:?}")))?;
    if is_protected(&name, request) {
        return Err(BuildError(format!(
            "{what}: header {name:?} is a framing or hop-by-hop header owned by the gateway \
             and cannot be changed by config"
        )));
    }
    Ok(name)
}

/// One direction's edits, parsed at build time so the hot path only clones `Bytes` handles.
#[derive(Debug, Default)]
struct Edits {
    rename: Vec<(HeaderName, HeaderName)>,
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl Edits {
    fn compile(edits: &HeaderEdits, section: &str) -> Result<Self, BuildError> {
        let request = section == "request";
        let name = |raw: &str, op: &str| {
            config_header_name(raw, request, &format!("headers: {section}.{op}"))
        };
        // The value may be a secret (an upstream API key): name the header, never the value.
        let value = |name: &HeaderName, raw: &str, op: &str| {
            let mut value = HeaderValue::from_str(raw).map_err(|_| {
                BuildError(format!(
                    "headers: {section}.{op}: invalid value for header {name:?} \
                     (control characters and line breaks are not allowed)"
                ))
            })?;
            if is_sensitive(name) {
                value.set_sensitive(true);
            }
            Ok::<_, BuildError>(value)
        };

        let mut out = Edits::default();
        for (from, to) in &edits.rename {
            let (from, to) = (name(from, "rename")?, name(to, "rename")?);
            if from == to {
                return Err(BuildError(format!(
                    "headers: {section}.rename: {from:?} is renamed to itself"
                )));
            }
            if out.rename.iter().any(|(f, _)| *f == from) {
                return Err(BuildError(format!(
                    "headers: {section}.rename: {from:?} is listed twice"
                )));
            }
            out.rename.push((from, to));
        }
        for raw in &edits.remove {
            out.remove.push(name(raw, "remove")?);
        }
        for (raw, v) in &edits.set {
            let n = name(raw, "set")?;
            // Map keys differ only by case would silently override each other.
            if out.set.iter().any(|(s, _)| *s == n) {
                return Err(BuildError(format!(
                    "headers: {section}.set: {n:?} is listed twice"
                )));
            }
            let v = value(&n, v, "set")?;
            out.set.push((n, v));
        }
        for (raw, v) in &edits.add {
            let n = name(raw, "add")?;
            let v = value(&n, v, "add")?;
            out.add.push((n, v));
        }
        Ok(out)
    }

    fn apply<M: HttpMessage + ?Sized>(&self, msg: &mut M) {
        for (from, to) in &self.rename {
            if !msg.headers().contains_key(from) {
                continue;
            }
            let values: Vec<HeaderValue> = msg.headers().get_all(from).iter().cloned().collect();
            msg.remove_header(from);
            msg.remove_header(to);
            for value in values {
                msg.append_header(to.clone(), value);
            }
        }
        for name in &self.remove {
            if msg.headers().contains_key(name) {
                msg.remove_header(name);
            }
        }
        for (name, value) in &self.set {
            msg.set_header(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            msg.append_header(name.clone(), value.clone());
        }
    }
}

/// Credentials set by config are marked sensitive so HTTP/2 never indexes them in HPACK.
fn is_sensitive(name: &HeaderName) -> bool {
    [
        header::AUTHORIZATION,
        header::PROXY_AUTHORIZATION,
        header::COOKIE,
        header::SET_COOKIE,
    ]
    .contains(name)
}

struct HeadersFilter {
    request: Edits,
    response: Edits,
}

#[async_trait]
impl Filter for HeadersFilter {
    fn name(&self) -> &'static str {
        "headers"
    }

    async fn on_request(&self, req: &mut dyn RequestHead, _ctx: &mut RequestContext) -> Flow {
        self.request.apply(req);
        Flow::Continue
    }

    async fn on_response(
        &self,
        _req: &dyn RequestHead,
        resp: &mut dyn ResponseHead,
        _ctx: &mut RequestContext,
    ) -> Flow {
        self.response.apply(resp);
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;

    fn ctx() -> RequestContext {
        RequestContext::new("r-1".into(), "route".into(), None)
    }

    fn from_toml(src: &str) -> Result<Arc<dyn Filter>, String> {
        let config: FilterConfig = toml::from_str(src).map_err(|e| e.to_string())?;
        config.build(&BuildContext::default()).map_err(|e| e.0)
    }

    fn values(h: &http::HeaderMap, name: &str) -> Vec<String> {
        h.get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn tagged_config_parses_and_refuses_unknown_keys() {
        let ok: FilterConfig = toml::from_str(
            r#"type = "headers"
request = { set = { "x-channel" = "partner" } }"#,
        )
        .unwrap();
        assert_eq!(ok.type_name(), "headers");
        // Unknown key at the filter level, next to the `type` tag.
        let err = toml::from_str::<FilterConfig>("type = \"headers\"\nreqest = {}").unwrap_err();
        assert!(err.to_string().contains("reqest"), "{err}");
        // Unknown key in a nested section.
        let err = toml::from_str::<FilterConfig>("type = \"headers\"\nrequest = { put = {} }")
            .unwrap_err();
        assert!(err.to_string().contains("put"), "{err}");
        // Same with JSON, as the tag handling is serde's, not toml's.
        let ok: FilterConfig =
            serde_json::from_str(r#"{"type":"body_limit","max_bytes":10}"#).unwrap();
        assert_eq!(ok.type_name(), "body_limit");
        assert!(serde_json::from_str::<FilterConfig>(
            r#"{"type":"body_limit","max_bytes":10,"min_bytes":1}"#
        )
        .is_err());
        assert!(toml::from_str::<FilterConfig>("type = \"nope\"").is_err());

        // The shape the gateway reads: inline tables in a list, each wrapped in Spanned.
        #[derive(serde::Deserialize)]
        struct ChainDoc {
            filters: Vec<toml::Spanned<FilterConfig>>,
        }
        let doc: ChainDoc = toml::from_str(
            r#"filters = [
  { type = "headers", request = { set = { "x-channel" = "partner" } } },
  { type = "cors", allow_origins = ["https://app.partner.example"] },
]"#,
        )
        .unwrap();
        assert_eq!(doc.filters[1].get_ref().type_name(), "cors");
        let err = toml::from_str::<ChainDoc>(
            r#"filters = [{ type = "headers", request = { sett = {} } }]"#,
        )
        .err()
        .expect("unknown key refused");
        assert!(err.to_string().contains("sett"), "{err}");
    }

    #[tokio::test]
    async fn request_edits_run_rename_remove_set_add() {
        let f = from_toml(
            r#"type = "headers"
[request]
rename = { "x-partner-key" = "x-api-key" }
remove = ["x-debug", "x-api-key-old"]
set = { "x-channel" = "partner", "x-api-key-old" = "set-after-remove" }
add = { "x-tag" = "gw" }"#,
        )
        .unwrap();
        let (mut req, _) = http::Request::builder()
            .header("x-partner-key", "a")
            .header("x-partner-key", "b")
            .header("x-api-key", "spoofed")
            .header("x-debug", "1")
            .header("x-channel", "web")
            .header("x-channel", "app")
            .header("x-tag", "client")
            .body(())
            .unwrap()
            .into_parts();
        let flow = f.on_request(&mut req, &mut ctx()).await;
        assert!(matches!(flow, Flow::Continue));
        let h = &req.headers;
        assert!(!h.contains_key("x-partner-key"));
        assert_eq!(values(h, "x-api-key"), ["a", "b"]);
        assert!(!h.contains_key("x-debug"));
        assert_eq!(values(h, "x-api-key-old"), ["set-after-remove"]);
        assert_eq!(values(h, "x-channel"), ["partner"]);
        assert_eq!(values(h, "x-tag"), ["client", "gw"]);
    }

    #[tokio::test]
    async fn rename_of_absent_header_keeps_target() {
        let f =
            from_toml("type = \"headers\"\nrequest = { rename = { \"x-a\" = \"x-b\" } }").unwrap();
        let (mut req, _) = http::Request::builder()
            .header("x-b", "kept")
            .body(())
            .unwrap()
            .into_parts();
        f.on_request(&mut req, &mut ctx()).await;
        assert_eq!(values(&req.headers, "x-b"), ["kept"]);
    }

    #[tokio::test]
    async fn response_edits_touch_only_the_response() {
        let f = from_toml(
            r#"type = "headers"
response = { set = { "Strict-Transport-Security" = "max-age=63072000" }, remove = ["server"] }"#,
        )
        .unwrap();
        let (mut req, _) = http::Request::builder()
            .header("server", "x")
            .body(())
            .unwrap()
            .into_parts();
        f.on_request(&mut req, &mut ctx()).await;
        assert!(req.headers.contains_key("server"));

        let (mut resp, _) = http::Response::builder()
            .header("server", "nginx/1.2")
            .body(())
            .unwrap()
            .into_parts();
        f.on_response(&req, &mut resp, &mut ctx()).await;
        assert!(!resp.headers.contains_key("server"));
        assert_eq!(
            values(&resp.headers, "strict-transport-security"),
            ["max-age=63072000"]
        );
    }

    #[test]
    fn refuses_framing_and_hop_by_hop_headers() {
        for src in [
            "request = { set = { \"content-length\" = \"1\" } }",
            "request = { remove = [\"Transfer-Encoding\"] }",
            "request = { rename = { \"x-a\" = \"connection\" } }",
            "request = { rename = { \"host\" = \"x-host\" } }",
            "request = { add = { \"keep-alive\" = \"1\" } }",
            "response = { remove = [\"upgrade\"] }",
        ] {
            let err = from_toml(&format!("type = \"headers\"\n{src}"))
                .err()
                .expect("must be refused");
            assert!(err.contains("owned by the gateway"), "{src}: {err}");
        }
        // Host is the request's concern only.
        assert!(from_toml("type = \"headers\"\nresponse = { remove = [\"host\"] }").is_ok());
    }

    #[test]
    fn invalid_names_and_values_are_build_errors_without_the_value() {
        let err = from_toml("type = \"headers\"\nrequest = { set = { \"bad name\" = \"v\" } }")
            .err()
            .expect("must be refused");
        assert!(err.contains("\"bad name\""), "{err}");

        let err = from_toml(
            "type = \"headers\"\nrequest = { set = { \"authorization\" = \"Bearer s3cret\\n\" } }",
        )
        .err()
        .expect("must be refused");
        assert!(err.contains("authorization"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");

        let err = from_toml(
            "type = \"headers\"\nrequest = { set = { \"X-A\" = \"1\", \"x-a\" = \"2\" } }",
        )
        .err()
        .expect("must be refused");
        assert!(err.contains("twice"), "{err}");

        let err = from_toml("type = \"headers\"\nrequest = { rename = { \"x-a\" = \"X-A\" } }")
            .err()
            .expect("must be refused");
        assert!(err.contains("itself"), "{err}");
    }
}
