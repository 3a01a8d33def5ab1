//! A scanner for the narrow grammar the text recognizers accept, in which
//! each piece reads as sqlparser reads it: ASCII words, whitespace,
//! single-quoted strings without backslashes, decimal numbers, `NULL`,
//! `TRUE`, `FALSE`, `$1..$n`.

use datafusion::scalar::ScalarValue;

use super::number;

/// Bytes that continue an unquoted word for sqlparser's generic dialect.
/// Non-ASCII letters do too; the scanner declines every non-ASCII byte
/// outside strings, so they never end a word here.
fn continues_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'$' | b'#' | b'@') || byte >= 0x80
}

pub(super) struct Scanner<'a> {
    text: &'a [u8],
    at: usize,
    params: &'a [serde_json::Value],
    used: Vec<bool>,
    floats_as_decimal: bool,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(
        sql: &'a str,
        params: &'a [serde_json::Value],
        floats_as_decimal: bool,
    ) -> Self {
        Self {
            text: sql.as_bytes(),
            at: 0,
            params,
            used: vec![false; params.len()],
            floats_as_decimal,
        }
    }

    /// Whether the whole text was read and every parameter used.
    pub(super) fn complete(&self) -> bool {
        self.at == self.text.len() && self.used.iter().all(|&used| used)
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    pub(super) fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    pub(super) fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Skips spaces, tabs and line breaks.
    pub(super) fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// An unquoted ASCII word that ends where sqlparser ends it.
    pub(super) fn word(&mut self) -> Option<&'a str> {
        let start = self.at;
        if !matches!(self.peek(), Some(b) if b.is_ascii_alphabetic() || b == b'_') {
            return None;
        }
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_') {
            self.at += 1;
        }
        if self.peek().is_some_and(continues_word) {
            return None;
        }
        std::str::from_utf8(&self.text[start..self.at]).ok()
    }

    pub(super) fn name(&mut self) -> Option<String> {
        self.word().map(str::to_string)
    }

    pub(super) fn keyword(&mut self, keyword: &str) -> Option<()> {
        self.word()?.eq_ignore_ascii_case(keyword).then_some(())
    }

    /// One value: a literal, or a parameter as the parsed path binds it.
    pub(super) fn value(&mut self) -> Option<ScalarValue> {
        match self.peek()? {
            b'\'' => self.string().map(|s| ScalarValue::Utf8(Some(s))),
            b'0'..=b'9' => {
                let digits = self.digits()?;
                number(digits, false, self.floats_as_decimal)
            }
            // `--` opens a comment.
            b'-' if self.text.get(self.at + 1) != Some(&b'-') => {
                self.at += 1;
                self.blank();
                if !matches!(self.peek(), Some(b'0'..=b'9')) {
                    return None;
                }
                let digits = self.digits()?;
                number(digits, true, self.floats_as_decimal)
            }
            b'$' => self.parameter(),
            _ => {
                let word = self.word()?;
                if word.eq_ignore_ascii_case("NULL") {
                    Some(ScalarValue::Null)
                } else if word.eq_ignore_ascii_case("TRUE") {
                    Some(ScalarValue::Boolean(Some(true)))
                } else if word.eq_ignore_ascii_case("FALSE") {
                    Some(ScalarValue::Boolean(Some(false)))
                } else {
                    None
                }
            }
        }
    }

    /// `'...'` with `''` for a quote. A backslash declines: whether it
    /// escapes depends on the dialect's settings.
    fn string(&mut self) -> Option<String> {
        self.at += 1;
        let mut value = Vec::new();
        loop {
            let start = self.at;
            let length = self.text[start..]
                .iter()
                .position(|&b| b == b'\'' || b == b'\\')?;
            value.extend_from_slice(&self.text[start..start + length]);
            self.at = start + length;
            if self.peek() == Some(b'\\') {
                return None;
            }
            self.at += 1;
            if !self.eat(b'\'') {
                break;
            }
            value.push(b'\'');
        }
        String::from_utf8(value).ok()
    }

    /// `123`, `1.5`, `1e9`, `2.5E-3`, ending where a value ends.
    fn digits(&mut self) -> Option<&'a str> {
        let start = self.at;
        let run = |scan: &mut Self| {
            let from = scan.at;
            while matches!(scan.peek(), Some(b'0'..=b'9')) {
                scan.at += 1;
            }
            scan.at > from
        };
        run(self);
        if self.eat(b'.') && !run(self) {
            return None;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !run(self) {
                return None;
            }
        }
        if !matches!(
            self.peek(),
            None | Some(b' ' | b'\t' | b'\n' | b'\r' | b',' | b')' | b';')
        ) {
            return None;
        }
        std::str::from_utf8(&self.text[start..self.at]).ok()
    }

    /// `$n`, bound as the parsed path binds request parameters.
    fn parameter(&mut self) -> Option<ScalarValue> {
        self.at += 1;
        if !matches!(self.peek(), Some(b'1'..=b'9')) {
            return None;
        }
        let digits = self.digits()?;
        let index: usize = digits.parse().ok()?;
        let param = self.params.get(index - 1)?;
        self.used[index - 1] = true;
        match param {
            serde_json::Value::Null => Some(ScalarValue::Null),
            serde_json::Value::Bool(b) => Some(ScalarValue::Boolean(Some(*b))),
            serde_json::Value::Number(n) => number(&n.to_string(), false, self.floats_as_decimal),
            serde_json::Value::String(s) => Some(ScalarValue::Utf8(Some(s.clone()))),
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => None,
        }
    }
}
