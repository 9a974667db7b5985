//! What the fuzz targets share: readable input formats (so that seeds are files a person can
//! write and read), the fixed clock they run on, and the providers' merge semantics.
//!
//! Inputs are raw bytes; each format maps *every* byte string to some input, so no mutation
//! is wasted on a parse error.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

/// The wall clock of every target: a fixed instant, so that a crash replays exactly.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A response as text: a first line with the status, header lines `name: value`, a blank
/// line, then the body bytes. Unparsable header lines are skipped, as an HTTP client would
/// refuse them before the operator saw them.
pub struct Response<'a> {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: &'a [u8],
}

/// Split `data` at its first blank line: head and body.
fn head_and_body(data: &[u8]) -> (&[u8], &[u8]) {
    match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[]),
    }
}

/// The headers of `lines` (`name: value`); lines that are not a valid header are skipped.
pub fn headers<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(trim(&line[colon + 1..])))
        else {
            continue;
        };
        headers.append(name, value);
    }
    headers
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

impl<'a> Response<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let (head, body) = head_and_body(data);
        let mut lines = head.split(|b| *b == b'\n');
        // Any 3-digit number is a status the client may see; anything else reads as 200.
        let status = lines
            .next()
            .and_then(|l| std::str::from_utf8(trim(l)).ok())
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..1000).contains(s))
            .unwrap_or(200);
        Response { status, headers: headers(lines), body }
    }
}

/// A sequence of response bodies separated by lines holding only `---`.
pub fn pages(data: &[u8]) -> Vec<&[u8]> {
    let mut pages = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(5).position(|w| w == b"\n---\n") {
        pages.push(&rest[..at]);
        rest = &rest[at + 5..];
    }
    pages.push(rest);
    pages
}

pub mod merge;
