//! What the `soap` filter costs per call, through the `Filter` trait as the gateway calls it:
//! building a 2 KB SOAP request envelope from a JSON body, and mapping a 2 KB answer
//! envelope to JSON (declared fields, the generic mapping, and the same answer gzipped).
//!
//! The filter never waits, so one poll finishes each call: no runtime is measured.

use std::future::Future;
use std::hint::black_box;
use std::io::Write;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use corridor_filters::{BuildContext, Filter, FilterConfig, Flow, RequestContext};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};

const ACC: &str = "urn:corridor:democore:accounts:1";

fn filter(options: &str) -> Arc<dyn Filter> {
    let text = format!(
        "type = \"soap\"\npath = \"/soap/accounts\"\naction = \"{ACC}#Op\"\n\
         namespaces = {{ acc = \"{ACC}\" }}\n{options}"
    );
    toml::from_str::<FilterConfig>(&text)
        .unwrap()
        .build(&BuildContext::default())
        .unwrap()
}

fn now<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the soap filter waited"),
    }
}

fn ctx() -> RequestContext {
    RequestContext::new("r-1".into(), "bench".into(), None)
}

/// A payment order: 24 values from the JSON body, the path and a header.
fn request_filter() -> (Arc<dyn Filter>, Bytes) {
    let fields = [
        "fromAccount",
        "toAccount",
        "toIban",
        "toBic",
        "toName",
        "amount",
        "currency",
        "reference",
        "endToEndId",
        "purpose",
        "executionDate",
        "urgency",
        "chargeBearer",
        "ultimateDebtor",
        "ultimateCreditor",
        "remittance1",
        "remittance2",
        "street",
        "city",
        "postCode",
        "country",
    ];
    // `xsi` is declared on the element; `xsd:string` is only an attribute's text.
    let mut template = String::from(
        "<acc:Transfer xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\
         <acc:channel>${header:x-channel|api}</acc:channel><acc:order>${path:2}</acc:order>",
    );
    let mut json = serde_json::Map::new();
    for field in fields {
        template.push_str(&format!(
            "<acc:{field} xsi:type=\"xsd:string\">${{json:$.order.{field}}}</acc:{field}>"
        ));
        json.insert(
            field.into(),
            format!("{field}-value & <text> 0123456789").into(),
        );
    }
    json.insert("amount".into(), serde_json::json!(1234.50));
    template.push_str("<acc:flags urgent=\"${json:$.urgent}\"/></acc:Transfer>");
    let options = format!(
        "request = '''{template}'''\n\
         soap_header = \"<acc:Caller>${{consumer:id|anonymous}}</acc:Caller>\""
    );
    let body = serde_json::json!({ "order": json, "urgent": true }).to_string();
    (filter(&options), Bytes::from(body))
}

/// A GetAccount answer with 12 transactions, about 2 KB.
fn answer() -> String {
    let mut transactions = String::new();
    for i in 0..12 {
        transactions.push_str(&format!(
            "<ns7:transaction id=\"T{i}\"><ns7:amount>-{i}.50</ns7:amount><ns7:booked>true</ns7:booked><ns7:text><![CDATA[Card payment #{i}]]></ns7:text></ns7:transaction>"
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:ns7=\"{ACC}\"><SOAP-ENV:Body><ns7:GetAccountResponse><ns7:account><ns7:id>ACC-1001</ns7:id><ns7:holder><![CDATA[Ann Lee & Co]]></ns7:holder><ns7:iban>DE89370400440532013000</ns7:iban><ns7:currency>EUR</ns7:currency><ns7:status>open</ns7:status><ns7:available>1250.50</ns7:available><ns7:transactions>{transactions}</ns7:transactions></ns7:account></ns7:GetAccountResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
}

const FIELDS: &str = r#"
[response]
root = "acc:GetAccountResponse/acc:account"
fields = { id = "acc:id", holder = "acc:holder", iban = "acc:iban", currency = "acc:currency", status = "acc:status", available = { path = "acc:available", type = "number" }, transactions = { path = "acc:transactions/acc:transaction", type = "array", fields = { id = "@id", amount = { path = "acc:amount", type = "number" }, booked = { path = "acc:booked", type = "boolean" }, text = "acc:text" } } }
"#;

fn soap(c: &mut Criterion) {
    let mut group = c.benchmark_group("soap");

    let (f, body) = request_filter();
    let (head, _) = http::Request::get("/v1/transfers/ord-1")
        .header("x-channel", "mobile")
        .body(())
        .unwrap()
        .into_parts();
    let mut probe = (head.clone(), body.clone());
    assert!(matches!(
        now(f.on_request_body(&mut probe.0, &mut probe.1, &mut ctx())),
        Flow::Continue
    ));
    let envelope_len = probe.1.len();
    assert!((1800..2600).contains(&envelope_len), "{envelope_len} bytes");
    group.bench_function("request_envelope_2kb", |b| {
        b.iter_batched(
            || (head.clone(), body.clone(), ctx()),
            |(mut head, mut body, mut ctx)| {
                now(f.on_request_body(&mut head, &mut body, &mut ctx));
                black_box(body)
            },
            BatchSize::SmallInput,
        )
    });

    let xml = answer();
    assert!((1800..2600).contains(&xml.len()), "{} bytes", xml.len());
    let gzipped = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(xml.as_bytes()).unwrap();
        Bytes::from(e.finish().unwrap())
    };
    let xml = Bytes::from(xml);
    for (name, options, body, encoding) in [
        ("response_fields_2kb", FIELDS, &xml, None),
        ("response_generic_2kb", "", &xml, None),
        ("response_fields_2kb_gzip", FIELDS, &gzipped, Some("gzip")),
    ] {
        let f = filter(&format!("request = \"<acc:GetAccount/>\"\n{options}"));
        let mut builder = http::Response::builder().header("content-type", "text/xml");
        if let Some(encoding) = encoding {
            builder = builder.header("content-encoding", encoding);
        }
        let (head, _) = builder.body(()).unwrap().into_parts();
        let mut probe = (head.clone(), body.clone());
        assert!(matches!(
            now(f.on_response_body(&mut probe.0, &mut probe.1, &mut ctx())),
            Flow::Continue
        ));
        serde_json::from_slice::<serde_json::Value>(&probe.1).unwrap();
        group.bench_function(name, |b| {
            b.iter_batched(
                || (head.clone(), body.clone(), ctx()),
                |(mut head, mut body, mut ctx)| {
                    now(f.on_response_body(&mut head, &mut body, &mut ctx));
                    black_box(body)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, soap);
criterion_main!(benches);
