//! Routes: what they may refer to, and their matchers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use corridor_filters::Chain;
use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

use super::BuildEnv;
use crate::config::{ConfigError, Located, MatchConfig, RouteConfig};
use crate::runtime::{BuiltChain, HeaderMatch, HostMatch, Matcher, PathMatch, Rewrite, Route};
use crate::upstream::Upstream;

/// What routes may refer to.
pub(super) struct Targets<'a> {
    pub(super) upstreams: &'a BTreeMap<String, Arc<Upstream>>,
    pub(super) chains: &'a BTreeMap<String, BuiltChain>,
    pub(super) empty_chain: Arc<Chain>,
    /// Upstreams declared, built or not (one with errors was reported already).
    pub(super) defined_upstreams: HashSet<&'a str>,
}

pub(super) fn build_route(
    at: &Located<RouteConfig>,
    targets: &Targets<'_>,
    kept: Option<&Arc<Route>>,
    env: &BuildEnv,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<Route>> {
    let route = &at.value;
    let id = route.id.get_ref();
    let before = errors.len();
    let upstream = targets.upstreams.get(route.upstream.get_ref()).cloned();
    if upstream.is_none()
        && !targets
            .defined_upstreams
            .contains(route.upstream.get_ref().as_str())
    {
        errors.push(at.error_at(
            route.upstream.span(),
            format!(
                "route \"{id}\": unknown upstream \"{}\"",
                route.upstream.get_ref()
            ),
        ));
    }
    let chain = match &route.chain {
        None => Some(targets.empty_chain.clone()),
        Some(name) => {
            let found = targets.chains.get(name.get_ref()).map(|c| c.chain.clone());
            if found.is_none() {
                errors.push(at.error_at(
                    name.span(),
                    format!("route \"{id}\": unknown chain \"{}\"", name.get_ref()),
                ));
            }
            found
        }
    };
    // The same definition over the same upstream and chain: keep the compiled route (its
    // regexes and metric handles) instead of building it again.
    if let (Some(kept), Some(upstream), Some(chain)) = (kept, &upstream, &chain) {
        let same_chain =
            Arc::ptr_eq(&kept.chain, chain) || (kept.chain.is_empty() && chain.is_empty());
        if kept.definition == *route && Arc::ptr_eq(&kept.upstream, upstream) && same_chain {
            return Some(kept.clone());
        }
    }
    let matcher = build_matcher(id, &route.matcher, at, errors);
    let regex = match (&route.rewrite.regex_replace, &matcher) {
        (None, _) => None,
        (
            Some(replacement),
            Some(Matcher {
                path: PathMatch::Regex(re),
                ..
            }),
        ) => Some((re.clone(), replacement.get_ref().clone())),
        (Some(replacement), _) => {
            errors.push(at.error_at(
                replacement.span(),
                format!("route \"{id}\": rewrite.regex_replace needs match.path_regex"),
            ));
            None
        }
    };
    for prefix in [&route.rewrite.strip_prefix, &route.rewrite.add_prefix]
        .into_iter()
        .flatten()
    {
        if !prefix.starts_with('/') {
            errors.push(at.error(format!(
                "route \"{id}\": rewrite prefix \"{prefix}\" must start with '/'"
            )));
        }
    }
    let operation = upstream
        .as_ref()
        .and_then(|u| check_operation(id, route, u, at, errors));
    if errors.len() > before {
        return None;
    }
    Some(Arc::new(Route {
        id: Arc::from(id.as_str()),
        priority: route.priority,
        matcher: matcher?,
        upstream: upstream?,
        chain: chain?,
        rewrite: Rewrite {
            strip_prefix: route.rewrite.strip_prefix.clone(),
            add_prefix: route.rewrite.add_prefix.clone(),
            regex,
        },
        metrics: env.metrics.route(id),
        definition: route.clone(),
        operation,
    }))
}

/// A route to a card host names one operation of its spec, and no path rewrite; a route to
/// an HTTP upstream names none.
fn check_operation(
    id: &str,
    route: &RouteConfig,
    upstream: &Upstream,
    at: &Located<RouteConfig>,
    errors: &mut Vec<ConfigError>,
) -> Option<Arc<str>> {
    let name = upstream.name.as_ref();
    match (&upstream.card_host, &route.operation) {
        (None, None) => None,
        (None, Some(operation)) => {
            errors.push(at.error_at(
                operation.span(),
                format!("route \"{id}\": operation is for iso8583 upstreams, and \"{name}\" speaks HTTP"),
            ));
            None
        }
        (Some(_), None) => {
            errors.push(at.error(format!(
                "route \"{id}\": upstream \"{name}\" is a card host: name the operation of its spec this route performs"
            )));
            None
        }
        (Some(host), Some(operation)) => {
            if route.rewrite != Default::default() {
                errors.push(at.error(format!(
                    "route \"{id}\": rewrite does not apply to a route to a card host"
                )));
            }
            if host.spec().operation(operation.get_ref()).is_none() {
                let known: Vec<&str> = host.spec().operation_names().collect();
                errors.push(at.error_at(
                    operation.span(),
                    format!(
                        "route \"{id}\": upstream \"{name}\" has no operation \"{}\" (it has: {})",
                        operation.get_ref(),
                        known.join(", ")
                    ),
                ));
                return None;
            }
            Some(Arc::from(operation.get_ref().as_str()))
        }
    }
}

fn build_matcher(
    id: &str,
    m: &MatchConfig,
    at: &Located<RouteConfig>,
    errors: &mut Vec<ConfigError>,
) -> Option<Matcher> {
    let before = errors.len();
    let host = match &m.host {
        None => HostMatch::Any,
        Some(host) => match host.get_ref().strip_prefix('*') {
            Some(suffix) if suffix.starts_with('.') && suffix.len() > 1 => {
                HostMatch::Suffix(suffix.to_ascii_lowercase())
            }
            Some(_) => {
                errors.push(at.error_at(
                    host.span(),
                    format!("route \"{id}\": host wildcard must look like \"*.example.com\""),
                ));
                HostMatch::Any
            }
            None => HostMatch::Exact(host.get_ref().to_ascii_lowercase()),
        },
    };
    let given = [
        m.path.is_some(),
        m.path_prefix.is_some(),
        m.path_regex.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given > 1 {
        // Point at the last of them: the one that conflicts with what came before.
        let last = [&m.path, &m.path_prefix, &m.path_regex]
            .into_iter()
            .flatten()
            .map(|p| p.span())
            .max_by_key(|span| span.start)
            .unwrap_or(at.span.clone());
        errors.push(at.error_at(
            last,
            format!(
                "route \"{id}\": give only one of match.path, match.path_prefix, match.path_regex"
            ),
        ));
    }
    for p in [&m.path, &m.path_prefix].into_iter().flatten() {
        if !p.get_ref().starts_with('/') {
            errors.push(at.error_at(
                p.span(),
                format!(
                    "route \"{id}\": path \"{}\" must start with '/'",
                    p.get_ref()
                ),
            ));
        }
    }
    let path = if let Some(p) = &m.path {
        PathMatch::Exact(p.get_ref().clone())
    } else if let Some(p) = &m.path_prefix {
        PathMatch::Prefix(p.get_ref().trim_end_matches('/').to_string())
    } else if let Some(p) = &m.path_regex {
        // Anchored so "^/a" cannot accidentally match "/x/a".
        match Regex::new(&format!(
            "^(?:{})$",
            p.get_ref().trim_start_matches('^').trim_end_matches('$')
        )) {
            Ok(re) => PathMatch::Regex(re),
            Err(e) => {
                errors.push(at.error_at(p.span(), format!("route \"{id}\": path_regex: {e}")));
                PathMatch::Any
            }
        }
    } else {
        PathMatch::Any
    };
    let mut methods = Vec::new();
    for method in &m.methods {
        let text = method.get_ref().to_ascii_uppercase();
        match Method::from_bytes(text.as_bytes()) {
            Ok(parsed) if text.bytes().all(|b| b.is_ascii_uppercase()) => methods.push(parsed),
            _ => errors.push(at.error_at(
                method.span(),
                format!(
                    "route \"{id}\": \"{}\" is not an HTTP method",
                    method.get_ref()
                ),
            )),
        }
    }
    let mut headers = Vec::new();
    for (name, value) in &m.headers {
        let parsed_name = HeaderName::from_bytes(name.as_bytes());
        let parsed_value = if value == "*" {
            Ok(None)
        } else {
            HeaderValue::from_str(value).map(Some)
        };
        match (parsed_name, parsed_value) {
            (Ok(name), Ok(value)) => headers.push(HeaderMatch { name, value }),
            _ => errors.push(at.error(format!(
                "route \"{id}\": match.headers: \"{name}\" = \"{value}\" is not a valid header"
            ))),
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(Matcher {
        host,
        path,
        methods,
        headers,
    })
}
