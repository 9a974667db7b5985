//! Manifests as YAML text, for tests that change the cluster only through kubectl (the
//! end-to-end and leader-election tiers): a Provider with its credentials Secret, a
//! Connection, several joined into one stream.

/// A Secret `<provider>-credentials` (token `t0k3n-<provider>`) and a Provider named like
/// its type, pointing at `base_url`; `extra_spec` is one more line of its spec (YAML), e.g.
/// `rateLimit: {requestsPerMinute: 600}`.
pub fn provider_yaml(namespace: &str, provider: &str, base_url: &str, extra_spec: &str) -> String {
    let extra = if extra_spec.is_empty() { String::new() } else { format!("\n  {extra_spec}") };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {provider}-credentials, namespace: {namespace}}}\nstringData: {{token: t0k3n-{provider}}}\n---\n\
         apiVersion: connection-operator.dev/v1alpha1\nkind: Provider\nmetadata: {{name: {provider}, namespace: {namespace}}}\nspec:\n  type: {provider}\n  baseUrl: {base_url}\n  credentialsRef: {{name: {provider}-credentials, key: token}}{extra}\n"
    )
}

/// A Connection manifest; `block` is the provider block's YAML flow mapping, e.g.
/// `{name: Acme}` for Datagrid.
pub fn connection_yaml(namespace: &str, name: &str, provider: &str, id: &str, block: &str, extra_spec: &str) -> String {
    let extra = if extra_spec.is_empty() { String::new() } else { format!("\n  {extra_spec}") };
    format!(
        "apiVersion: connection-operator.dev/v1alpha1\nkind: Connection\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  providerRef: {{name: {provider}}}\n  connectionId: \"{id}\"\n  {provider}: {block}{extra}\n"
    )
}

/// Join manifests into one multi-document YAML.
pub fn documents(docs: impl IntoIterator<Item = String>) -> String {
    docs.into_iter().collect::<Vec<_>>().join("---\n")
}
