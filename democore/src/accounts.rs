//! Accounts: three seeded customers and the read endpoints over them.
//!
//! Every account carries a PAN (a well-known Luhn-valid *test* card number),
//! because the legacy core really does over-share, and that is what the
//! gateway's masking filters are demonstrated against.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use crate::money::Amount;
use crate::{legacy_error, Shared};

/// One customer account as the core stores and returns it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub owner: String,
    pub iban: String,
    pub pan: String,
    pub currency: String,
    pub balance: Amount,
}

/// The three demo accounts. The low balance of the third makes the
/// insufficient-funds path easy to hit.
pub(crate) fn seed() -> Vec<Account> {
    let acc = |id: &str, owner: &str, iban: &str, pan: &str, cur: &str, minor: i64| Account {
        id: id.into(),
        owner: owner.into(),
        iban: iban.into(),
        pan: pan.into(),
        currency: cur.into(),
        balance: Amount(minor),
    };
    vec![
        acc(
            "ACC-1001",
            "Ada Lovelace",
            "DE89370400440532013000",
            "4111111111111111",
            "EUR",
            152_035,
        ),
        acc(
            "ACC-1002",
            "Alan Turing",
            "GB82WEST12345698765432",
            "5555555555554444",
            "GBP",
            9_800_000,
        ),
        acc(
            "ACC-1003",
            "Grace Hopper",
            "NL91ABNA0417164300",
            "4000056655665556",
            "EUR",
            1_250,
        ),
    ]
}

/// Luhn checksum over a string of ASCII digits (false for anything else).
pub fn luhn_valid(number: &str) -> bool {
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/accounts", get(list))
        .route("/accounts/{id}", get(one))
        .route("/accounts/{id}/balance", get(balance))
}

pub(crate) fn not_found() -> Response {
    legacy_error(
        StatusCode::NOT_FOUND,
        "account not found",
        "ACC404",
        "at com.bank.core.AccountDao.find(AccountDao.java:118)",
    )
}

async fn list(State(st): State<Shared>) -> Json<Vec<Account>> {
    Json(st.ledger().accounts().to_vec())
}

async fn one(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    match st.ledger().account(&id) {
        Some(a) => Json(a.clone()).into_response(),
        None => not_found(),
    }
}

async fn balance(State(st): State<Shared>, Path(id): Path<String>) -> Response {
    let Some((balance, currency)) = st
        .ledger()
        .account(&id)
        .map(|a| (a.balance, a.currency.clone()))
    else {
        return not_found();
    };
    let as_of = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    Json(json!({"account_id": id, "balance": balance, "currency": currency, "as_of": as_of}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::iban_valid;
    use crate::router;
    use crate::test_util::*;

    #[test]
    fn seeded_cards_and_ibans_are_valid() {
        for a in seed() {
            assert_eq!(a.pan.len(), 16, "{}", a.id);
            assert!(luhn_valid(&a.pan), "{}", a.pan);
            assert!(iban_valid(&a.iban), "{}", a.iban);
        }
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid(""));
        assert!(!luhn_valid("4111-1111"));
    }

    #[tokio::test]
    async fn list_one_and_balance() {
        let app = router("c");
        let (status, v) = call_json(&app, get_req("/accounts")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(v[0]["balance"], "1520.35");

        let (status, v) = call_json(&app, get_req("/accounts/ACC-1002")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["owner"], "Alan Turing");
        assert_eq!(v["currency"], "GBP");

        let (status, v) = call_json(&app, get_req("/accounts/ACC-1001/balance")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["account_id"], "ACC-1001");
        assert_eq!(v["balance"], "1520.35");
        assert_eq!(v["currency"], "EUR");
        assert!(v["as_of"].as_str().unwrap().ends_with('Z'));
    }

    #[tokio::test]
    async fn missing_account_is_legacy_404() {
        let app = router("c");
        for uri in ["/accounts/ACC-9", "/accounts/ACC-9/balance"] {
            let (status, v) = call_json(&app, get_req(uri)).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            assert_eq!(v["code"], "ACC404");
            assert_eq!(
                v["trace"],
                "at com.bank.core.AccountDao.find(AccountDao.java:118)"
            );
        }
    }
}
