//! Everything a Connection's plan depends on besides upstream, resolved the same way by the
//! controller and by `connection-operator plan`/`import` (one code path): the desired state
//! with its shared settings merged in ([`desired`]), and the provider account with its
//! credentials ([`account`]). Where the objects come from is the [`Lookup`]'s business: the
//! controller's watch caches, or plain API reads from the command line.

mod lookup;

use futures::future::BoxFuture;
use kube::Resource;

pub use lookup::{ApiLookup, fetched_from_config_map, fetched_from_secret, token_from_secret};

use crate::api::Provider;
use crate::api::conditions::Reason;
use crate::api::validate;
use crate::api::{
    ClusterProvider, Connection, CredentialsLocation, ProviderConfig, ProviderId, ProviderKind, ProviderStatus,
    SourceKind,
};
use crate::desired::{self, Desired, Fetched};
use crate::providers::{AccountHandle, Accounts, Token};

/// Where a resolution reads the cluster's objects.
pub trait Lookup: Send + Sync {
    fn provider<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Provider>, kube::Error>>;
    fn cluster_provider<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ClusterProvider>, kube::Error>>;
    /// The token of `location`, or a message (naming the Secret and key, never the value)
    /// saying why there is none.
    fn token<'a>(
        &'a self,
        location: &'a CredentialsLocation,
    ) -> BoxFuture<'a, Result<Result<Token, String>, kube::Error>>;
    /// The data of a ConfigMap or Secret of `metadataFrom`/`configFrom`.
    fn source<'a>(
        &'a self,
        kind: SourceKind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, kube::Error>>;
}

/// The Provider or ClusterProvider a Connection resolved to.
#[derive(Clone, Debug)]
pub enum ProviderObject {
    Namespaced(Provider),
    Cluster(ClusterProvider),
}

impl ProviderObject {
    pub fn status(&self) -> Option<&ProviderStatus> {
        match self {
            ProviderObject::Namespaced(p) => p.status.as_ref(),
            ProviderObject::Cluster(p) => p.status.as_ref(),
        }
    }

    pub fn generation(&self) -> Option<i64> {
        match self {
            ProviderObject::Namespaced(p) => p.meta().generation,
            ProviderObject::Cluster(p) => p.meta().generation,
        }
    }

    /// Which object it is.
    pub fn id(&self) -> ProviderId {
        match self {
            ProviderObject::Namespaced(p) => p.id(),
            ProviderObject::Cluster(p) => p.id(),
        }
    }

    /// `Provider ns/name` or `ClusterProvider name`.
    pub fn describe(&self) -> String {
        self.id().to_string()
    }
}

/// A provider account with its credentials, ready for a client.
#[derive(Clone, Debug)]
pub struct Account {
    pub provider: ProviderObject,
    pub config: ProviderConfig,
    pub token: Token,
    /// [`ProviderConfig::account_key`]: Providers of one upstream account share it.
    pub key: crate::api::AccountKey,
}

/// An account resolved and registered: its credentials, and its shared state from the
/// registry.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub account: Account,
    pub handle: AccountHandle,
}

/// Why a Connection cannot be planned: a Ready reason with its message.
#[derive(Clone, Debug)]
pub struct Unresolved {
    pub reason: Reason,
    pub message: String,
    /// The Provider whose credentials are the problem (its own status should say so).
    pub provider: Option<ProviderObject>,
}

impl Unresolved {
    fn new(reason: Reason, message: impl Into<String>) -> Self {
        Unresolved { reason, message: message.into(), provider: None }
    }
}

/// A resolution step's answer: the API failed (`Err`, retried with backoff), or the step
/// succeeded or found a reason the Connection cannot go on.
pub type Resolution<T> = Result<Result<T, Unresolved>, kube::Error>;

