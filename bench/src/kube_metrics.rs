//! Kubernetes request counts on the real control plane, from kube-apiserver's `/metrics`
//! counter `apiserver_request_total` (labels `verb`, `group`, `resource`, ...; summed over
//! codes, versions, subresources and scopes). Pure: parsing, scoping and differences, so it
//! is unit-tested on literal text.
//!
//! The counter does not name the client, so the operator's share of a span is
//! `delta(apiserver) - delta(harness)` over the resources the operator uses
//! ([`in_operator_scope`]), the harness counting its own requests the way the API server
//! classifies them ([`classify`]). Two properties of the counter to keep in mind: a WATCH
//! is counted when it ends, not when it starts; and the background traffic of the control
//! plane itself (its own Leases, kube-controller-manager's informers) falls outside the
//! scope, except for kube-controller-manager's metadata watch of Connections (a handful of
//! requests per run at most).

use std::collections::BTreeMap;

/// Request counts by (group, resource, verb); the core group is `""`.
pub type Counts = BTreeMap<(String, String, String), u64>;

/// Verbs that change state.
pub const WRITE_VERBS: [&str; 6] = ["POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"];

/// The API group of the operator's custom resources.
pub const OPERATOR_GROUP: &str = "connection-operator.dev";

/// The resources the operator reads or writes in the benchmark: its own custom resources,
/// Secrets (metadata watch, token reads) and Events. (No Leases: they are also the control
/// plane's own heartbeat, and with `--shards` the operator's renewals are a fixed cost per
/// process, not per Connection.)
pub fn in_operator_scope(group: &str, resource: &str) -> bool {
    group == OPERATOR_GROUP
        || (group.is_empty() && matches!(resource, "secrets" | "events"))
        || (group == "events.k8s.io" && resource == "events")
}

/// `apiserver_request_total` of a Prometheus text exposition, summed by (group, resource, verb).
pub fn parse(text: &str) -> Counts {
    let mut counts = Counts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else { continue };
        let Some((labels, value)) = rest.rsplit_once('}') else { continue };
        let Some(value) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) else { continue };
        let labels = parse_labels(labels);
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        *counts.entry((get("group"), get("resource"), get("verb"))).or_default() += value as u64;
    }
    counts
}

/// `k="v",k2="v2"` (values may hold escaped quotes and commas).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String =
            chars.by_ref().take_while(|&c| c != '=').collect::<String>().trim_start_matches(',').trim().to_owned();
        if key.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key, value);
    }
    labels
}

