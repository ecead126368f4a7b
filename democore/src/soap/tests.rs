use std::io::Read;

use axum::body::Body;
use axum::http::Request;
use roxmltree::Document;

use super::*;
use crate::router;
use crate::test_util::*;

const ENV11: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const ENV12: &str = "http://www.w3.org/2003/05/soap-envelope";

fn envelope(env_ns: &str, op: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <e:Envelope xmlns:e=\"{env_ns}\" xmlns:a=\"{SERVICE_NS}\">\
         <e:Header/><e:Body>{op}</e:Body></e:Envelope>"
    )
}

fn post(content_type: &str) -> axum::http::request::Builder {
    Request::post("/soap/accounts").header("content-type", content_type)
}

fn soap11(action: &str, op: &str) -> Request<Body> {
    post("text/xml; charset=utf-8")
        .header("soapaction", format!("\"{SERVICE_NS}#{action}\""))
        .body(Body::from(envelope(ENV11, op)))
        .unwrap()
}

fn soap12(action: &str, op: &str) -> Request<Body> {
    post(&format!(
        "application/soap+xml; charset=utf-8; action=\"{SERVICE_NS}#{action}\""
    ))
    .body(Body::from(envelope(ENV12, op)))
    .unwrap()
}

fn get_account(id: &str) -> String {
    format!("<a:GetAccount><a:accountId>{id}</a:accountId></a:GetAccount>")
}

fn get_balance(id: &str) -> String {
    format!("<a:GetBalance><a:accountId>{id}</a:accountId></a:GetBalance>")
}

fn transfer(from: &str, to: &str, amount: &str, reference: &str) -> String {
    format!(
        "<a:Transfer><a:fromAccount>{from}</a:fromAccount><a:toAccount>{to}</a:toAccount>\
         <a:amount>{amount}</a:amount><a:currency>EUR</a:currency>\
         <a:reference>{reference}</a:reference></a:Transfer>"
    )
}

/// Status, headers and the answer's XML, gunzipped when it came gzipped.
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let (status, headers, body) = call(app, req).await;
    let xml = if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip")
    {
        let mut text = String::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        String::from_utf8(body).unwrap()
    };
    (status, headers, xml)
}

/// The text of the first element with this namespace and local name.
fn text_of(xml: &str, ns: Option<&str>, local: &str) -> Option<String> {
    let doc = Document::parse(xml).unwrap();
    let node = doc
        .descendants()
        .find(|n| n.tag_name().namespace() == ns && n.tag_name().name() == local)?;
    Some(node.text().unwrap_or_default().to_owned())
}

fn acc(xml: &str, local: &str) -> String {
    text_of(xml, Some(SERVICE_NS), local).unwrap_or_else(|| panic!("no {local} in {xml}"))
}

#[tokio::test]
async fn get_account_soap11() {
    let app = router("c");
    let (status, headers, xml) = send(&app, soap11("GetAccount", &get_account("ACC-1001"))).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(headers[header::CONTENT_TYPE], "text/xml; charset=utf-8");
    assert!(xml.contains("<ns7:GetAccountResponse"), "{xml}");
    assert!(xml.contains("<![CDATA[Ada Lovelace]]>"), "{xml}");
    let doc = Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().tag_name().namespace(), Some(ENV11));
    assert_eq!(acc(&xml, "id"), "ACC-1001");
    assert_eq!(acc(&xml, "holder"), "Ada Lovelace");
    assert_eq!(acc(&xml, "iban"), "DE89370400440532013000");
    assert_eq!(acc(&xml, "currency"), "EUR");
    assert_eq!(acc(&xml, "status"), "ACTIVE");
    // The card number the JSON API over-shares is not in this answer.
    assert!(!xml.contains("4111"), "{xml}");
}

#[tokio::test]
async fn get_balance_soap12() {
    let app = router("c");
    let (status, headers, xml) = send(&app, soap12("GetBalance", &get_balance("ACC-1002"))).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/soap+xml; charset=utf-8"
    );
    assert!(
        xml.contains(&format!("<GetBalanceResponse xmlns=\"{SERVICE_NS}\">")),
        "{xml}"
    );
    let doc = Document::parse(&xml).unwrap();
    assert_eq!(doc.root_element().tag_name().namespace(), Some(ENV12));
    assert_eq!(acc(&xml, "accountId"), "ACC-1002");
    assert_eq!(acc(&xml, "available"), "98000.00");
    assert_eq!(acc(&xml, "currency"), "GBP");
    assert!(acc(&xml, "asOf").ends_with('Z'));
}

