//! Config parsing and the errors `corridor check` reports.

use super::*;
use crate::FilterConfig;

#[test]
fn parses_as_a_chain_entry_and_refuses_unknown_keys() {
    let src = format!(
        r#"type = "jwt"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
jwks_file = "test-jwks.json""#
    );
    let config: FilterConfig = toml::from_str(&src).unwrap();
    assert_eq!(config.type_name(), "jwt");
    let ctx = BuildContext::new(testdata());
    assert_eq!(config.build(&ctx).unwrap().name(), "jwt");
    let err = toml::from_str::<FilterConfig>(&format!("{src}\nleway = \"1s\"")).unwrap_err();
    assert!(err.to_string().contains("leway"), "{err}");
    let err = toml::from_str::<FilterConfig>("type = \"jwt\"\naudiences = [\"a\"]").unwrap_err();
    assert!(err.to_string().contains("issuer"), "{err}");
}

#[test]
fn shared_secret_and_unsigned_algorithms_cannot_be_configured() {
    for alg in ["HS256", "HS512", "none", "NONE"] {
        let err = build_error(&format!("algorithms = [\"{alg}\"]"));
        assert!(err.contains("never accepted"), "{alg}: {err}");
    }
    let err = build_error(r#"algorithms = ["rs256"]"#);
    assert!(err.contains("RS256, RS384"), "{err}");
    assert!(build_error("algorithms = []").contains("at least one"));
}

#[test]
fn exactly_one_key_source() {
    for extra in [
        "jwks_url = \"https://idp.example/jwks\"",
        "discovery = true",
    ] {
        let err = build_error(extra);
        assert!(err.contains("exactly one"), "{extra}: {err}");
    }
    let src = format!("issuer = \"{ISSUER}\"\naudiences = [\"a\"]");
    let err = compile_in(&testdata(), &src).err().unwrap();
    assert!(err.contains("exactly one"), "{err}");
    let err = build_error(r#"ca_file = "ca.pem""#);
    assert!(err.contains("ca_file"), "{err}");
}

fn remote(extra: &str) -> Result<JwtFilter, String> {
    let src = format!("issuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\n{extra}");
    compile_in(&testdata(), &src)
}

#[test]
fn remote_urls_are_https_except_to_loopback() {
    // No runtime here: building must not spawn or connect (`corridor check` has none).
    for ok in [
        "jwks_url = \"https://idp.example/realms/p/certs\"",
        "jwks_url = \"http://127.0.0.1:8081/jwks\"",
        "jwks_url = \"http://localhost/jwks\"",
        "jwks_url = \"http://[::1]:9/jwks\"",
        "discovery = true",
    ] {
        remote(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "jwks_url = \"http://idp.example/jwks\"",
        "jwks_url = \"http://10.0.0.1/jwks\"",
        "jwks_url = \"ftp://idp.example/jwks\"",
        "jwks_url = \"https://user:secret@idp.example/jwks\"",
        "jwks_url = \"not a url\"",
    ] {
        let err = remote(bad).err().unwrap();
        assert!(err.starts_with("jwt: jwks_url"), "{bad}: {err}");
        assert!(!err.contains("secret"), "{err}");
    }
    let src = "issuer = \"http://idp.example\"\naudiences = [\"a\"]\ndiscovery = true";
    let err = compile_in(&testdata(), src).err().unwrap();
    assert!(err.contains("discovery"), "{err}");
}

#[test]
fn ca_file_must_hold_a_certificate() {
    let err = remote("jwks_url = \"https://idp.example/jwks\"\nca_file = \"missing.pem\"")
        .err()
        .unwrap();
    assert!(err.contains("cannot read"), "{err}");
    let err = remote("jwks_url = \"https://idp.example/jwks\"\nca_file = \"test-jwks.json\"")
        .err()
        .unwrap();
    assert!(err.contains("no PEM certificate"), "{err}");
}

#[test]
fn jwks_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |text: &str| std::fs::write(dir.path().join("jwks.json"), text).unwrap();
    let compile = || {
        let src = format!("issuer = \"{ISSUER}\"\naudiences = [\"a\"]\njwks_file = \"jwks.json\"");
        compile_in(dir.path(), &src).err().unwrap()
    };
    write(r#"{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}"#);
    assert!(
        compile().contains("no usable signature key"),
        "{}",
        compile()
    );
    write("{\"keys\": 1}");
    assert!(compile().contains("\"keys\""), "{}", compile());
    write("not json");
    assert!(compile().contains("not a JSON object"), "{}", compile());
    std::fs::remove_file(dir.path().join("jwks.json")).unwrap();
    assert!(compile().contains("cannot read"), "{}", compile());
}

#[test]
fn option_limits() {
    for (extra, needle) in [
        (r#"leeway = "10m""#, "leeway"),
        (r#"jwks_ttl = "0s""#, "jwks_ttl"),
        (r#"refetch_interval = "0s""#, "refetch_interval"),
        (r#"fetch_timeout = "5m""#, "fetch_timeout"),
        ("max_token_bytes = 0", "max_token_bytes"),
        ("cache_size = 100000000", "cache_size"),
        ("audiences = []", "audiences"),
        (r#"audiences = [""]"#, "audiences"),
        (r#"issuer = """#, "issuer"),
        (r#"required_scopes = ["a b"]"#, "required_scopes"),
        (r#"required_scopes = ["a\"b"]"#, "required_scopes"),
        (r#"consumer_claim = """#, "consumer claim"),
        (r#"realm = "a\"b""#, "realm"),
        (r#"realm = """#, "realm"),
    ] {
        let src = format!(
            "jwks_file = \"test-jwks.json\"\n{extra}\n{}{}",
            if extra.starts_with("issuer") {
                ""
            } else {
                "issuer = \"x\"\n"
            },
            if extra.starts_with("audiences") {
                ""
            } else {
                "audiences = [\"a\"]\n"
            },
        );
        let err = compile_in(&testdata(), &src).err().unwrap_or_default();
        assert!(err.contains(needle), "{extra}: {err:?}");
    }
}

#[test]
fn forwarded_claim_headers_are_checked() {
    for (extra, needle) in [
        (
            r#"forward_claims = { "sub" = "content-length" }"#,
            "owned by the gateway",
        ),
        (
            r#"forward_claims = { "sub" = "host" }"#,
            "owned by the gateway",
        ),
        (
            r#"forward_claims = { "sub" = "bad header" }"#,
            "invalid header name",
        ),
        (
            r#"forward_claims = { "sub" = "Authorization" }"#,
            "Authorization",
        ),
        (
            r#"forward_claims = { "sub" = "x-a", "azp" = "X-A" }"#,
            "twice",
        ),
    ] {
        let err = build_error(extra);
        assert!(err.contains(needle), "{extra}: {err}");
    }
}
