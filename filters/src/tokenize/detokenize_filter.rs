//! `detokenize`: replaces tokens a partner sends with the real values before the request
//! goes to the core, for the consumers a rule names, with an audit record for each.
//!
//! ```toml
//! [[chains.partner.filters]]
//! type = "detokenize"
//! rules = [
//!   { body = "$.card.pan", engine = { type = "ff1", kind = "pan", tweak = "acme", keys = { active = 1, versions = [{ version = 1, file = "keys/pan.key" }] } }, consumers = ["acme"] },
//!   { path_segment = 1, engine = { … }, consumers = ["acme"], required = false },
//! ]
//! ```
//!
//! Each rule names one place: `body` (a JSONPath into a JSON body), `header`, `query` (a
//! parameter) or `path_segment` (0-based, of the path the client sent). For a consumer the
//! rule does not name, tokens pass on unchanged. A value that is not a token is a 400
//! (unless `required = false`), and the core is not called.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, StatusCode, Uri};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use super::json_path::{self, Paths, RulePath, Selected};
use super::rules::{build_rules, parse_path, unavailable, EngineConfig, OnInvalidBody};
use super::{TokenEngine, TokenError};
use crate::json_fields::{is_encoded, is_json};
use crate::{
    AuditEntry, BuildContext, BuildError, Filter, Flow, Problem, RequestContext, RequestHead,
};

/// Characters of a path segment sent as they are: RFC 3986's unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Config of the `detokenize` filter.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetokenizeConfig {
    /// At least one; applied in order. A body value several rules select is handled by the
    /// first of them.
    pub rules: Vec<DetokenizeRule>,
    /// A request body that body rules cannot read (not JSON, or compressed): `reject` (the
    /// default) answers a 400 `invalid-json`; `pass` sends it on untouched.
    #[serde(default)]
    pub on_invalid_body: OnInvalidBody,
}

/// One rule: exactly one of `body`, `header`, `query` and `path_segment`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetokenizeRule {
    /// A JSONPath (RFC 9535) into the JSON request body: `$.card.pan`.
    pub body: Option<String>,
    /// A request header.
    pub header: Option<String>,
    /// A query parameter, by its decoded name; values are form-decoded.
    pub query: Option<String>,
    /// The index of a segment of the path the client sent, from 0: in
    /// `/v1/cards/{token}/balance`, the token is segment 2.
    pub path_segment: Option<usize>,
    /// `ff1` or `vault`, configured as the `tokenize` rule that made the tokens.
    pub engine: EngineConfig,
    /// The consumers (as authentication filters set them) whose tokens are turned into
    /// values; at least one. Other callers' tokens pass on unchanged.
    pub consumers: Vec<String>,
    /// A value that is not a token is refused with a 400 (the default); with `false` it
    /// passes on unchanged.
    #[serde(default = "required_by_default")]
    pub required: bool,
}

fn required_by_default() -> bool {
    true
}

enum Location {
    Body(RulePath),
    Header(HeaderName),
    Query(String),
    PathSegment(usize),
}

struct Rule {
    location: Location,
    /// The location as configured (`body $.card.pan`): for audit records and problems.
    field: String,
    engine: Arc<dyn TokenEngine>,
    consumers: Vec<String>,
    required: bool,
}

impl DetokenizeConfig {
    pub fn build(&self, ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        let rules = build_rules(&self.rules, |rule| rule.build(ctx))?;
        for (index, rule) in rules.iter().enumerate() {
            if let Some(first) = rules[..index].iter().position(|r| r.field == rule.field) {
                return Err(BuildError(format!(
                    "rules[{index}]: {} is also named by rules[{first}]",
                    rule.field
                )));
            }
        }
        let body_paths =
            (rules.iter().enumerate()).filter_map(|(index, rule)| match &rule.location {
                Location::Body(path) => Some((index, path)),
                _ => None,
            });
        Ok(Arc::new(DetokenizeFilter {
            body_rules: rules
                .iter()
                .any(|rule| matches!(rule.location, Location::Body(_))),
            body_paths: Paths::new(body_paths),
            rules,
            on_invalid_body: self.on_invalid_body,
        }))
    }
}

impl DetokenizeRule {
    /// The rule built, or every problem it has.
    fn build(&self, ctx: &BuildContext) -> Result<Rule, String> {
        let mut errors = Vec::new();
        let location = self.location().map_err(|e| errors.push(e)).ok();
        let engine = match &self.engine {
            EngineConfig::Ff1(config) => config.build(ctx),
            EngineConfig::Vault(config) => config.build(ctx),
            EngineConfig::Mask(_) => Err(BuildError(
                "mask cannot detokenize: a masked value cannot be turned back".into(),
            )),
        }
        .map_err(|e| errors.push(format!("engine: {e}")))
        .ok();
        if self.consumers.is_empty() || self.consumers.iter().any(String::is_empty) {
            errors.push("consumers: name at least one consumer, and no empty one".into());
        }
        match (location, engine) {
            (Some((location, field)), Some(engine)) if errors.is_empty() => Ok(Rule {
                location,
                field,
                engine,
                consumers: self.consumers.clone(),
                required: self.required,
            }),
            _ => Err(errors.join("; ")),
        }
    }

