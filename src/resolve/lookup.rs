//! Reading the objects a resolution needs straight from the API server (the command line's
//! [`Lookup`]), and the conversions the controller's cached lookup shares: a Secret's key as
//! a token, a ConfigMap's or Secret's data as shared settings.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};

use super::Lookup;
use crate::api::{ClusterProvider, CredentialsLocation, Provider, SourceKind};
use crate::desired::{Fetched, SourceData};
use crate::providers::Token;

/// The token in `secret` at `location`'s key, or why there is none (naming the Secret and
/// the key, never a value). `None`: the Secret does not exist.
pub fn token_from_secret(secret: Option<&Secret>, location: &CredentialsLocation) -> Result<Token, String> {
    let Some(secret) = secret else {
        return Err(format!("Secret {}/{} not found", location.namespace, location.name));
    };
    let bytes = secret.data.as_ref().and_then(|d| d.get(&location.key));
    match bytes.and_then(|b| Token::from_secret_bytes(&b.0)) {
        Some(token) => Ok(token),
        None if bytes.is_none() => {
            Err(format!("Secret {}/{} has no key {}", location.namespace, location.name, location.key))
        }
        None => {
            Err(format!("Secret {}/{} key {} is empty or not UTF-8", location.namespace, location.name, location.key))
        }
    }
}

/// A ConfigMap's `data` as shared settings (`binaryData` is not used).
pub fn fetched_from_config_map(config_map: Option<&ConfigMap>) -> Fetched {
    match config_map {
        None => Fetched::NotFound,
        Some(cm) => {
            let data: SourceData = cm.data.iter().flatten().map(|(k, v)| (k.clone(), v.as_bytes().to_vec())).collect();
            Fetched::Found(Arc::new(data))
        }
    }
}

/// A Secret's `data` as shared settings.
pub fn fetched_from_secret(secret: Option<&Secret>) -> Fetched {
    match secret {
        None => Fetched::NotFound,
        Some(s) => {
            let data: SourceData = s.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect();
            Fetched::Found(Arc::new(data))
        }
    }
}

fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// Plain reads from the API server, for the command line. Objects given in `overlay` (the
/// ConfigMaps and Secrets of the manifests being planned) stand in for the cluster's.
#[derive(Clone)]
pub struct ApiLookup {
    client: Client,
    overlay: HashMap<(SourceKind, String, String), Fetched>,
}

impl ApiLookup {
    pub fn new(client: Client) -> Self {
        ApiLookup { client, overlay: HashMap::new() }
    }

    /// Use `fetched` for the `kind` object `namespace/name` instead of the cluster's.
    pub fn overlay(&mut self, kind: SourceKind, namespace: &str, name: &str, fetched: Fetched) {
        self.overlay.insert((kind, namespace.to_string(), name.to_string()), fetched);
    }

    /// The overlaid objects, for reporting what was taken from the input.
    pub fn overlaid(&self) -> BTreeMap<(SourceKind, String, String), ()> {
        self.overlay.keys().map(|k| (k.clone(), ())).collect()
    }
}

impl Lookup for ApiLookup {
    fn provider<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<Provider>, kube::Error>> {
        Box::pin(async move { Api::<Provider>::namespaced(self.client.clone(), namespace).get_opt(name).await })
    }

    fn cluster_provider<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ClusterProvider>, kube::Error>> {
        Box::pin(async move { Api::<ClusterProvider>::all(self.client.clone()).get_opt(name).await })
    }

    fn token<'a>(
        &'a self,
        location: &'a CredentialsLocation,
    ) -> BoxFuture<'a, Result<Result<Token, String>, kube::Error>> {
        Box::pin(async move {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &location.namespace);
            match api.get_opt(&location.name).await {
                Ok(secret) => Ok(token_from_secret(secret.as_ref(), location)),
                Err(e) if forbidden(&e) => {
                    Ok(Err(format!("Secret {}/{} cannot be read (forbidden)", location.namespace, location.name)))
                }
                Err(e) => Err(e),
            }
        })
    }

    fn source<'a>(
        &'a self,
        kind: SourceKind,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Fetched, kube::Error>> {
        Box::pin(async move {
            if let Some(given) = self.overlay.get(&(kind, namespace.to_string(), name.to_string())) {
                return Ok(given.clone());
            }
            let result = match kind {
                SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(self.client.clone(), namespace)
                    .get_opt(name)
                    .await
                    .map(|cm| fetched_from_config_map(cm.as_ref())),
                SourceKind::Secret => Api::<Secret>::namespaced(self.client.clone(), namespace)
                    .get_opt(name)
                    .await
                    .map(|s| fetched_from_secret(s.as_ref())),
            };
            match result {
                Err(e) if forbidden(&e) => Ok(Fetched::Forbidden),
                other => other,
            }
        })
    }
}
