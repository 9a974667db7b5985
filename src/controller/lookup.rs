//! The controller's [`Lookup`]: the objects a reconcile resolves (`resolve`), from the watch
//! caches where it can, so that a reconcile costs no Kubernetes read in steady state.
//!
//! - Providers and ClusterProviders: the watch cache (a `GET` only when not cached yet).
//! - The token: read from its Secret with a `GET` only when the metadata watch shows a
//!   `resourceVersion` other than the one the cached token came from (kept by
//!   `providers::Accounts`); only the one key is kept.
//! - Shared settings (`metadataFrom`/`configFrom`): ConfigMaps and Secrets are watched by
//!   metadata only; a referenced object is read with a `GET` when its `resourceVersion`
//!   differs from the one its cached data was read at (or it is not in the watch cache yet),
//!   so a change rolls out at once and a steady state costs no read. Only referenced objects
//!   are cached (their every key is used), and a Secret no Connection references any more is
//!   dropped from the cache.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::runtime::reflector::ObjectRef;

use super::context::Context;
use crate::api::{ClusterProvider, Connection, CredentialsLocation, Provider, SourceKind};
use crate::desired::{self, Fetched};
use crate::providers::Token;
use crate::resolve::{self, Lookup};

/// Kind, namespace, name.
type SourceId = (SourceKind, String, String);

/// Data of referenced ConfigMaps and Secrets, with the `resourceVersion` it was read at.
#[derive(Default)]
pub struct Sources {
    cache: Mutex<HashMap<SourceId, (String, Fetched)>>,
}

impl Sources {
    fn current(&self, id: &SourceId, resource_version: &str) -> Option<Fetched> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(id).filter(|(version, _)| version == resource_version).map(|(_, data)| data.clone())
    }

    fn remember(&self, id: SourceId, resource_version: String, data: Fetched) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(id, (resource_version, data));
    }

    fn forget(&self, id: &SourceId) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.remove(id);
    }

    /// Drop the data of Secrets that no Connection in `connections` references.
    fn retain_referenced_secrets(&self, connections: &[std::sync::Arc<Connection>]) {
        let referenced: HashSet<(String, String)> = connections
            .iter()
            .flat_map(|c| {
                let namespace = c.metadata.namespace.clone().unwrap_or_default();
                desired::references(&c.spec)
                    .into_iter()
                    .filter(|(kind, _, _)| *kind == SourceKind::Secret)
                    .map(move |(_, name, _)| (namespace.clone(), name))
            })
            .collect();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|(kind, namespace, name), _| {
            *kind != SourceKind::Secret || referenced.contains(&(namespace.clone(), name.clone()))
        });
    }
}

fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

impl Context {
    /// The `resourceVersion` the metadata watch shows for a ConfigMap or Secret.
    fn watched_version(&self, kind: SourceKind, namespace: &str, name: &str) -> Option<String> {
        match kind {
            SourceKind::ConfigMap => self
                .config_maps
                .get(&ObjectRef::new(name).within(namespace))
                .and_then(|o| o.metadata.resource_version.clone()),
            SourceKind::Secret => self
                .secrets
                .get(&ObjectRef::new(name).within(namespace))
                .and_then(|o| o.metadata.resource_version.clone()),
        }
    }

    async fn read_source(&self, kind: SourceKind, namespace: &str, name: &str) -> Result<Fetched, kube::Error> {
        let id: SourceId = (kind, namespace.to_string(), name.to_string());
        if let Some(version) = self.watched_version(kind, namespace, name)
            && let Some(data) = self.sources.current(&id, &version)
        {
            return Ok(data);
        }
        let read = match kind {
            SourceKind::ConfigMap => {
                Api::<ConfigMap>::namespaced(self.client.clone(), namespace).get_opt(name).await.map(|cm| {
                    let version = cm.as_ref().and_then(|c| c.metadata.resource_version.clone());
                    (version, resolve::fetched_from_config_map(cm.as_ref()))
                })
            }
            SourceKind::Secret => {
                Api::<Secret>::namespaced(self.client.clone(), namespace).get_opt(name).await.map(|s| {
                    let version = s.as_ref().and_then(|s| s.metadata.resource_version.clone());
                    (version, resolve::fetched_from_secret(s.as_ref()))
                })
            }
        };
        match read {
            Ok((Some(version), data)) => {
                self.sources.remember(id, version, data.clone());
                if kind == SourceKind::Secret {
                    self.sources.retain_referenced_secrets(&self.connections.state());
                }
                Ok(data)
            }
            Ok((None, data)) => {
                self.sources.forget(&id);
                Ok(data)
            }
            Err(e) if forbidden(&e) => {
                self.sources.forget(&id);
                Ok(Fetched::Forbidden)
            }
            Err(e) => Err(e),
        }
    }

    async fn read_token(&self, location: &CredentialsLocation) -> Result<Result<Token, String>, kube::Error> {
        let watched = self
            .secrets
            .get(&ObjectRef::new(&location.name).within(&location.namespace))
            .and_then(|s| s.metadata.resource_version.clone());
        if let Some(token) = watched.as_deref().and_then(|v| self.accounts.token(location, v)) {
            return Ok(Ok(token));
        }
        // Whatever is cached is not current: read the Secret, and keep only what it yields now.
        self.accounts.forget_token(location);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &location.namespace);
        let secret = match api.get_opt(&location.name).await {
            Ok(secret) => secret,
            Err(e) if forbidden(&e) => {
                return Ok(Err(format!("Secret {}/{} cannot be read (forbidden)", location.namespace, location.name)));
            }
            Err(e) => return Err(e),
        };
        let token = resolve::token_from_secret(secret.as_ref(), location);
        if let (Ok(token), Some(version)) = (&token, secret.and_then(|s| s.metadata.resource_version)) {
            self.accounts.remember_token(location, version, token.clone());
        }
        Ok(token)
    }
}

impl Lookup for Context {
    fn provider<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Provider>, kube::Error>> {
        Box::pin(async move {
            let cached = self.providers.get(&ObjectRef::new(name).within(namespace)).map(|p| p.as_ref().clone());
            // Not cached yet (the watch may lag a just-created Provider): ask.
            match cached {
                Some(p) => Ok(Some(p)),
                None => Api::<Provider>::namespaced(self.client.clone(), namespace).get_opt(name).await,
            }
        })
    }

    fn cluster_provider<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ClusterProvider>, kube::Error>> {
        Box::pin(async move {
            let cached = self.cluster_providers.get(&ObjectRef::new(name)).map(|p| p.as_ref().clone());
            match cached {
                Some(p) => Ok(Some(p)),
                None => Api::<ClusterProvider>::all(self.client.clone()).get_opt(name).await,
            }
        })
    }

    fn token<'a>(
        &'a self,
        location: &'a CredentialsLocation,
    ) -> BoxFuture<'a, Result<Result<Token, String>, kube::Error>> {
        Box::pin(self.read_token(location))
    }

    fn source<'a>(
        &'a self,
        kind: SourceKind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, kube::Error>> {
        Box::pin(self.read_source(kind, namespace, name))
    }
}