/// `after - before`, entry by entry (a counter never decreases; a restart would, and is
/// clamped to 0).
pub fn delta(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// The operator's requests by verb: the API server's count minus the harness's, within the
/// operator's scope.
pub fn operator_by_verb(apiserver: &Counts, harness: &Counts) -> BTreeMap<String, u64> {
    let mut by_verb: BTreeMap<String, u64> = BTreeMap::new();
    for ((group, resource, verb), n) in apiserver {
        if in_operator_scope(group, resource) {
            let own = harness.get(&(group.clone(), resource.clone(), verb.clone())).copied().unwrap_or(0);
            let left = n.saturating_sub(own);
            if left > 0 {
                *by_verb.entry(verb.clone()).or_default() += left;
            }
        }
    }
    by_verb
}

/// How kube-apiserver names a request in `apiserver_request_total`: (group, resource, verb).
/// A GET of a collection is LIST (WATCH with `watch=true`), a PATCH with the apply content
/// type is APPLY. `None` for paths that name no resource (discovery, `/metrics`).
pub fn classify(method: &str, path: &str, query: &str, content_type: &str) -> Option<(String, String, String)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, rest) = match segments.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _ns, inner @ ..] if !inner.is_empty() => inner,
        other => other,
    };
    let (resource, named) = match rest {
        [resource] => (*resource, false),
        [resource, _name, ..] => (*resource, true),
        [] => return None,
    };
    let watch = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, named) {
        ("GET", _) if watch => "WATCH",
        ("GET", false) => "LIST",
        ("GET", true) => "GET",
        ("PATCH", _) if content_type.starts_with("application/apply-patch") => "APPLY",
        (m, _) => m,
    };
    Some((group.to_owned(), resource.to_owned(), verb.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="connection-operator.dev",resource="connections",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="connection-operator.dev",resource="connections",scope="resource",subresource="",verb="APPLY",version="v1alpha1"} 3
apiserver_request_total{code="409",component="apiserver",dry_run="",group="connection-operator.dev",resource="connections",scope="resource",subresource="",verb="APPLY",version="v1alpha1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 40
apiserver_request_total{code="0",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 1.5e+01
apiserver_request_duration_seconds_bucket{verb="GET",le="0.1"} 99
"#;

    fn key(g: &str, r: &str, v: &str) -> (String, String, String) {
        (g.into(), r.into(), v.into())
    }

    #[test]
    fn sums_the_counter_by_group_resource_and_verb() {
        let c = parse(SAMPLE);
        assert_eq!(c[&key(OPERATOR_GROUP, "connections", "APPLY")], 11, "codes and subresources are summed");
        assert_eq!(c[&key("", "secrets", "GET")], 2);
        assert_eq!(c[&key("", "pods", "WATCH")], 15, "exponent notation");
        assert_eq!(c.len(), 4, "other metrics are ignored: {c:?}");
    }

    #[test]
    fn operator_share_subtracts_the_harness_and_stays_in_scope() {
        let before = parse(SAMPLE);
        let mut after = before.clone();
        *after.get_mut(&key(OPERATOR_GROUP, "connections", "APPLY")).unwrap() += 25;
        *after.get_mut(&key("", "secrets", "GET")).unwrap() += 1;
        *after.get_mut(&key("coordination.k8s.io", "leases", "PUT")).unwrap() += 6;
        let d = delta(&after, &before);
        assert_eq!(d.len(), 3);
        let harness: Counts = [(key(OPERATOR_GROUP, "connections", "APPLY"), 20)].into();
        let by_verb = operator_by_verb(&d, &harness);
        assert_eq!(
            by_verb,
            BTreeMap::from([("APPLY".to_owned(), 5), ("GET".to_owned(), 1)]),
            "leases are the control plane's own"
        );
        // A counter that went down (restart) does not produce a huge difference.
        assert!(delta(&before, &after).is_empty());
    }

    #[test]
    fn classifies_requests_like_the_api_server() {
        fn c(m: &str, p: &str, q: &str, ct: &str) -> Option<String> {
            classify(m, p, q, ct).map(|(g, r, v)| format!("{g}/{r}/{v}"))
        }
        let conns = "/apis/connection-operator.dev/v1alpha1/namespaces/b/connections";
        assert_eq!(
            c("PATCH", &format!("{conns}/x"), "fieldManager=bench", "application/apply-patch+yaml").unwrap(),
            "connection-operator.dev/connections/APPLY"
        );
        assert_eq!(
            c("PATCH", &format!("{conns}/x/status"), "", "application/merge-patch+json").unwrap(),
            "connection-operator.dev/connections/PATCH"
        );
        assert_eq!(c("GET", conns, "limit=500", "").unwrap(), "connection-operator.dev/connections/LIST");
        assert_eq!(
            c("GET", conns, "watch=true&resourceVersion=5", "").unwrap(),
            "connection-operator.dev/connections/WATCH"
        );
        assert_eq!(c("GET", &format!("{conns}/x"), "", "").unwrap(), "connection-operator.dev/connections/GET");
        assert_eq!(c("POST", "/api/v1/namespaces/b/secrets", "", "application/json").unwrap(), "/secrets/POST");
        assert_eq!(c("POST", "/api/v1/namespaces", "", "application/json").unwrap(), "/namespaces/POST");
        assert_eq!(c("GET", "/api/v1/namespaces/b", "", "").unwrap(), "/namespaces/GET");
        assert_eq!(
            c("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", "", "").unwrap(),
            "apiextensions.k8s.io/customresourcedefinitions/POST"
        );
        assert_eq!(c("GET", "/metrics", "", ""), None);
        assert_eq!(c("GET", "/apis/connection-operator.dev/v1alpha1", "", ""), None);
        assert!(in_operator_scope("", "events") && in_operator_scope("events.k8s.io", "events"));
        assert!(!in_operator_scope("coordination.k8s.io", "leases") && !in_operator_scope("", "namespaces"));
    }
}
