//! A deterministic fuzz harness for the answer's way back (decode, parse, faults, XML → JSON)
//! and for the escaping of request values, fit for CI: a fixed seed and a bounded number of
//! inputs. Inputs are random envelopes (odd prefixes, default namespaces, attributes, CDATA,
//! comments, entities, faults) and mutations of them (bytes flipped, cut, repeated, tokens
//! such as `<!DOCTYPE` or `&e;` spliced in, gzip and truncated gzip). Every answer must be
//! valid JSON within the cap or a problem without the answer's text in it, and nothing may
//! panic.
//!
//! For a longer run: `SOAP_FUZZ_ITERATIONS=200000 SOAP_FUZZ_SEED=7 cargo test -p
//! corridor-filters --release soap::tests::fuzz`.

use fastrand::Rng;

use super::*;

/// What CI runs; seconds in a debug build.
const ITERATIONS: usize = 3000;
const SEED: u64 = 0x50A9_F022;
/// The answer cap of the fuzzed filters: small, so the size limits are hit too.
const LIMIT: usize = 2048;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The index in [`filters`] of the one with `expose_fault_string`.
const EXPOSES: usize = 2;

/// The filters fuzzed: the generic mapping, a typed one, SOAP 1.2 with faults exposed.
fn filters() -> Vec<Arc<dyn Filter>> {
    let limit = format!("max_response_bytes = {LIMIT}\n");
    [
        base(&format!("{limit}request = \"<a/>\"")),
        base(&format!(
            r#"{limit}request = "<a/>"
faults = {{ E1 = {{ status = 404, detail = "Gone" }}, E2 = {{ status = 503 }} }}
[response]
root = "*:R"
fields = {{ n = {{ path = "acc:n", type = "number" }}, b = {{ path = "*:b", type = "boolean" }}, s = "acc:s/@id", o = {{ path = "acc:o", fields = {{ g = {{ path = ".", type = "generic" }} }} }}, list = {{ path = "*:l/*:i", type = "array", fields = {{ v = "acc:v", n = {{ path = "@n", type = "number" }} }} }} }}
"#
        )),
        base(&format!(
            "{limit}version = \"1.2\"\nexpose_fault_string = true\nrequest = \"<a/>\"\n\
             faults = {{ E1 = {{ status = 409 }} }}"
        )),
    ]
    .iter()
    .map(|config| filter(config))
    .collect()
}

const PREFIXES: [&str; 6] = ["acc", "ns7", "a", "SOAP-ENV", "x_1.b", "soap"];
const NAMES: [&str; 10] = ["R", "n", "b", "s", "o", "l", "i", "v", "Fault", "detail"];
const TEXTS: [&str; 14] = [
    "12.50",
    "-0",
    "+7",
    ".5",
    "true",
    "0",
    "x",
    "",
    " ",
    "&lt;&amp;&gt;",
    "&#233;&#x1F600;",
    "<![CDATA[<b>&]]>",
    "<!-- c -->",
    "<?pi d?>",
];
/// Spliced into inputs: the tokens that make XML parsers misbehave.
const TOKENS: [&str; 22] = [
    "<!DOCTYPE x [<!ENTITY e \"aaaaaaaaaa\">]>",
    "<!DOCTYPE x SYSTEM \"file:///etc/passwd\">",
    "&e;",
    "&#0;",
    "&#xD800;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "xmlns=\"urn:corridor:democore:accounts:1\"",
    "xmlns:acc=\"\"",
    "xsi:nil=\"true\"",
    "\u{FEFF}",
    "\0",
    "</",
    "/>",
    "<",
    "&",
    "\"",
    ":",
    "\u{1F600}",
];