/// The desired state: the spec's rules that the schema cannot hold, the sources read and
/// merged, and the merged spec checked again (keys brought in by sources obey the same
/// rules as inline ones).
pub async fn desired(conn: &Connection, namespace: &str, lookup: &dyn Lookup) -> Resolution<Desired> {
    if let Err(invalid) = validate::validate_spec(&conn.spec) {
        return Ok(Err(Unresolved::new(Reason::InvalidSpec, invalid.to_string())));
    }
    let mut fetched = Vec::new();
    for (kind, name, _) in desired::references(&conn.spec) {
        fetched.push(lookup.source(kind, namespace, &name).await?);
    }
    let merged = match desired::merge(&conn.spec, namespace, &fetched) {
        Ok(merged) => merged,
        Err(e) if e.is_missing() => return Ok(Err(Unresolved::new(Reason::ReferenceNotFound, e.to_string()))),
        Err(e) => return Ok(Err(Unresolved::new(Reason::InvalidSpec, e.to_string()))),
    };
    if let Err(invalid) = validate::validate_spec(&merged.spec) {
        return Ok(Err(Unresolved::new(Reason::InvalidSpec, invalid.to_string())));
    }
    Ok(Ok(merged))
}

/// The Provider (or ClusterProvider), its type against the Connection's block, and the
/// token from the referenced Secret.
pub async fn account(conn: &Connection, namespace: &str, lookup: &dyn Lookup) -> Resolution<Account> {
    let reference = &conn.spec.provider_ref;
    let (provider, config) = match reference.kind {
        ProviderKind::Provider => match lookup.provider(namespace, &reference.name).await? {
            Some(p) => {
                let config = ProviderConfig::from_provider(&p.spec, namespace);
                (ProviderObject::Namespaced(p), config)
            }
            None => {
                return Ok(Err(Unresolved::new(
                    Reason::ProviderNotFound,
                    format!("Provider {namespace}/{} not found", reference.name),
                )));
            }
        },
        ProviderKind::ClusterProvider => match lookup.cluster_provider(&reference.name).await? {
            Some(p) => {
                let config = ProviderConfig::from_cluster_provider(&p.spec);
                (ProviderObject::Cluster(p), config)
            }
            None => {
                return Ok(Err(Unresolved::new(
                    Reason::ProviderNotFound,
                    format!("ClusterProvider {} not found", reference.name),
                )));
            }
        },
    };
    if let Some(block) = conn.spec.block()
        && block.provider_type() != config.type_
    {
        return Ok(Err(Unresolved::new(
            Reason::ProviderMismatch,
            format!(
                "the Connection has a {} block but {:?} {} is of type {}",
                block.provider_type().as_str(),
                reference.kind,
                reference.name,
                config.type_.as_str()
            ),
        )));
    }
    match lookup.token(&config.credentials).await? {
        Ok(token) => {
            let key = config.account_key(&token);
            Ok(Ok(Account { provider, config, token, key }))
        }
        Err(message) => Ok(Err(Unresolved { reason: Reason::ProviderNotReady, message, provider: Some(provider) })),
    }
}

/// [`account`], then its handle from `accounts`: the one way the controller, `plan` and
/// `import` reach an account. A Provider found missing is forgotten by the registry (its
/// deletion may have come while the watch was down); a client that cannot be built for it
/// is `ProviderNotReady`, shown on the Provider too.
pub async fn account_handle(
    conn: &Connection,
    namespace: &str,
    lookup: &dyn Lookup,
    accounts: &Accounts,
) -> Resolution<Resolved> {
    let account = match account(conn, namespace, lookup).await? {
        Ok(account) => account,
        Err(unresolved) => {
            if unresolved.reason == Reason::ProviderNotFound {
                accounts.forget(&ProviderId::referenced(&conn.spec.provider_ref, namespace));
            }
            return Ok(Err(unresolved));
        }
    };
    match accounts.handle(&account.provider.id(), &account.key, &account.config, &account.token) {
        Ok(handle) => Ok(Ok(Resolved { account, handle })),
        Err(e) => Ok(Err(Unresolved {
            reason: Reason::ProviderNotReady,
            message: format!("the provider cannot be used: {e}"),
            provider: Some(account.provider),
        })),
    }
}

/// A `secretRef` naming the Secret that holds the Provider's own token would send the
/// credential upstream as metadata: refused (`InvalidSpec`) before anything is read
/// upstream.
pub fn credentials_loop(desired: &Desired, account: &Account, namespace: &str) -> Option<Unresolved> {
    let c = &account.config.credentials;
    (c.namespace == namespace && desired.reads_secret(&c.name)).then(|| {
        Unresolved::new(
            Reason::InvalidSpec,
            format!(
                "{} names Secret {}/{}, which holds the API token of {}; the token is never sent as metadata",
                desired::sources_field(&desired.spec),
                c.namespace,
                c.name,
                account.provider.describe()
            ),
        )
    })
}
