//! The response side: mapping, namespaces, encodings, and what is refused.

use serde_json::json;

use super::*;
use crate::soap::mapping;

const BALANCE: &str = r#"<acc:GetBalanceResponse><acc:balance><acc:accountId>ACC-1001</acc:accountId><acc:available>+0012.50</acc:available><acc:currency>EUR</acc:currency><acc:asOf>2024-05-01T10:00:00Z</acc:asOf></acc:balance></acc:GetBalanceResponse>"#;

fn balance_filter() -> Arc<dyn Filter> {
    filter(&base(
        r#"request = "<acc:GetBalance/>"
[response]
root = "/acc:GetBalanceResponse/acc:balance"
fields = { account_id = "acc:accountId", available = { path = "acc:available", type = "number" }, currency = "acc:currency", missing = { path = "acc:nope", type = "number" } }
"#,
    ))
}

#[test]
fn declared_fields_with_types_in_config_order() {
    let f = balance_filter();
    let (resp, json) = answer_with(
        &f,
        200,
        &[
            ("content-type", "text/xml; charset=utf-8"),
            ("etag", "\"xml-1\""),
            ("content-length", "999"),
        ],
        envelope11("acc", BALANCE).as_bytes(),
    )
    .unwrap();
    assert_eq!(resp.headers["content-type"], "application/json");
    assert!(resp.headers.get("etag").is_none());
    assert_eq!(
        json,
        json!({"account_id": "ACC-1001", "available": 12.50, "currency": "EUR", "missing": null})
    );
    let mut body = Bytes::from(envelope11("acc", BALANCE));
    let (mut resp, _) = http::Response::new(()).into_parts();
    now(f.on_response_body(&mut resp, &mut body, &mut ctx()));
    // Member order as configured, number digits as normalized from the XML.
    assert_eq!(
        &body[..],
        br#"{"account_id":"ACC-1001","available":12.50,"currency":"EUR","missing":null}"#
    );
}

#[test]
fn names_are_bound_by_namespace_uri_not_by_prefix() {
    let f = balance_filter();
    let expected =
        json!({"account_id": "ACC-1001", "available": 12.5, "currency": "EUR", "missing": null});
    // Any prefix for the service namespace, and any for the envelope's.
    for prefix in ["ns7", "a", "soap", "xsd_ns.1"] {
        let body = envelope11(prefix, &BALANCE.replace("acc:", &format!("{prefix}:")));
        assert_eq!(answer(&f, &body), expected, "{prefix}");
    }
    // A default namespace, declared on the answer's element.
    let body = format!(
        r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP11}"><SOAP-ENV:Header/><SOAP-ENV:Body><GetBalanceResponse xmlns="{ACC}">{}</GetBalanceResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"#,
        BALANCE
            .replace("acc:", "")
            .replace("<GetBalanceResponse>", "")
            .replace("</GetBalanceResponse>", "")
    );
    assert_eq!(answer(&f, &body), expected);
    // The same local names in another namespace are not the same elements.
    let body = format!(
        r#"<s:Envelope xmlns:s="{SOAP11}" xmlns:acc="urn:other"><s:Body>{BALANCE}</s:Body></s:Envelope>"#
    );
    assert_problem(
        &refused(&f, 200, body.as_bytes()),
        502,
        "upstream-malformed",
    );
    // Nor are unqualified ones.
    let body = envelope11("acc", &BALANCE.replace("acc:", ""));
    assert_problem(
        &refused(&f, 200, body.as_bytes()),
        502,
        "upstream-malformed",
    );
}

