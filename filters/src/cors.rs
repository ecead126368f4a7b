//! `cors`: answers CORS preflights itself and adds CORS headers to responses for allowed
//! origins. Put it before authentication in a chain: browsers send preflights without
//! credentials.
//!
//! ```toml
//! { type = "cors", allow_origins = ["https://app.partner.example"] }
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde::Deserialize;

use crate::{
    BuildContext, BuildError, Filter, Flow, Problem, Reply, RequestContext, RequestHead,
    ResponseHead,
};

/// Config of the `cors` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins allowed to call, as browsers send them: `scheme://host`, with `:port` only when
    /// it is not the scheme's default, no path or trailing slash. `"*"` allows any origin; it
    /// must then be the only entry, and cannot go with `allow_credentials`. Required.
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for (case-sensitive, as HTTP methods are).
    #[serde(default = "default_allow_methods")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (case-insensitive).
    #[serde(default = "default_allow_headers")]
    pub allow_headers: Vec<String>,
    /// Response headers the browser lets scripts read, beyond the CORS-safelisted ones.
    #[serde(default = "default_expose_headers")]
    pub expose_headers: Vec<String>,
    /// Let browsers send cookies and HTTP authentication, and read the answer.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long, in seconds, a browser may cache a preflight's answer.
    #[serde(default = "default_max_age")]
    pub max_age: u64,
}

fn default_allow_methods() -> Vec<String> {
    ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .map(String::from)
        .to_vec()
}

fn default_allow_headers() -> Vec<String> {
    ["content-type", "authorization", "x-request-id"]
        .map(String::from)
        .to_vec()
}

fn default_expose_headers() -> Vec<String> {
    vec!["x-request-id".to_owned()]
}

fn default_max_age() -> u64 {
    600
}