    /// The one location the rule names, and how audit records and problems name it.
    fn location(&self) -> Result<(Location, String), String> {
        Ok(
            match (&self.body, &self.header, &self.query, self.path_segment) {
                (Some(path), None, None, None) => (
                    Location::Body(parse_path("body", path)?),
                    format!("body {path}"),
                ),
                (None, Some(name), None, None) => {
                    let name = HeaderName::try_from(name.as_str())
                        .map_err(|_| format!("header: {name:?} is not a header name"))?;
                    let field = format!("header {name}");
                    (Location::Header(name), field)
                }
                (None, None, Some(param), None) => {
                    if param.is_empty() {
                        return Err("query: the parameter name is empty".into());
                    }
                    (Location::Query(param.clone()), format!("query {param}"))
                }
                (None, None, None, Some(index)) => (
                    Location::PathSegment(index),
                    format!("path_segment {index}"),
                ),
                _ => return Err("set exactly one of body, header, query and path_segment".into()),
            },
        )
    }
}

struct DetokenizeFilter {
    rules: Vec<Rule>,
    /// Some rule reads the body.
    body_rules: bool,
    /// The body rules' paths, by the index of their rule.
    body_paths: Paths,
    on_invalid_body: OnInvalidBody,
}

impl Rule {
    fn permits(&self, ctx: &RequestContext) -> bool {
        ctx.consumer
            .as_ref()
            .is_some_and(|consumer| self.consumers.contains(&consumer.id))
    }

    /// The value behind `token`, or `None` when it stays as it is: the caller is not one of
    /// the rule's consumers, or it is not a token and the rule does not require one.
    /// `token` is `None` for something that cannot be a token (a JSON number, a header
    /// that is not text). Each value given out is audited.
    async fn detokenize(
        &self,
        token: Option<&str>,
        ctx: &mut RequestContext,
    ) -> Result<Option<String>, Flow> {
        if !self.permits(ctx) {
            ctx.events.push("detokenize_not_permitted");
            return Ok(None);
        }
        let result = match token {
            Some(token) => self.engine.detokenize(token).await,
            None => Err(TokenError::NotAToken),
        };
        match result {
            Ok(found) => {
                ctx.audit.push(AuditEntry {
                    action: "detokenize",
                    field: self.field.clone(),
                    key_version: found.key_version,
                });
                Ok(Some(found.value))
            }
            Err(e @ TokenError::Unavailable(_)) => Err(unavailable("detokenize", &self.field, &e)),
            Err(_) if self.required => Err(self.refuse("not a valid token")),
            Err(_) => Ok(None),
        }
    }

    /// A 400 naming the field, never the value.
    fn refuse(&self, why: &str) -> Flow {
        Flow::reject(
            Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid-token-value",
                "Invalid token",
            )
            .with_detail(format!("{}: {why}", self.field)),
        )
    }

    async fn in_header(
        &self,
        name: &HeaderName,
        req: &mut dyn RequestHead,
        ctx: &mut RequestContext,
    ) -> Result<(), Flow> {
        let values: Vec<HeaderValue> = req.headers().get_all(name).iter().cloned().collect();
        let mut out = Vec::with_capacity(values.len());
        let mut changed = false;
        for value in values {
            if value.is_empty() {
                out.push(value);
                continue;
            }
            match self.detokenize(value.to_str().ok(), ctx).await? {
                Some(real) => {
                    let mut real = HeaderValue::try_from(real)
                        .map_err(|_| self.refuse("the value cannot be sent in a header"))?;
                    // Debug output of the headers shows "Sensitive" instead.
                    real.set_sensitive(true);
                    out.push(real);
                    changed = true;
                }
                None => out.push(value),
            }
        }
        if changed {
            req.remove_header(name);
            for value in out {
                req.append_header(name.clone(), value);
            }
        }
        Ok(())
    }

    /// Every copy of the parameter; the rest of the query is sent on as it came.
    async fn in_query(
        &self,
        param: &str,
        req: &mut dyn RequestHead,
        ctx: &mut RequestContext,
    ) -> Result<(), Flow> {
        let Some(query) = req.uri().query().map(str::to_owned) else {
            return Ok(());
        };
        let mut pairs = Vec::new();
        let mut changed = false;
        for pair in query.split('&') {
            let value = match form_urlencoded::parse(pair.as_bytes()).next() {
                Some((name, value)) if name == param && !value.is_empty() => value,
                _ => {
                    pairs.push(pair.to_owned());
                    continue;
                }
            };
            match self.detokenize(Some(&value), ctx).await? {
                Some(real) => {
                    let name = pair.split('=').next().unwrap_or(pair);
                    let real: String = form_urlencoded::byte_serialize(real.as_bytes()).collect();
                    pairs.push(format!("{name}={real}"));
                    changed = true;
                }
                None => pairs.push(pair.to_owned()),
            }
        }
        if changed {
            let uri = with_target(req.uri(), req.uri().path(), Some(&pairs.join("&")));
            req.set_uri(uri);
        }
        Ok(())
    }

    async fn in_path(
        &self,
        index: usize,
        req: &mut dyn RequestHead,
        ctx: &mut RequestContext,
    ) -> Result<(), Flow> {
        let path = req.uri().path().to_owned();
        let mut segments: Vec<&str> = path.strip_prefix('/').unwrap_or(&path).split('/').collect();
        let Some(segment) = segments.get(index).filter(|s| !s.is_empty()) else {
            return Ok(());
        };
        let token = percent_decode_str(segment).decode_utf8().ok();
        let Some(real) = self.detokenize(token.as_deref(), ctx).await? else {
            return Ok(());
        };
        // Dot segments would move the request elsewhere on the core.
        if real.is_empty() || real == "." || real == ".." {
            return Err(self.refuse("the value cannot be sent in a path segment"));
        }
        let real = utf8_percent_encode(&real, SEGMENT).to_string();
        segments[index] = &real;
        let uri = with_target(
            req.uri(),
            &format!("/{}", segments.join("/")),
            req.uri().query(),
        );
        req.set_uri(uri);
        Ok(())
    }
}

