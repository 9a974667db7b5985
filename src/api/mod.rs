//! CRD types: `Connection`, `Provider`, `ClusterProvider` (group `connection-operator.dev`,
//! version `v1alpha1`), and the CRD manifests generated from them.

pub mod conditions;
mod connection;
mod provider;
mod schema;
pub mod validate;

pub use connection::*;
pub use provider::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD of the operator, in a stable order, as kube-apiserver should see it (integer
/// formats it knows: [`schema::kubernetes_integer_formats`]).
pub fn crds() -> Vec<CustomResourceDefinition> {
    [Connection::crd(), Provider::crd(), ClusterProvider::crd()]
        .into_iter()
        .map(|crd| {
            let mut value = serde_json::to_value(&crd).expect("a CRD serializes");
            schema::kubernetes_integer_formats(&mut value);
            serde_json::from_value(value).expect("formats do not change the CRD's shape")
        })
        .collect()
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
