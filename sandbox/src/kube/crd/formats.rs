//! The string formats kube-apiserver checks for custom resources: the kube-openapi
//! `strfmt` registry restricted to the formats apiextensions-apiserver supports
//! (`apiserver/validation/formats.go`). Numeric formats (`int32`, `int64`, `float`,
//! `double`) and unknown formats are not checked, exactly as on a real server.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use base64::Engine;
use regex::Regex;

/// `Some(valid)` for a checked format, `None` when the server does not check it.
pub(super) fn check(format: &str, s: &str) -> Option<bool> {
    static UUID: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$").expect("static regex")
    });
    static MAC: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?i)^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$").expect("static regex"));
    static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]{0,61}[a-zA-Z0-9])?)*\.?$")
            .expect("static regex")
    });
    static EMAIL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[^@\s]+@[^@\s]+$").expect("static regex"));
    static DURATION: LazyLock<Regex> = LazyLock::new(|| {
        // strfmt.ParseDuration: Go durations, plus `<n> <unit>` with long unit names and d/w.
        Regex::new(r"^(?:[-+]?(?:[0-9]*(?:\.[0-9]*)?(?:ns|us|µs|ms|s|m|h|d|w))+|[0-9]+\s*(?:[a-zA-Zµ]+))$")
            .expect("static regex")
    });
    static HEXCOLOR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$").expect("static regex"));
    let ok = match format {
        "date-time" | "datetime" => date_time(s),
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10,
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => UUID.is_match(s),
        "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
        "cidr" => cidr(s),
        "mac" => MAC.is_match(s),
        "hostname" => s.len() <= 255 && HOSTNAME.is_match(s),
        "email" => EMAIL.is_match(s),
        "uri" => url::Url::parse(s).is_ok(),
        "duration" => DURATION.is_match(s),
        "hexcolor" => HEXCOLOR.is_match(s),
        "password" => true,
        _ => return None,
    };
    Some(ok)
}

/// strfmt's date-time: RFC 3339 with `T`/`t`, `Z`/`z` or a numeric offset.
fn date_time(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok()
        || chrono::DateTime::parse_from_rfc3339(&s.to_ascii_uppercase()).is_ok()
}

fn cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if addr.parse::<Ipv4Addr>().is_ok() { bits <= 32 } else { addr.parse::<Ipv6Addr>().is_ok() && bits <= 128 }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn checked_formats() {
        assert_eq!(check("date-time", "2024-01-02T03:04:05Z"), Some(true));
        assert_eq!(check("date-time", "2024-01-02T03:04:05.123+02:00"), Some(true));
        assert_eq!(check("date-time", "yesterday"), Some(false));
        assert_eq!(check("date", "2024-02-30"), Some(false));
        assert_eq!(check("date", "2024-02-28"), Some(true));
        assert_eq!(check("byte", "aGVsbG8="), Some(true));
        assert_eq!(check("byte", "not base64!"), Some(false));
        assert_eq!(check("uuid", "0f8fad5b-d9cb-469f-a165-70867728950e"), Some(true));
        assert_eq!(check("ipv4", "10.0.0.256"), Some(false));
        assert_eq!(check("cidr", "10.0.0.0/8"), Some(true));
        assert_eq!(check("hostname", "api.example.com"), Some(true));
        assert_eq!(check("hostname", "-bad-.com"), Some(false));
        assert_eq!(check("uri", "https://example.com/x"), Some(true));
        assert_eq!(check("uri", "not a uri"), Some(false));
        assert_eq!(check("duration", "1h30m"), Some(true));
        assert_eq!(check("duration", "forever"), Some(false));
    }

    #[test]
    fn numeric_and_unknown_formats_are_not_checked() {
        assert_eq!(check("int32", "x"), None);
        assert_eq!(check("int64", "x"), None);
        assert_eq!(check("my-format", "x"), None);
    }
}