impl CorsConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        let any_origin = self.allow_origins.iter().any(|o| o == "*");
        if self.allow_origins.is_empty() {
            return Err(BuildError(
                "cors: allow_origins must list at least one origin".to_owned(),
            ));
        }
        if any_origin && self.allow_origins.len() > 1 {
            return Err(BuildError(
                "cors: allow_origins: \"*\" must be the only entry".to_owned(),
            ));
        }
        if any_origin && self.allow_credentials {
            return Err(BuildError(
                "cors: allow_origins = [\"*\"] cannot go with allow_credentials = true \
                 (list the origins)"
                    .to_owned(),
            ));
        }
        let origins = if any_origin {
            Vec::new()
        } else {
            self.allow_origins
                .iter()
                .map(|o| parse_origin(o))
                .collect::<Result<_, _>>()?
        };

        if self.allow_methods.is_empty() {
            return Err(BuildError(
                "cors: allow_methods must list at least one method".to_owned(),
            ));
        }
        let methods = self
            .allow_methods
            .iter()
            .map(|m| {
                Method::from_bytes(m.as_bytes())
                    .ok()
                    .filter(|_| m != "*")
                    .ok_or_else(|| BuildError(format!("cors: allow_methods: invalid method {m:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let names = |list: &[String], what: &str| {
            list.iter()
                .map(|h| {
                    // "*" is a wildcard to browsers but would be matched literally here:
                    // list the names.
                    HeaderName::from_bytes(h.as_bytes())
                        .ok()
                        .filter(|_| h != "*")
                        .ok_or_else(|| {
                            BuildError(format!("cors: {what}: invalid header name {h:?}"))
                        })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let headers = names(&self.allow_headers, "allow_headers")?;
        let expose = names(&self.expose_headers, "expose_headers")?;

        let join = |items: Vec<&str>| HeaderValue::from_str(&items.join(", ")).ok();
        Ok(Arc::new(CorsFilter {
            any_origin,
            origins,
            allow_methods: join(methods.iter().map(Method::as_str).collect())
                .ok_or_else(|| BuildError("cors: allow_methods: invalid list".to_owned()))?,
            allow_headers: join(headers.iter().map(HeaderName::as_str).collect())
                .filter(|v| !v.is_empty()),
            expose_headers: join(expose.iter().map(HeaderName::as_str).collect())
                .filter(|v| !v.is_empty()),
            max_age: HeaderValue::from(self.max_age),
            credentials: self.allow_credentials,
            methods,
            headers,
        }))
    }
}

/// Checks that `raw` is a serialized origin, and returns it lowercased (browsers send scheme
/// and host in lowercase, and the port only when it is not the default one).
fn parse_origin(raw: &str) -> Result<HeaderValue, BuildError> {
    let bad = |why: &str| {
        BuildError(format!(
            "cors: allow_origins: {raw:?} is not an origin ({why})"
        ))
    };
    let lower = raw.to_ascii_lowercase();
    let uri: Uri = lower
        .parse()
        .map_err(|_| bad("expected scheme://host[:port]"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(bad("expected scheme://host[:port]"));
    };
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return Err(bad("the scheme must be http or https")),
    };
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(bad("expected scheme://host[:port]"));
    }
    if lower != format!("{scheme}://{}", authority.as_str()) {
        return Err(bad("no path, query or trailing slash"));
    }
    if authority.port_u16() == Some(default_port) {
        return Err(bad("drop the default port: browsers never send it"));
    }
    HeaderValue::from_str(&lower).map_err(|_| bad("invalid characters"))
}

struct CorsFilter {
    any_origin: bool,
    /// Allowed origins, lowercase; empty when `any_origin`.
    origins: Vec<HeaderValue>,
    methods: Vec<Method>,
    /// Allowed request headers, lowercase (HeaderName normalises).
    headers: Vec<HeaderName>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: HeaderValue,
    credentials: bool,
}

const ANY: HeaderValue = HeaderValue::from_static("*");
const TRUE: HeaderValue = HeaderValue::from_static("true");
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");

/// Every CORS response header: the upstream's are dropped, so only this filter's policy holds.
const CORS_RESPONSE_HEADERS: [HeaderName; 6] = [
    ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_ALLOW_CREDENTIALS,
    ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_MAX_AGE,
];

fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    all.next().is_none().then_some(first)
}

fn is_preflight<M: RequestHead + ?Sized>(req: &M) -> bool {
    req.method() == Method::OPTIONS
        && req.headers().contains_key(ORIGIN)
        && req.headers().contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

fn rejected(detail: &'static str) -> Flow {
    Flow::reject(
        Problem::new(
            StatusCode::FORBIDDEN,
            "cors-rejected",
            "CORS preflight rejected",
        )
        .with_detail(detail),
    )
}

impl CorsFilter {
    /// The Access-Control-Allow-Origin value for the request's Origin, if it is allowed.
    fn allow_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = single(headers, &ORIGIN)?;
        if self.any_origin {
            return Some(ANY);
        }
        self.origins
            .iter()
            .find(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
            .cloned()
    }

    fn method_allowed(&self, headers: &HeaderMap) -> bool {
        single(headers, &ACCESS_CONTROL_REQUEST_METHOD).is_some_and(|m| {
            self.methods
                .iter()
                .any(|allowed| allowed.as_str().as_bytes() == m.as_bytes())
        })
    }

    fn headers_allowed(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .all(|value| {
                value.as_bytes().split(|&b| b == b',').all(|item| {
                    let item = item.trim_ascii();
                    item.is_empty()
                        || self
                            .headers
                            .iter()
                            .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(item))
                })
            })
    }

    fn preflight(&self, headers: &HeaderMap) -> Flow {
        let Some(origin) = self.allow_origin(headers) else {
            return rejected("origin not allowed");
        };
        if !self.method_allowed(headers) {
            return rejected("method not allowed");
        }
        if !self.headers_allowed(headers) {
            return rejected("request header not allowed");
        }
        let mut reply = Reply::empty(StatusCode::NO_CONTENT);
        let h = &mut reply.headers;
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.allow_methods.clone());
        if let Some(allow) = &self.allow_headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow.clone());
        }
        h.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        if self.credentials {
            h.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        h.insert(VARY, VARY_ORIGIN);
        Flow::Respond(reply)
    }
}

/// Appends `Vary: Origin` unless the response already varies on Origin (or on everything).
fn vary_on_origin<M: ResponseHead + ?Sized>(resp: &mut M) {
    let covered = resp.headers().get_all(VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|token| {
            let token = token.trim_ascii();
            token == b"*" || token.eq_ignore_ascii_case(b"origin")
        })
    });
    if !covered {
        resp.append_header(VARY, VARY_ORIGIN);
    }
}