#[test]
fn wildcards_attributes_arrays_objects_and_nil() {
    let f = filter(&base(
        r#"request = "<acc:ListTransactions/>"
[response]
root = "acc:ListTransactionsResponse"
fields.account = "*:account/@id"
fields.count = { path = "acc:transactions/@count", type = "number" }
fields.open = { path = "acc:open", type = "boolean" }
fields.closed = { path = "acc:closed", type = "boolean" }
fields.note = { path = "acc:note", type = "string" }
fields.empty_number = { path = "acc:empty", type = "number" }
fields.owner = { path = "acc:owner", fields = { name = "acc:name", city = "acc:address/acc:city" } }
fields.tags = { path = "acc:tags/acc:tag", type = "array" }
fields.amounts = { path = "acc:transactions/acc:transaction/acc:amount", type = "array", items = "number" }
fields.none = { path = "acc:nothing/acc:x", type = "array" }
fields.transactions = { path = "acc:transactions/acc:transaction", type = "array", fields = { id = "@id", amount = { path = "acc:amount", type = "number" }, booked = { path = "acc:booked", type = "boolean" }, raw = { path = ".", type = "generic" } } }
"#,
    ));
    let body = envelope11(
        "t",
        r#"<t:ListTransactionsResponse xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <other:account xmlns:other="urn:any" id="ACC-1"/>
  <t:open> 1 </t:open><t:closed>false</t:closed>
  <t:note xsi:nil="true"/>
  <t:empty> </t:empty>
  <t:owner><t:name><![CDATA[Müller & <Söhne>]]></t:name><t:address><t:city>Köln</t:city></t:address></t:owner>
  <t:tags><t:tag>a</t:tag><t:tag/><t:tag>c</t:tag></t:tags>
  <t:transactions count="2">
    <t:transaction id="T1"><t:amount>-5.00</t:amount><t:booked>true</t:booked></t:transaction>
    <t:transaction id="T2"><t:amount>.5</t:amount><t:booked>0</t:booked></t:transaction>
  </t:transactions>
</t:ListTransactionsResponse>"#,
    );
    assert_eq!(
        answer(&f, &body),
        json!({
            "account": "ACC-1",
            "count": 2,
            "open": true,
            "closed": false,
            "note": null,
            "empty_number": null,
            "owner": {"name": "Müller & <Söhne>", "city": "Köln"},
            "tags": ["a", "", "c"],
            "amounts": [-5.00, 0.5],
            "none": [],
            "transactions": [
                {"id": "T1", "amount": -5.0, "booked": true, "raw": {"@id": "T1", "amount": "-5.00", "booked": "true"}},
                {"id": "T2", "amount": 0.5, "booked": false, "raw": {"@id": "T2", "amount": ".5", "booked": "0"}},
            ],
        })
    );
}

#[test]
fn values_that_do_not_fit_their_type_are_502() {
    let f = filter(&base(
        r#"request = "<a/>"
response = { fields = { n = { path = "acc:n", type = "number" }, b = { path = "acc:b", type = "boolean" } } }
"#,
    ));
    for (n, b) in [
        ("INF", "true"),
        ("1,5", "true"),
        ("0x10", "true"),
        ("12", "yes"),
    ] {
        let body = envelope11(
            "acc",
            &format!("<acc:R><acc:n>{n}</acc:n><acc:b>{b}</acc:b></acc:R>"),
        );
        let p = refused(&f, 200, body.as_bytes());
        assert_problem(&p, 502, "upstream-malformed");
        assert_eq!(p.detail, None);
    }
}

#[test]
fn xml_numbers_become_json_numbers_with_their_digits() {
    for (xml, expected) in [
        ("0", "0"),
        ("-0", "-0"),
        ("+1.50", "1.50"),
        ("007", "7"),
        ("-007.10", "-7.10"),
        (".5", "0.5"),
        ("5.", "5"),
        ("1.5E3", "1.5e3"),
        ("1e-07", "1e-07"),
        ("-2E+10", "-2e+10"),
        (
            "12345678901234567890.123456789",
            "12345678901234567890.123456789",
        ),
    ] {
        let json = mapping::json_number(xml).unwrap_or_else(|| panic!("{xml}"));
        assert_eq!(json, expected);
        serde_json::from_str::<serde_json::Value>(&json).unwrap();
    }
    for bad in [
        "", "-", "+", ".", "-.", "e5", "1e", "1e+", "INF", "-INF", "NaN", "1,5", "1.2.3", "0x1",
        "1 000", "--1", "1e5.5", "١٢",
    ] {
        assert_eq!(mapping::json_number(bad), None, "{bad}");
    }
}

#[test]
fn the_generic_mapping() {
    let f = filter(&base("request = \"<a/>\""));
    let body = envelope11(
        "p",
        r#"<p:GetAccountResponse><p:account status="open" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="p:Account">
    <p:id>ACC-1</p:id>
    <p:holder><![CDATA[Ann "A" <Lee>]]></p:holder>
    <p:alias>x</p:alias><p:alias>y</p:alias>
    <p:closedAt xsi:nil="true"/>
    <p:empty/>
    <p:amount currency="EUR">10.00</p:amount>
    <p:mixed>one <p:b>two</p:b> three</p:mixed>
    <q:id xmlns:q="urn:q">other-ns</q:id>
  </p:account></p:GetAccountResponse>"#,
    );
    assert_eq!(
        answer(&f, &body),
        json!({"account": {
            "@status": "open",
            "id": ["ACC-1", "other-ns"],
            "holder": "Ann \"A\" <Lee>",
            "alias": ["x", "y"],
            "closedAt": null,
            "empty": "",
            "amount": {"@currency": "EUR", "#text": "10.00"},
            "mixed": {"b": "two", "#text": "one  three"},
        }})
    );
    // With a root and no fields: the generic mapping of the root.
    let f = filter(&base(
        "request = \"<a/>\"\nresponse = { root = \"acc:GetAccountResponse/acc:account/acc:amount\" }",
    ));
    assert_eq!(
        answer(
            &f,
            &body
                .replace("<p:", "<acc:")
                .replace("</p:", "</acc:")
                .replace("xmlns:p=", "xmlns:acc=")
        ),
        json!({"@currency": "EUR", "#text": "10.00"})
    );
    // An empty Body: an empty object.
    let f = filter(&base("request = \"<a/>\""));
    assert_eq!(answer(&f, &envelope11("acc", "")), json!({}));
}

