//! The accounts SOAP service: `POST /soap/accounts`, namespace
//! `urn:corridor:democore:accounts:1`, SOAP 1.1 or 1.2 (answered in the
//! version asked), over the same ledger as the JSON endpoints.
//!
//! Operations: GetAccount, GetBalance and Transfer (idempotent by its
//! reference). Faults: AccountNotFound, InsufficientFunds and InvalidRequest
//! as client faults, Server/Receiver for the core's own failures, all with
//! HTTP 500 as SOAP stacks do. Answers are gzipped when the client allows it.

mod fault;
mod render;
mod request;

use std::io::Write;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::payments::{iban_valid, PaymentError, PaymentRequest};
use crate::{Amount, AppState, Shared};
use fault::Fault;
use request::{Operation, Transfer, Version};

/// The service's namespace, and the stem of its SOAP actions (`...#GetBalance`).
pub(crate) const SERVICE_NS: &str = "urn:corridor:democore:accounts:1";
/// Largest request body (bigger ones get 413).
const BODY_LIMIT: usize = 64 * 1024;
/// Every operation naming this account fails inside the core: the way to get a
/// Server/Receiver fault, with the legacy core's leaked trace in it.
const FAILING_ACCOUNT: &str = "ACC-FAIL";
const LEAKED_TRACE: &str = "java.lang.IllegalStateException: ledger connection pool exhausted \
     at com.bank.core.soap.AccountEndpoint.invoke(AccountEndpoint.java:212)";

pub(crate) fn routes() -> Router<Shared> {
    Router::new().route(
        "/soap/accounts",
        post(accounts).layer(DefaultBodyLimit::max(BODY_LIMIT)),
    )
}

async fn accounts(State(st): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some((version, params)) = request::version(&headers) else {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)",
        )
            .into_response();
    };
    let answer = request::action(version, &params, &headers)
        .and_then(|action| request::operation(version, action.as_deref(), &body))
        .and_then(|op| execute(&st, op));
    let (status, xml) = match answer {
        Ok(body) => (StatusCode::OK, render::envelope(version, &body)),
        Err(fault) => (StatusCode::INTERNAL_SERVER_ERROR, fault.to_xml(version)),
    };
    reply(version, status, xml, accepts_gzip(&headers))
}

/// Runs the operation; the Ok value is the Body's content.
fn execute(st: &AppState, op: Operation) -> Result<String, Fault> {
    match op {
        Operation::GetAccount { account_id } => {
            fail_on_purpose(&account_id)?;
            let ledger = st.ledger();
            let account = ledger
                .account(&account_id)
                .ok_or(Fault::account_not_found("account not found"))?;
            Ok(render::account(account))
        }
        Operation::GetBalance { account_id } => {
            fail_on_purpose(&account_id)?;
            let (available, currency) = st
                .ledger()
                .account(&account_id)
                .map(|a| (a.balance, a.currency.clone()))
                .ok_or(Fault::account_not_found("account not found"))?;
            let as_of = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            Ok(render::balance(
                &account_id,
                available,
                &currency,
                &as_of.to_string(),
            ))
        }
        Operation::Transfer(t) => transfer(st, t),
    }
}

/// A payment through the ledger, keyed by the reference: a repeated reference
/// gives the first transfer back and moves no money.
fn transfer(st: &AppState, t: Transfer) -> Result<String, Fault> {
    fail_on_purpose(&t.from_account)?;
    fail_on_purpose(&t.to_account)?;
    let amount = Amount::parse(&t.amount)
        .map_err(|_| Fault::invalid("amount must be a decimal such as 12.50"))?;
    let mut ledger = st.ledger();
    // An account of this core, or an IBAN elsewhere.
    let to_iban = match ledger.account(&t.to_account) {
        Some(account) => account.iban.clone(),
        None => {
            let iban: String = t.to_account.split_whitespace().collect();
            let iban = iban.to_ascii_uppercase();
            if !iban_valid(&iban) {
                return Err(Fault::account_not_found("creditor account not found"));
            }
            iban
        }
    };
    // Its own key space, apart from the JSON API's Idempotency-Keys.
    let key = format!("soap-transfer:{}", t.reference);
    let payment = PaymentRequest {
        from_account: t.from_account,
        to_iban,
        amount,
        currency: t.currency,
        reference: Some(t.reference),
    };
    match ledger.pay(&key, payment) {
        Ok((payment, _replayed)) => Ok(render::transfer(&payment.id, payment.status)),
        Err(PaymentError::UnknownAccount) => {
            Err(Fault::account_not_found("debtor account not found"))
        }
        Err(PaymentError::InsufficientFunds) => Err(Fault::insufficient_funds()),
        Err(PaymentError::KeyReused) => Err(Fault::invalid(
            "the reference was already used for a different transfer",
        )),
        Err(e) => Err(Fault::invalid(e.to_string())),
    }
}

fn fail_on_purpose(account_id: &str) -> Result<(), Fault> {
    if account_id == FAILING_ACCOUNT {
        return Err(Fault::server(LEAKED_TRACE));
    }
    Ok(())
}

/// Whether Accept-Encoding allows gzip: named with a q above zero, or `*` is.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut any = false;
    let values = headers.get_all(header::ACCEPT_ENCODING).into_iter();
    for item in values
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("q")
                    && v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
            })
        });
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return !refused;
        }
        if coding == "*" {
            any = !refused;
        }
    }
    any
}

fn reply(version: Version, status: StatusCode, xml: String, gzip: bool) -> Response {
    let content_type = [(header::CONTENT_TYPE, version.content_type())];
    let mut resp = match gzip.then(|| gzipped(xml.as_bytes())) {
        Some(Ok(bytes)) => {
            let encoding = [(header::CONTENT_ENCODING, "gzip")];
            (status, content_type, encoding, bytes).into_response()
        }
        // Compressing into memory does not fail; if it did, plain text still answers.
        _ => (status, content_type, xml).into_response(),
    };
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    resp
}

fn gzipped(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests;
