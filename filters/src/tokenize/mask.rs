//! The `mask` engine of `tokenize` rules: every character but the last few becomes the mask
//! character, `4111111111111111` → `************1111`. Nothing is kept, so a masked value can
//! never be turned back: `detokenize` rules refuse this engine.

use serde::Deserialize;

/// Options of the `mask` engine.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// Trailing characters left in clear (default 4). A value of at most this many characters
    /// is masked whole, or the mask would show all of it.
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    /// The character that replaces the others (default `*`).
    #[serde(default = "default_mask_char")]
    pub mask_char: char,
}

fn default_keep_last() -> usize {
    4
}

fn default_mask_char() -> char {
    '*'
}

impl MaskConfig {
    /// `value` masked: as many characters as it has, the last `keep_last` in clear.
    pub(crate) fn apply(&self, value: &str) -> String {
        let count = value.chars().count();
        let keep = if count > self.keep_last {
            self.keep_last
        } else {
            0
        };
        let mut out: String = std::iter::repeat_n(self.mask_char, count - keep).collect();
        out.extend(value.chars().skip(count - keep));
        out
    }
}

/// `value` masked whole with `*`: what a refused value becomes, so it never passes raw.
pub(crate) fn mask_all(value: &str) -> String {
    "*".repeat(value.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_characters_only() {
        let mask: MaskConfig = toml::from_str("").unwrap();
        assert_eq!(
            mask,
            MaskConfig {
                keep_last: 4,
                mask_char: '*'
            }
        );
        assert_eq!(mask.apply("4111111111111234"), "************1234");
        assert_eq!(
            mask.apply("DE89370400440532013000"),
            "******************3000"
        );
        // Too short to show anything.
        assert_eq!(mask.apply("1234"), "****");
        assert_eq!(mask.apply(""), "");
        // Characters, not bytes.
        assert_eq!(mask.apply("éééééé"), "**éééé");

        let mask: MaskConfig = toml::from_str("keep_last = 0\nmask_char = \"#\"").unwrap();
        assert_eq!(mask.apply("4111"), "####");
        assert!(toml::from_str::<MaskConfig>("mask_char = \"ab\"").is_err());
        assert!(toml::from_str::<MaskConfig>("keep_first = 6").is_err());
        assert_eq!(mask_all("4111é"), "*****");
    }
}
