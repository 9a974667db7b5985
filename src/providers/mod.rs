//! Clients for the four providers behind one trait, sharing one HTTP layer (`http`):
//! bearer authentication, timeouts, pacing per account, the account-wide block after a 429
//! and error classification (`error`). Each provider module knows its paths, bodies and
//! error shapes (docs/providers.md) and turns reads into the plan engine's [`Upstream`].

mod accounts;
mod arena;
mod batch;
mod datagrid;
mod error;
#[cfg(fuzzing)]
pub mod fuzzing;
mod http;
mod listing;
mod mielto;
mod nango;
mod pacing;

use std::sync::Arc;

use futures::future::BoxFuture;

pub use error::ProviderError;
pub use listing::ListKey;

/// Every connection of an account with its upstream state, by [`ListKey`] (what `list` answers).
pub type AccountConnections = Vec<(ListKey, Upstream)>;
pub use accounts::{AccountHandle, Accounts, CountObserver};
pub use http::RequestObserver;
pub use listing::Freshness;
pub use pacing::{AccountPacer, RateLimitSnapshot};

use crate::api::{ConnectionSpec, ProviderConfig, ProviderType};
use crate::diff::{Upstream, Write};

/// An API token read from a Secret. It is never printed: `Debug` is redacted and there is no
/// `Display`, so it cannot reach a log line, an error or a status by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Self {
        Token(token.into())
    }

    /// The token from Secret data bytes: surrounding whitespace (a trailing newline from
    /// `kubectl create secret --from-file`) is not part of it.
    pub fn from_secret_bytes(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?.trim();
        (!text.is_empty()).then(|| Token(text.to_string()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Identifies the token within this process without revealing it: SipHash keyed with
    /// random keys drawn once per process (so it cannot be reversed or compared offline).
    /// Two Providers holding the same token are one account ([`ProviderConfig::account_key`]).
    pub fn fingerprint(&self) -> u64 {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> = std::sync::OnceLock::new();
        KEYS.get_or_init(std::collections::hash_map::RandomState::new).hash_one(&self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Which upstream connection a call is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub connection_id: String,
    /// Nango's integration id (`provider_config_key`), needed by every Nango call.
    pub provider_config_key: Option<String>,
}

impl Target {
    pub fn for_connection(spec: &ConnectionSpec) -> Self {
        Target {
            connection_id: spec.connection_id.clone(),
            provider_config_key: spec.nango.as_ref().map(|n| n.provider_config_key.clone()),
        }
    }
}

/// One provider account's API, as the controller uses it.
pub trait ProviderClient: Send + Sync + std::fmt::Debug {
    /// Read the connection's current state (`GET`), normalised for planning.
    fn read<'a>(&'a self, target: &'a Target) -> BoxFuture<'a, Result<Upstream, ProviderError>>;
    /// Apply one planned write.
    fn write<'a>(&'a self, target: &'a Target, write: &'a Write) -> BoxFuture<'a, Result<(), ProviderError>>;
    /// Read the connection for a drift check from a list of the whole account that
    /// satisfies `freshness` (listing again if needed). `Ok(None)`: no row to offer (the
    /// provider has no list, the list is unavailable or lacks the connection): `read` it.
    fn read_listed<'a>(
        &'a self,
        _target: &'a Target,
        _freshness: Freshness,
    ) -> BoxFuture<'a, Result<Option<Upstream>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }
    /// Every connection of the account, listed afresh (`connection-operator import`).
    /// `Ok(None)`: the provider has no list of the account's connections (Mielto, Are.na).
    fn list(&self) -> BoxFuture<'_, Result<Option<AccountConnections>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }
}

/// The request a planned write is sent as, for people: `PATCH /connections/metadata`.
pub fn write_request(write: &Write, target: &Target) -> String {
    let id = &target.connection_id;
    match write {
        Write::NangoPatch { .. } => "PATCH /connections/metadata".into(),
        Write::NangoReplace { .. } => "POST /connections/metadata".into(),
        Write::ArenaPut { .. } => format!("PUT /v3/connections/{id}"),
        Write::MieltoPut { .. } => format!("PUT /api/v1/connections/{id}"),
        Write::DatagridPatch { .. } => format!("PATCH /connections/{id}"),
    }
}

/// The request that reads one connection, for people: `GET /v3/connections/98765`.
pub fn read_request(type_: ProviderType, target: &Target) -> String {
    let id = &target.connection_id;
    match type_ {
        ProviderType::Nango => format!(
            "GET /connections/{id}?provider_config_key={}",
            target.provider_config_key.as_deref().unwrap_or_default()
        ),
        ProviderType::Mielto => format!("GET /api/v1/connections/{id}"),
        ProviderType::Arena => format!("GET /v3/connections/{id}"),
        ProviderType::Datagrid => format!("GET /connections/{id}"),
    }
}

/// The pacing buckets that one read followed by one write of `type_` takes a token from,
/// with how many each: Datagrid limits each path and method on its own (docs/providers.md,
/// Datagrid), the others limit the whole account.
pub fn sync_buckets(type_: ProviderType) -> &'static [(&'static str, u32)] {
    match type_ {
        ProviderType::Datagrid => datagrid::SYNC_BUCKETS,
        ProviderType::Nango | ProviderType::Mielto | ProviderType::Arena => &[("", 2)],
    }
}

/// Build the client for a provider account. `http` is shared by all clients (connection
/// pooling); `pacer` is the account's (an [`AccountHandle`]'s, from [`Accounts::handle`]).
pub fn client(
    config: &ProviderConfig,
    token: Token,
    http: reqwest::Client,
    pacer: Arc<AccountPacer>,
) -> Result<Arc<dyn ProviderClient>, ProviderError> {
    observed_client(config, token, http, pacer, None)
}

/// [`client`], reporting every request it sends to `observer`.
pub fn observed_client(
    config: &ProviderConfig,
    token: Token,
    http: reqwest::Client,
    pacer: Arc<AccountPacer>,
    observer: Option<RequestObserver>,
) -> Result<Arc<dyn ProviderClient>, ProviderError> {
    Ok(match config.type_ {
        ProviderType::Nango => Arc::new(nango::Nango::new(config, token, http, pacer, observer)?),
        ProviderType::Mielto => Arc::new(mielto::Mielto::new(config, token, http, pacer, observer)?),
        ProviderType::Arena => Arc::new(arena::Arena::new(config, token, http, pacer, observer)?),
        ProviderType::Datagrid => Arc::new(datagrid::Datagrid::new(config, token, http, pacer, observer)?),
    })
}

/// A write the client cannot send: the controller planned against another provider.
fn unsupported(provider: &str, write: &Write) -> ProviderError {
    let kind = match write {
        Write::NangoPatch { .. } | Write::NangoReplace { .. } => "nango",
        Write::ArenaPut { .. } => "arena",
        Write::MieltoPut { .. } => "mielto",
        Write::DatagridPatch { .. } => "datagrid",
    };
    ProviderError::Terminal { status: 0, message: format!("a {kind} write cannot be sent to {provider}") }
}

/// A 2xx body that lacks what the provider documents.
fn unexpected(what: &str) -> ProviderError {
    ProviderError::Retryable { status: None, message: format!("unexpected response: {what}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_trimmed() {
        let token = Token::from_secret_bytes(b"abc123\n").unwrap();
        assert_eq!(token.expose(), "abc123");
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert!(Token::from_secret_bytes(b"  \n").is_none());
        assert!(Token::from_secret_bytes(&[0xff, 0xfe]).is_none());
    }
}
