//! `json_fields`: removes members from JSON bodies, so a core's internal fields (a `trace` with
//! a stack trace, `internal.debug`) never reach partners, and partners cannot smuggle fields
//! into the core.
//!
//! ```toml
//! { type = "json_fields", remove_from_response = ["trace", "accounts.internal_ref"] }
//! ```
//!
//! Only the named members are cut out of the body's bytes: the rest keeps its exact text (key
//! order, number digits, escapes, whitespace), and a body with nothing to remove is not touched
//! at all. Member names are matched exactly (case-sensitive) after their escapes are decoded,
//! and every duplicate of a named member goes, so neither `"\u0074race"` nor a repeated key
//! slips through.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Deserialize;

use crate::{
    BuildContext, BuildError, Filter, Flow, Problem, RequestContext, RequestHead, ResponseHead,
};

/// Config of the `json_fields` filter. At least one of the lists must name a path.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct JsonFieldsConfig {
    /// Members removed from JSON response bodies before they reach the client, as dotted
    /// paths from the top of the document: `"trace"`, `"meta.internal_id"`. Arrays are crossed
    /// on the way: `"accounts.internal_ref"` removes `internal_ref` from every element of
    /// `accounts` (and `"trace"` from every element of a top-level array). A member whose name
    /// contains a dot cannot be named.
    pub remove_from_response: Vec<String>,
    /// Members removed from JSON request bodies before they go upstream; same paths as
    /// `remove_from_response`.
    pub remove_from_request: Vec<String>,
}

impl JsonFieldsConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Arc<dyn Filter>, BuildError> {
        if self.remove_from_response.is_empty() && self.remove_from_request.is_empty() {
            return Err(BuildError(
                "json_fields: remove_from_response and remove_from_request are both empty \
                 (name at least one path)"
                    .to_owned(),
            ));
        }
        Ok(Arc::new(JsonFieldsFilter {
            request: Paths::compile(&self.remove_from_request, "remove_from_request")?,
            response: Paths::compile(&self.remove_from_response, "remove_from_response")?,
        }))
    }
}

/// Compiled paths: a tree of member names. A node marked `remove` drops the member whatever
/// its value holds; otherwise its children apply inside the member's value.
#[derive(Debug, Default)]
struct Paths {
    remove: bool,
    children: HashMap<String, Paths>,
}

impl Paths {
    fn compile(list: &[String], field: &str) -> Result<Self, BuildError> {
        let mut root = Paths::default();
        for path in list {
            if path.is_empty() {
                return Err(BuildError(format!("json_fields: {field}: empty path")));
            }
            let mut node = &mut root;
            for segment in path.split('.') {
                if segment.is_empty() {
                    return Err(BuildError(format!(
                        "json_fields: {field}: path {path:?} has an empty segment"
                    )));
                }
                node = node.children.entry(segment.to_owned()).or_default();
            }
            // A shorter path that removes the whole member makes longer ones moot: the walk
            // looks at `remove` first.
            node.remove = true;
        }
        Ok(root)
    }

    fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

struct JsonFieldsFilter {
    request: Paths,
    response: Paths,
}

/// `Accept-Encoding` asking the upstream for an uncompressed answer.
pub(crate) const IDENTITY: HeaderValue = HeaderValue::from_static("identity");

/// Whether a Content-Type says JSON: `application/json` or `application/<anything>+json`,
/// parameters ignored. Any of several values (or comma-separated items) counts, so a second
/// header cannot hide a JSON body from the filter.
pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_TYPE).iter().any(|value| {
        value.as_bytes().split(|&b| b == b',').any(|item| {
            let essence = item.split(|&b| b == b';').next().unwrap_or_default();
            let Some(slash) = essence.iter().position(|&b| b == b'/') else {
                return false;
            };
            let (kind, sub) = (
                essence[..slash].trim_ascii(),
                essence[slash + 1..].trim_ascii(),
            );
            kind.eq_ignore_ascii_case(b"application")
                && (sub.eq_ignore_ascii_case(b"json")
                    || (sub.len() > 5 && sub[sub.len() - 5..].eq_ignore_ascii_case(b"+json")))
        })
    })
}

