//! Path rewriting between the client's path and the upstream's.

use std::borrow::Cow;

use regex::Regex;

/// How a route changes the path before the request goes upstream. The query string is kept.
#[derive(Debug, Default)]
pub struct Rewrite {
    pub strip_prefix: Option<String>,
    pub add_prefix: Option<String>,
    /// The route's path regex and the replacement template.
    pub regex: Option<(Regex, String)>,
}

impl Rewrite {
    pub fn is_identity(&self) -> bool {
        self.strip_prefix.is_none() && self.add_prefix.is_none() && self.regex.is_none()
    }

    /// The upstream path for a client path (without query).
    pub fn apply<'a>(&self, path: &'a str) -> Cow<'a, str> {
        let mut path: Cow<'a, str> = Cow::Borrowed(path);
        if let Some((re, replacement)) = &self.regex {
            path = Cow::Owned(re.replace(&path, replacement.as_str()).into_owned());
        }
        if let Some(prefix) = &self.strip_prefix {
            if let Some(rest) = path.strip_prefix(prefix.as_str()) {
                if rest.is_empty() || rest.starts_with('/') {
                    path = Cow::Owned(if rest.is_empty() {
                        "/".to_string()
                    } else {
                        rest.to_string()
                    });
                }
            }
        }
        if let Some(prefix) = &self.add_prefix {
            let joined = if path == "/" {
                prefix.clone()
            } else {
                format!("{}{}", prefix.trim_end_matches('/'), path)
            };
            path = Cow::Owned(joined);
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_then_add_prefix() {
        let r = Rewrite {
            strip_prefix: Some("/api".into()),
            add_prefix: Some("/core/v2".into()),
            regex: None,
        };
        assert_eq!(r.apply("/api/accounts/1"), "/core/v2/accounts/1");
        assert_eq!(r.apply("/api"), "/core/v2");
        assert_eq!(r.apply("/apix/1"), "/core/v2/apix/1");
    }

    #[test]
    fn regex_replacement_uses_captures() {
        let r = Rewrite {
            regex: Some((
                Regex::new("^/v1/accounts/(?P<id>[0-9]+)/balance$").unwrap(),
                "/legacy/balance/${id}".into(),
            )),
            ..Rewrite::default()
        };
        assert_eq!(r.apply("/v1/accounts/42/balance"), "/legacy/balance/42");
    }
}
