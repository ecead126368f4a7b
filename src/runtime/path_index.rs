//! Which routes can match a path, by its first segment, so a request tries a handful of
//! routes instead of scanning them all.
//!
//! A route whose path pattern fixes the first segment ("/v1/..." → "v1") is filed under it;
//! every other route (any path, "/", a regex that starts with a wildcard) can match anything
//! and is tried for every path. Candidates come out in route order, so the first match is
//! the same as a linear scan's.

use std::collections::HashMap;

use super::PathMatch;

#[derive(Debug, Default)]
pub struct PathIndex {
    by_first_segment: HashMap<Box<str>, Vec<usize>>,
    anywhere: Vec<usize>,
}

impl PathIndex {
    /// `paths` in the order routes are tried.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a PathMatch>) -> Self {
        let mut index = PathIndex::default();
        for (position, path) in paths.into_iter().enumerate() {
            match fixed_first_segment(path) {
                Some(segment) => index
                    .by_first_segment
                    .entry(segment.into())
                    .or_default()
                    .push(position),
                None => index.anywhere.push(position),
            }
        }
        index
    }

    /// Positions of the routes that may match `path`, in route order.
    pub fn candidates<'s>(&'s self, path: &str) -> impl Iterator<Item = usize> + 's {
        let segment = first_segment(path);
        let filed = self
            .by_first_segment
            .get(segment)
            .map_or(&[][..], Vec::as_slice);
        merge(filed, &self.anywhere)
    }
}

/// Two ascending lists merged into one ascending sequence.
fn merge<'s>(mut a: &'s [usize], mut b: &'s [usize]) -> impl Iterator<Item = usize> + 's {
    std::iter::from_fn(move || match (a.first(), b.first()) {
        (Some(&x), Some(&y)) if x < y => {
            a = &a[1..];
            Some(x)
        }
        (_, Some(&y)) => {
            b = &b[1..];
            Some(y)
        }
        (Some(&x), None) => {
            a = &a[1..];
            Some(x)
        }
        (None, None) => None,
    })
}

/// "" for "/", "v1" for "/v1" and "/v1/accounts".
fn first_segment(path: &str) -> &str {
    let rest = path.strip_prefix('/').unwrap_or(path);
    rest.split('/').next().unwrap_or("")
}

/// The first segment every path this pattern matches must have, when the pattern fixes it.
fn fixed_first_segment(path: &PathMatch) -> Option<&str> {
    match path {
        PathMatch::Any => None,
        PathMatch::Exact(exact) => Some(first_segment(exact)),
        // Segment-aware prefixes: "/v1" matches "/v1" and "/v1/...", never "/v1x".
        PathMatch::Prefix(prefix) if prefix.is_empty() => None,
        PathMatch::Prefix(prefix) => Some(first_segment(prefix)),
        PathMatch::Regex(re) => {
            let pattern = re.as_str().strip_prefix("^(?:")?.strip_suffix(")$")?;
            let literal = literal_prefix(pattern)?;
            // The segment is fixed only if the literal reaches the slash that ends it.
            let after_slash = literal.strip_prefix('/')?;
            let end = after_slash.find('/')?;
            Some(&after_slash[..end])
        }
    }
}

/// The leading characters every match of `pattern` starts with; None when the pattern has a
/// top-level alternative anywhere (conservatively, any `|`).
fn literal_prefix(pattern: &str) -> Option<&str> {
    if pattern.contains('|') {
        return None;
    }
    let pattern = pattern.strip_prefix('^').unwrap_or(pattern);
    let end = pattern
        .find(|c: char| "\\.+*?()[]{}^$".contains(c))
        .unwrap_or(pattern.len());
    // A quantifier applies to the character before it, which is then not certain.
    let quantified = pattern[end..].starts_with(['?', '*', '{']);
    let end = if quantified {
        pattern[..end].char_indices().last().map_or(0, |(i, _)| i)
    } else {
        end
    };
    Some(&pattern[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn regex(pattern: &str) -> PathMatch {
        PathMatch::Regex(Regex::new(&format!("^(?:{pattern})$")).unwrap())
    }

    #[test]
    fn files_routes_under_the_segment_their_pattern_fixes() {
        assert_eq!(
            fixed_first_segment(&PathMatch::Prefix("/v1/accounts".into())),
            Some("v1")
        );
        assert_eq!(fixed_first_segment(&PathMatch::Prefix(String::new())), None);
        assert_eq!(fixed_first_segment(&PathMatch::Exact("/".into())), Some(""));
        assert_eq!(fixed_first_segment(&regex("/v1/r7/[0-9]+")), Some("v1"));
        assert_eq!(fixed_first_segment(&regex("/v1")), None);
        assert_eq!(fixed_first_segment(&regex("/v1/?x")), None);
        assert_eq!(fixed_first_segment(&regex("/a/x|/b/y")), None);
        assert_eq!(fixed_first_segment(&regex("(?i)/v1/x")), None);
        assert_eq!(fixed_first_segment(&regex("/v[0-9]/x")), None);
    }

    /// The index must give exactly the first match a linear scan gives.
    #[test]
    fn first_match_equals_a_linear_scan() {
        let routes = vec![
            regex("/v1/accounts/[0-9]+"),
            PathMatch::Prefix("/v1/accounts".into()),
            regex("/v[12]/payments"),
            PathMatch::Exact("/health".into()),
            regex("/v1/?x"),
            PathMatch::Prefix("/v2".into()),
            regex("/a/x|/b/y"),
            PathMatch::Exact("/".into()),
            PathMatch::Prefix(String::new()),
            PathMatch::Any,
        ];
        let index = PathIndex::new(&routes);
        let paths = [
            "/",
            "/v1",
            "/v1/",
            "/v1x",
            "/v1/accounts",
            "/v1/accounts/42",
            "/v1/accountsx",
            "/v2/payments",
            "/v1/payments",
            "/health",
            "/healthz",
            "/b/y",
            "/a/x",
            "/v2",
            "/v2/anything",
            "/zzz",
            "",
        ];
        for skip in 0..routes.len() {
            // Drop one route at a time so later routes get their turn to be first.
            let subset: Vec<&PathMatch> = routes.iter().skip(skip).collect();
            let index_subset = PathIndex::new(subset.iter().copied());
            for path in paths {
                let linear = subset.iter().position(|p| p.matches(path));
                let indexed = index_subset
                    .candidates(path)
                    .find(|&i| subset[i].matches(path));
                assert_eq!(indexed, linear, "path {path:?}, routes from {skip}");
            }
        }
        assert!(index.candidates("/v1/accounts/1").count() < routes.len());
    }
}
