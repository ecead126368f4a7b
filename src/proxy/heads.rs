//! The filter API's message traits over pingora's headers. Edits go through pingora's own
//! methods, which keep its record of header-name case in step with the map.

use corridor_filters::{HttpMessage, RequestHead, ResponseHead};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use pingora::http::{RequestHeader, ResponseHeader};

pub struct Request<'a>(pub &'a mut RequestHeader);
pub struct Response<'a>(pub &'a mut ResponseHeader);

impl HttpMessage for Request<'_> {
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }
    fn set_header(&mut self, name: HeaderName, value: HeaderValue) {
        // Cannot fail: name and value are already valid.
        let _ = self.0.insert_header(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.append_header(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}

impl RequestHead for Request<'_> {
    fn method(&self) -> &Method {
        &self.0.method
    }
    fn set_method(&mut self, method: Method) {
        self.0.set_method(method);
    }
    fn uri(&self) -> &Uri {
        &self.0.uri
    }
    fn set_uri(&mut self, uri: Uri) {
        self.0.set_uri(uri);
    }
}

impl HttpMessage for Response<'_> {
    fn headers(&self) -> &HeaderMap {
        &self.0.headers
    }
    fn set_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.insert_header(name, value);
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = self.0.append_header(name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        self.0.remove_header(name);
    }
}

impl ResponseHead for Response<'_> {
    fn status(&self) -> StatusCode {
        self.0.status
    }
    fn set_status(&mut self, status: StatusCode) {
        let _ = self.0.set_status(status);
    }
}
