//! Config: what parses, what builds, and every mistake named.

use super::*;
use crate::soap::{FieldConfig, FieldType, SoapConfig, SoapVersion};

#[test]
fn the_documented_config_parses_and_builds() {
    let text = format!(
        r#"type = "soap"
version = "1.2"
action = "urn:corridor:democore:accounts:1#GetBalance"
method = "POST"
path = "/soap/accounts?v=1"
namespaces = {{ acc = "{ACC}" }}
request = """
<acc:GetBalance><acc:accountId>${{path:2}}</acc:accountId><acc:ref>${{json:$.reference|none}}</acc:ref></acc:GetBalance>
"""
soap_header = "<acc:Caller>${{consumer:id}}</acc:Caller>"
default_client_status = 422
expose_fault_string = true
max_response_bytes = 65536

[response]
root = "/acc:GetBalanceResponse/acc:balance"
fields = {{ account_id = "acc:accountId", available = {{ path = "acc:available", type = "number" }}, lines = {{ path = "acc:lines/acc:line", type = "array", fields = {{ amount = {{ path = "acc:amount", type = "number" }} }} }} }}

[faults]
AccountNotFound = {{ status = 404, detail = "No such account" }}
"#
    );
    let config: FilterConfig = toml::from_str(&text).unwrap();
    assert_eq!(config.type_name(), "soap");
    let FilterConfig::soap(soap) = &config else {
        panic!("{config:?}")
    };
    assert_eq!(soap.version, SoapVersion::V1_2);
    let fields = &soap.response.as_ref().unwrap().fields.as_ref().unwrap().0;
    // Members keep the order they are written in.
    let names: Vec<&str> = fields.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["account_id", "available", "lines"]);
    assert_eq!(fields[0].1, FieldConfig::Path("acc:accountId".into()));
    let FieldConfig::Spec(available) = &fields[1].1 else {
        panic!()
    };
    assert_eq!(available.kind, Some(FieldType::Number));
    let f = config.build(&BuildContext::default()).unwrap();
    assert_eq!(f.name(), "soap");
    assert!(f.wants_request_body() && f.wants_response_body());
    assert_eq!(f.request_body_limit(), None);
}

#[test]
fn defaults_are_safe() {
    let config: SoapConfig = toml::from_str("path = \"/soap\"\nrequest = \"<Ping/>\"").unwrap();
    assert_eq!(config.version, SoapVersion::V1_1);
    assert_eq!(config.method, "POST");
    assert_eq!(config.action, "");
    assert_eq!(config.default_client_status, 400);
    assert!(!config.expose_fault_string);
    assert_eq!(config.max_response_bytes, 1024 * 1024);
    assert!(config.response.is_none() && config.faults.is_empty());
}

#[test]
fn unknown_keys_and_bad_values_do_not_parse() {
    for (options, expected) in [
        ("path = \"/s\"\nrequest = \"<a/>\"\nverison = \"1.2\"", "verison"),
        ("path = \"/s\"\nrequest = \"<a/>\"\nversion = \"1.3\"", "1.3"),
        ("path = \"/s\"\nrequest = \"<a/>\"\nversion = 1.2", "1.2"),
        ("request = \"<a/>\"", "path"),
        ("path = \"/s\"", "request"),
        (
            "path = \"/s\"\nrequest = \"<a/>\"\nresponse = { root = \"a\", field = {} }",
            "field",
        ),
        (
            "path = \"/s\"\nrequest = \"<a/>\"\nresponse = { fields = { a = { path = \"a\", typ = \"number\" } } }",
            "typ",
        ),
        (
            "path = \"/s\"\nrequest = \"<a/>\"\nresponse = { fields = { a = { path = \"a\", type = \"decimal\" } } }",
            "decimal",
        ),
        (
            "path = \"/s\"\nrequest = \"<a/>\"\nresponse = { fields = { a = 3 } }",
            "an element path, or a table",
        ),
        (
            "path = \"/s\"\nrequest = \"<a/>\"\nfaults = { X = { status = 404, text = \"t\" } }",
            "text",
        ),
    ] {
        let err = try_filter(options).err().unwrap_or_else(|| panic!("accepted {options}"));
        assert!(err.starts_with("parse: "), "{err}");
        assert!(err.contains(expected), "{options}: {err}");
    }
}

