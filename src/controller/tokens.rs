//! Tokens read from Secrets, kept while the Secret is unchanged: a reconcile reads its
//! Provider's Secret with a `GET` only when the metadata watch shows a `resourceVersion`
//! other than the one the cached token came from (or does not show the Secret at all), so
//! a rotated token is used as soon as its watch event arrives, and 10,000 Connections of one
//! Provider do not cost 10,000 Secret reads.
//!
//! Only the one key the Provider names is kept, never the rest of the Secret's data.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::CredentialsLocation;
use crate::providers::Token;

/// Secret namespace, name and key.
type Location = (String, String, String);

#[derive(Default)]
pub struct Tokens {
    /// The token of each location, with the Secret resourceVersion it was read at.
    cache: Mutex<HashMap<Location, (String, Token)>>,
}

fn key(location: &CredentialsLocation) -> Location {
    (location.namespace.clone(), location.name.clone(), location.key.clone())
}

impl Tokens {
    /// The token read from the Secret at `resource_version`, if that is what is cached.
    pub fn current(&self, location: &CredentialsLocation, resource_version: &str) -> Option<Token> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(&key(location)).filter(|(version, _)| version == resource_version).map(|(_, token)| token.clone())
    }

    /// Keep `token`, read from the Secret at `resource_version`.
    pub fn remember(&self, location: &CredentialsLocation, resource_version: String, token: Token) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(key(location), (resource_version, token));
    }

    /// Drop the token of a Secret that is gone or no longer yields one.
    pub fn forget(&self, location: &CredentialsLocation) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(&key(location));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_current_only_for_the_version_it_was_read_at() {
        let tokens = Tokens::default();
        let at = CredentialsLocation { namespace: "ns".into(), name: "s".into(), key: "token".into() };
        assert_eq!(tokens.current(&at, "1"), None);
        tokens.remember(&at, "1".into(), Token::new("a"));
        assert_eq!(tokens.current(&at, "1"), Some(Token::new("a")));
        assert_eq!(tokens.current(&at, "2"), None);
        let other_key = CredentialsLocation { key: "other".into(), ..at.clone() };
        assert_eq!(tokens.current(&other_key, "1"), None);
        tokens.forget(&at);
        assert_eq!(tokens.current(&at, "1"), None);
    }
}
