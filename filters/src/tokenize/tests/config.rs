//! Config of the two filters: what parses, and build errors that name the rule.

use super::*;

fn build_error(keys: &Keys, text: &str) -> String {
    match keys.try_filter(text) {
        Ok(_) => panic!("built: {text}"),
        Err(e) => e.0,
    }
}

#[test]
fn rule_errors_name_the_rule() {
    let keys = Keys::new();
    let pan = ff1_pan(1);
    for (text, expected) in [
        ("type = \"tokenize\"\nrules = []".to_owned(), "rules is empty"),
        ("type = \"detokenize\"\nrules = []".into(), "rules is empty"),
        (
            format!(
                r#"type = "tokenize"
rules = [{{ path = "$.a", engine = {pan} }}, {{ path = "$.[", engine = {pan} }}]"#
            ),
            "rules[1]: path: \"$.[\" is not a JSONPath",
        ),
        (
            r#"type = "tokenize"
rules = [{ path = "a", engine = { type = "ff1", kind = "iban", tweak = "", keys = { active = 1, versions = [{ version = 1, file = "missing.key" }] } } }]"#
                .into(),
            "rules[0]: path: \"a\" is not a JSONPath",
        ),
        (
            r#"type = "tokenize"
rules = [{ path = "$.a", engine = { type = "ff1", kind = "iban", tweak = "", keys = { active = 1, versions = [{ version = 1, file = "missing.key" }] } } }]"#
                .into(),
            "rules[0]: engine: keys: version 1: cannot read",
        ),
        (
            format!(
                r#"type = "detokenize"
rules = [{{ header = "x-a", engine = {pan}, consumers = ["acme"] }}, {{ engine = {pan}, consumers = ["acme"] }}]"#
            ),
            "rules[1]: set exactly one of body, header, query and path_segment",
        ),
        (
            format!(
                r#"type = "detokenize"
rules = [{{ header = "x-a", query = "a", engine = {pan}, consumers = ["acme"] }}]"#
            ),
            "rules[0]: set exactly one of",
        ),
        (
            format!(
                r#"type = "detokenize"
rules = [{{ header = "x a", engine = {pan}, consumers = ["acme"] }}]"#
            ),
            "rules[0]: header: \"x a\" is not a header name",
        ),
        (
            format!(
                r#"type = "detokenize"
rules = [{{ query = "", engine = {pan}, consumers = ["acme"] }}]"#
            ),
            "rules[0]: query: the parameter name is empty",
        ),
        (
            format!(
                r#"type = "detokenize"
rules = [{{ body = "$.pan", engine = {pan}, consumers = [] }}]"#
            ),
            "rules[0]: consumers: name at least one consumer",
        ),
        (
            r#"type = "detokenize"
rules = [{ body = "$.pan", engine = { type = "mask" }, consumers = ["acme"] }]"#
                .into(),
            "rules[0]: engine: mask cannot detokenize",
        ),
        (
            format!(
                r#"type = "detokenize"
rules = [{{ header = "X-Card", engine = {pan}, consumers = ["a"] }}, {{ header = "x-card", engine = {pan}, consumers = ["b"] }}]"#
            ),
            "rules[1]: header x-card is also named by rules[0]",
        ),
    ] {
        let err = build_error(&keys, &text);
        assert!(err.contains(expected), "{err}\nlacks {expected:?}");
        assert!(!err.contains(KEYS[0]) && !err.contains(KEYS[1]), "{err}");
    }
    // Every problem of a rule at once.
    let err = build_error(
        &keys,
        r#"type = "detokenize"
rules = [{ engine = { type = "mask" }, consumers = [] }]"#,
    );
    assert_eq!(
        err,
        "rules[0]: set exactly one of body, header, query and path_segment; engine: mask cannot \
         detokenize: a masked value cannot be turned back; consumers: name at least one \
         consumer, and no empty one"
    );
}

#[test]
fn unknown_options_and_engines_are_refused_when_parsed() {
    for text in [
        "type = \"tokenize\"\nrules = [{ path = \"$.a\", engine = { type = \"mask\" }, body = \"x\" }]",
        "type = \"tokenize\"\nrules = [{ path = \"$.a\", engine = { type = \"rot13\" } }]",
        "type = \"tokenize\"\nrules = [{ path = \"$.a\", engine = { type = \"mask\", tweak = \"x\" } }]",
        "type = \"tokenize\"\nrules = [{ path = \"$.a\", engine = { type = \"mask\" } }]\non_invalid_body = \"drop\"",
        "type = \"detokenize\"\nrules = [{ header = \"a\", engine = { type = \"mask\" } }]",
    ] {
        assert!(toml::from_str::<FilterConfig>(text).is_err(), "{text}");
    }
    let config: FilterConfig = toml::from_str(
        "type = \"detokenize\"\nrules = [{ header = \"a\", engine = { type = \"mask\" }, consumers = [\"x\"] }]",
    )
    .unwrap();
    assert_eq!(config.type_name(), "detokenize");
}

#[test]
fn the_array_of_tables_form_parses_too() {
    let keys = Keys::new();
    let text = r#"
type = "tokenize"
on_invalid_body = "pass"

[[rules]]
path = "$.cards[*].pan"

[rules.engine]
type = "ff1"
kind = "pan"
tweak = "acme"
keys = { active = 1, versions = [{ version = 1, file = "v1.key" }] }

[[rules]]
path = "$.accounts[*].iban"
engine = { type = "vault", kind = "iban", data_dir = "vault", ttl = "30d", keys = { active = 1, versions = [{ version = 1, env = "CORRIDOR_TEST_UNSET_KEY" }] } }
"#;
    let err = build_error(&keys, text);
    assert!(
        err.starts_with("rules[1]: engine: keys: version 1: the environment variable"),
        "{err}"
    );
    assert!(!err.contains("rules[0]"), "{err}");
}
