//! The `soap` filter through the real gateway: partners call JSON routes, a SOAP core (a real
//! HTTP server on loopback answering canned envelopes) gets envelopes, and its answers come
//! back as JSON or problem+json.
//!
//! Two chains: "balance" (GET `/v1/accounts/{id}/balance` → SOAP 1.1 GetBalance) and
//! "transfer" (POST `/v1/transfers` with a JSON body → SOAP 1.2 Transfer). The test core
//! picks its answer by the account id in the envelope: a mapped answer with an odd prefix
//! or a default namespace, compressed when asked, faults of both versions, broken XML, XXE
//! and billion-laughs payloads. A last test runs the demo core's own SOAP service.

mod common;
use common::*;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{json, Value};

const ACC: &str = "urn:corridor:democore:accounts:1";
const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
/// What the core says in its faults and errors: none of it may reach a partner.
const CORE_WORDS: &str = "java.lang.IllegalStateException at com.bank.core.Ledger.debit";

/// A request as the core got it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves the test core; returns its address and what it got.
async fn soap_core() -> (SocketAddr, Log) {
    let log = Log::default();
    let router = axum::Router::new()
        .route("/soap/accounts", any(answer))
        .with_state(log.clone());
    (serve(router).await, log)
}

fn between<'t>(text: &'t str, open: &str, close: &str) -> Option<&'t str> {
    let start = text.find(open)? + open.len();
    let end = text[start..].find(close)? + start;
    Some(&text[start..end])
}

async fn answer(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8(body.to_vec()).unwrap();
    log.lock().unwrap().push(Seen {
        method,
        uri,
        headers: headers.clone(),
        body: body.clone(),
    });
    let accepts = |coding: &str| {
        headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|c| c.trim() == coding))
    };
    let account = between(&body, "<acc:accountId>", "</acc:accountId>")
        .or_else(|| between(&body, "<acc:fromAccount>", "</acc:fromAccount>"))
        .unwrap_or("");
    let xml = |status: StatusCode, text: String| {
        (status, [("content-type", "text/xml; charset=utf-8")], text).into_response()
    };
    match account {
        // An odd prefix, a BOM, CDATA, gzip when the request allows it.
        "ACC-1001" => {
            let envelope = format!(
                "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                 <SOAP-ENV:Envelope xmlns:SOAP-ENV=\"{SOAP11}\" xmlns:ns7=\"{ACC}\"><SOAP-ENV:Body>\
                 <ns7:GetBalanceResponse><ns7:balance><ns7:accountId><![CDATA[ACC-1001]]></ns7:accountId>\
                 <ns7:available>1250.50</ns7:available><ns7:currency>EUR</ns7:currency>\
                 <ns7:asOf>2024-05-01T10:00:00Z</ns7:asOf></ns7:balance></ns7:GetBalanceResponse>\
                 </SOAP-ENV:Body></SOAP-ENV:Envelope>"
            );
            if !accepts("gzip") {
                return xml(StatusCode::BAD_REQUEST, "gzip was not offered".into());
            }
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(envelope.as_bytes()).unwrap();
            (
                [
                    ("content-type", "text/xml; charset=utf-8"),
                    ("content-encoding", "gzip"),
                    ("etag", "\"xml-7\""),
                ],
                gz.finish().unwrap(),
            )
                .into_response()
        }
        // SOAP 1.2, a default namespace, deflate.
        "ACC-2002" => {
            let envelope = format!(
                "<env:Envelope xmlns:env=\"{SOAP12}\"><env:Body><TransferResponse xmlns=\"{ACC}\">\
                 <transferId>TR-77</transferId><status>BOOKED</status></TransferResponse>\
                 </env:Body></env:Envelope>"
            );
            if !accepts("deflate") {
                return xml(StatusCode::BAD_REQUEST, "deflate was not offered".into());
            }
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(envelope.as_bytes()).unwrap();
            (
                [
                    ("content-type", "application/soap+xml; charset=utf-8"),
                    ("content-encoding", "deflate"),
                ],
                z.finish().unwrap(),
            )
                .into_response()
        }
        "NOPE" => xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "<s:Envelope xmlns:s=\"{SOAP11}\" xmlns:q=\"{ACC}\"><s:Body><s:Fault>\
                 <faultcode>s:Client.AccountNotFound</faultcode><faultstring>{CORE_WORDS}</faultstring>\
                 <detail><q:AccountNotFound/></detail></s:Fault></s:Body></s:Envelope>"
            ),
        ),
        // A fault under 200: found in the envelope, not by the status.
        "POOR" => xml(
            StatusCode::OK,
            format!(
                "<e:Envelope xmlns:e=\"{SOAP12}\" xmlns:zz=\"{ACC}\"><e:Body><e:Fault>\
                 <e:Code><e:Value>e:Sender</e:Value><e:Subcode><e:Value>zz:InsufficientFunds</e:Value></e:Subcode></e:Code>\
                 <e:Reason><e:Text xml:lang=\"en\">{CORE_WORDS}</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>"
            ),
        ),
        "CRASH" => xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><s:Fault><faultcode>s:Server</faultcode>\
                 <faultstring>{CORE_WORDS}</faultstring></s:Fault></s:Body></s:Envelope>"
            ),
        ),
        "GARBAGE" => xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><Oops>{CORE_WORDS}</s:Body>"),
        ),
        "XXE" => xml(
            StatusCode::OK,
            format!(
                "<?xml version=\"1.0\"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
                 <s:Envelope xmlns:s=\"{SOAP11}\" xmlns:acc=\"{ACC}\"><s:Body><acc:GetBalanceResponse>\
                 <acc:balance><acc:accountId>&xxe;</acc:accountId></acc:balance></acc:GetBalanceResponse>\
                 </s:Body></s:Envelope>"
            ),
        ),
        "LAUGHS" => {
            let mut entities = String::from("<!ENTITY l0 \"lol\">");
            for i in 1..10 {
                let refs = format!("&l{};", i - 1).repeat(10);
                entities.push_str(&format!("<!ENTITY l{i} \"{refs}\">"));
            }
            xml(
                StatusCode::OK,
                format!(
                    "<?xml version=\"1.0\"?><!DOCTYPE lolz [{entities}]>\
                     <s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><r>&l9;</r></s:Body></s:Envelope>"
                ),
            )
        }
        _ => xml(StatusCode::BAD_REQUEST, "unexpected".into()),
    }
}

