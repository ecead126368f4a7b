//! The signature algorithms a `jwt` filter may accept. `none` and the HMAC family (`HS*`)
//! have no variant: a shared-secret algorithm would let anyone holding the public key forge
//! tokens (the classic RS256 → HS256 confusion), so they cannot be configured or accepted.

use serde::Deserialize;

/// An asymmetric JWS algorithm (RFC 7518 §3, RFC 8037 for EdDSA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum Algorithm {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
    EdDsa,
}

/// The kind of public key an algorithm verifies with; a JWK must be of this kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

const ALL: [Algorithm; 9] = [
    Algorithm::Rs256,
    Algorithm::Rs384,
    Algorithm::Rs512,
    Algorithm::Ps256,
    Algorithm::Ps384,
    Algorithm::Ps512,
    Algorithm::Es256,
    Algorithm::Es384,
    Algorithm::EdDsa,
];

impl Algorithm {
    /// The `alg` value of a JOSE header or JWK, exactly as RFC 7518 spells it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Rs512 => "RS512",
            Algorithm::Ps256 => "PS256",
            Algorithm::Ps384 => "PS384",
            Algorithm::Ps512 => "PS512",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Parses an `alg` value; case-sensitive, as the JOSE registry is.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|a| a.name() == name)
    }

    pub(super) fn key_kind(self) -> KeyKind {
        match self {
            Algorithm::Rs256
            | Algorithm::Rs384
            | Algorithm::Rs512
            | Algorithm::Ps256
            | Algorithm::Ps384
            | Algorithm::Ps512 => KeyKind::Rsa,
            Algorithm::Es256 => KeyKind::EcP256,
            Algorithm::Es384 => KeyKind::EcP384,
            Algorithm::EdDsa => KeyKind::Ed25519,
        }
    }

    pub(super) fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as J;
        match self {
            Algorithm::Rs256 => J::RS256,
            Algorithm::Rs384 => J::RS384,
            Algorithm::Rs512 => J::RS512,
            Algorithm::Ps256 => J::PS256,
            Algorithm::Ps384 => J::PS384,
            Algorithm::Ps512 => J::PS512,
            Algorithm::Es256 => J::ES256,
            Algorithm::Es384 => J::ES384,
            Algorithm::EdDsa => J::EdDSA,
        }
    }
}

impl TryFrom<String> for Algorithm {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        if let Some(alg) = Algorithm::from_name(&name) {
            return Ok(alg);
        }
        let names: Vec<&str> = ALL.iter().map(|a| a.name()).collect();
        let why =
            if name.eq_ignore_ascii_case("none") || name.to_ascii_uppercase().starts_with("HS") {
                " (unsigned and shared-secret algorithms are never accepted)"
            } else {
                ""
            };
        Err(format!(
            "algorithm {name:?} is not supported{why}; use one of {}",
            names.join(", ")
        ))
    }
}