/// Whether the body carries a content coding (gzip...): its bytes are not the JSON text, and
/// cannot be checked.
pub(crate) fn is_encoded(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).iter().any(|value| {
        value.as_bytes().split(|&b| b == b',').any(|coding| {
            let coding = coding.trim_ascii();
            !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity")
        })
    })
}

/// The body without the members `paths` names: `Ok(None)` when none is there. `Err` holds a
/// detail safe to show the body's sender: it never quotes the body.
fn strip(body: &[u8], paths: &Paths) -> Result<Option<Bytes>, String> {
    let json = std::str::from_utf8(body)
        .map_err(|e| format!("the body is not UTF-8 (byte {})", e.valid_up_to()))?;
    // Validates the whole text without building it (and without serde_json's depth limit):
    // the walk below relies on it.
    serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(|e| {
        let what = if e.is_eof() {
            "the body ends early"
        } else {
            "syntax error"
        };
        format!("{what} at line {} column {}", e.line(), e.column())
    })?;
    let mut cuts = cuts(json, paths)?;
    if cuts.is_empty() {
        return Ok(None);
    }
    cuts.sort_unstable_by_key(|c| c.start);
    let mut out = Vec::with_capacity(body.len());
    let mut at = 0;
    for cut in cuts {
        out.extend_from_slice(&body[at..cut.start]);
        at = cut.end;
    }
    out.extend_from_slice(&body[at..]);
    Ok(Some(Bytes::from(out)))
}

/// One member of an object being walked: from its name's opening quote to its value's end.
struct Member {
    start: usize,
    end: usize,
    removed: bool,
}

/// An open container of the walk, with the paths that apply inside it.
enum Frame<'p> {
    Object {
        paths: &'p Paths,
        members: Vec<Member>,
    },
    Array {
        paths: &'p Paths,
    },
}

/// The byte ranges to cut from `json`, which must be valid JSON, so that the members `paths`
/// names are gone along with their commas. Iterative, so deep nesting cannot overflow the
/// stack; only containers the paths reach into are walked, the rest is skipped.
fn cuts(json: &str, paths: &Paths) -> Result<Vec<Range<usize>>, String> {
    let b = json.as_bytes();
    let mut cuts = Vec::new();
    let mut stack = Vec::new();
    let mut i = enter(b, ws(b, 0), paths, &mut stack);
    while !stack.is_empty() {
        i = ws(b, i);
        match b[i] {
            b',' => i = ws(b, i + 1),
            b'}' | b']' => {
                i += 1;
                if let Some(Frame::Object { members, .. }) = stack.pop() {
                    member_cuts(&members, &mut cuts);
                }
                value_ended(&mut stack, i);
                continue;
            }
            _ => {}
        }
        let top = stack.len() - 1;
        let descend = match &mut stack[top] {
            Frame::Array { paths } => Some((i, *paths)),
            Frame::Object { paths, members } => {
                let start = i;
                let name_end = string_end(b, start);
                let name = member_name(&json[start..name_end])?;
                // Past the ':' and the whitespace around it.
                let value = ws(b, ws(b, name_end) + 1);
                match paths.children.get(&*name) {
                    Some(child) if !child.remove => {
                        members.push(Member {
                            start,
                            end: value,
                            removed: false,
                        });
                        Some((value, child))
                    }
                    found => {
                        i = skip(b, value);
                        members.push(Member {
                            start,
                            end: i,
                            removed: found.is_some(),
                        });
                        None
                    }
                }
            }
        };
        if let Some((value, paths)) = descend {
            i = enter(b, value, paths, &mut stack);
        }
    }
    Ok(cuts)
}