fn config(core: SocketAddr) -> String {
    core_config(
        &[core],
        "",
        "",
        &format!(
            r#"
[[chains.balance.filters]]
type = "soap"
action = "{ACC}#GetBalance"
path = "/soap/accounts"
namespaces = {{ acc = "{ACC}" }}
request = "<acc:GetBalance><acc:accountId>${{path:2}}</acc:accountId><acc:channel>${{query:channel|api}}</acc:channel></acc:GetBalance>"

[chains.balance.filters.response]
root = "acc:GetBalanceResponse/acc:balance"
fields = {{ account_id = "acc:accountId", available = {{ path = "acc:available", type = "number" }}, currency = "acc:currency", as_of = "acc:asOf" }}

[chains.balance.filters.faults]
AccountNotFound = {{ status = 404, detail = "No such account" }}

[[chains.transfer.filters]]
type = "soap"
version = "1.2"
action = "{ACC}#Transfer"
path = "/soap/accounts"
namespaces = {{ acc = "{ACC}" }}
request = """
<acc:Transfer>
  <acc:fromAccount>${{json:$.from_account}}</acc:fromAccount>
  <acc:toAccount>${{json:$.to_account}}</acc:toAccount>
  <acc:amount>${{json:$.amount}}</acc:amount>
  <acc:currency>${{json:$.currency}}</acc:currency>
  <acc:reference>${{json:$.reference}}</acc:reference>
</acc:Transfer>
"""
response = {{ root = "acc:TransferResponse", fields = {{ transfer_id = "acc:transferId", status = "acc:status" }} }}
faults = {{ InsufficientFunds = {{ status = 422, detail = "Insufficient funds" }} }}

[[routes]]
id = "balance"
upstream = "core"
chain = "balance"
[routes.match]
path_regex = "/v1/accounts/[A-Za-z0-9-]+/balance"
methods = ["GET"]

[[routes]]
id = "transfer"
upstream = "core"
chain = "transfer"
[routes.match]
path = "/v1/transfers"
methods = ["POST"]
"#
        ),
    )
}

async fn balance(gw: &Gateway, account: &str) -> reqwest::Response {
    client()
        .get(gw.url(&format!("/v1/accounts/{account}/balance")))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap()
}

