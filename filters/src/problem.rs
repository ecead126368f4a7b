//! RFC 9457 problem details, the one shape of every answer the gateway makes itself.

use http::StatusCode;

/// A problem the gateway or a filter answers with. `kind` is a stable slug: the rendered
/// `type` is `urn:corridor:problem:<kind>`, which clients may match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    /// Safe, human-readable detail: never a secret, an upstream's internals or raw input.
    pub detail: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: &'static str) -> Self {
        Problem {
            status,
            kind,
            title,
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The `type` URI of this problem.
    pub fn type_uri(&self) -> String {
        format!("urn:corridor:problem:{}", self.kind)
    }

    /// The problem+json body, with the request id that lets support find the log line.
    pub fn to_json(&self, request_id: &str) -> Vec<u8> {
        let mut doc = serde_json::json!({
            "type": self.type_uri(),
            "title": self.title,
            "status": self.status.as_u16(),
            "request_id": request_id,
        });
        if let Some(detail) = &self.detail {
            doc["detail"] = serde_json::Value::String(detail.clone());
        }
        serde_json::to_vec(&doc).expect("a JSON object always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9457_members_and_request_id() {
        let p = Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
        )
        .with_detail("limit is 1024 bytes");
        let v: serde_json::Value = serde_json::from_slice(&p.to_json("r-1")).unwrap();
        assert_eq!(v["type"], "urn:corridor:problem:body-too-large");
        assert_eq!(v["title"], "Body too large");
        assert_eq!(v["status"], 413);
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["detail"], "limit is 1024 bytes");
    }
}