/// Starts the value at `i`: opens a frame for a container, or skips a scalar. Returns where the
/// walk goes on.
fn enter<'p>(b: &[u8], i: usize, paths: &'p Paths, stack: &mut Vec<Frame<'p>>) -> usize {
    match b[i] {
        b'{' => {
            stack.push(Frame::Object {
                paths,
                members: Vec::new(),
            });
            i + 1
        }
        b'[' => {
            stack.push(Frame::Array { paths });
            i + 1
        }
        _ => {
            let end = skip(b, i);
            value_ended(stack, end);
            end
        }
    }
}

/// A value ended at `end`: when it was an object member's, that member ends there too.
fn value_ended(stack: &mut [Frame<'_>], end: usize) {
    if let Some(Frame::Object { members, .. }) = stack.last_mut() {
        if let Some(member) = members.last_mut() {
            member.end = end;
        }
    }
}

/// The cuts of one object's removed members. A member after a kept one goes with the comma
/// before it; members before the first kept one go with the comma after them.
fn member_cuts(members: &[Member], cuts: &mut Vec<Range<usize>>) {
    let Some(first_kept) = members.iter().position(|m| !m.removed) else {
        if let (Some(first), Some(last)) = (members.first(), members.last()) {
            cuts.push(first.start..last.end);
        }
        return;
    };
    for (j, member) in members.iter().enumerate().filter(|(_, m)| m.removed) {
        if j < first_kept {
            cuts.push(member.start..members[j + 1].start);
        } else {
            cuts.push(members[j - 1].end..member.end);
        }
    }
}

/// A member name from its quoted literal, escapes decoded. A name that is not a Unicode string
/// (a lone surrogate escape) is refused: the core might read it as anything.
pub(crate) fn member_name(literal: &str) -> Result<Cow<'_, str>, String> {
    let inner = &literal[1..literal.len() - 1];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(literal)
        .map(Cow::Owned)
        .map_err(|_| "a member name has an invalid escape".to_owned())
}

pub(crate) fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The index just past the string whose opening quote is at `i`.
pub(crate) fn string_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    loop {
        match b[j] {
            b'"' => return j + 1,
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
}

/// The index just past the (valid) value starting at `i`.
pub(crate) fn skip(b: &[u8], i: usize) -> usize {
    match b[i] {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            j
        }
    }
}

