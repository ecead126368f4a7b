//! Money as integer minor units (cents), shown as a decimal string.
//!
//! Floats never touch balances: the core keeps cents in an `i64` and speaks
//! `"1520.35"` on the wire, as banking APIs do.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Largest amount accepted in a request: 1 000 000 000 000.00, far from overflow.
const MAX_MINOR: i64 = 100_000_000_000_000;

/// An amount of money in minor units (two decimals for every seeded currency).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub i64);

impl Amount {
    /// Parses a non-negative decimal with at most two fraction digits, like
    /// `"12"`, `"12.5"` or `"12.50"`. No sign, exponent or thousands separator.
    pub fn parse(s: &str) -> Result<Amount, String> {
        let bad = || format!("invalid amount {s:?}: expected a decimal like \"12.50\"");
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || int.len() > 15 || !digits(int) || !digits(frac) {
            return Err(bad());
        }
        if frac.len() > 2 || (s.contains('.') && frac.is_empty()) {
            return Err(format!("invalid amount {s:?}: at most two decimals"));
        }
        let units: i64 = int.parse().map_err(|_| bad())?;
        let cents: i64 = format!("{frac:0<2}").parse().map_err(|_| bad())?;
        let minor = units
            .checked_mul(100)
            .and_then(|u| u.checked_add(cents))
            .filter(|&m| m <= MAX_MINOR)
            .ok_or_else(|| format!("invalid amount {s:?}: too large"))?;
        Ok(Amount(minor))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Accepts `"12.50"` and, leniently, the JSON number `12.5` (clients do send
/// numbers); both go through the same strict decimal parser.
impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal amount such as \"12.50\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Amount, E> {
                Amount::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Amount, E> {
                Amount::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Amount, E> {
                Amount::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Amount, E> {
                // Shortest round-trip form: 12.5 -> "12.5", 0.1 -> "0.1".
                Amount::parse(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(Amount::parse("1520.35"), Ok(Amount(152035)));
        assert_eq!(Amount::parse("12.5"), Ok(Amount(1250)));
        assert_eq!(Amount::parse("12"), Ok(Amount(1200)));
        assert_eq!(Amount::parse("0.07"), Ok(Amount(7)));
        assert_eq!(Amount(152035).to_string(), "1520.35");
        assert_eq!(Amount(7).to_string(), "0.07");
        assert_eq!(Amount(-150).to_string(), "-1.50");
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "", ".5", "12.", "12.345", "-1", "+1", "1e3", "1,000", " 1", "abc", "1.2.3",
        ] {
            assert!(Amount::parse(s).is_err(), "{s:?} should be rejected");
        }
        assert!(Amount::parse("99999999999999999999").is_err());
        assert!(Amount::parse("1000000000000.01").is_err());
        assert!(Amount::parse("1000000000000.00").is_ok());
    }

    #[test]
    fn json_string_and_number() {
        let a: Amount = serde_json::from_str("\"10.25\"").unwrap();
        assert_eq!(a, Amount(1025));
        let a: Amount = serde_json::from_str("10.5").unwrap();
        assert_eq!(a, Amount(1050));
        let a: Amount = serde_json::from_str("3").unwrap();
        assert_eq!(a, Amount(300));
        assert!(serde_json::from_str::<Amount>("10.123").is_err());
        assert!(serde_json::from_str::<Amount>("-3").is_err());
        assert!(serde_json::from_str::<Amount>("true").is_err());
        assert_eq!(serde_json::to_string(&Amount(1025)).unwrap(), "\"10.25\"");
    }
}
