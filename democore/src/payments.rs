//! Payments with mandatory idempotency keys.
//!
//! A client (or a gateway retrying on its behalf) may send the same payment
//! twice; the `Idempotency-Key` header makes the second send return the first
//! result instead of moving money again. The whole check-debit-record step runs
//! under the ledger lock, so concurrent duplicates cannot both get through.
//! Only accepted payments consume a key: a payment refused for lack of funds
//! can be retried with the same key once money has arrived.

use std::fmt;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::money::Amount;
use crate::{legacy_error, Shared};

/// The body of `POST /payments`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct PaymentRequest {
    pub from_account: String,
    pub to_iban: String,
    pub amount: Amount,
    pub currency: String,
    #[serde(default)]
    pub reference: Option<String>,
}

impl PaymentRequest {
    /// Checks the shape of the request and normalises the IBAN (spaces out,
    /// upper case) so that `"de89 3704..."` and `"DE893704..."` compare equal.
    pub(crate) fn validate(mut self) -> Result<PaymentRequest, PaymentError> {
        let invalid = |m: &str| Err(PaymentError::Invalid(m.to_owned()));
        if self.from_account.trim().is_empty() {
            return invalid("from_account is required");
        }
        self.to_iban = self
            .to_iban
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        if !iban_valid(&self.to_iban) {
            return invalid("to_iban is not a valid IBAN");
        }
        if self.amount.0 <= 0 {
            return invalid("amount must be greater than zero");
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return invalid("currency must be a three-letter ISO 4217 code");
        }
        if self
            .reference
            .as_ref()
            .is_some_and(|r| r.chars().count() > 140)
        {
            return invalid("reference is longer than 140 characters");
        }
        Ok(self)
    }
}

/// An accepted payment.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Payment {
    pub id: String,
    pub status: &'static str,
    pub from_account: String,
    pub to_iban: String,
    pub amount: Amount,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub idempotency_key: String,
    pub created_at: String,
}

/// Why a payment was refused; each maps to a legacy error code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PaymentError {
    /// Malformed JSON or a field that fails validation (400).
    Invalid(String),
    /// No usable `Idempotency-Key` header (400).
    MissingKey,
    /// The key was already used for a different payment (422).
    KeyReused,
    /// `from_account` does not exist (422).
    UnknownAccount,
    /// Currency differs from the debtor's or an internal creditor's (422).
    CurrencyMismatch,
    /// Debtor and creditor are the same account (422).
    SameAccount,
    /// The balance does not cover the amount (422).
    InsufficientFunds,
}

impl fmt::Display for PaymentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PaymentError::Invalid(m) => write!(f, "invalid payment: {m}"),
            PaymentError::MissingKey => {
                f.write_str("Idempotency-Key header is required (1-255 visible ASCII characters)")
            }
            PaymentError::KeyReused => {
                f.write_str("Idempotency-Key was already used for a different payment")
            }
            PaymentError::UnknownAccount => f.write_str("debtor account not found"),
            PaymentError::CurrencyMismatch => f.write_str("currency does not match the account"),
            PaymentError::SameAccount => f.write_str("debtor and creditor are the same account"),
            PaymentError::InsufficientFunds => f.write_str("insufficient funds"),
        }
    }
}

impl std::error::Error for PaymentError {}

impl IntoResponse for PaymentError {
    fn into_response(self) -> Response {
        let (status, code, trace) = match self {
            PaymentError::Invalid(_) => (
                StatusCode::BAD_REQUEST,
                "PAY400",
                "at com.bank.core.PaymentValidator.validate(PaymentValidator.java:42)",
            ),
            PaymentError::MissingKey => (
                StatusCode::BAD_REQUEST,
                "IDM400",
                "at com.bank.core.IdempotencyFilter.doFilter(IdempotencyFilter.java:57)",
            ),
            PaymentError::KeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDM422",
                "at com.bank.core.IdempotencyFilter.doFilter(IdempotencyFilter.java:73)",
            ),
            PaymentError::UnknownAccount => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "ACC422",
                "at com.bank.core.AccountDao.find(AccountDao.java:118)",
            ),
            PaymentError::CurrencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "CUR422",
                "at com.bank.core.LedgerService.checkCurrency(LedgerService.java:171)",
            ),
            PaymentError::SameAccount => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "PAY422",
                "at com.bank.core.LedgerService.transfer(LedgerService.java:188)",
            ),
            PaymentError::InsufficientFunds => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "FND422",
                "at com.bank.core.LedgerService.debit(LedgerService.java:203)",
            ),
        };
        legacy_error(status, &self.to_string(), code, trace)
    }
}

