//! SOAP Faults: found in the envelope whatever the status, and mapped by config.

use super::*;
use crate::soap::fault::{self, FaultClass};

const FAULTS: &str = r#"request = "<acc:GetBalance/>"
faults = { AccountNotFound = { status = 404, detail = "No such account" }, InsufficientFunds = { status = 422 }, Maintenance = { status = 503, detail = "The core is in maintenance" } }
"#;

/// The core's words: they must never reach the client unless config says so.
const CORE_WORDS: &str =
    "ORA-00942 at com.bank.core.Accounts.find(Accounts.java:42) for 4111111111111111";

fn fault11(faultcode: &str, detail: &str) -> String {
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="{SOAP11}" xmlns:ns7="{ACC}"><soapenv:Body><soapenv:Fault><faultcode>{faultcode}</faultcode><faultstring xml:lang="en">{CORE_WORDS}</faultstring>{detail}</soapenv:Fault></soapenv:Body></soapenv:Envelope>"#
    )
}

fn fault12(code: &str, subcodes: &[&str], detail: &str) -> String {
    let mut nested = String::new();
    for subcode in subcodes.iter().rev() {
        nested = format!("<e:Subcode><e:Value>{subcode}</e:Value>{nested}</e:Subcode>");
    }
    format!(
        r#"<e:Envelope xmlns:e="{SOAP12}" xmlns:a="{ACC}"><e:Body><e:Fault><e:Code><e:Value>{code}</e:Value>{nested}</e:Code><e:Reason><e:Text xml:lang="en">{CORE_WORDS}</e:Text></e:Reason>{detail}</e:Fault></e:Body></e:Envelope>"#
    )
}

fn fault_of(body: &str) -> fault::Fault {
    let doc = roxmltree::Document::parse(body).unwrap();
    let (version, soap_body) = crate::soap::xml::envelope(&doc).unwrap();
    fault::find(soap_body, version).expect("a fault")
}

#[test]
fn soap11_faults_are_classified_with_their_codes() {
    for (faultcode, detail, class, codes) in [
        ("soapenv:Client.AccountNotFound", "", FaultClass::Caller, &["AccountNotFound"][..]),
        (
            "soapenv:Client",
            "<detail><ns7:InsufficientFunds><ns7:missing>5</ns7:missing></ns7:InsufficientFunds></detail>",
            FaultClass::Caller,
            &["InsufficientFunds"][..],
        ),
        (
            " soapenv:Client.Auth.Expired ",
            "<detail><ns7:AccountNotFound/></detail>",
            FaultClass::Caller,
            &["Auth.Expired", "AccountNotFound"][..],
        ),
        ("Client", "", FaultClass::Caller, &[][..]),
        ("undeclared:Client.X", "", FaultClass::Caller, &["X"][..]),
        ("soapenv:Server", "", FaultClass::Core, &[][..]),
        ("soapenv:Server.Database", "", FaultClass::Core, &["Database"][..]),
        ("soapenv:VersionMismatch", "", FaultClass::Core, &[][..]),
        // A core's own code in its own namespace: no class, the code stands alone.
        ("ns7:AccountNotFound", "", FaultClass::Core, &["AccountNotFound"][..]),
        ("AccountNotFound", "", FaultClass::Core, &["AccountNotFound"][..]),
        // What is not a name is no code (and never logged).
        ("soapenv:Client.4111 1111 1111 1111", "", FaultClass::Caller, &[][..]),
        ("soapenv:Client.4111111111111111", "", FaultClass::Caller, &[][..]),
        // A core that qualifies detail with the envelope namespace.
        (
            "soapenv:Client",
            "<soapenv:detail><ns7:AccountNotFound/></soapenv:detail>",
            FaultClass::Caller,
            &["AccountNotFound"][..],
        ),
    ] {
        let fault = fault_of(&fault11(faultcode, detail));
        assert_eq!(fault.class, class, "{faultcode}");
        assert_eq!(fault.codes, codes, "{faultcode} {detail}");
        assert_eq!(fault.reason.as_deref(), Some(CORE_WORDS));
    }
}

#[test]
fn soap12_faults_are_classified_with_their_codes() {
    for (code, subcodes, detail, class, codes) in [
        (
            "e:Sender",
            &["a:AccountNotFound"][..],
            "",
            FaultClass::Caller,
            &["AccountNotFound"][..],
        ),
        (
            "e:Sender",
            &["a:Validation", "a:AmountTooLarge"][..],
            "<e:Detail><a:InvalidRequest/></e:Detail>",
            FaultClass::Caller,
            &["AmountTooLarge", "Validation", "InvalidRequest"][..],
        ),
        ("e:Receiver", &[][..], "", FaultClass::Core, &[][..]),
        (
            "e:Receiver",
            &["a:Database"][..],
            "",
            FaultClass::Core,
            &["Database"][..],
        ),
        ("e:MustUnderstand", &[][..], "", FaultClass::Core, &[][..]),
        // Sender in another namespace is not SOAP's Sender.
        ("a:Sender", &[][..], "", FaultClass::Core, &[][..]),
    ] {
        let fault = fault_of(&fault12(code, subcodes, detail));
        assert_eq!(fault.class, class, "{code} {subcodes:?}");
        assert_eq!(fault.codes, codes, "{code} {subcodes:?}");
        assert_eq!(fault.reason.as_deref(), Some(CORE_WORDS));
    }
}

