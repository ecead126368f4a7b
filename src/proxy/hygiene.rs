//! Edge hygiene: header limits, the client's real address, X-Forwarded-*, hop-by-hop and
//! internal headers.

use std::net::IpAddr;

use http::header::{self, HeaderName};
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};

use crate::runtime::Settings;

/// Headers that belong to one connection, never forwarded (RFC 9110 §7.6.1), plus the
/// proxy credentials meant for us. Transfer-Encoding is left to pingora, which frames bodies.
/// Names are parsed once, here: looking a `&str` up in a header map parses it every time.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Upstream response headers that reveal the core's software.
static REVEALING: [HeaderName; 3] = [
    header::SERVER,
    HeaderName::from_static("x-powered-by"),
    HeaderName::from_static("x-aspnet-version"),
];

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// X-Forwarded-* kinds believed only from trusted proxies.
static FORWARDED: [HeaderName; 3] = [X_FORWARDED_PROTO, X_FORWARDED_HOST, header::FORWARDED];

/// The headers of `set` present in `headers`, found in one pass over the (few) headers a
/// message has; allocates nothing when there are none, the common case.
fn present(headers: &HeaderMap, set: &[HeaderName]) -> Vec<HeaderName> {
    headers
        .keys()
        .filter(|name| set.contains(name))
        .cloned()
        .collect()
}

/// Are the request headers within the configured count and size?
pub fn headers_within_limits(headers: &HeaderMap, settings: &Settings) -> bool {
    if headers.len() > settings.max_header_count {
        return false;
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    bytes <= settings.max_header_bytes
}

/// The client's address: the peer's, or when the peer is a trusted proxy, the rightmost
/// address in X-Forwarded-For that is not itself a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, settings: &Settings) -> Option<IpAddr> {
    let peer = peer?;
    if !settings.is_trusted_proxy(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else { break };
        for hop in text.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !settings.is_trusted_proxy(ip) {
                        return Some(client);
                    }
                }
                Err(_) => return Some(client),
            }
        }
    }
    Some(client)
}

/// Removes client-sent copies of headers only Corridor may set (consumer identity...).
pub fn strip_internal_headers(req: &mut RequestHeader, settings: &Settings) {
    if settings.internal_header_prefixes.is_empty() {
        return;
    }
    let internal: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            settings
                .internal_header_prefixes
                .iter()
                .any(|prefix| name.as_str().starts_with(prefix.as_str()))
        })
        .cloned()
        .collect();
    for name in internal {
        req.remove_header(&name);
    }
}

/// Prepares the request that goes upstream: drops hop-by-hop headers and states who the
/// client is. Incoming X-Forwarded-* are kept only from trusted proxies.
pub fn forwarded_request(
    req: &mut RequestHeader,
    peer: Option<IpAddr>,
    client_host: Option<&str>,
    tls: bool,
    settings: &Settings,
) {
    for name in hop_by_hop(&req.headers) {
        req.remove_header(&name);
    }
    let trusted = peer.is_some_and(|ip| settings.is_trusted_proxy(ip));
    // Every X-Forwarded-For line counts: a list may arrive split over several.
    let prior_for = trusted
        .then(|| {
            let hops: Vec<&str> = req
                .headers
                .get_all(X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!hops.is_empty()).then(|| hops.join(", "))
        })
        .flatten();
    if !trusted {
        for name in present(&req.headers, &FORWARDED) {
            req.remove_header(&name);
        }
    }
    // Names given as title-case static strings: pingora keeps a case-preserving copy of each
    // name, and would otherwise allocate one from the `HeaderName`.
    if let Some(ip) = peer {
        let value = match prior_for {
            Some(prior) => format!("{prior}, {ip}"),
            None => ip_text(ip),
        };
        let _ = req.insert_header("X-Forwarded-For", value);
    }
    if !trusted || !req.headers.contains_key(X_FORWARDED_PROTO) {
        let _ = req.insert_header("X-Forwarded-Proto", if tls { "https" } else { "http" });
    }
    if !trusted || !req.headers.contains_key(X_FORWARDED_HOST) {
        if let Some(host) = client_host {
            let _ = req.insert_header("X-Forwarded-Host", host);
        }
    }
}

/// An address as text. IPv4, by far the common case, is written by hand: the `Display`
/// formatting machinery costs over 1% of a passthrough request.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

/// Cleans an upstream's response before a partner sees it.
pub fn clean_response(resp: &mut ResponseHeader) {
    for name in hop_by_hop(&resp.headers) {
        resp.remove_header(&name);
    }
    for name in present(&resp.headers, &REVEALING) {
        resp.remove_header(&name);
    }
}

/// The hop-by-hop headers present, including those the Connection header names. Allocates
/// nothing when there are none, which is the common case.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut found = present(headers, &HOP_BY_HOP);
    if found.is_empty() {
        return found;
    }
    let named = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        // The usual tokens: `close` names no header and Keep-Alive is in HOP_BY_HOP, so
        // neither needs a name parsed (an allocation) for nothing.
        .filter(|token| {
            !token.eq_ignore_ascii_case("keep-alive") && !token.eq_ignore_ascii_case("close")
        })
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        // A client must not be able to strip what frames or routes the request.
        .filter(|name| {
            !matches!(
                name.as_str(),
                "host" | "content-length" | "transfer-encoding"
            )
        })
        .collect::<Vec<_>>();
    found.extend(named);
    found
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    #[test]
    fn ip_text_writes_addresses_as_display_does() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.9",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(super::ip_text(ip), ip.to_string());
        }
    }
}