/// `uri` with another path and query (pieces of a valid target, percent-encoded).
fn with_target(uri: &Uri, path: &str, query: Option<&str>) -> Uri {
    let target = match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query =
        Some(PathAndQuery::try_from(target).expect("a path and query of valid characters"));
    Uri::from_parts(parts).expect("the parts of a valid URI with another target")
}

impl DetokenizeFilter {
    fn invalid_body(&self, detail: String, ctx: &mut RequestContext) -> Flow {
        ctx.events.push("detokenize_invalid_body");
        match self.on_invalid_body {
            OnInvalidBody::Pass => Flow::Continue,
            OnInvalidBody::Reject => Flow::reject(
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-json",
                    "Request body is not valid JSON",
                )
                .with_detail(detail),
            ),
        }
    }

    /// The body with the tokens the body rules select turned into values (`None`: nothing to
    /// change), or the answer to send instead.
    async fn detokenize_body(
        &self,
        body: &[u8],
        ctx: &mut RequestContext,
    ) -> Result<Option<Bytes>, Flow> {
        let mut edits = Vec::new();
        let found =
            (self.body_paths.select(body)).map_err(|detail| self.invalid_body(detail, ctx))?;
        for found in found {
            let rule = &self.rules[found.rule];
            let token = match &found.value {
                Selected::Null => continue,
                Selected::String(token) if token.is_empty() => continue,
                Selected::String(token) => Some(&**token),
                Selected::Number(_) | Selected::Other => None,
            };
            if let Some(real) = rule.detokenize(token, ctx).await? {
                edits.push((found.span, real));
            }
        }
        Ok((!edits.is_empty()).then(|| json_path::splice(body, edits)))
    }
}

#[async_trait]
impl Filter for DetokenizeFilter {
    fn name(&self) -> &'static str {
        "detokenize"
    }

    fn wants_request_body(&self) -> bool {
        self.body_rules
    }

    async fn on_request(&self, req: &mut dyn RequestHead, ctx: &mut RequestContext) -> Flow {
        for rule in &self.rules {
            let outcome = match &rule.location {
                Location::Body(_) => continue,
                Location::Header(name) => rule.in_header(name, req, ctx).await,
                Location::Query(param) => rule.in_query(param, req, ctx).await,
                Location::PathSegment(index) => rule.in_path(*index, req, ctx).await,
            };
            if let Err(answer) = outcome {
                return answer;
            }
        }
        Flow::Continue
    }

    async fn on_request_body(
        &self,
        req: &mut dyn RequestHead,
        body: &mut Bytes,
        ctx: &mut RequestContext,
    ) -> Flow {
        if !self.body_rules || body.is_empty() {
            return Flow::Continue;
        }
        if !is_json(req.headers()) {
            return self.invalid_body("detokenize needs a JSON body".into(), ctx);
        }
        if is_encoded(req.headers()) {
            return self.invalid_body(
                "compressed bodies (Content-Encoding) are not accepted".into(),
                ctx,
            );
        }
        match self.detokenize_body(body, ctx).await {
            Ok(Some(detokenized)) => *body = detokenized,
            Ok(None) => {}
            Err(answer) => return answer,
        }
        Flow::Continue
    }
}
