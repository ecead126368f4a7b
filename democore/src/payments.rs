//! Payments with mandatory idempotency keys.
//!
//! A client (or a gateway retrying on its behalf) may send the same payment
//! twice; the `Idempotency-Key` header makes the second send return the first
//! result instead of moving money again. The whole check-debit-record step runs
//! under the ledger lock, so concurrent duplicates cannot both get through.
//! Only accepted payments consume a key: a payment refused for lack of funds
//! can be retried with the same key once money has arrived.

use std::collections::HashMap;
use std::fmt;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::accounts::{self, Account};
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
    fn validate(mut self) -> Result<PaymentRequest, PaymentError> {
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

/// Accounts, payments and idempotency keys of one instance.
#[derive(Debug)]
pub struct Ledger {
    accounts: Vec<Account>,
    payments: HashMap<String, Payment>,
    /// Key -> (payment id, the validated request it was used for).
    keys: HashMap<String, (String, PaymentRequest)>,
    seq: u64,
}

impl Ledger {
    /// A ledger holding the three demo accounts and no payments.
    pub fn seeded() -> Ledger {
        Ledger {
            accounts: accounts::seed(),
            payments: HashMap::new(),
            keys: HashMap::new(),
            seq: 0,
        }
    }

    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    pub fn payment(&self, id: &str) -> Option<&Payment> {
        self.payments.get(id)
    }

    /// Executes a payment once per key. Returns the payment and whether it is
    /// a replay of an earlier request with the same key.
    pub fn pay(&mut self, key: &str, req: PaymentRequest) -> Result<(Payment, bool), PaymentError> {
        let req = req.validate()?;
        if let Some((id, first)) = self.keys.get(key) {
            return if *first == req {
                Ok((self.payments[id].clone(), true))
            } else {
                Err(PaymentError::KeyReused)
            };
        }
        let from = self
            .accounts
            .iter()
            .position(|a| a.id == req.from_account)
            .ok_or(PaymentError::UnknownAccount)?;
        if self.accounts[from].currency != req.currency {
            return Err(PaymentError::CurrencyMismatch);
        }
        let to = self.accounts.iter().position(|a| a.iban == req.to_iban);
        if let Some(to) = to {
            if to == from {
                return Err(PaymentError::SameAccount);
            }
            if self.accounts[to].currency != req.currency {
                return Err(PaymentError::CurrencyMismatch);
            }
        }
        if self.accounts[from].balance < req.amount {
            return Err(PaymentError::InsufficientFunds);
        }
        // All checks passed: nothing below can fail.
        self.accounts[from].balance.0 -= req.amount.0;
        if let Some(to) = to {
            self.accounts[to].balance.0 += req.amount.0;
        }
        self.seq += 1;
        let payment = Payment {
            id: format!("PAY-{:06}", self.seq),
            status: "accepted",
            from_account: req.from_account.clone(),
            to_iban: req.to_iban.clone(),
            amount: req.amount,
            currency: req.currency.clone(),
            reference: req.reference.clone(),
            idempotency_key: key.to_owned(),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        self.payments.insert(payment.id.clone(), payment.clone());
        self.keys.insert(key.to_owned(), (payment.id.clone(), req));
        Ok((payment, false))
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

    fn req(from: &str, iban: &str, amount: &str, cur: &str) -> PaymentRequest {
        PaymentRequest {
            from_account: from.into(),
            to_iban: iban.into(),
            amount: Amount::parse(amount).unwrap(),
            currency: cur.into(),
            reference: None,
        }
    }

    const EXT: &str = "FR1420041010050500013M02606";

    fn balance(l: &Ledger, id: &str) -> i64 {
        l.account(id).unwrap().balance.0
    }

    #[test]
    fn iban_check() {
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid(EXT));
        assert!(!iban_valid("DE89370400440532013001"));
        assert!(!iban_valid("de89370400440532013000"));
        assert!(!iban_valid("DE89"));
    }

    #[test]
    fn same_key_same_payment_never_doubles() {
        let mut l = Ledger::seeded();
        let (p1, replay1) = l.pay("k1", req("ACC-1001", EXT, "20.35", "EUR")).unwrap();
        // Same payload, IBAN written differently: still the same request.
        let again = req(
            "ACC-1001",
            "fr14 2004 1010 0505 0001 3M02 606",
            "20.35",
            "EUR",
        );
        let (p2, replay2) = l.pay("k1", again).unwrap();
        assert!(!replay1);
        assert!(replay2);
        assert_eq!(p1, p2);
        assert_eq!(balance(&l, "ACC-1001"), 150_000);
        assert_eq!(l.payments.len(), 1);

        let (p3, _) = l.pay("k2", req("ACC-1001", EXT, "20.35", "EUR")).unwrap();
        assert_ne!(p3.id, p1.id);
        assert_eq!(balance(&l, "ACC-1001"), 147_965);
    }

    #[test]
    fn reused_key_with_other_payload_is_refused() {
        let mut l = Ledger::seeded();
        l.pay("k", req("ACC-1001", EXT, "1.00", "EUR")).unwrap();
        let err = l.pay("k", req("ACC-1001", EXT, "2.00", "EUR")).unwrap_err();
        assert_eq!(err, PaymentError::KeyReused);
        assert_eq!(balance(&l, "ACC-1001"), 151_935);
    }

    #[test]
    fn insufficient_funds_does_not_consume_key() {
        let mut l = Ledger::seeded();
        let err = l
            .pay("k", req("ACC-1003", EXT, "12.51", "EUR"))
            .unwrap_err();
        assert_eq!(err, PaymentError::InsufficientFunds);
        assert_eq!(balance(&l, "ACC-1003"), 1_250);
        // Money arrives from another account, then the same key succeeds.
        l.pay(
            "top-up",
            req("ACC-1001", "NL91ABNA0417164300", "1.00", "EUR"),
        )
        .unwrap();
        let (p, replay) = l.pay("k", req("ACC-1003", EXT, "12.51", "EUR")).unwrap();
        assert!(!replay);
        assert_eq!(p.amount, Amount(1_251));
        assert_eq!(balance(&l, "ACC-1003"), 99);
    }

    #[test]
    fn business_rules() {
        let mut l = Ledger::seeded();
        let cases = [
            (req("ACC-9", EXT, "1", "EUR"), PaymentError::UnknownAccount),
            (
                req("ACC-1001", EXT, "1", "GBP"),
                PaymentError::CurrencyMismatch,
            ),
            // Internal creditor in another currency.
            (
                req("ACC-1001", "GB82WEST12345698765432", "1", "EUR"),
                PaymentError::CurrencyMismatch,
            ),
            (
                req("ACC-1001", "DE89370400440532013000", "1", "EUR"),
                PaymentError::SameAccount,
            ),
        ];
        for (r, want) in cases {
            assert_eq!(l.pay("k", r).unwrap_err(), want);
        }
        assert!(l.payments.is_empty());
    }

    #[test]
    fn validation() {
        let mut l = Ledger::seeded();
        let bad = [
            req(" ", EXT, "1", "EUR"),
            req("ACC-1001", "FR1420041010050500013M02607", "1", "EUR"),
            req("ACC-1001", EXT, "0", "EUR"),
            req("ACC-1001", EXT, "1", "eur"),
            req("ACC-1001", EXT, "1", "EURO"),
            PaymentRequest {
                reference: Some("x".repeat(141)),
                ..req("ACC-1001", EXT, "1", "EUR")
            },
        ];
        for r in bad {
            let e = l.pay("k", r.clone()).unwrap_err();
            assert!(matches!(e, PaymentError::Invalid(_)), "{r:?} gave {e:?}");
        }
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