#[test]
fn mapped_faults_answer_as_configured_whatever_the_status() {
    let f = filter(&base(FAULTS));
    for status in [500, 200, 400] {
        for body in [
            fault11("soapenv:Client.AccountNotFound", ""),
            fault11("soapenv:Client", "<detail><ns7:AccountNotFound/></detail>"),
            fault12("e:Sender", &["a:AccountNotFound"], ""),
            fault12("e:Sender", &[], "<e:Detail><a:AccountNotFound/></e:Detail>"),
        ] {
            let p = refused(&f, status, body.as_bytes());
            assert_problem(&p, 404, "soap-fault");
            assert_eq!(p.title, "The core refused the request");
            assert_eq!(p.detail.as_deref(), Some("No such account"));
        }
    }
    // No detail configured, none shown.
    let p = refused(
        &f,
        500,
        fault11("soapenv:Client.InsufficientFunds", "").as_bytes(),
    );
    assert_problem(&p, 422, "soap-fault");
    assert_eq!(p.detail, None);
    // A code mapped to a 5xx, even on a Server fault.
    let p = refused(
        &f,
        500,
        fault12("e:Receiver", &["a:Maintenance"], "").as_bytes(),
    );
    assert_problem(&p, 503, "upstream-failed");
    assert_eq!(p.detail.as_deref(), Some("The core is in maintenance"));
}

#[test]
fn unmapped_faults_are_400_or_502_without_the_core_words() {
    let f = filter(&base(FAULTS));
    for (body, status, kind) in [
        (fault11("soapenv:Client.Unknown", ""), 400, "soap-fault"),
        (fault11("Client", ""), 400, "soap-fault"),
        (fault12("e:Sender", &["a:Unknown"], ""), 400, "soap-fault"),
        (
            fault11("soapenv:Server", "<detail><ns7:Oops/></detail>"),
            502,
            "upstream-failed",
        ),
        (fault11("ns7:SomethingElse", ""), 502, "upstream-failed"),
        (fault12("e:Receiver", &[], ""), 502, "upstream-failed"),
        (
            fault12("e:VersionMismatch", &[], ""),
            502,
            "upstream-failed",
        ),
    ] {
        let p = refused(&f, 500, body.as_bytes());
        assert_problem(&p, status, kind);
        assert_eq!(p.detail, None, "{body}");
    }
    let f = filter(&base("request = \"<a/>\"\ndefault_client_status = 422"));
    let p = refused(&f, 500, fault11("soapenv:Client", "").as_bytes());
    assert_problem(&p, 422, "soap-fault");
}

#[test]
fn the_fault_string_is_shown_only_when_config_says_so_and_never_for_5xx() {
    let f = filter(&base(&format!("{FAULTS}expose_fault_string = true")));
    let p = refused(&f, 500, fault11("soapenv:Client.Unknown", "").as_bytes());
    assert_problem(&p, 400, "soap-fault");
    assert_eq!(p.detail.as_deref(), Some(CORE_WORDS));
    // Config's detail wins.
    let p = refused(
        &f,
        500,
        fault12("e:Sender", &["a:AccountNotFound"], "").as_bytes(),
    );
    assert_eq!(p.detail.as_deref(), Some("No such account"));
    // Mapped without a detail: the faultstring.
    let p = refused(
        &f,
        500,
        fault11("soapenv:Client.InsufficientFunds", "").as_bytes(),
    );
    assert_eq!(p.detail.as_deref(), Some(CORE_WORDS));
    // Never for a fault that is the core's.
    let p = refused(&f, 500, fault11("soapenv:Server", "").as_bytes());
    assert_problem(&p, 502, "upstream-failed");
    assert_eq!(p.detail, None);
    // Shown as one line, trimmed and cut.
    let long = format!("  line one\r\n\tline two {}  ", "x".repeat(300));
    let body = fault11("soapenv:Client", "").replace(CORE_WORDS, &long);
    let p = refused(&f, 500, body.as_bytes());
    let detail = p.detail.unwrap();
    assert!(detail.starts_with("line one line two xxx"), "{detail}");
    assert_eq!(detail.chars().count(), 200);
}

#[test]
fn a_fault_element_elsewhere_is_not_a_fault() {
    let f = filter(&base("request = \"<a/>\""));
    // A business element named Fault in the service's namespace is data.
    let body = envelope11("acc", "<acc:Fault><acc:code>1</acc:code></acc:Fault>");
    assert_eq!(answer(&f, &body), serde_json::json!({"code": "1"}));
}