#[async_trait]
impl Filter for CorsFilter {
    fn name(&self) -> &'static str {
        "cors"
    }

    async fn on_request(&self, req: &mut dyn RequestHead, _ctx: &mut RequestContext) -> Flow {
        if is_preflight(req) {
            self.preflight(req.headers())
        } else {
            Flow::Continue
        }
    }

    async fn on_response(
        &self,
        req: &dyn RequestHead,
        resp: &mut dyn ResponseHead,
        _ctx: &mut RequestContext,
    ) -> Flow {
        // Preflights are answered in on_request, and this filter does not see its own replies.
        if is_preflight(req) {
            return Flow::Continue;
        }
        for name in &CORS_RESPONSE_HEADERS {
            if resp.headers().contains_key(name) {
                resp.remove_header(name);
            }
        }
        // Whether CORS headers appear depends on Origin, so caches must key on it, even when
        // this answer carries none.
        vary_on_origin(resp);
        let Some(origin) = self.allow_origin(req.headers()) else {
            return Flow::Continue;
        };
        resp.set_header(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(expose) = &self.expose_headers {
            resp.set_header(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
        if self.credentials {
            resp.set_header(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;

    const APP: &str = "https://app.partner.example";

    fn config(origins: &[&str]) -> CorsConfig {
        let list = origins
            .iter()
            .map(|o| format!("{o:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        match toml::from_str(&format!("type = \"cors\"\nallow_origins = [{list}]")).unwrap() {
            FilterConfig::cors(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn build(c: CorsConfig) -> Arc<dyn Filter> {
        c.build(&BuildContext::default()).unwrap()
    }

    fn ctx() -> RequestContext {
        RequestContext::new("r".into(), "route".into(), None)
    }

    fn request(method: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri("/accounts");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn text<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
        h.get(name).map(|v| v.to_str().unwrap())
    }

    async fn preflight(f: &Arc<dyn Filter>, headers: &[(&str, &str)]) -> Reply {
        let mut req = request("OPTIONS", headers);
        match f.on_request(&mut req, &mut ctx()).await {
            Flow::Respond(reply) => reply,
            Flow::Continue => panic!("a preflight must be answered"),
        }
    }

    async fn respond(f: &Arc<dyn Filter>, req: &http::request::Parts) -> http::response::Parts {
        let (mut resp, _) = http::Response::builder()
            .header("access-control-allow-origin", "*")
            .header("vary", "accept-encoding")
            .body(())
            .unwrap()
            .into_parts();
        let flow = f.on_response(req, &mut resp, &mut ctx()).await;
        assert!(matches!(flow, Flow::Continue));
        resp
    }

    #[test]
    fn defaults_and_unknown_keys() {
        let c = config(&[APP]);
        assert_eq!(c.allow_methods, ["GET", "POST", "PUT", "PATCH", "DELETE"]);
        assert_eq!(
            c.allow_headers,
            ["content-type", "authorization", "x-request-id"]
        );
        assert_eq!(c.expose_headers, ["x-request-id"]);
        assert!(!c.allow_credentials);
        assert_eq!(c.max_age, 600);
        assert!(toml::from_str::<FilterConfig>("type = \"cors\"").is_err());
        let err = toml::from_str::<FilterConfig>(
            "type = \"cors\"\nallow_origins = [\"https://a.example\"]\nallow_origin = []",
        )
        .unwrap_err();
        assert!(err.to_string().contains("allow_origin"), "{err}");
    }

    #[tokio::test]
    async fn allowed_preflight_is_answered_with_204() {
        let mut c = config(&[APP, "https://other.example:8443"]);
        c.allow_credentials = true;
        c.max_age = 60;
        let f = build(c);
        let reply = preflight(
            &f,
            &[
                ("origin", APP),
                ("access-control-request-method", "PATCH"),
                (
                    "access-control-request-headers",
                    "Content-Type, x-request-id",
                ),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert!(reply.problem.is_none() && reply.body.is_empty());
        let h = &reply.headers;
        assert_eq!(text(h, "access-control-allow-origin"), Some(APP));
        assert_eq!(
            text(h, "access-control-allow-methods"),
            Some("GET, POST, PUT, PATCH, DELETE")
        );
        assert_eq!(
            text(h, "access-control-allow-headers"),
            Some("content-type, authorization, x-request-id")
        );
        assert_eq!(text(h, "access-control-max-age"), Some("60"));
        assert_eq!(text(h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(text(h, "vary"), Some("Origin"));

        // Without credentials the header is absent; a wildcard config answers "*".
        let f = build(config(&["*"]));
        let reply = preflight(
            &f,
            &[
                ("origin", "https://anyone.example"),
                ("access-control-request-method", "GET"),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        assert_eq!(
            text(&reply.headers, "access-control-allow-origin"),
            Some("*")
        );
        assert!(!reply
            .headers
            .contains_key("access-control-allow-credentials"));
    }

    #[tokio::test]
    async fn disallowed_preflight_is_403() {
        let f = build(config(&[APP]));
        for (headers, why) in [
            (
                &[
                    ("origin", "https://evil.example"),
                    ("access-control-request-method", "GET"),
                ][..],
                "origin not allowed",
            ),
            (
                &[
                    ("origin", "https://app.partner.example.evil.example"),
                    ("access-control-request-method", "GET"),
                ][..],
                "origin not allowed",
            ),
            (
                &[("origin", APP), ("access-control-request-method", "TRACE")][..],
                "method not allowed",
            ),
            (
                &[("origin", APP), ("access-control-request-method", "get")][..],
                "method not allowed",
            ),
            (
                &[
                    ("origin", APP),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "content-type,x-internal-admin",
                    ),
                ][..],
                "request header not allowed",
            ),
        ] {
            let reply = preflight(&f, headers).await;
            let problem = reply.problem.expect("a problem");
            assert_eq!(problem.status, StatusCode::FORBIDDEN);
            assert_eq!(problem.kind, "cors-rejected");
            assert_eq!(problem.title, "CORS preflight rejected");
            assert_eq!(problem.detail.as_deref(), Some(why), "{headers:?}");
            assert!(!reply.headers.contains_key("access-control-allow-origin"));
        }
    }

    #[tokio::test]
    async fn non_preflight_requests_continue() {
        let f = build(config(&[APP]));
        for (method, headers) in [
            ("OPTIONS", &[("origin", APP)][..]),
            (
                "GET",
                &[("origin", APP), ("access-control-request-method", "GET")][..],
            ),
            ("OPTIONS", &[][..]),
        ] {
            let mut req = request(method, headers);
            assert!(matches!(
                f.on_request(&mut req, &mut ctx()).await,
                Flow::Continue
            ));
        }
    }

    #[tokio::test]
    async fn allowed_origin_gets_cors_headers_on_the_response() {
        let mut c = config(&["HTTPS://App.Partner.Example"]);
        c.allow_credentials = true;
        let f = build(c);
        let req = request("GET", &[("origin", APP)]);
        let resp = respond(&f, &req).await;
        let h = &resp.headers;
        assert_eq!(text(h, "access-control-allow-origin"), Some(APP));
        assert_eq!(
            text(h, "access-control-expose-headers"),
            Some("x-request-id")
        );
        assert_eq!(text(h, "access-control-allow-credentials"), Some("true"));
        let vary: Vec<_> = h.get_all("vary").iter().collect();
        assert_eq!(vary, ["accept-encoding", "Origin"]);

        let f = build(config(&["*"]));
        let req = request("POST", &[("origin", "https://anyone.example")]);
        let resp = respond(&f, &req).await;
        assert_eq!(
            text(&resp.headers, "access-control-allow-origin"),
            Some("*")
        );
        assert!(!resp
            .headers
            .contains_key("access-control-allow-credentials"));
    }

    #[tokio::test]
    async fn disallowed_or_absent_origin_gets_no_cors_headers() {
        let f = build(config(&[APP]));
        for headers in [&[("origin", "https://evil.example")][..], &[][..]] {
            let req = request("GET", headers);
            let resp = respond(&f, &req).await;
            // The upstream's own "*" is dropped too: the gateway's policy is the only one.
            assert!(!resp.headers.contains_key("access-control-allow-origin"));
            assert!(!resp.headers.contains_key("access-control-expose-headers"));
            let vary: Vec<_> = resp.headers.get_all("vary").iter().collect();
            assert_eq!(vary, ["accept-encoding", "Origin"]);
        }
    }

    #[tokio::test]
    async fn vary_is_not_duplicated() {
        let f = build(config(&[APP]));
        let req = request("GET", &[("origin", APP)]);
        let (mut resp, _) = http::Response::builder()
            .header("vary", "Accept, origin")
            .body(())
            .unwrap()
            .into_parts();
        f.on_response(&req, &mut resp, &mut ctx()).await;
        assert_eq!(resp.headers.get_all("vary").iter().count(), 1);
    }

    #[test]
    fn bad_configs_are_build_errors() {
        let cases: Vec<(CorsConfig, &str)> = vec![
            (config(&[]), "at least one origin"),
            (config(&["*", APP]), "only entry"),
            (
                CorsConfig {
                    allow_credentials: true,
                    ..config(&["*"])
                },
                "allow_credentials",
            ),
            (config(&["null"]), "\"null\""),
            (config(&["app.partner.example"]), "\"app.partner.example\""),
            (config(&["https://app.partner.example/"]), "trailing slash"),
            (config(&["https://app.partner.example/api"]), "no path"),
            (config(&["https://app.partner.example:443"]), "default port"),
            (config(&["ftp://files.example"]), "http or https"),
            (
                config(&["https://user@app.example"]),
                "\"https://user@app.example\"",
            ),
            (
                CorsConfig {
                    allow_methods: vec!["GE T".into()],
                    ..config(&[APP])
                },
                "\"GE T\"",
            ),
            (
                CorsConfig {
                    allow_methods: vec![],
                    ..config(&[APP])
                },
                "allow_methods",
            ),
            (
                CorsConfig {
                    allow_headers: vec!["bad header".into()],
                    ..config(&[APP])
                },
                "allow_headers: invalid header name \"bad header\"",
            ),
            (
                CorsConfig {
                    expose_headers: vec!["*".into()],
                    ..config(&[APP])
                },
                "expose_headers",
            ),
        ];
        for (c, expected) in cases {
            let err = c
                .build(&BuildContext::default())
                .err()
                .unwrap_or_else(|| panic!("accepted: {c:?}"));
            assert!(err.0.starts_with("cors: "), "{err}");
            assert!(err.0.contains(expected), "{err} lacks {expected:?}");
        }
    }
}
