//! Cards: the payment card of each seeded account, listed and looked up by its real number
//! (PAN), as a legacy card system does. Through a gateway that tokenizes, partners see tokens
//! where the PANs are and send tokens back; the core only ever sees real numbers, so a token
//! that reaches it unchanged finds no card.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::{legacy_error, Shared};

/// A card as the core stores and returns it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Card {
    pub pan: String,
    /// `MM/YY`.
    pub expiry: String,
    pub holder: String,
    /// The account the card draws on.
    pub account_id: String,
}

/// The cards of the three demo accounts, with the accounts' PANs.
pub(crate) fn seed() -> Vec<Card> {
    [
        ("4111111111111111", "12/28", "Ada Lovelace", "ACC-1001"),
        ("5555555555554444", "06/27", "Alan Turing", "ACC-1002"),
        ("4000056655665556", "09/29", "Grace Hopper", "ACC-1003"),
    ]
    .into_iter()
    .map(|(pan, expiry, holder, account_id)| Card {
        pan: pan.into(),
        expiry: expiry.into(),
        holder: holder.into(),
        account_id: account_id.into(),
    })
    .collect()
}

pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/cards", get(list))
        .route("/cards/{pan}", get(one))
}

async fn list(State(st): State<Shared>) -> Json<Vec<Card>> {
    Json(st.cards.clone())
}

async fn one(State(st): State<Shared>, Path(pan): Path<String>) -> Response {
    match st.cards.iter().find(|card| card.pan == pan) {
        Some(card) => Json(card.clone()).into_response(),
        None => legacy_error(
            StatusCode::NOT_FOUND,
            "card not found",
            "CRD404",
            "at com.bank.core.CardDao.findByPan(CardDao.java:57)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts;
    use crate::luhn_valid;
    use crate::router;
    use crate::test_util::*;

    #[test]
    fn each_card_is_its_accounts_and_luhn_valid() {
        let accounts = accounts::seed();
        for card in seed() {
            assert!(luhn_valid(&card.pan), "{}", card.pan);
            let account = accounts.iter().find(|a| a.id == card.account_id).unwrap();
            assert_eq!((&account.pan, &account.owner), (&card.pan, &card.holder));
        }
    }

    #[tokio::test]
    async fn list_and_look_up_by_pan() {
        let app = router("c");
        let (status, v) = call_json(&app, get_req("/cards")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(v[0]["pan"], "4111111111111111");
        assert_eq!(v[0]["expiry"], "12/28");
        assert_eq!(v[0]["holder"], "Ada Lovelace");

        let (status, v) = call_json(&app, get_req("/cards/5555555555554444")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["holder"], "Alan Turing");
        assert_eq!(v["account_id"], "ACC-1002");

        // A token, or any unknown number, finds nothing.
        let (status, v) = call_json(&app, get_req("/cards/4111111111111112")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["code"], "CRD404");
    }
}