/// Parameters without a prefix, in CDATA, after a BOM, with an empty
/// SOAPAction: all accepted.
#[tokio::test]
async fn lenient_request_shapes() {
    let app = router("c");
    let body = format!(
        "\u{feff}<soap:Envelope xmlns:soap=\"{ENV11}\"><soap:Body>\
         <GetBalance xmlns=\"{SERVICE_NS}\"><accountId><![CDATA[ ACC-1003 ]]></accountId>\
         </GetBalance></soap:Body></soap:Envelope>"
    );
    let req = post("text/xml")
        .header("soapaction", "\"\"")
        .body(Body::from(body))
        .unwrap();
    let (status, _, xml) = send(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(acc(&xml, "available"), "12.50");
    // Unqualified children of a qualified operation.
    let op = "<a:GetAccount><accountId>ACC-1002</accountId></a:GetAccount>";
    let (status, _, xml) = send(&app, soap12("GetAccount", op)).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(acc(&xml, "holder"), "Alan Turing");
}

#[tokio::test]
async fn transfer_is_idempotent_by_reference() {
    let app = router("c");
    let first = transfer("ACC-1001", "ACC-1003", "10.00", "INV-77");
    let (status, _, xml) = send(&app, soap11("Transfer", &first)).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert!(xml.contains("<ns2:TransferResponse"), "{xml}");
    let id = acc(&xml, "transferId");
    assert_eq!(acc(&xml, "status"), "accepted");

    // Again, in the other SOAP version: same transfer, no second debit.
    let (status, _, xml) = send(&app, soap12("Transfer", &first)).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_eq!(acc(&xml, "transferId"), id);

    let (_, v) = call_json(&app, get_req("/accounts/ACC-1001/balance")).await;
    assert_eq!(v["balance"], "1510.35");
    let (_, v) = call_json(&app, get_req("/accounts/ACC-1003/balance")).await;
    assert_eq!(v["balance"], "22.50");
    // The JSON API sees the same payment.
    let (_, v) = call_json(&app, get_req(&format!("/payments/{id}"))).await;
    assert_eq!(v["reference"], "INV-77");

    // The same reference for another transfer is refused.
    let other = transfer("ACC-1001", "ACC-1003", "11.00", "INV-77");
    let (status, _, xml) = send(&app, soap11("Transfer", &other)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        text_of(&xml, None, "faultcode").unwrap(),
        "soap:Client.InvalidRequest"
    );

    // To an IBAN outside the core.
    let out = transfer(
        "ACC-1001",
        "FR14 2004 1010 0505 0001 3M02 606",
        "1.00",
        "INV-78",
    );
    let (status, _, xml) = send(&app, soap11("Transfer", &out)).await;
    assert_eq!(status, StatusCode::OK, "{xml}");
    assert_ne!(acc(&xml, "transferId"), id);
}

#[tokio::test]
async fn client_faults_soap11() {
    let app = router("c");
    let cases = [
        ("GetAccount", get_account("ACC-9"), "AccountNotFound"),
        ("GetBalance", get_balance("ACC-9"), "AccountNotFound"),
        (
            "Transfer",
            transfer("ACC-9", "ACC-1001", "1.00", "R1"),
            "AccountNotFound",
        ),
        (
            "Transfer",
            transfer("ACC-1001", "ACC-9", "1.00", "R2"),
            "AccountNotFound",
        ),
        (
            "Transfer",
            transfer("ACC-1003", "ACC-1001", "100.00", "R3"),
            "InsufficientFunds",
        ),
        (
            "Transfer",
            transfer("ACC-1001", "ACC-1001", "1.00", "R4"),
            "InvalidRequest",
        ),
        (
            "Transfer",
            transfer("ACC-1001", "ACC-1003", "1.005", "R5"),
            "InvalidRequest",
        ),
    ];
    for (action, op, name) in cases {
        let (status, headers, xml) = send(&app, soap11(action, &op)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{op}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/xml; charset=utf-8");
        let code = text_of(&xml, None, "faultcode").unwrap();
        assert_eq!(code, format!("soap:Client.{name}"), "{op}");
        assert!(!text_of(&xml, None, "faultstring").unwrap().is_empty());
        // The detail names the fault by an element in the service namespace.
        let doc = Document::parse(&xml).unwrap();
        let detail = doc
            .descendants()
            .find(|n| n.tag_name().name() == "detail")
            .unwrap();
        let first = detail.first_element_child().unwrap();
        assert_eq!(first.tag_name().namespace(), Some(SERVICE_NS));
        assert_eq!(first.tag_name().name(), name);
    }
    // Nothing moved.
    let (_, v) = call_json(&app, get_req("/accounts/ACC-1003/balance")).await;
    assert_eq!(v["balance"], "12.50");
}

#[tokio::test]
async fn client_faults_soap12() {
    let app = router("c");
    let cases = [
        ("GetAccount", get_account("ACC-9"), "AccountNotFound"),
        (
            "Transfer",
            transfer("ACC-1003", "ACC-1001", "100.00", "R3"),
            "InsufficientFunds",
        ),
        ("GetAccount", "<a:GetAccount/>".to_owned(), "InvalidRequest"),
        // The action parameter names another operation.
        ("GetBalance", get_account("ACC-1001"), "InvalidRequest"),
    ];
    for (action, op, name) in cases {
        let (status, _, xml) = send(&app, soap12(action, &op)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{op}");
        let doc = Document::parse(&xml).unwrap();
        let values: Vec<_> = doc
            .descendants()
            .filter(|n| n.tag_name().namespace() == Some(ENV12) && n.tag_name().name() == "Value")
            .map(|n| n.text().unwrap())
            .collect();
        assert_eq!(values, ["env:Sender", &format!("acc:{name}")], "{xml}");
        // The subcode's prefix is bound to the service namespace.
        let subcode = doc
            .descendants()
            .find(|n| n.tag_name().name() == "Subcode")
            .unwrap();
        assert_eq!(subcode.lookup_namespace_uri(Some("acc")), Some(SERVICE_NS));
        assert!(!text_of(&xml, Some(ENV12), "Text").unwrap().is_empty());
    }
}

#[tokio::test]
async fn server_faults() {
    let app = router("c");
    let (status, _, xml) = send(&app, soap11("GetAccount", &get_account("ACC-FAIL"))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text_of(&xml, None, "faultcode").unwrap(), "soap:Server");
    assert!(text_of(&xml, None, "faultstring")
        .unwrap()
        .contains("at com.bank.core"));

    let op = transfer("ACC-1001", "ACC-FAIL", "1.00", "R9");
    let (status, _, xml) = send(&app, soap12("Transfer", &op)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(text_of(&xml, Some(ENV12), "Value").unwrap(), "env:Receiver");
    assert!(!xml.contains("Subcode"), "{xml}");
}

/// Requests the service cannot take: each a Client fault, none echoing the input.
#[tokio::test]
async fn bad_requests_are_client_faults() {
    let app = router("c");
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\
         <e:Envelope xmlns:e=\"{ENV11}\"><e:Body><a:GetAccount xmlns:a=\"{SERVICE_NS}\">\
         <a:accountId>&x;</a:accountId></a:GetAccount></e:Body></e:Envelope>"
    );
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY l0 \"ha\"><!ENTITY l1 \"&l0;&l0;&l0;\">]>\
         <e:Envelope xmlns:e=\"{ENV11}\"><e:Body>&l1;</e:Body></e:Envelope>"
    );
    let undeclared_entity = envelope(ENV11, &get_account("&secret;"));
    let soap11_raw = |body: String| {
        post("text/xml")
            .header("soapaction", "")
            .body(Body::from(body))
            .unwrap()
    };
    let requests = [
        soap11_raw(xxe),
        soap11_raw(laughs),
        soap11_raw(undeclared_entity),
        soap11_raw("<e:Envelope xmlns:e=\"oops".into()),
        soap11_raw(format!("<e:Envelope xmlns:e=\"{ENV11}\"/>")),
        soap11_raw(format!(
            "<e:Envelope xmlns:e=\"{ENV11}\"><e:Body/></e:Envelope>"
        )),
        soap11_raw(format!("<e:Other xmlns:e=\"{ENV11}\"/>")),
        soap11("Unknown", "<a:Unknown/>"),
        // GetAccount, but not in the service's namespace.
        soap11(
            "GetAccount",
            "<GetAccount><accountId>ACC-1001</accountId></GetAccount>",
        ),
        // The action names another operation.
        soap11("GetBalance", &get_account("ACC-1001")),
        // SOAP 1.1 without SOAPAction.
        post("text/xml")
            .body(Body::from(envelope(ENV11, &get_account("ACC-1001"))))
            .unwrap(),
        post("text/xml; charset=iso-8859-1")
            .header("soapaction", "")
            .body(Body::from(envelope(ENV11, &get_account("ACC-1001"))))
            .unwrap(),
        post("text/xml")
            .header("soapaction", "")
            .body(Body::from(b"<x>\xff</x>".to_vec()))
            .unwrap(),
        soap11(
            "Transfer",
            "<a:Transfer><a:fromAccount>ACC-1001</a:fromAccount></a:Transfer>",
        ),
    ];
    for req in requests {
        let (status, _, xml) = send(&app, req).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{xml}");
        assert_eq!(
            text_of(&xml, None, "faultcode").as_deref(),
            Some("soap:Client.InvalidRequest"),
            "{xml}"
        );
        assert!(!xml.contains("passwd") && !xml.contains("secret"), "{xml}");
    }
}

#[tokio::test]
async fn version_mismatch() {
    let app = router("c");
    // A SOAP 1.2 envelope sent as SOAP 1.1, and the reverse.
    let req = post("text/xml")
        .header("soapaction", "")
        .body(Body::from(envelope(ENV12, &get_account("ACC-1001"))))
        .unwrap();
    let (status, _, xml) = send(&app, req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        text_of(&xml, None, "faultcode").unwrap(),
        "soap:VersionMismatch"
    );
    // An Envelope in no namespace at all is a version this service does not know either.
    let req = post("text/xml")
        .header("soapaction", "")
        .body(Body::from("<Envelope><Body/></Envelope>"))
        .unwrap();
    let (_, _, xml) = send(&app, req).await;
    assert_eq!(
        text_of(&xml, None, "faultcode").unwrap(),
        "soap:VersionMismatch"
    );

    let req = post("application/soap+xml")
        .body(Body::from(envelope(ENV11, &get_account("ACC-1001"))))
        .unwrap();
    let (status, _, xml) = send(&app, req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        text_of(&xml, Some(ENV12), "Value").unwrap(),
        "env:VersionMismatch"
    );
}

#[tokio::test]
async fn gzip_when_allowed() {
    let app = router("c");
    let cases = [
        (Some("gzip, deflate"), true),
        (Some("br;q=1.0, GZIP;q=0.5"), true),
        (Some("*"), true),
        (Some("gzip;q=0, *"), false),
        (Some("*;q=0"), false),
        (Some("br, deflate"), false),
        (None, false),
    ];
    for (accept, gzipped) in cases {
        let mut req = soap11("GetAccount", &get_account("ACC-1001"));
        if let Some(accept) = accept {
            req.headers_mut()
                .insert(header::ACCEPT_ENCODING, HeaderValue::from_static(accept));
        }
        let (status, headers, xml) = send(&app, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get(header::CONTENT_ENCODING).is_some(),
            gzipped,
            "{accept:?}"
        );
        assert_eq!(headers[header::VARY], "accept-encoding");
        assert_eq!(acc(&xml, "holder"), "Ada Lovelace");
    }
    // Faults too.
    let mut req = soap12("GetAccount", &get_account("ACC-9"));
    req.headers_mut()
        .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
    let (status, headers, xml) = send(&app, req).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert!(xml.contains("acc:AccountNotFound"), "{xml}");
}

#[tokio::test]
async fn http_level_refusals() {
    let app = router("c");
    let json = post("application/json").body(Body::from("{}")).unwrap();
    let (status, _, _) = call(&app, json).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let big = post("text/xml")
        .header("soapaction", "")
        .body(Body::from(vec![b' '; BODY_LIMIT + 1]))
        .unwrap();
    let (status, _, _) = call(&app, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let (status, _, _) = call(&app, get_req("/soap/accounts")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn node_limit_bounds_parsing() {
    let many = "<x/>".repeat(5_000);
    let body = envelope(ENV11, &format!("<a:GetAccount>{many}</a:GetAccount>"));
    let fault = request::operation(Version::V11, None, body.as_bytes()).unwrap_err();
    assert_eq!(fault.code, fault::FaultCode::InvalidRequest);
}
