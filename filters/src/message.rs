//! How filters see HTTP messages, without depending on the proxy's own types.
//!
//! The gateway implements these traits over pingora's headers (which must be edited through
//! their methods to keep header case intact); this crate implements them over `http`'s
//! `Parts`, which the unit tests use.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

/// Header access common to requests and responses. `Sync` so that a filter's async
/// `on_response` may read the `&dyn RequestHead` it is given (the future must be `Send`).
pub trait HttpMessage: Send + Sync {
    fn headers(&self) -> &HeaderMap;
    /// Replace every value of `name` with `value`.
    fn set_header(&mut self, name: HeaderName, value: HeaderValue);
    /// Add a value, keeping existing ones.
    fn append_header(&mut self, name: HeaderName, value: HeaderValue);
    fn remove_header(&mut self, name: &HeaderName);
}

/// A request head as the filter chain sees it.
pub trait RequestHead: HttpMessage {
    fn method(&self) -> &Method;
    /// Change the method the upstream gets (a protocol translation may need POST).
    fn set_method(&mut self, method: Method);
    fn uri(&self) -> &Uri;
    fn set_uri(&mut self, uri: Uri);
}

/// A response head as the filter chain sees it.
pub trait ResponseHead: HttpMessage {
    fn status(&self) -> StatusCode;
    fn set_status(&mut self, status: StatusCode);
}

// === impl for http's Parts ===

impl HttpMessage for http::request::Parts {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn set_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.append(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
}

impl RequestHead for http::request::Parts {
    fn method(&self) -> &Method {
        &self.method
    }
    fn set_method(&mut self, method: Method) {
        self.method = method;
    }
    fn uri(&self) -> &Uri {
        &self.uri
    }
    fn set_uri(&mut self, uri: Uri) {
        self.uri = uri;
    }
}

impl HttpMessage for http::response::Parts {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn set_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.insert(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.append(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.headers.remove(name);
    }
}

impl ResponseHead for http::response::Parts {
    fn status(&self) -> StatusCode {
        self.status
    }
    fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }
}
