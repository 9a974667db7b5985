//! CRD types: `Connection`, `Provider`, `ClusterProvider` (group `connection-operator.dev`,
//! version `v1alpha1`), and the CRD manifests generated from them.

pub mod conditions;
mod connection;
mod provider;
mod schema;

pub use connection::*;
pub use provider::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD of the operator, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Connection::crd(), Provider::crd(), ClusterProvider::crd()]
}

/// Every CRD as multi-document YAML: what `connection-operator crd` prints and what
/// `crds/connection-operator.dev.yaml` holds.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
