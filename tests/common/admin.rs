//! Calls to the gateway's admin API, on its own port.

use serde_json::Value;

use super::client;

/// An admin API answer, read whole.
pub struct AdminAnswer {
    pub status: u16,
    pub content_type: String,
    pub www_authenticate: Option<String>,
    pub body: String,
}

impl AdminAnswer {
    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }
}

/// `method path` on the admin listener at `admin`, with `token` as a Bearer token if given.
pub async fn admin_call(admin: u16, method: &str, path: &str, token: Option<&str>) -> AdminAnswer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(method, format!("http://127.0.0.1:{admin}{path}"));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    AdminAnswer {
        status: resp.status().as_u16(),
        content_type: header("content-type").unwrap_or_default(),
        www_authenticate: header("www-authenticate"),
        body: resp.text().await.unwrap(),
    }
}

/// GET `path` on the admin listener, without a token.
pub async fn admin_get(admin: u16, path: &str) -> AdminAnswer {
    admin_call(admin, "GET", path, None).await
}

/// GET `path` on the admin listener: asserts a 200 and returns the JSON.
pub async fn admin_json(admin: u16, path: &str) -> Value {
    let answer = admin_get(admin, path).await;
    let value = answer.json();
    assert_eq!(answer.status, 200, "{value}");
    value
}

/// GET /metrics on the admin listener: asserts a 200 and returns the text.
pub async fn admin_metrics(admin: u16) -> String {
    let answer = admin_get(admin, "/metrics").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.body
}