/// IBAN check: country letters, check digits, alphanumerics, ISO 7064 mod 97.
pub fn iban_valid(iban: &str) -> bool {
    let b = iban.as_bytes();
    if !(15..=34).contains(&b.len())
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
        || !b[4..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        return false;
    }
    let rearranged = b[4..].iter().chain(&b[..4]);
    let rem = rearranged.fold(0u32, |acc, &c| {
        if c.is_ascii_digit() {
            (acc * 10 + u32::from(c - b'0')) % 97
        } else {
            (acc * 100 + u32::from(c - b'A' + 10)) % 97
        }
    });
    rem == 1
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/payments", post(create))
        .route("/payments/{id}", get(find))
}

fn idempotency_key(headers: &HeaderMap) -> Option<&str> {
    let key = headers.get("idempotency-key")?.to_str().ok()?.trim();
    let ok = !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(key)
}

async fn create(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(key) = idempotency_key(&headers) else {
        return PaymentError::MissingKey.into_response();
    };
    let req: PaymentRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return PaymentError::Invalid(e.to_string()).into_response(),
    };
    let result = st.ledger().pay(key, req);
    match result {
        Ok((payment, true)) => {
            let mut resp = (StatusCode::OK, Json(payment)).into_response();
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            resp
        }
        Ok((payment, false)) => {
            let location = HeaderValue::from_str(&format!("/payments/{}", payment.id));
            let mut resp = (StatusCode::CREATED, Json(payment)).into_response();
            if let Ok(loc) = location {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn find(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    match st.ledger().payment(&id) {
        Some(p) => Json(p.clone()).into_response(),
        None => legacy_error(
            StatusCode::NOT_FOUND,
            "payment not found",
            "PAY404",
            "at com.bank.core.PaymentDao.find(PaymentDao.java:87)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router;
    use crate::test_util::*;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::{json, Value};

    const EXT: &str = "FR1420041010050500013M02606";

    #[test]
    fn iban_check() {
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid(EXT));
        assert!(!iban_valid("DE89370400440532013001"));
        assert!(!iban_valid("de89370400440532013000"));
        assert!(!iban_valid("DE89"));
    }

    fn post(key: Option<&str>, body: &str) -> Request<Body> {
        let mut b = Request::post("/payments").header("content-type", "application/json");
        if let Some(k) = key {
            b = b.header("idempotency-key", k);
        }
        b.body(Body::from(body.to_owned())).unwrap()
    }

    #[tokio::test]
    async fn http_flow() {
        let app = router("c");
        let body = json!({"from_account": "ACC-1001", "to_iban": EXT,
                          "amount": "100.00", "currency": "EUR", "reference": "inv 7"})
        .to_string();

        let (status, headers, raw) = call(&app, post(Some("abc-1"), &body)).await;
        assert_eq!(status, StatusCode::CREATED);
        let p: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(p["status"], "accepted");
        assert_eq!(p["amount"], "100.00");
        assert_eq!(p["reference"], "inv 7");
        let id = p["id"].as_str().unwrap();
        assert_eq!(headers["location"], format!("/payments/{id}"));

        let (status, headers, raw) = call(&app, post(Some("abc-1"), &body)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["idempotent-replayed"], "true");
        assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), p);

        let (status, v) = call_json(&app, get_req(&format!("/payments/{id}"))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v, p);
        let (_, v) = call_json(&app, get_req("/accounts/ACC-1001/balance")).await;
        assert_eq!(v["balance"], "1420.35");

        let (status, v) = call_json(&app, get_req("/payments/PAY-999999")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["code"], "PAY404");
    }

    #[tokio::test]
    async fn http_errors() {
        let app = router("c");
        let ok = json!({"from_account": "ACC-1003", "to_iban": EXT,
                        "amount": 99.5, "currency": "EUR"})
        .to_string();
        let cases = [
            (None, ok.as_str(), 400, "IDM400"),
            (Some(""), ok.as_str(), 400, "IDM400"),
            (Some("k"), "{not json", 400, "PAY400"),
            (Some("k"), r#"{"from_account":"ACC-1001"}"#, 400, "PAY400"),
            (Some("k"), ok.as_str(), 422, "FND422"),
        ];
        for (key, body, status, code) in cases {
            let (s, v) = call_json(&app, post(key, body)).await;
            assert_eq!(
                (s.as_u16(), v["code"].as_str()),
                (status, Some(code)),
                "{body}"
            );
            assert!(v["trace"].is_string());
        }
    }

    /// Many concurrent requests with one key move money exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_duplicates_pay_once() {
        let app = router("c");
        let body = json!({"from_account": "ACC-1002", "to_iban": EXT,
                          "amount": "5.00", "currency": "GBP"})
        .to_string();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (app, body) = (app.clone(), body.clone());
                tokio::spawn(async move { call_json(&app, post(Some("same"), &body)).await })
            })
            .collect();
        let mut created = 0;
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            let (s, v) = t.await.unwrap();
            created += usize::from(s == StatusCode::CREATED);
            ids.insert(v["id"].as_str().unwrap().to_owned());
        }
        assert_eq!((created, ids.len()), (1, 1));
        let (_, v) = call_json(&app, get_req("/accounts/ACC-1002/balance")).await;
        assert_eq!(v["balance"], "97995.00");
    }
}