/// A random element tree as XML, `depth` levels at most.
fn element(rng: &mut Rng, depth: usize, out: &mut String) {
    let prefix = PREFIXES[rng.usize(..PREFIXES.len())];
    let name = NAMES[rng.usize(..NAMES.len())];
    let qualified = match rng.u8(..4) {
        0 => name.to_owned(),
        1 => format!("{prefix}:{name}"),
        _ => format!("acc:{name}"),
    };
    out.push('<');
    out.push_str(&qualified);
    if rng.u8(..6) == 0 {
        out.push_str(&format!(
            " xmlns:{prefix}=\"urn:corridor:democore:accounts:1\""
        ));
    }
    if rng.u8(..8) == 0 {
        out.push_str(" xmlns=\"urn:corridor:democore:accounts:1\"");
    }
    let first = rng.usize(..NAMES.len());
    for attribute in NAMES.iter().cycle().skip(first).take(rng.usize(..3)) {
        out.push_str(&format!(" {attribute}=\"{}\"", rng.u16(..1000)));
    }
    if rng.u8(..10) == 0 {
        out.push_str(" xsi:nil=\"true\"");
    }
    out.push('>');
    for _ in 0..rng.usize(..4) {
        if depth > 0 && rng.bool() {
            element(rng, depth - 1, out);
        } else {
            out.push_str(TEXTS[rng.usize(..TEXTS.len())]);
        }
    }
    out.push_str(&format!("</{qualified}>"));
}

/// A random envelope: sometimes a Fault, sometimes SOAP 1.2, sometimes with a prolog.
fn document(rng: &mut Rng) -> String {
    let ns = if rng.bool() { SOAP11 } else { SOAP12 };
    let mut body = String::new();
    match rng.u8(..5) {
        0 if ns == SOAP11 => body.push_str(&format!(
            "<env:Fault><faultcode>env:{}.E{}</faultcode><faultstring>boom &amp; more</faultstring><detail><acc:E{}/></detail></env:Fault>",
            ["Client", "Server", "Other"][rng.usize(..3)],
            rng.u8(..3),
            rng.u8(..3)
        )),
        0 => body.push_str(&format!(
            "<env:Fault><env:Code><env:Value>env:{}</env:Value><env:Subcode><env:Value>acc:E{}</env:Value></env:Subcode></env:Code><env:Reason><env:Text>why</env:Text></env:Reason></env:Fault>",
            ["Sender", "Receiver"][rng.usize(..2)],
            rng.u8(..3)
        )),
        _ => element(rng, 6, &mut body),
    }
    let prolog = [
        "",
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "\u{FEFF}",
        "<!-- hi -->",
    ];
    // Every prefix declared, most for the service's namespace.
    let declarations: String = PREFIXES
        .iter()
        .filter(|prefix| **prefix != "acc")
        .map(|prefix| {
            let uri = if rng.u8(..3) == 0 { "urn:other" } else { ACC };
            format!(" xmlns:{prefix}=\"{uri}\"")
        })
        .collect();
    format!(
        r#"{}<env:Envelope xmlns:env="{ns}" xmlns:acc="{ACC}"{declarations} xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><env:Body>{body}</env:Body></env:Envelope>"#,
        prolog[rng.usize(..prolog.len())]
    )
}

/// `input` changed a few random ways.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..rng.usize(1..5) {
        let at = rng.usize(..=input.len());
        match rng.u8(..6) {
            0 if !input.is_empty() => {
                let i = rng.usize(..input.len());
                input[i] ^= 1 << rng.u8(..8);
            }
            1 => {
                let end = (at + rng.usize(..16)).min(input.len());
                input.drain(at..end);
            }
            2 => {
                let end = (at + rng.usize(..64)).min(input.len());
                let copy = input[at..end].to_vec();
                for _ in 0..rng.usize(1..4) {
                    input.splice(at..at, copy.iter().copied());
                }
            }
            3 => input.truncate(at),
            _ => {
                let token = TOKENS[rng.usize(..TOKENS.len())];
                input.splice(at..at, token.bytes());
            }
        }
    }
}

