//! Where and why Python's `json.loads` rejects a document, so that Mielto's FastAPI-style
//! `json_invalid` error carries the same `loc` position and `ctx.error` message as the real
//! server (`JSONDecodeError.pos` and `.msg` of CPython's C scanner, `Modules/_json.c`, and
//! `Lib/json/decoder.py`, up to Python 3.12).
//!
//! Only the first error matters, so this is a recognizer that walks Python's JSON grammar
//! over characters (Python positions are character offsets, not bytes) and stops there.

/// Python's whitespace set for JSON (`json.decoder.WHITESPACE`).
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// A decode failure: character offset and Python's message.
pub(super) type Failure = (usize, &'static str);

struct Scanner {
    s: Vec<char>,
}

impl Scanner {
    fn skip_ws(&self, mut i: usize) -> usize {
        while i < self.s.len() && is_ws(self.s[i]) {
            i += 1;
        }
        i
    }

    fn at(&self, i: usize) -> Option<char> {
        self.s.get(i).copied()
    }

    fn starts_with(&self, i: usize, lit: &str) -> bool {
        lit.chars().enumerate().all(|(k, c)| self.at(i + k) == Some(c))
    }

    /// `scan_once`: a value starting exactly at `i`. `Err(None)` is Python's
    /// `StopIteration(i)`, which the caller turns into "Expecting value" at `i`.
    fn value(&self, i: usize) -> Result<usize, Option<Failure>> {
        match self.at(i) {
            None => Err(None),
            Some('"') => self.string(i + 1).map_err(Some),
            Some('{') => self.object(i + 1).map_err(Some),
            Some('[') => self.array(i + 1).map_err(Some),
            Some('n') if self.starts_with(i, "null") => Ok(i + 4),
            Some('t') if self.starts_with(i, "true") => Ok(i + 4),
            Some('f') if self.starts_with(i, "false") => Ok(i + 5),
            Some('N') if self.starts_with(i, "NaN") => Ok(i + 3),
            Some('I') if self.starts_with(i, "Infinity") => Ok(i + 8),
            Some('-') if self.starts_with(i, "-Infinity") => Ok(i + 9),
            Some(_) => self.number(i).ok_or(None),
        }
    }

    /// `NUMBER_RE = (-?(?:0|[1-9]\d*))(\.\d+)?([eE][-+]?\d+)?`, matched at `i`.
    fn number(&self, i: usize) -> Option<usize> {
        let digit = |j: usize| self.at(j).is_some_and(|c| c.is_ascii_digit());
        let mut j = i;
        if self.at(j) == Some('-') {
            j += 1;
        }
        match self.at(j) {
            Some('0') => j += 1,
            Some('1'..='9') => {
                while digit(j) {
                    j += 1;
                }
            }
            _ => return None,
        }
        if self.at(j) == Some('.') && digit(j + 1) {
            j += 1;
            while digit(j) {
                j += 1;
            }
        }
        if matches!(self.at(j), Some('e' | 'E')) {
            let mut k = j + 1;
            if matches!(self.at(k), Some('+' | '-')) {
                k += 1;
            }
            if digit(k) {
                while digit(k) {
                    k += 1;
                }
                j = k;
            }
        }
        Some(j)
    }

    /// `scanstring` with `strict=True`; `end` is just after the opening quote.
    fn string(&self, end: usize) -> Result<usize, Failure> {
        let begin = end - 1;
        let mut i = end;
        loop {
            let Some(c) = self.at(i) else {
                return Err((begin, "Unterminated string starting at"));
            };
            match c {
                '"' => return Ok(i + 1),
                '\\' => {
                    let Some(esc) = self.at(i + 1) else {
                        return Err((begin, "Unterminated string starting at"));
                    };
                    if esc == 'u' {
                        let hex = i + 2;
                        if hex + 4 > self.s.len() {
                            return Err((hex - 1, "Invalid \\uXXXX escape"));
                        }
                        if !(hex..hex + 4).all(|k| self.s[k].is_ascii_hexdigit()) {
                            return Err((hex - 1, "Invalid \\uXXXX escape"));
                        }
                        i = hex + 4;
                    } else if matches!(esc, '"' | '\\' | '/' | 'b' | 'f' | 'n' | 'r' | 't') {
                        i += 2;
                    } else {
                        return Err((i, "Invalid \\escape"));
                    }
                }
                c if (c as u32) < 0x20 => return Err((i, "Invalid control character at")),
                _ => i += 1,
            }
        }
    }

    /// `JSONObject`; `end` is just after `{`.
    fn object(&self, end: usize) -> Result<usize, Failure> {
        let mut i = self.skip_ws(end);
        if self.at(i) == Some('}') {
            return Ok(i + 1);
        }
        loop {
            if self.at(i) != Some('"') {
                return Err((i, "Expecting property name enclosed in double quotes"));
            }
            i = self.string(i + 1)?;
            i = self.skip_ws(i);
            if self.at(i) != Some(':') {
                return Err((i, "Expecting ':' delimiter"));
            }
            i = self.skip_ws(i + 1);
            i = self.value(i).map_err(|e| e.unwrap_or((i, "Expecting value")))?;
            i = self.skip_ws(i);
            match self.at(i) {
                Some('}') => return Ok(i + 1),
                Some(',') => i = self.skip_ws(i + 1),
                _ => return Err((i, "Expecting ',' delimiter")),
            }
        }
    }

    /// `JSONArray`; `end` is just after `[`.
    fn array(&self, end: usize) -> Result<usize, Failure> {
        let mut i = self.skip_ws(end);
        if self.at(i) == Some(']') {
            return Ok(i + 1);
        }
        loop {
            i = self.value(i).map_err(|e| e.unwrap_or((i, "Expecting value")))?;
            i = self.skip_ws(i);
            match self.at(i) {
                Some(']') => return Ok(i + 1),
                Some(',') => i = self.skip_ws(i + 1),
                _ => return Err((i, "Expecting ',' delimiter")),
            }
        }
    }
}

/// The error `json.loads(text)` raises, or `None` when Python would accept the document
/// (e.g. `NaN`, which Python's decoder allows and serde_json does not).
pub(super) fn decode_error(text: &str) -> Option<Failure> {
    let scanner = Scanner { s: text.chars().collect() };
    let start = scanner.skip_ws(0);
    match scanner.value(start) {
        Err(None) => Some((start, "Expecting value")),
        Err(Some(failure)) => Some(failure),
        Ok(end) => {
            let end = scanner.skip_ws(end);
            (end != scanner.s.len()).then_some((end, "Extra data"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values recorded from CPython 3.11's `json.loads`.
    #[test]
    fn matches_cpython() {
        let cases: &[(&str, usize, &str)] = &[
            (r#"{"label": }"#, 10, "Expecting value"),
            (r#"{"label": "x""#, 13, "Expecting ',' delimiter"),
            ("{}x", 2, "Extra data"),
            ("{", 1, "Expecting property name enclosed in double quotes"),
            ("[1,", 3, "Expecting value"),
            (r#"{"a" 1}"#, 5, "Expecting ':' delimiter"),
            ("{a:1}", 1, "Expecting property name enclosed in double quotes"),
            (r#"{"a":1,}"#, 7, "Expecting property name enclosed in double quotes"),
            ("[1 2]", 3, "Expecting ',' delimiter"),
            ("\"abc", 0, "Unterminated string starting at"),
            ("{\"a\":\"\u{1}\"}", 6, "Invalid control character at"),
            ("tru", 0, "Expecting value"),
            (r#"{"a":1}}"#, 7, "Extra data"),
            ("  ", 2, "Expecting value"),
            (r#"{"a":[1,2}"#, 9, "Expecting ',' delimiter"),
            (r#"{"é":x}"#, 5, "Expecting value"),
            (r#"["\q"]"#, 2, "Invalid \\escape"),
            (r#"["\u12G4"]"#, 3, "Invalid \\uXXXX escape"),
            ("01", 1, "Extra data"),
            ("[\"\\u12", 3, "Invalid \\uXXXX escape"),
            ("-", 0, "Expecting value"),
            ("1.", 1, "Extra data"),
            ("[1,]", 3, "Expecting value"),
            (r#"{"a":1,"b"}"#, 10, "Expecting ':' delimiter"),
            ("\"a\\", 0, "Unterminated string starting at"),
        ];
        for (doc, pos, msg) in cases {
            assert_eq!(decode_error(doc), Some((*pos, *msg)), "{doc:?}");
        }
    }

    #[test]
    fn accepts_what_python_accepts() {
        for doc in [r#"{"a": [1, -2.5e3, true, null, "x\n\u00e9"]}"#, "NaN", " [ ] ", "-Infinity"] {
            assert_eq!(decode_error(doc), None, "{doc:?}");
        }
    }
}