#[test]
fn build_errors_name_every_mistake() {
    let err = try_filter(
        r#"path = "soap"
method = "NOT A METHOD"
action = "say \"hi\""
namespaces = { "1x" = "urn:x", soap = "urn:y" }
request = "<acc:Get>${nope:x}</acc:Get>"
default_client_status = 502
max_response_bytes = 0
faults = { Gone = { status = 302 }, "acc:Bad" = { status = 400 } }
response = { root = "@id" }
"#,
    )
    .err()
    .unwrap();
    for expected in [
        "namespaces: \"1x\" is not a usable prefix",
        "method: \"NOT A METHOD\" is not an HTTP method",
        "path: \"soap\" does not start with `/`",
        "action: ",
        "request: ${nope:x}: unknown source \"nope\"",
        "response.root: must name an element",
        "faults.Gone: status 302 is not 4xx or 5xx",
        "default_client_status: 502 is not a 4xx status",
        "max_response_bytes: must be above 0",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
    let err = try_filter(&base(
        "request = \"<a/>\"\nfaults = { \"acc:Bad\" = { status = 400 } }",
    ))
    .err()
    .unwrap();
    assert!(
        err.contains("faults.acc:Bad: name a fault code by its local name"),
        "{err}"
    );
    let err = try_filter(&base(&format!(
        "request = \"<a/>\"\nfaults = {{ Long = {{ status = 400, detail = \"{}\" }} }}",
        "x".repeat(501)
    )))
    .err()
    .unwrap();
    assert!(err.contains("over 500 characters"), "{err}");
}

#[test]
fn templates_must_be_well_formed_with_placeholders_only_in_values() {
    for (request, expected) in [
        ("", "request: is empty"),
        ("  \n ", "request: is empty"),
        ("<acc:Get>", "request: not well-formed XML"),
        ("<acc:Get></acc:Got>", "request: not well-formed XML"),
        ("<x:Get/>", "unknown namespace prefix 'x'"),
        ("<acc:Get>${json:$.a</acc:Get>", "has no closing `}`"),
        ("<acc:Get>${json:$[}</acc:Get>", "not a JSONPath"),
        ("<acc:Get>${path:one}</acc:Get>", "segment's index"),
        ("<acc:Get>${query:}</acc:Get>", "give the parameter name"),
        (
            "<acc:Get>${header:bad header}</acc:Get>",
            "not a header name",
        ),
        ("<acc:Get>${json}</acc:Get>", "write `${source:name}`"),
        ("<${json:$.tag}/>", "not well-formed XML"),
        ("<acc:Get ${json:$.a}=\"1\"/>", "not well-formed XML"),
        (
            "<acc:Get><!-- ${json:$.a} --></acc:Get>",
            "only in text or an attribute value",
        ),
        (
            "<acc:Get><?pi ${json:$.a}?></acc:Get>",
            "only in text or an attribute value",
        ),
        (
            "<acc:Get><![CDATA[${json:$.a}]]></acc:Get>",
            "cannot stand in a CDATA section",
        ),
        ("<acc:Get>\u{E000}</acc:Get>", "U+E000"),
        (
            "<acc:Get>${query:a|\u{1}}</acc:Get>",
            "the default holds a character",
        ),
        (
            "<!DOCTYPE x [<!ENTITY e \"boom\">]><acc:Get>&e;</acc:Get>",
            "not well-formed XML",
        ),
    ] {
        let options = base(&format!("request = {}", toml_string(request)));
        let err = try_filter(&options)
            .err()
            .unwrap_or_else(|| panic!("accepted {request:?}"));
        assert!(err.contains(expected), "{request:?}: {err}");
    }
    // The template's own line numbers.
    let err = try_filter(&base(
        "request = \"\"\"\n<acc:Get>\n  <acc:a>\n</acc:Get>\"\"\"",
    ))
    .err()
    .unwrap();
    assert!(err.contains("line 3"), "{err}");
    // The header template is checked the same way.
    let err = try_filter(&base("request = \"<a/>\"\nsoap_header = \"<b>\""))
        .err()
        .unwrap();
    assert!(err.starts_with("soap_header: not well-formed XML"), "{err}");
}

#[test]
fn response_paths_must_use_declared_prefixes_and_fit_their_types() {
    for (response, expected) in [
        ("{ root = \"x:Resp\" }", "prefix \"x\" is not declared"),
        ("{ root = \"acc:Resp/\" }", "is not an element name"),
        ("{ root = \".\" }", "response.root: must name an element"),
        ("{ fields = {} }", "response.fields: is empty"),
        ("{}", "set root, fields or both"),
        (
            "{ fields = { a = \"acc:x/@id/acc:y\" } }",
            "an attribute must be the last step",
        ),
        ("{ fields = { a = \"/acc:x\" } }", "a leading `/` is only for"),
        (
            "{ fields = { a = { path = \"acc:x\", type = \"object\" } } }",
            "type object needs fields",
        ),
        (
            "{ fields = { a = { path = \"acc:x\", type = \"number\", fields = { b = \"acc:b\" } } } }",
            "fields go with type object or array",
        ),
        (
            "{ fields = { a = { path = \"acc:x\", type = \"array\", items = \"array\" } } }",
            "an array cannot hold arrays",
        ),
        (
            "{ fields = { a = { path = \"@id\", type = \"array\" } } }",
            "an array's path must end in an element",
        ),
        (
            "{ fields = { a = { path = \"acc:x\", type = \"string\", items = \"number\" } } }",
            "items goes with type array",
        ),
        (
            "{ fields = { a = { path = \"acc:x\", type = \"array\", items = \"number\", fields = { b = \"acc:b\" } } } }",
            "set fields or items, not both",
        ),
        (
            "{ fields = { a = { path = \"@id\", fields = { b = \"acc:b\" } } } }",
            "an attribute cannot hold fields",
        ),
        (
            "{ fields = { o = { path = \"acc:o\", fields = { b = \"q:b\" } } } }",
            "response.fields.o.fields.b: path \"q:b\": prefix \"q\" is not declared",
        ),
    ] {
        let err = try_filter(&base(&format!("request = \"<a/>\"\nresponse = {response}")))
            .err()
            .unwrap_or_else(|| panic!("accepted {response}"));
        assert!(err.contains(expected), "{response}: {err}");
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}