#[async_trait]
impl Filter for JsonFieldsFilter {
    fn name(&self) -> &'static str {
        "json_fields"
    }

    fn wants_request_body(&self) -> bool {
        !self.request.is_empty()
    }

    fn wants_response_body(&self) -> bool {
        !self.response.is_empty()
    }

    async fn on_request(&self, req: &mut dyn RequestHead, _ctx: &mut RequestContext) -> Flow {
        // A compressed answer could not be checked (it would be refused with a 502): ask the
        // upstream for plain text.
        if !self.response.is_empty() {
            req.set_header(ACCEPT_ENCODING, IDENTITY);
        }
        Flow::Continue
    }

    async fn on_request_body(
        &self,
        req: &mut dyn RequestHead,
        body: &mut Bytes,
        _ctx: &mut RequestContext,
    ) -> Flow {
        if self.request.is_empty() || body.is_empty() || !is_json(req.headers()) {
            return Flow::Continue;
        }
        let invalid = |detail: String| {
            Flow::reject(
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-json",
                    "Request body is not valid JSON",
                )
                .with_detail(detail),
            )
        };
        if is_encoded(req.headers()) {
            return invalid("compressed bodies (Content-Encoding) are not accepted".to_owned());
        }
        match strip(body, &self.request) {
            Ok(Some(stripped)) => *body = stripped,
            Ok(None) => {}
            Err(detail) => return invalid(detail),
        }
        Flow::Continue
    }

    async fn on_response_body(
        &self,
        resp: &mut dyn ResponseHead,
        body: &mut Bytes,
        _ctx: &mut RequestContext,
    ) -> Flow {
        if self.response.is_empty() || body.is_empty() || !is_json(resp.headers()) {
            return Flow::Continue;
        }
        // No detail: the client is owed no view of the upstream's internals.
        let invalid = || {
            Flow::reject(Problem::new(
                StatusCode::BAD_GATEWAY,
                "upstream-invalid-json",
                "Upstream answered with invalid JSON",
            ))
        };
        if is_encoded(resp.headers()) {
            return invalid();
        }
        match strip(body, &self.response) {
            Ok(Some(stripped)) => *body = stripped,
            Ok(None) => {}
            Err(_) => return invalid(),
        }
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FilterConfig;

    const JSON: &str = "application/json";

    fn build(request: &[&str], response: &[&str]) -> Arc<dyn Filter> {
        JsonFieldsConfig {
            remove_from_request: request.iter().map(|p| p.to_string()).collect(),
            remove_from_response: response.iter().map(|p| p.to_string()).collect(),
        }
        .build(&BuildContext::default())
        .unwrap()
    }

    fn ctx() -> RequestContext {
        RequestContext::new("r".into(), "route".into(), None)
    }

    fn headers(content_type: Option<&str>, encoding: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = content_type {
            h.insert(CONTENT_TYPE, t.parse().unwrap());
        }
        if let Some(e) = encoding {
            h.insert(CONTENT_ENCODING, e.parse().unwrap());
        }
        h
    }

    /// Runs the response body phase; returns the body, or the problem it was refused with.
    async fn respond_with(
        f: &Arc<dyn Filter>,
        h: HeaderMap,
        body: &Bytes,
    ) -> Result<Bytes, Problem> {
        let (mut resp, _) = http::Response::new(()).into_parts();
        resp.headers = h;
        let mut body = body.clone();
        match f.on_response_body(&mut resp, &mut body, &mut ctx()).await {
            Flow::Continue => Ok(body),
            Flow::Respond(reply) => Err(reply.problem.expect("a problem")),
        }
    }

    async fn respond(f: &Arc<dyn Filter>, body: &str) -> Result<String, Problem> {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let out = respond_with(f, headers(Some(JSON), None), &body).await?;
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    async fn send_with(f: &Arc<dyn Filter>, h: HeaderMap, body: &Bytes) -> Result<Bytes, Problem> {
        let (mut req, _) = http::Request::builder()
            .method("POST")
            .body(())
            .unwrap()
            .into_parts();
        req.headers = h;
        let mut body = body.clone();
        match f.on_request_body(&mut req, &mut body, &mut ctx()).await {
            Flow::Continue => Ok(body),
            Flow::Respond(reply) => Err(reply.problem.expect("a problem")),
        }
    }

    async fn send(f: &Arc<dyn Filter>, body: &str) -> Result<String, Problem> {
        let body = Bytes::copy_from_slice(body.as_bytes());
        let out = send_with(f, headers(Some(JSON), None), &body).await?;
        Ok(String::from_utf8(out.to_vec()).unwrap())
    }

    /// Checks one removal, and that what is left is still JSON.
    async fn check(f: &Arc<dyn Filter>, body: &str, expected: &str) {
        let out = respond(f, body).await.unwrap();
        assert_eq!(out, expected, "from {body}");
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }

    #[tokio::test]
    async fn removes_top_level_members_with_their_commas() {
        let f = build(&[], &["trace", "debug"]);
        let stack = r#""java.lang.NullPointerException\n\tat com.bank.Core.run(Core.java:42)""#;
        for (body, expected) in [
            (
                format!(r#"{{"id":1,"trace":{stack},"name":"x"}}"#),
                r#"{"id":1,"name":"x"}"#,
            ),
            (format!(r#"{{"trace":{stack},"id":1}}"#), r#"{"id":1}"#),
            (format!(r#"{{"id":1,"trace":{stack}}}"#), r#"{"id":1}"#),
            (format!(r#"{{"trace":{stack}}}"#), "{}"),
            (
                r#"{"trace":1,"debug":{"a":[1]},"id":1}"#.into(),
                r#"{"id":1}"#,
            ),
            (r#"{"id":1,"trace":1,"debug":2}"#.into(), r#"{"id":1}"#),
            (
                r#"{"trace":1,"id":1,"debug":2,"x":3}"#.into(),
                r#"{"id":1,"x":3}"#,
            ),
            (r#"{"trace":1,"debug":2}"#.into(), "{}"),
            // Every duplicate goes, and escaped names are matched decoded.
            (r#"{"trace":1,"id":1,"trace":2}"#.into(), r#"{"id":1}"#),
            (
                r#"{"\u0074race":1,"id":1,"tr\u0061ce":2}"#.into(),
                r#"{"id":1}"#,
            ),
            // Case-sensitive, exact names.
            (
                r#"{"Trace":1,"traces":2}"#.into(),
                r#"{"Trace":1,"traces":2}"#,
            ),
            (
                "{\n  \"id\": 1,\n  \"trace\" : \"x\" ,\n  \"name\": \"y\"\n}".into(),
                "{\n  \"id\": 1 ,\n  \"name\": \"y\"\n}",
            ),
            (
                "{ \"trace\" : \"x\" ,\n  \"id\": 1 }".into(),
                "{ \"id\": 1 }",
            ),
        ] {
            check(&f, &body, expected).await;
        }
    }

    #[tokio::test]
    async fn removes_nested_members_only_where_the_path_says() {
        let f = build(&[], &["meta.internal_id", "internal.debug", "a.b.c"]);
        check(
            &f,
            r#"{"meta":{"internal_id":"X9","page":1},"internal":{"debug":true},"debug":1,"internal_id":2}"#,
            r#"{"meta":{"page":1},"internal":{},"debug":1,"internal_id":2}"#,
        )
        .await;
        check(
            &f,
            r#"{"a":{"b":{"c":1,"d":2},"c":3},"b":{"c":4}}"#,
            r#"{"a":{"b":{"d":2},"c":3},"b":{"c":4}}"#,
        )
        .await;
        // A member that is not an object where the path goes on is left alone.
        check(
            &f,
            r#"{"meta":"internal_id","a":{"b":7}}"#,
            r#"{"meta":"internal_id","a":{"b":7}}"#,
        )
        .await;
        // A shorter path wins over a longer one.
        let f = build(&[], &["meta.internal_id", "meta"]);
        check(
            &f,
            r#"{"id":1,"meta":{"internal_id":1,"x":2}}"#,
            r#"{"id":1}"#,
        )
        .await;
    }

    #[tokio::test]
    async fn paths_cross_arrays() {
        let f = build(&[], &["accounts.internal_ref", "trace"]);
        check(
            &f,
            r#"{"accounts":[{"iban":"DE1","internal_ref":"c-1"},{"internal_ref":"c-2","iban":"DE2"},3,"s",null,[{"internal_ref":0,"k":1}],{}]}"#,
            r#"{"accounts":[{"iban":"DE1"},{"iban":"DE2"},3,"s",null,[{"k":1}],{}]}"#,
        )
        .await;
        // Top-level arrays, and arrays of arrays.
        check(
            &f,
            r#"[{"id":1,"trace":"x"},[{"trace":"y","id":2}],{"accounts":[{"internal_ref":1}]}]"#,
            r#"[{"id":1},[{"id":2}],{"accounts":[{}]}]"#,
        )
        .await;
        // Deep nesting is walked without recursion.
        let deep = format!(
            "{}{{\"trace\":1}}{}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let out = respond(&f, &deep).await.unwrap();
        assert_eq!(
            out,
            format!("{}{{}}{}", "[".repeat(100_000), "]".repeat(100_000))
        );
    }

    #[tokio::test]
    async fn nothing_removed_leaves_the_bytes_untouched() {
        let f = build(&["secret"], &["trace", "accounts.internal_ref"]);
        let body = Bytes::from_static(
            br#"{ "z":1,  "amount":12345678901234567890123.4500, "rate":1.10E+2,
                 "accounts":[{"internal":"x"}], "s":"\u00e9\/", "a":{"trace":1}}"#,
        );
        let out = respond_with(&f, headers(Some(JSON), None), &body)
            .await
            .unwrap();
        assert_eq!(out, body);
        assert_eq!(out.as_ptr(), body.as_ptr(), "the same buffer, not a copy");
        let out = send_with(&f, headers(Some(JSON), None), &body)
            .await
            .unwrap();
        assert_eq!(out.as_ptr(), body.as_ptr());

        // When something goes, the rest keeps its text: order, digits, escapes.
        let out = respond(
            &f,
            r#"{"z":1,"trace":"x","amount":12345678901234567890123.4500,"s":"\u00e9"}"#,
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            r#"{"z":1,"amount":12345678901234567890123.4500,"s":"\u00e9"}"#
        );
    }

    #[tokio::test]
    async fn request_members_are_removed_before_going_upstream() {
        let f = build(&["internal", "payment.core_flags"], &[]);
        let out = send(
            &f,
            r#"{"payment":{"amount":"10.00","core_flags":{"skip_aml":true}},"internal":{"approved":true}}"#,
        )
        .await
        .unwrap();
        assert_eq!(out, r#"{"payment":{"amount":"10.00"}}"#);
        // Response paths do not apply to requests, nor the other way round.
        assert_eq!(send(&f, r#"{"trace":1}"#).await.unwrap(), r#"{"trace":1}"#);
        assert_eq!(
            respond(&f, r#"{"internal":1}"#).await.unwrap(),
            r#"{"internal":1}"#
        );
    }

    #[tokio::test]
    async fn only_json_bodies_are_touched() {
        let f = build(&["trace"], &["trace"]);
        let json = Bytes::from_static(br#"{"trace":1,"id":2}"#);
        let not_json = Bytes::from_static(b"trace=1 {not json");
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/xml"),
            Some("text/json"),
        ] {
            for body in [&json, &not_json] {
                let h = headers(content_type, None);
                assert_eq!(respond_with(&f, h.clone(), body).await.unwrap(), body);
                assert_eq!(send_with(&f, h, body).await.unwrap(), body);
            }
        }
        let empty = Bytes::new();
        assert!(respond_with(&f, headers(Some(JSON), None), &empty)
            .await
            .unwrap()
            .is_empty());
        assert!(send_with(&f, headers(Some(JSON), None), &empty)
            .await
            .unwrap()
            .is_empty());

        for content_type in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/problem+json",
            "application/vnd.bank.v2+json ; q=1",
        ] {
            let h = headers(Some(content_type), None);
            let out = respond_with(&f, h.clone(), &json).await.unwrap();
            assert_eq!(out, r#"{"id":2}"#, "{content_type}");
            assert_eq!(send_with(&f, h, &json).await.unwrap(), r#"{"id":2}"#);
        }
        // A second Content-Type cannot hide a JSON body.
        let mut h = headers(Some("text/plain"), None);
        h.append(CONTENT_TYPE, JSON.parse().unwrap());
        assert_eq!(send_with(&f, h, &json).await.unwrap(), r#"{"id":2}"#);
    }

    #[tokio::test]
    async fn invalid_request_json_is_400_without_the_body() {
        let f = build(&["trace"], &[]);
        for (body, detail) in [
            r#"{"trace": "s3cret-token""#.as_bytes(),
            br#"{"trace": s3cret}"#,
            br#"{"a":1} s3cret"#,
            br#"{"\ud800s3cret":1}"#,
            b"  ",
            b"{\"s3cret\":\"\xff\"}",
        ]
        .into_iter()
        .zip([
            "the body ends early",
            "syntax error",
            "syntax error",
            "invalid escape",
            "the body ends early",
            "not UTF-8",
        ]) {
            let p = send_with(&f, headers(Some(JSON), None), &Bytes::copy_from_slice(body))
                .await
                .unwrap_err();
            assert_eq!(p.status, StatusCode::BAD_REQUEST);
            assert_eq!(p.kind, "invalid-json");
            assert_eq!(p.title, "Request body is not valid JSON");
            let d = p.detail.unwrap();
            assert!(d.contains(detail), "{d}");
            assert!(!d.contains("s3cret"), "{d}");
        }
        // A compressed body cannot be checked.
        let p = send_with(
            &f,
            headers(Some(JSON), Some("gzip")),
            &Bytes::from_static(b"{}"),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (p.status, p.kind),
            (StatusCode::BAD_REQUEST, "invalid-json")
        );
        let h = headers(Some(JSON), Some("identity"));
        assert!(send_with(&f, h, &Bytes::from_static(b"{}")).await.is_ok());
    }

    #[tokio::test]
    async fn invalid_response_json_is_502() {
        let f = build(&[], &["trace"]);
        for (body, encoding) in [
            (&b"<html>Internal Server Error</html>"[..], None),
            (br#"{"trace":"at com.bank"#, None),
            (b"{}", Some("gzip")),
        ] {
            let p = respond_with(
                &f,
                headers(Some(JSON), encoding),
                &Bytes::copy_from_slice(body),
            )
            .await
            .unwrap_err();
            assert_eq!(p.status, StatusCode::BAD_GATEWAY);
            assert_eq!(p.kind, "upstream-invalid-json");
            assert_eq!(p.title, "Upstream answered with invalid JSON");
            assert_eq!(p.detail, None);
        }
    }

    #[tokio::test]
    async fn response_paths_ask_the_upstream_for_uncompressed_answers() {
        let (mut req, _) = http::Request::builder()
            .header("accept-encoding", "gzip, br")
            .body(())
            .unwrap()
            .into_parts();
        let f = build(&["trace"], &[]);
        assert!(matches!(
            f.on_request(&mut req, &mut ctx()).await,
            Flow::Continue
        ));
        assert_eq!(req.headers["accept-encoding"], "gzip, br");
        let f = build(&[], &["trace"]);
        assert!(matches!(
            f.on_request(&mut req, &mut ctx()).await,
            Flow::Continue
        ));
        assert_eq!(req.headers.get_all("accept-encoding").iter().count(), 1);
        assert_eq!(req.headers["accept-encoding"], "identity");
    }

    #[test]
    fn wants_only_the_bodies_it_filters() {
        let f = build(&["a"], &[]);
        assert_eq!(f.name(), "json_fields");
        assert!(f.wants_request_body() && !f.wants_response_body());
        let f = build(&[], &["a"]);
        assert!(!f.wants_request_body() && f.wants_response_body());
        let f = build(&["a"], &["b.c"]);
        assert!(f.wants_request_body() && f.wants_response_body());
        assert_eq!(f.request_body_limit(), None);
    }

    #[test]
    fn config_parses_and_bad_paths_are_build_errors() {
        let ok: FilterConfig = toml::from_str(
            "type = \"json_fields\"\nremove_from_response = [\"trace\", \"accounts.internal_ref\"]",
        )
        .unwrap();
        assert_eq!(ok.type_name(), "json_fields");
        assert!(ok.build(&BuildContext::default()).is_ok());
        let err =
            toml::from_str::<FilterConfig>("type = \"json_fields\"\nremove = [\"a\"]").unwrap_err();
        assert!(err.to_string().contains("remove"), "{err}");

        let both_empty: FilterConfig = toml::from_str("type = \"json_fields\"").unwrap();
        let err = both_empty.build(&BuildContext::default()).err().unwrap();
        assert!(err.0.contains("both empty"), "{err}");

        for (request, response, expected) in [
            (&[][..], &[""][..], "remove_from_response: empty path"),
            (&["a", ""][..], &[][..], "remove_from_request: empty path"),
            (&[][..], &["a..b"][..], "path \"a..b\" has an empty segment"),
            (&[".a"][..], &["x"][..], "path \".a\" has an empty segment"),
            (&["a."][..], &[][..], "path \"a.\" has an empty segment"),
        ] {
            let err = JsonFieldsConfig {
                remove_from_request: request.iter().map(|p| p.to_string()).collect(),
                remove_from_response: response.iter().map(|p| p.to_string()).collect(),
            }
            .build(&BuildContext::default())
            .err()
            .unwrap_or_else(|| panic!("accepted: {request:?} {response:?}"));
            assert!(err.0.starts_with("json_fields: "), "{err}");
            assert!(err.0.contains(expected), "{err} lacks {expected:?}");
        }
    }
}