async fn transfer(gw: &Gateway, body: &str) -> reqwest::Response {
    client()
        .post(gw.url("/v1/transfers"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// A transfer order as a partner writes it (the amount a JSON number).
fn transfer_from(account: &str) -> String {
    format!(
        r#"{{"from_account":"{account}","to_account":"ACC-1002","amount":10.50,"currency":"EUR","reference":"inv <42> & co"}}"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_get_becomes_a_soap11_call_and_its_gzip_answer_json() {
    let (core, log) = soap_core().await;
    let gw = Gateway::start(&config(core));

    let resp = client()
        .get(gw.url("/v1/accounts/ACC-1001/balance?channel=mobile"))
        .header("soapaction", "\"urn:smuggled\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    assert_eq!(header(&resp, "content-encoding"), None);
    assert_eq!(header(&resp, "etag"), None);
    let length: usize = header(&resp, "content-length").unwrap().parse().unwrap();
    let text = resp.text().await.unwrap();
    assert_eq!(text.len(), length);
    assert_eq!(
        text,
        r#"{"account_id":"ACC-1001","available":1250.50,"currency":"EUR","as_of":"2024-05-01T10:00:00Z"}"#
    );

    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.uri, "/soap/accounts");
    assert_eq!(seen.headers["content-type"], "text/xml; charset=utf-8");
    assert_eq!(seen.headers["soapaction"], format!("\"{ACC}#GetBalance\""));
    assert_eq!(seen.headers["accept"], "text/xml");
    assert_eq!(seen.headers["content-length"], seen.body.len().to_string());
    assert!(seen.body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\""), "{}", seen.body);
    assert!(
        seen.body.contains("<soap:Body><acc:GetBalance><acc:accountId>ACC-1001</acc:accountId><acc:channel>mobile</acc:channel></acc:GetBalance></soap:Body>"),
        "{}",
        seen.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_json_post_becomes_a_soap12_call_with_escaped_values() {
    let (core, log) = soap_core().await;
    let gw = Gateway::start(&config(core));

    let resp = transfer(&gw, &transfer_from("ACC-2002")).await;
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"transfer_id": "TR-77", "status": "BOOKED"}));

    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(
        seen.headers["content-type"],
        format!("application/soap+xml; charset=utf-8; action=\"{ACC}#Transfer\"")
    );
    assert!(seen.headers.get("soapaction").is_none());
    assert!(
        seen.body.contains(&format!("xmlns:soap=\"{SOAP12}\"")),
        "{}",
        seen.body
    );
    assert!(
        seen.body.contains("<acc:amount>10.50</acc:amount>"),
        "{}",
        seen.body
    );
    assert!(
        seen.body
            .contains("<acc:reference>inv &lt;42&gt; &amp; co</acc:reference>"),
        "{}",
        seen.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn soap11_and_soap12_faults_become_problems_without_the_core_words() {
    let (core, _) = soap_core().await;
    let gw = Gateway::start(&config(core));

    let (text, problem) =
        assert_titled_problem(balance(&gw, "NOPE").await, 404, "soap-fault").await;
    assert_eq!(problem["detail"], "No such account");
    assert!(!text.contains("java"), "{text}");

    let (text, problem) = assert_titled_problem(
        transfer(&gw, &transfer_from("POOR")).await,
        422,
        "soap-fault",
    )
    .await;
    assert_eq!(problem["detail"], "Insufficient funds");
    assert!(!text.contains("java"), "{text}");

    let (text, problem) =
        assert_titled_problem(balance(&gw, "CRASH").await, 502, "upstream-failed").await;
    assert!(problem.get("detail").is_none(), "{problem}");
    assert!(!text.contains("java"), "{text}");

    // Each fault is logged by class and code, never with its faultstring.
    gw.settled_access_log().await;
    let stderr = gw.stderr();
    assert_eq!(
        stderr.matches("soap: fault from the core").count(),
        3,
        "{stderr}"
    );
    assert!(stderr.contains("AccountNotFound"), "{stderr}");
    assert!(!stderr.contains("IllegalState"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_xxe_and_billion_laughs_answers_are_502() {
    let (core, log) = soap_core().await;
    let gw = Gateway::start(&config(core));
    for account in ["GARBAGE", "XXE", "LAUGHS"] {
        let (text, problem) =
            assert_titled_problem(balance(&gw, account).await, 502, "upstream-malformed").await;
        assert!(problem.get("detail").is_none(), "{problem}");
        assert!(!text.contains("java") && !text.contains("root:"), "{text}");
    }
    // The core did answer each: the refusals are the gateway's reading of its answers.
    assert_eq!(log.lock().unwrap().len(), 3);
    // Logged with a reason, never with the answer's text.
    let access_log = gw.settled_access_log().await;
    let stderr = gw.stderr();
    assert_eq!(
        stderr
            .matches("the core's answer cannot be translated")
            .count(),
        3,
        "{stderr}"
    );
    assert!(stderr.contains("document type declaration"), "{stderr}");
    for logged in [stderr, format!("{access_log:?}")] {
        assert!(
            !logged.contains("IllegalState") && !logged.contains("passwd"),
            "{logged}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_lacking_a_field_is_400_and_never_reaches_the_core() {
    let (core, log) = soap_core().await;
    let gw = Gateway::start(&config(core));
    let body = transfer_from("ACC-2002").replace(r#""amount":10.50,"#, "");
    let (_, problem) = assert_titled_problem(transfer(&gw, &body).await, 400, "bad-request").await;
    assert_eq!(problem["detail"], "the request lacks json:$.amount");

    let resp = transfer(&gw, "{\"from_account\": \"ACC-1\", oops").await;
    assert_titled_problem(resp, 400, "invalid-json").await;
    assert!(log.lock().unwrap().is_empty());
}

/// The demo core's own SOAP service, end to end: its answers (an `ns7` prefix, a default
/// namespace, CDATA, gzip) and its faults.
#[tokio::test(flavor = "multi_thread")]
async fn the_demo_core_soap_service_end_to_end() {
    let core = demo_core("core-1").await;
    let gw = Gateway::start(&core_config(
        &[core],
        "",
        "",
        &format!(
            r#"
[[chains.account.filters]]
type = "soap"
action = "{ACC}#GetAccount"
path = "/soap/accounts"
namespaces = {{ acc = "{ACC}" }}
request = "<acc:GetAccount><acc:accountId>${{path:2}}</acc:accountId></acc:GetAccount>"
response = {{ root = "acc:GetAccountResponse/acc:account" }}
faults = {{ AccountNotFound = {{ status = 404, detail = "No such account" }} }}

[[chains.balance.filters]]
type = "soap"
version = "1.2"
action = "{ACC}#GetBalance"
path = "/soap/accounts"
namespaces = {{ acc = "{ACC}" }}
request = "<acc:GetBalance><acc:accountId>${{path:2}}</acc:accountId></acc:GetBalance>"
response = {{ root = "acc:GetBalanceResponse/acc:balance", fields = {{ account_id = "acc:accountId", available = {{ path = "acc:available", type = "number" }}, currency = "acc:currency" }} }}
faults = {{ AccountNotFound = {{ status = 404, detail = "No such account" }} }}

[[chains.transfer.filters]]
type = "soap"
action = "{ACC}#Transfer"
path = "/soap/accounts"
namespaces = {{ acc = "{ACC}" }}
request = "<acc:Transfer><acc:fromAccount>${{json:$.from}}</acc:fromAccount><acc:toAccount>${{json:$.to}}</acc:toAccount><acc:amount>${{json:$.amount}}</acc:amount><acc:currency>${{json:$.currency}}</acc:currency><acc:reference>${{json:$.reference}}</acc:reference></acc:Transfer>"
response = {{ root = "acc:TransferResponse", fields = {{ transfer_id = "acc:transferId", status = "acc:status" }} }}
faults = {{ InsufficientFunds = {{ status = 422, detail = "Insufficient funds" }}, InvalidRequest = {{ status = 400, detail = "Invalid transfer" }} }}

[[routes]]
id = "transfer"
upstream = "core"
chain = "transfer"
[routes.match]
path = "/v1/transfers"
methods = ["POST"]

[[routes]]
id = "balance"
upstream = "core"
chain = "balance"
[routes.match]
path_regex = "/v1/accounts/[A-Za-z0-9-]+/balance"

[[routes]]
id = "account"
upstream = "core"
chain = "account"
[routes.match]
path_regex = "/v1/accounts/[A-Za-z0-9-]+"
"#
        ),
    ));

    let resp = client()
        .get(gw.url("/v1/accounts/ACC-1001"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    let account: Value = resp.json().await.unwrap();
    assert_eq!(account["id"], "ACC-1001", "{account}");
    assert!(
        account["holder"].as_str().is_some_and(|h| !h.is_empty()),
        "{account}"
    );
    assert!(account["iban"].is_string(), "{account}");

    let resp = client()
        .get(gw.url("/v1/accounts/ACC-1001/balance"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", gw.stderr());
    let balance: Value = resp.json().await.unwrap();
    assert_eq!(balance["account_id"], "ACC-1001", "{balance}");
    assert!(balance["available"].is_number(), "{balance}");

    // A transfer, idempotent by its reference; then one the account cannot cover.
    let order = r#"{"from":"ACC-1001","to":"ACC-1003","amount":"1.25","currency":"EUR","reference":"e2e-1"}"#;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let resp = transfer(&gw, order).await;
        assert_eq!(resp.status(), 200, "{}", gw.stderr());
        let done: Value = resp.json().await.unwrap();
        assert!(
            done["transfer_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{done}"
        );
        ids.push(done["transfer_id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    let too_much = order
        .replace("1.25", "99999999.00")
        .replace("e2e-1", "e2e-2");
    let (_, problem) =
        assert_titled_problem(transfer(&gw, &too_much).await, 422, "soap-fault").await;
    assert_eq!(problem["detail"], "Insufficient funds");

    for path in ["/v1/accounts/NOPE-1", "/v1/accounts/NOPE-1/balance"] {
        let resp = client().get(gw.url(path)).send().await.unwrap();
        let (_, problem) = assert_titled_problem(resp, 404, "soap-fault").await;
        assert_eq!(problem["detail"], "No such account");
    }
}
