//! Accepted bearer tokens. Without configuration any token is accepted (docs/interfaces.md);
//! once tokens are configured only those are; read-only tokens may read but not write.

use std::collections::HashSet;
use std::sync::RwLock;

use serde::Deserialize;

/// Body of `PUT <prefix>/_sandbox/tokens`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenConfig {
    /// Tokens with full access. When both lists are empty, any token is accepted.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Tokens that may read (GET/HEAD) but whose writes the provider refuses with 403.
    #[serde(default)]
    pub read_only: Vec<String>,
}

/// What a presented credential is worth for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credential was presented.
    Missing,
    /// A credential was presented but is not accepted.
    Unknown,
    /// A read-only credential was used for a write.
    ReadOnlyWrite,
    /// Accepted; `read_only` tells whether the credential is read-only (for reads).
    Granted { read_only: bool },
}

#[derive(Default)]
pub struct Tokens {
    config: RwLock<Config>,
}

#[derive(Default)]
struct Config {
    full: HashSet<String>,
    read_only: HashSet<String>,
}

impl Tokens {
    pub fn set(&self, config: TokenConfig) {
        *self.config.write().unwrap_or_else(|e| e.into_inner()) =
            Config { full: config.tokens.into_iter().collect(), read_only: config.read_only.into_iter().collect() };
    }

    /// Classify `presented` (the bearer token or API key, if any) for a read or a write.
    pub fn check(&self, presented: Option<&str>, write: bool) -> Access {
        let config = self.config.read().unwrap_or_else(|e| e.into_inner());
        let Some(token) = presented.filter(|t| !t.is_empty()) else {
            return Access::Missing;
        };
        if config.read_only.contains(token) {
            return if write { Access::ReadOnlyWrite } else { Access::Granted { read_only: true } };
        }
        if config.full.is_empty() || config.full.contains(token) {
            Access::Granted { read_only: false }
        } else {
            Access::Unknown
        }
    }
}

/// What the `Authorization` header holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    Missing,
    /// Present but not `Bearer <token>`.
    Malformed,
    Token(&'a str),
}

/// Read `Authorization: Bearer <token>` (the scheme is case-insensitive, RFC 7235).
pub fn bearer(headers: &http::HeaderMap) -> Bearer<'_> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Bearer::Missing;
    };
    let Ok(value) = value.to_str() else {
        return Bearer::Malformed;
    };
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Bearer::Token(token.trim())
        }
        _ => Bearer::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_token_is_accepted_until_tokens_are_configured() {
        let tokens = Tokens::default();
        assert_eq!(tokens.check(Some("x"), true), Access::Granted { read_only: false });
        assert_eq!(tokens.check(None, false), Access::Missing);
        tokens.set(TokenConfig { tokens: vec!["good".into()], read_only: vec!["ro".into()] });
        assert_eq!(tokens.check(Some("x"), false), Access::Unknown);
        assert_eq!(tokens.check(Some("good"), true), Access::Granted { read_only: false });
        assert_eq!(tokens.check(Some("ro"), false), Access::Granted { read_only: true });
        assert_eq!(tokens.check(Some("ro"), true), Access::ReadOnlyWrite);
    }

    #[test]
    fn parses_bearer_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(bearer(&headers), Bearer::Missing);
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), Bearer::Malformed);
        headers.insert("authorization", "bearer tok".parse().unwrap());
        assert_eq!(bearer(&headers), Bearer::Token("tok"));
        headers.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), Bearer::Malformed);
    }

    #[test]
    fn read_only_tokens_alone_leave_other_tokens_accepted() {
        let tokens = Tokens::default();
        tokens.set(TokenConfig { tokens: vec![], read_only: vec!["ro".into()] });
        assert_eq!(tokens.check(Some("other"), true), Access::Granted { read_only: false });
        assert_eq!(tokens.check(Some("ro"), true), Access::ReadOnlyWrite);
    }
}
