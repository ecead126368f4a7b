//! Published examples: the verify layer must accept the signatures of RFC 7515 appendix A and
//! RFC 7520 §4, with the keys those RFCs publish. Their claims (`iss` "joe", long expired, no
//! `aud`) would not pass a filter, so only the signature and payload checks run here.

use base64::Engine;
use serde_json::{json, Value};

use super::super::alg::Algorithm;
use super::super::keys::Key;
use super::super::verify::{Compact, Failure};

fn key(jwk: Value) -> Key {
    Key::from_jwk(jwk.as_object().unwrap()).unwrap()
}

/// Checks `token`'s signature with `jwk` under its header's algorithm; returns the claims.
fn verify_vector(token: &str, jwk: Value) -> Result<serde_json::Map<String, Value>, Failure> {
    let compact = Compact::split(token)?;
    let header: Value =
        serde_json::from_slice(&super::URL_SAFE_NO_PAD.decode(compact.header).unwrap()).unwrap();
    let alg = Algorithm::from_name(header["alg"].as_str().unwrap()).unwrap();
    compact.check_signature(&key(jwk), alg)?;
    compact.claims()
}

const RFC7515_PAYLOAD: &str =
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";

/// RFC 7515 A.2.1: the RSA key's modulus.
const RFC7515_A2_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
const RFC7515_A2_SIGNATURE: &str = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

#[test]
fn rfc7515_a2_rs256() {
    let token = format!("eyJhbGciOiJSUzI1NiJ9.{RFC7515_PAYLOAD}.{RFC7515_A2_SIGNATURE}");
    let jwk = json!({"kty": "RSA", "n": RFC7515_A2_N, "e": "AQAB"});
    let claims = verify_vector(&token, jwk.clone()).unwrap();
    assert_eq!(claims["iss"], "joe");
    assert_eq!(claims["exp"], 1300819380);
    assert_eq!(claims["http://example.com/is_root"], true);
    // The same signature under PS256, or with the payload changed, does not verify.
    let compact = Compact::split(&token).unwrap();
    assert_eq!(
        compact.check_signature(&key(jwk.clone()), Algorithm::Ps256),
        Err(Failure::Invalid("jwt_bad_signature"))
    );
    let altered = token.replacen("eyJpc3MiOiJqb2Ui", "eyJpc3MiOiJqb2Xi", 1);
    assert!(verify_vector(&altered, jwk).is_err());
}

#[test]
fn rfc7515_a3_es256() {
    let token = format!(
        "eyJhbGciOiJFUzI1NiJ9.{RFC7515_PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q"
    );
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    });
    let claims = verify_vector(&token, jwk.clone()).unwrap();
    assert_eq!(claims["iss"], "joe");
    // The RSA key of A.2 can never check an ES256 signature.
    let rsa = key(json!({"kty": "RSA", "n": RFC7515_A2_N, "e": "AQAB"}));
    let compact = Compact::split(&token).unwrap();
    assert_eq!(
        compact.check_signature(&rsa, Algorithm::Es256),
        Err(Failure::Invalid("jwt_alg_key_mismatch"))
    );
}

/// RFC 7520 §3.4: the RSA key of the JOSE cookbook.
const RFC7520_N: &str = "n4EPtAOCc9AlkeQHPzHStgAbgs7bTZLwUBZdR8_KuKPEHLd4rHVTeT-O-XV2jRojdNhxJWTDvNd7nqQ0VEiZQHz_AJmSCpMaJMRBSFKrKb2wqVwGU_NsYOYL-QtiWN2lbzcEe6XC0dApr5ydQLrHqkHHig3RBordaZ6Aj-oBHqFEHYpPe7Tpe-OfVfHd1E6cS6M1FZcD1NNLYD5lFHpPI9bTwJlsde3uhGqC0ZCuEHg8lhzwOHrtIQbS0FVbb9k3-tVTU4fg_3L_vniUFAKwuCLqKnS2BYwdq_mzSnbLY7h_qixoR7jig3__kRhuaxwUkRz5iaiQkqgc5gHdrNP5zw";
/// RFC 7520 §4: the payload, a quotation rather than claims.
const RFC7520_PAYLOAD: &str = "SXTigJlzIGEgZGFuZ2Vyb3VzIGJ1c2luZXNzLCBGcm9kbywgZ29pbmcgb3V0IHlvdXIgZG9vci4gWW91IHN0ZXAgb250byB0aGUgcm9hZCwgYW5kIGlmIHlvdSBkb24ndCBrZWVwIHlvdXIgZmVldCwgdGhlcmXigJlzIG5vIGtub3dpbmcgd2hlcmUgeW91IG1pZ2h0IGJlIHN3ZXB0IG9mZiB0by4";

#[test]
fn rfc7520_4_1_rs256_and_4_2_ps384() {
    let jwk = json!({"kty": "RSA", "n": RFC7520_N, "e": "AQAB"});
    for (header, alg, signature) in [
        (
            "eyJhbGciOiJSUzI1NiIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
            Algorithm::Rs256,
            "MRjdkly7_-oTPTS3AXP41iQIGKa80A0ZmTuV5MEaHoxnW2e5CZ5NlKtainoFmKZopdHM1O2U4mwzJdQx996ivp83xuglII7PNDi84wnB-BDkoBwA78185hX-Es4JIwmDLJK3lfWRa-XtL0RnltuYv746iYTh_qHRD68BNt1uSNCrUCTJDt5aAE6x8wW1Kt9eRo4QPocSadnHXFxnt8Is9UzpERV0ePPQdLuW3IS_de3xyIrDaLGdjluPxUAhb6L2aXic1U12podGU0KLUQSE_oI-ZnmKJ3F4uOZDnd6QZWJushZ41Axf_fcIe8u9ipH84ogoree7vjbU5y18kDquDg",
        ),
        (
            "eyJhbGciOiJQUzM4NCIsImtpZCI6ImJpbGJvLmJhZ2dpbnNAaG9iYml0b24uZXhhbXBsZSJ9",
            Algorithm::Ps384,
            "cu22eBqkYDKgIlTpzDXGvaFfz6WGoz7fUDcfT0kkOy42miAh2qyBzk1xEsnk2IpN6-tPid6VrklHkqsGqDqHCdP6O8TTB5dDDItllVo6_1OLPpcbUrhiUSMxbbXUvdvWXzg-UD8biiReQFlfz28zGWVsdiNAUf8ZnyPEgVFn442ZdNqiVJRmBqrYRXe8P_ijQ7p8Vdz0TTrxUeT3lm8d9shnr2lfJT8ImUjvAA2Xez2Mlp8cBE5awDzT0qI0n6uiP1aCN_2_jLAeQTlqRHtfa64QQSUmFAAjVKPbByi7xho0uTOcbH510a6GYmJUAfmWjwZ6oD4ifKo8DYM-X72Eaw",
        ),
    ] {
        let token = format!("{header}.{RFC7520_PAYLOAD}.{signature}");
        let compact = Compact::split(&token).unwrap();
        assert_eq!(compact.check_signature(&key(jwk.clone()), alg), Ok(()), "{alg:?}");
        // Not JSON claims: the payload check refuses it as a token.
        assert_eq!(compact.claims(), Err(Failure::Invalid("jwt_malformed")));
        // Its kid holds an "@": the filter would refuse it before any key lookup.
        assert_eq!(compact.header(), Err(Failure::Invalid("jwt_bad_kid")));
    }
}
