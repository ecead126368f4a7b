//! Route matching: first match in priority order wins.
//!
//! Routes are sorted once at build time by priority (higher first), ties kept in config order
//! (files in name order, then position in the file). A path index picks, in that order, the
//! routes whose pattern allows the request's first path segment; each is checked with cheap
//! conditions first (method, host, headers) and its path (maybe a regex) last.

use std::sync::Arc;

use http::{header, HeaderMap, HeaderName, HeaderValue, Method};
use regex::Regex;

use super::path_index::PathIndex;
use super::Route;

/// How a route matches the path.
#[derive(Debug)]
pub enum PathMatch {
    Any,
    Exact(String),
    /// Segment-aware prefix; stored without a trailing slash ("" for "/").
    Prefix(String),
    Regex(Regex),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Any => true,
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => match path.strip_prefix(prefix.as_str()) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
            PathMatch::Regex(re) => re.is_match(path),
        }
    }
}

/// How a route matches the host (port removed, compared case-insensitively).
#[derive(Debug)]
pub enum HostMatch {
    Any,
    Exact(String),
    /// "*.example.com" stored as ".example.com": one or more labels in front.
    Suffix(String),
}

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(exact) => host.eq_ignore_ascii_case(exact),
            HostMatch::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host.as_bytes()[host.len() - suffix.len()..]
                        .eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// A required header: exact value, or just present.
#[derive(Debug)]
pub struct HeaderMatch {
    pub name: HeaderName,
    pub value: Option<HeaderValue>,
}

/// Everything a route requires of a request.
#[derive(Debug)]
pub struct Matcher {
    pub host: HostMatch,
    pub path: PathMatch,
    pub methods: Vec<Method>,
    pub headers: Vec<HeaderMatch>,
}

impl Matcher {
    fn matches(&self, method: &Method, host: &str, path: &str, headers: &HeaderMap) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self.host.matches(host)
            && self.headers.iter().all(|h| match headers.get(&h.name) {
                Some(value) => h.value.as_ref().is_none_or(|want| want == value),
                None => false,
            })
            && self.path.matches(path)
    }
}

/// The routes of a runtime, in the order they are tried.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Arc<Route>>,
    /// Narrows each request to the routes its first path segment allows.
    index: PathIndex,
}

impl Router {
    /// `routes` must be in config order; they are sorted by priority, stably.
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.priority));
        let index = PathIndex::new(routes.iter().map(|r| &r.matcher.path));
        Router { routes, index }
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The first route that matches, if any. `host` may carry a port, which is ignored.
    /// A CORS preflight matches as the method it asks about, so a GET-only route still gets
    /// its preflights (and its chain's `cors` filter answers them).
    pub fn find(
        &self,
        method: &Method,
        host: &str,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<&Arc<Route>> {
        let host = strip_port(host);
        let preflight_method = (method == Method::OPTIONS && headers.contains_key(header::ORIGIN))
            .then(|| headers.get(header::ACCESS_CONTROL_REQUEST_METHOD))
            .flatten()
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok());
        let method = preflight_method.as_ref().unwrap_or(method);
        self.index
            .candidates(path)
            .map(|i| &self.routes[i])
            .find(|r| r.matcher.matches(method, host, path, headers))
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // IPv6 literal: "[::1]:8080"
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        let p = PathMatch::Prefix("/v1/accounts".into());
        assert!(p.matches("/v1/accounts"));
        assert!(p.matches("/v1/accounts/7"));
        assert!(!p.matches("/v1/accountsx"));
        assert!(!p.matches("/v1"));
        let root = PathMatch::Prefix(String::new());
        assert!(root.matches("/"));
        assert!(root.matches("/anything"));
    }

    #[test]
    fn wildcard_host_needs_a_label_in_front() {
        let h = HostMatch::Suffix(".bank.example".into());
        assert!(h.matches("api.bank.example"));
        assert!(h.matches("API.Bank.Example"));
        assert!(!h.matches("bank.example"));
        assert!(!h.matches("evilbank.example"));
    }

    #[test]
    fn ports_are_ignored_in_host() {
        assert_eq!(strip_port("api.example:8080"), "api.example");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("api.example"), "api.example");
    }
}
