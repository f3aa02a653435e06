//! Names operators read: they must display as what they are.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// The first invisible formatting character (Unicode category Cf) in `s`: bidi
/// overrides such as U+202E reorder what follows, zero-width ones such as U+200B make
/// two names look the same.
pub fn format_char(s: &str) -> Option<char> {
    s.chars()
        .find(|c| c.general_category() == GeneralCategory::Format)
}

/// `U+202E`, for error messages (the character itself would not show).
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_invisible_formatting_characters() {
        for (s, c) in [
            ("admin\u{202E}gnp.exe", '\u{202E}'),
            ("a\u{200B}b", '\u{200B}'),
            ("\u{FEFF}bom", '\u{FEFF}'),
            ("soft\u{AD}hyphen", '\u{AD}'),
            ("iso\u{2066}late", '\u{2066}'),
            ("tag\u{E0041}", '\u{E0041}'),
        ] {
            assert_eq!(format_char(s), Some(c), "{s:?}");
        }
        for s in ["siem", "é-ü ß", "日本語", "with space", "emoji 🚨"] {
            assert_eq!(format_char(s), None, "{s:?}");
        }
        assert_eq!(code_point('\u{202E}'), "U+202E");
        assert_eq!(code_point('\u{E0041}'), "U+E0041");
    }
}
