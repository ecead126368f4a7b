//! Assertions on the answers the gateway makes itself: RFC 9457 problem+json.

use serde_json::Value;

use super::header;

/// Checks an answer made by the gateway itself: its status, `application/problem+json`, the
/// problem's type (`urn:corridor:problem:{kind}`) and status, and a request id. Returns the
/// body text and its JSON.
pub async fn assert_problem_text(
    resp: reqwest::Response,
    status: u16,
    kind: &str,
) -> (String, Value) {
    assert_eq!(resp.status().as_u16(), status);
    let content_type = header(&resp, "content-type").map(str::to_owned);
    let body = resp.text().await.unwrap();
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{body}"
    );
    let problem: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        problem["type"],
        format!("urn:corridor:problem:{kind}"),
        "{problem}"
    );
    assert_eq!(problem["status"], status, "{problem}");
    assert!(
        problem["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{problem}"
    );
    (body, problem)
}

/// [`assert_problem_text`], returning the problem's JSON.
pub async fn assert_problem(resp: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_problem_text(resp, status, kind).await.1
}

/// [`assert_problem_text`], and the problem has a title.
pub async fn assert_titled_problem(
    resp: reqwest::Response,
    status: u16,
    kind: &str,
) -> (String, Value) {
    let (body, problem) = assert_problem_text(resp, status, kind).await;
    assert!(
        problem["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{problem}"
    );
    (body, problem)
}