#[test]
fn the_answer_mapper_never_panics_and_stays_bounded() {
    let iterations = setting("SOAP_FUZZ_ITERATIONS", ITERATIONS as u64);
    let mut rng = Rng::with_seed(setting("SOAP_FUZZ_SEED", SEED));
    let filters = filters();
    let (mut translated, mut refused) = (0usize, 0usize);
    for iteration in 0..iterations {
        let mut input = document(&mut rng).into_bytes();
        if rng.bool() {
            mutate(&mut rng, &mut input);
        }
        let mut encoding = None;
        if rng.u8(..6) == 0 {
            input = gzip(&input);
            if rng.bool() {
                let keep = rng.usize(..=input.len());
                input.truncate(keep);
            }
            encoding = Some("gzip");
        }
        let status = [200, 200, 200, 500, 404][rng.usize(..5)];
        for (index, f) in filters.iter().enumerate() {
            let mut headers = vec![("content-type", "text/xml")];
            headers.extend(encoding.map(|e| ("content-encoding", e)));
            let mut body = Bytes::copy_from_slice(&input);
            let builder = headers.iter().fold(
                http::Response::builder().status(status),
                |b, (name, value)| b.header(*name, *value),
            );
            let (mut resp, _) = builder.body(()).unwrap().into_parts();
            match now(f.on_response_body(&mut resp, &mut body, &mut ctx())) {
                Flow::Continue => {
                    translated += 1;
                    assert!(body.len() <= LIMIT, "#{iteration}: {} bytes", body.len());
                    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&body) {
                        panic!(
                            "#{iteration}: invalid JSON ({e}) from {:?}: {}",
                            String::from_utf8_lossy(&input),
                            String::from_utf8_lossy(&body)
                        );
                    }
                    assert_eq!(resp.headers["content-type"], "application/json");
                }
                Flow::Respond(reply) => {
                    refused += 1;
                    let problem = reply.problem.expect("a problem");
                    assert!(
                        problem.status.is_client_error() || problem.status.is_server_error(),
                        "#{iteration}: {problem:?}"
                    );
                    // Config's words; only the filter that exposes fault strings shows
                    // the core's, on one line and cut short.
                    if let Some(detail) = &problem.detail {
                        let exposed = index == EXPOSES
                            && problem.status.is_client_error()
                            && detail.chars().count() <= 200
                            && !detail.contains(char::is_control);
                        assert!(exposed || detail == "Gone", "#{iteration}: {detail:?}");
                    }
                }
            }
        }
    }
    // The generator makes both outcomes, or the harness tests little.
    let runs = iterations as usize * filters.len();
    assert!(translated > runs / 10, "{translated} of {runs} translated");
    assert!(refused > runs / 10, "{refused} of {runs} refused");
}

#[test]
fn any_value_goes_into_the_envelope_as_text_and_comes_back_the_same() {
    let iterations = setting("SOAP_FUZZ_ITERATIONS", ITERATIONS as u64);
    let mut rng = Rng::with_seed(setting("SOAP_FUZZ_SEED", SEED));
    let f = filter(&base(
        "request = \"<acc:A v='${json:$.v}'>${json:$.t}</acc:A>\"",
    ));
    let alphabet: Vec<char> =
        "<>&\"';:]]>!-?/=\\ \t\r\nabc\u{e9}\u{FFFD}\u{1F600}\u{0}\u{1}\u{FFFE}"
            .chars()
            .collect();
    for iteration in 0..iterations {
        let text: String = (0..rng.usize(..24))
            .map(|_| alphabet[rng.usize(..alphabet.len())])
            .collect();
        let body = serde_json::json!({ "v": text, "t": text }).to_string();
        match send(&f, "/", &body) {
            Ok((_, envelope)) => {
                let doc = roxmltree::Document::parse(&envelope)
                    .unwrap_or_else(|e| panic!("#{iteration}: {e} in {envelope}"));
                let a = doc
                    .descendants()
                    .find(|n| n.tag_name().name() == "A")
                    .unwrap();
                assert_eq!(a.attribute("v"), Some(text.as_str()), "#{iteration}");
                assert_eq!(a.text().unwrap_or(""), text, "#{iteration}");
                assert!(a.children().all(|c| c.is_text()), "#{iteration}");
            }
            Err(problem) => {
                assert_problem(&problem, 400, "bad-request");
                assert!(
                    text.contains(['\u{0}', '\u{1}', '\u{FFFE}']),
                    "#{iteration}: refused {text:?}"
                );
            }
        }
    }
}