#[test]
fn soap12_answers_and_answers_in_the_other_version() {
    let f = balance_filter();
    let expected =
        json!({"account_id": "ACC-1001", "available": 12.5, "currency": "EUR", "missing": null});
    let body = format!(
        r#"<env:Envelope xmlns:env="{SOAP12}"><env:Body xmlns:m="{ACC}">{}</env:Body></env:Envelope>"#,
        BALANCE.replace("acc:", "m:")
    );
    assert_eq!(answer(&f, &body), expected);
}

#[test]
fn bom_utf16_and_compressed_answers() {
    let f = balance_filter();
    let xml = envelope11("ns7", &BALANCE.replace("acc:", "ns7:"));
    let expected =
        json!({"account_id": "ACC-1001", "available": 12.5, "currency": "EUR", "missing": null});
    let with_bom = [&b"\xEF\xBB\xBF"[..], xml.as_bytes()].concat();
    let utf16le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(xml.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf16be: Vec<u8> = [0xFE, 0xFF]
        .into_iter()
        .chain(xml.encode_utf16().flat_map(u16::to_be_bytes))
        .collect();
    let zlib = {
        use std::io::Write;
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(xml.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let raw_deflate = {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(xml.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let gzipped_with_bom = gzip(&with_bom);
    for (name, body, encoding) in [
        ("bom", &with_bom, None),
        ("utf-16le", &utf16le, None),
        ("utf-16be", &utf16be, None),
        ("gzip", &gzipped_with_bom, Some("gzip")),
        ("x-gzip", &gzipped_with_bom, Some("identity, X-GZIP")),
        ("zlib deflate", &zlib, Some("deflate")),
        ("raw deflate", &raw_deflate, Some("deflate")),
    ] {
        let mut headers = vec![("content-type", "text/xml")];
        headers.extend(encoding.map(|e| ("content-encoding", e)));
        let (resp, json) =
            answer_with(&f, 200, &headers, body).unwrap_or_else(|p| panic!("{name}: {p:?}"));
        assert_eq!(json, expected, "{name}");
        assert!(resp.headers.get("content-encoding").is_none(), "{name}");
    }
    for (body, encoding) in [
        (&b"not gzip"[..], "gzip"),
        (&gzip(xml.as_bytes())[..10], "gzip"),
        (xml.as_bytes(), "br"),
        (xml.as_bytes(), "gzip, gzip"),
    ] {
        let p = answer_with(&f, 200, &[("content-encoding", encoding)], body).unwrap_err();
        assert_problem(&p, 502, "upstream-malformed");
    }
    // An odd UTF-16 length and invalid UTF-8.
    for body in [&utf16le[..utf16le.len() - 1], b"<a>\xff</a>"] {
        assert_problem(&refused(&f, 200, body), 502, "upstream-malformed");
    }
}

#[test]
fn size_limits_hold_also_for_decompression_bombs() {
    let f = filter(&base("request = \"<a/>\"\nmax_response_bytes = 4096"));
    // 100 MB of zeros in about 100 KB: reading stops at the cap.
    let bomb = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..100 {
            e.write_all(&zeros).unwrap();
        }
        e.finish().unwrap()
    };
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let p = answer_with(&f, 200, &[("content-encoding", "gzip")], &bomb).unwrap_err();
    assert_problem(&p, 502, "upstream-response-too-large");

    let big = envelope11("acc", &format!("<acc:R>{}</acc:R>", "x".repeat(5000)));
    assert_problem(
        &refused(&f, 200, big.as_bytes()),
        502,
        "upstream-response-too-large",
    );
    let p = answer_with(
        &f,
        200,
        &[("content-encoding", "gzip")],
        &gzip(big.as_bytes()),
    )
    .unwrap_err();
    assert_problem(&p, 502, "upstream-response-too-large");

    // XML under the cap whose JSON would be over it: quotes become `\"`.
    let quotes = envelope11("acc", &format!("<acc:R>{}</acc:R>", "\"".repeat(3000)));
    assert!(quotes.len() < 4096);
    assert_problem(
        &refused(&f, 200, quotes.as_bytes()),
        502,
        "upstream-response-too-large",
    );

    // Nesting deeper than the JSON may go.
    let deep = envelope11(
        "acc",
        &format!(
            "{}x{}",
            "<acc:d>".repeat(mapping::MAX_DEPTH + 1),
            "</acc:d>".repeat(mapping::MAX_DEPTH + 1)
        ),
    );
    let f = filter(&base("request = \"<a/>\""));
    assert_problem(
        &refused(&f, 200, deep.as_bytes()),
        502,
        "upstream-malformed",
    );
    let shallow = envelope11(
        "acc",
        &format!(
            "{}x{}",
            "<acc:d>".repeat(mapping::MAX_DEPTH),
            "</acc:d>".repeat(mapping::MAX_DEPTH)
        ),
    );
    answer(&f, &shallow);
}

#[test]
fn dtds_and_entities_are_refused() {
    let f = filter(&base("request = \"<a/>\""));
    let envelope = |prolog: &str, text: &str| {
        format!(
            r#"{prolog}<s:Envelope xmlns:s="{SOAP11}"><s:Body><r>{text}</r></s:Body></s:Envelope>"#
        )
    };
    let xxe = envelope(
        r#"<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"#,
        "&xxe;",
    );
    let billion_laughs = envelope(
        r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>"#,
        "&lol9;",
    );
    let external_dtd = envelope(
        r#"<!-- c --><!DOCTYPE s:Envelope SYSTEM "http://attacker.example/evil.dtd">"#,
        "x",
    );
    let empty_doctype = envelope(
        "<?xml version=\"1.0\"?>\n<!-- a -->\n<?pi x?>\n<!DOCTYPE x>",
        "x",
    );
    let lowercase = envelope("<!doctype x>", "x");
    let undefined_entity = envelope("", "&xxe;");
    for body in [
        xxe,
        billion_laughs,
        external_dtd,
        empty_doctype,
        lowercase,
        undefined_entity,
    ] {
        let p = refused(&f, 200, body.as_bytes());
        assert_problem(&p, 502, "upstream-malformed");
        assert_eq!(p.detail, None);
    }
    // The prolog check alone, without the parser's.
    for (text, doctype) in [
        ("<!DOCTYPE x><x/>", true),
        (
            " \n<?xml version=\"1.0\"?>\n<!-- <x/> -->\n<?pi?><!doctype x []><x/>",
            true,
        ),
        ("<!-- <!DOCTYPE x> --><x/>", false),
        ("<x><![CDATA[<!DOCTYPE x>]]></x>", false),
        ("<?pi <!DOCTYPE x> ?><x/>", false),
        ("<!-- unclosed <!DOCTYPE x>", false),
        ("<!DOCTYP", false),
        ("", false),
    ] {
        assert_eq!(crate::soap::xml::has_doctype(text), doctype, "{text}");
    }
    // Predefined entities and character references are plain text.
    let body = envelope("", "&lt;&amp;&#233;&#x41;");
    assert_eq!(answer(&f, &body), json!("<&éA"));
    // The word DOCTYPE in the document itself is text.
    let body = envelope("", "<![CDATA[<!DOCTYPE x>]]>");
    assert_eq!(answer(&f, &body), json!("<!DOCTYPE x>"));
}

#[test]
fn malformed_answers_are_502_without_core_internals() {
    let f = balance_filter();
    for body in [
        "".to_owned(),
        "<html><body>java.lang.NullPointerException at com.bank.Core</body></html>".to_owned(),
        "{\"error\":\"java.lang.NullPointerException\"}".to_owned(),
        format!("<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><acc:R>"),
        format!("<s:Envelope xmlns:s=\"{SOAP11}\"><s:Header/></s:Envelope>"),
        "<s:Envelope xmlns:s=\"urn:not-soap\"><s:Body/></s:Envelope>".to_owned(),
        format!("<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><x:R/></s:Body></s:Envelope>"),
    ] {
        for status in [200, 500] {
            let p = refused(&f, status, body.as_bytes());
            assert_problem(&p, 502, "upstream-malformed");
            assert_eq!(p.title, "The core's answer could not be read");
            assert_eq!(p.detail, None);
        }
    }
    // An envelope without what the mapping needs.
    let lacking = envelope11("acc", "<acc:GetBalanceResponse/>");
    assert_problem(
        &refused(&f, 200, lacking.as_bytes()),
        502,
        "upstream-malformed",
    );
    // A readable envelope without a Fault, under an error status.
    for body in [lacking, envelope11("acc", BALANCE)] {
        for status in [500, 503, 404] {
            let p = refused(&f, status, body.as_bytes());
            assert_problem(&p, 502, "upstream-failed");
            assert_eq!(p.detail, None);
        }
    }
}
