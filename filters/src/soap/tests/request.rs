//! The request side: the envelope, its placeholders, and the head the core gets.

use std::collections::BTreeMap;

use super::*;
use crate::Consumer;

const GET_BALANCE: &str =
    "request = \"<acc:GetBalance><acc:accountId>${path:2}</acc:accountId></acc:GetBalance>\"";

/// The Body content of an envelope the filter made (and checks the rest of it).
fn body_of(envelope: &str, version_ns: &str) -> String {
    let doc = roxmltree::Document::parse(envelope).unwrap_or_else(|e| panic!("{e}: {envelope}"));
    let root = doc.root_element();
    assert_eq!(root.tag_name().namespace(), Some(version_ns));
    assert_eq!(root.tag_name().name(), "Envelope");
    let start = envelope.find("<soap:Body>").unwrap() + "<soap:Body>".len();
    let end = envelope.rfind("</soap:Body>").unwrap();
    envelope[start..end].to_owned()
}

#[test]
fn soap11_request_head_and_envelope() {
    let f = filter(&base(GET_BALANCE));
    let (req, envelope) = send_with(
        &f,
        &mut ctx(),
        "GET",
        "http://gw.example/v1/accounts/ACC-1001/balance?x=1",
        &[
            ("accept", "application/json"),
            ("accept-encoding", "br"),
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(req.method, http::Method::POST);
    // The path and query are the config's; scheme and authority are kept for the Host.
    assert_eq!(req.uri.to_string(), "http://gw.example/soap/accounts");
    assert_eq!(req.headers["content-type"], "text/xml; charset=utf-8");
    assert_eq!(
        req.headers["soapaction"],
        "\"urn:corridor:democore:accounts:1#GetBalance\""
    );
    assert_eq!(req.headers["accept"], "text/xml");
    assert_eq!(req.headers["accept-encoding"], "gzip, deflate");
    assert!(req.headers.get("content-encoding").is_none());
    assert!(envelope.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"));
    assert!(envelope.contains(&format!("xmlns:acc=\"{ACC}\"")));
    assert_eq!(
        body_of(&envelope, SOAP11),
        "<acc:GetBalance><acc:accountId>ACC-1001</acc:accountId></acc:GetBalance>"
    );
    assert!(!envelope.contains("soap:Header"));
}

#[test]
fn soap12_request_head() {
    let f = filter(&base(&format!(
        "version = \"1.2\"\nmethod = \"PUT\"\n{GET_BALANCE}"
    )));
    let (req, envelope) = send_with(
        &f,
        &mut ctx(),
        "GET",
        "/v1/accounts/A/balance",
        &[("soapaction", "\"smuggled\"")],
        b"",
    )
    .unwrap();
    assert_eq!(req.method, http::Method::PUT);
    assert_eq!(req.uri, "/soap/accounts");
    assert_eq!(
        req.headers["content-type"],
        "application/soap+xml; charset=utf-8; action=\"urn:corridor:democore:accounts:1#GetBalance\""
    );
    assert_eq!(req.headers["accept"], "application/soap+xml");
    // 1.2 carries the action in the Content-Type only: a client's SOAPAction goes.
    assert!(req.headers.get("soapaction").is_none());
    body_of(&envelope, SOAP12);

    let f = filter("version = \"1.2\"\npath = \"/s\"\nrequest = \"<Ping/>\"");
    let (req, _) = send(&f, "/ping", "").unwrap();
    assert_eq!(
        req.headers["content-type"],
        "application/soap+xml; charset=utf-8"
    );
    let f = filter("path = \"/s\"\nrequest = \"<Ping/>\"");
    let (req, _) = send(&f, "/ping", "").unwrap();
    assert_eq!(req.headers["soapaction"], "\"\"");
}

#[test]
fn every_placeholder_source() {
    let f = filter(&base(
        r#"request = """<acc:T a="${query:mode}"><acc:ref>${json:$.reference}</acc:ref><acc:amount>${json:$.amount}</acc:amount><acc:n>${json:$.n}</acc:n><acc:urgent>${json:$.urgent}</acc:urgent><acc:seg>${path:1}</acc:seg><acc:h>${header:x-channel}</acc:h><acc:c>${consumer:id}</acc:c><acc:plan>${consumer:plan}</acc:plan><acc:attr>${attr:tenant}</acc:attr><acc:cur>${query:currency|EUR}</acc:cur><acc:item>${json:$.items[1].id}</acc:item></acc:T>"""
soap_header = "<acc:Caller id='${consumer:id}'/>""#,
    ));
    let mut ctx = ctx();
    ctx.consumer = Some(Consumer {
        id: "acme".into(),
        metadata: BTreeMap::from([("plan".to_owned(), "gold".to_owned())]),
    });
    ctx.attributes.insert("tenant".into(), "t-9".into());
    let body = br#"{"reference":"inv 42","amount":10.50,"n":12345678901234567890123,"urgent":true,"items":[{"id":1},{"id":"b"}],"x":{"amount":1}}"#;
    let (_, envelope) = send_with(
        &f,
        &mut ctx,
        "POST",
        "/v1/transfers%20x/now?mode=fast+lane&currency=",
        &[
            ("x-channel", "mobile"),
            ("content-type", "application/json"),
        ],
        body,
    )
    .unwrap();
    assert!(
        envelope.contains("<soap:Header><acc:Caller id='acme'/></soap:Header>"),
        "{envelope}"
    );
    assert_eq!(
        body_of(&envelope, SOAP11),
        "<acc:T a=\"fast lane\"><acc:ref>inv 42</acc:ref><acc:amount>10.50</acc:amount>\
         <acc:n>12345678901234567890123</acc:n><acc:urgent>true</acc:urgent>\
         <acc:seg>transfers x</acc:seg><acc:h>mobile</acc:h><acc:c>acme</acc:c>\
         <acc:plan>gold</acc:plan><acc:attr>t-9</acc:attr><acc:cur></acc:cur>\
         <acc:item>b</acc:item></acc:T>"
    );
    // Defaults fill in for what is missing.
    let (_, envelope) = send_with(
        &f,
        &mut ctx,
        "POST",
        "/v1/t/now?mode=slow",
        &[("x-channel", "web")],
        br#"{"reference":"r","amount":"1","n":1,"urgent":false,"items":[0,{"id":2}]}"#,
    )
    .unwrap();
    assert!(envelope.contains("<acc:cur>EUR</acc:cur>"), "{envelope}");
    assert!(
        envelope.contains("<acc:urgent>false</acc:urgent>"),
        "{envelope}"
    );
}

#[test]
fn numbers_keep_their_digits_even_with_duplicates_and_escapes() {
    let f = filter(&base("request = \"<acc:A>${json:$.a.b}</acc:A>\""));
    for (body, expected) in [
        (r#"{"a":{"b":1.10E+2}}"#, "1.10E+2"),
        (
            r#"{ "a" : { "x" : [1, {"b":2}], "b" : -0.000 } }"#,
            "-0.000",
        ),
        // The parsed document keeps the last duplicate; so does the envelope.
        (r#"{"a":{"b":1,"b":2.50}}"#, "2.50"),
        (r#"{"a":{"\u0062":7.0}}"#, "7.0"),
    ] {
        let (_, envelope) = send(&f, "/", body).unwrap();
        assert!(
            envelope.contains(&format!("<acc:A>{expected}</acc:A>")),
            "{body}: {envelope}"
        );
    }
    let f = filter(&base("request = \"<acc:A>${json:$.list[2]}</acc:A>\""));
    let (_, envelope) = send(&f, "/", r#"{"list":[ 1 , [2,3], 3.000 ]}"#).unwrap();
    assert!(envelope.contains("<acc:A>3.000</acc:A>"), "{envelope}");
}

#[test]
fn values_are_escaped_and_cannot_add_markup() {
    let f = filter(&base(
        "request = \"<acc:A note='${json:$.note}'>${json:$.text}</acc:A>\"",
    ));
    let body = serde_json::json!({
        "note": "a'b\"c<d>&e\tf\ng",
        "text": "</acc:A><acc:Admin>yes</acc:Admin><![CDATA[x]]>\r\u{e9}",
    });
    let (_, envelope) = send(&f, "/", &body.to_string()).unwrap();
    let doc = roxmltree::Document::parse(&envelope).unwrap();
    let a = doc
        .descendants()
        .find(|n| n.tag_name().name() == "A")
        .unwrap();
    assert_eq!(a.attribute("note"), Some("a'b\"c<d>&e\tf\ng"));
    assert_eq!(
        a.text(),
        Some("</acc:A><acc:Admin>yes</acc:Admin><![CDATA[x]]>\r\u{e9}")
    );
    assert_eq!(a.children().count(), 1, "{envelope}");
    assert!(!doc.descendants().any(|n| n.tag_name().name() == "Admin"));
}

#[test]
fn what_cannot_fill_the_template_is_a_400_naming_the_placeholder() {
    let f = filter(&base(
        "request = \"<acc:A>${json:$.account.id}</acc:A><acc:B>${query:q|d}</acc:B>\"",
    ));
    let secret = "4111111111111111";
    for (body, detail) in [
        ("".to_owned(), "the request lacks json:$.account.id"),
        (
            r#"{"other":1}"#.to_owned(),
            "the request lacks json:$.account.id",
        ),
        (
            r#"{"account":{"id":null}}"#.to_owned(),
            "the request lacks json:$.account.id",
        ),
        (
            format!(r#"{{"account":{{"id":["{secret}"]}}}}"#),
            "json:$.account.id is not a string, number or boolean",
        ),
        (
            format!(r#"{{"account":{{"id":"{secret}\u0001"}}}}"#),
            "json:$.account.id holds a character XML cannot carry",
        ),
    ] {
        let p = send(&f, "/", &body).unwrap_err();
        assert_problem(&p, 400, "bad-request");
        let d = p.detail.unwrap();
        assert_eq!(d, detail);
        assert!(!d.contains(secret));
    }
    let f = filter(&base("request = \"<acc:A>${json:$.ids[*]}</acc:A>\""));
    let p = send(&f, "/", r#"{"ids":["a","b"]}"#).unwrap_err();
    assert_eq!(
        p.detail.unwrap(),
        "json:$.ids[*] selects more than one value"
    );
    // The one value of a wildcard is fine.
    assert!(send(&f, "/", r#"{"ids":["a"]}"#).is_ok());

    for (options, uri, headers, detail) in [
        ("${path:5}", "/v1/a", &[][..], "the request lacks path:5"),
        ("${path:1}", "/v1//x", &[][..], "the request lacks path:1"),
        ("${path:1}", "/v1/%FF", &[][..], "path:1 is not UTF-8 text"),
        (
            "${query:q}",
            "/v1?p=1",
            &[][..],
            "the request lacks query:q",
        ),
        (
            "${header:x-h}",
            "/",
            &[][..],
            "the request lacks header:x-h",
        ),
        (
            "${consumer:id}",
            "/",
            &[][..],
            "the request lacks consumer:id",
        ),
        (
            "${consumer:plan}",
            "/",
            &[][..],
            "the request lacks consumer:plan",
        ),
        (
            "${attr:tenant}",
            "/",
            &[][..],
            "the request lacks attr:tenant",
        ),
    ] {
        let f = filter(&base(&format!("request = \"<acc:A>{options}</acc:A>\"")));
        let p = send_with(&f, &mut ctx(), "GET", uri, headers, b"").unwrap_err();
        assert_problem(&p, 400, "bad-request");
        assert_eq!(p.detail.as_deref(), Some(detail), "{options}");
    }
}

#[test]
fn a_body_that_is_not_json_is_400_without_quoting_it() {
    let f = filter(&base("request = \"<acc:A>${json:$.a}</acc:A>\""));
    for (body, headers, detail) in [
        (&br#"{"a":"s3cret""#[..], &[][..], "the body ends early"),
        (b"a=s3cret", &[][..], "syntax error"),
        (b"{\"a\":\"\xff s3cret\"}", &[][..], "not UTF-8"),
        (
            br#"{"a":"s3cret"}"#,
            &[("content-encoding", "gzip")][..],
            "a compressed body cannot be read",
        ),
    ] {
        let p = send_with(&f, &mut ctx(), "POST", "/", headers, body).unwrap_err();
        assert_problem(&p, 400, "invalid-json");
        let d = p.detail.unwrap();
        assert!(d.contains(detail), "{d}");
        assert!(!d.contains("s3cret"), "{d}");
    }
    // A template that reads no JSON ignores the body, whatever it is.
    let f = filter(&base(GET_BALANCE));
    let (_, envelope) = send(&f, "/v1/accounts/A1", "not json").unwrap();
    assert!(envelope.contains(">A1<"));
}
