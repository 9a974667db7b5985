//! Every Kubernetes call the operator makes, replayed as one client through the libraries the
//! operator uses (kube-rs, kube-runtime's event Recorder, kube-lease-manager), and the sweep
//! that takes each verb of each of the chart's rules away in turn: the real RBAC authorizer
//! must then refuse at least one of those calls with 403, and nothing else may fail.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::{Value, json};

use super::release::Release;
use super::tenancy::Tenancy;

/// The Lease of `--leader-election` (controller::LeaseSettings::new).
pub const LEASE: &str = "connection-operator";

/// Which RBAC the chart renders: a ClusterRole for every namespace, or Roles in one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    AllNamespaces,
    /// The tenants namespace of the [`Tenancy`].
    OneNamespace,
}

/// The chart values of `scope` (plus leader election when asked).
pub fn values(scope: Scope, tenancy: &Tenancy, leader_election: bool) -> Value {
    let mut values = json!({"leaderElection": {"enabled": leader_election}});
    if scope == Scope::OneNamespace {
        values["operator"] = json!({"watchNamespaces": [tenancy.tenants()]});
        values["rbac"] = json!({"secretNamespaces": [tenancy.platform()]});
    }
    values
}

pub fn api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("connection-operator.dev", "v1alpha1", kind), plural)
}

/// A call that failed: whether the API server said 403, and what it said.
#[derive(Debug)]
pub struct Failure {
    pub call: String,
    pub forbidden: bool,
    pub message: String,
}

fn failure(call: &str, e: &kube::Error) -> Failure {
    let forbidden = matches!(e, kube::Error::Api(s) if s.code == 403);
    Failure { call: call.to_string(), forbidden, message: e.to_string() }
}

pub fn describe(failures: &[Failure]) -> String {
    failures.iter().map(|f| format!("{}: {}", f.call, f.message)).collect::<Vec<_>>().join("\n")
}

pub fn calls(failures: &[Failure]) -> Vec<&str> {
    failures.iter().map(|f| f.call.as_str()).collect()
}

/// What the replayed calls touch, created as the admin: the nango Provider and its Secret,
/// the ClusterProvider and its Secret in platform, the ConfigMap `tenant-defaults`,
/// Connections `acme-salesforce` (which reads it) and `acme-slack`. Nothing reconciles them
/// (no operator runs).
pub fn seed(tenancy: &Tenancy) {
    let tenants = tenancy.tenants();
    tenancy.secret(tenants, "nango-credentials", "tok-replay");
    tenancy.secret(tenancy.platform(), "datagrid-credentials", "tok-replay");
    tenancy.provider("nango", "http://127.0.0.1:9/nango");
    tenancy.datagrid_cluster_provider("http://127.0.0.1:9/datagrid/v1");
    tenancy.config_map(tenants, "tenant-defaults", json!({"tier": "gold"}));
    tenancy.connection(
        "acme-salesforce",
        json!({"providerRef": {"name": "nango"}, "connectionId": "acme-salesforce-1",
               "nango": {"providerConfigKey": "salesforce", "metadataFrom": [{"configMapRef": {"name": "tenant-defaults"}}]}}),
    );
    tenancy.connection("acme-slack", json!({"providerRef": {"name": "nango"}, "connectionId": "acme-slack-1", "nango": {"providerConfigKey": "slack"}, "deletionPolicy": "Delete"}));
}

/// Every Kubernetes call the operator makes, made as `client`, scoped as the operator of
/// `scope` scopes them. Returns the calls that failed.
pub async fn replay(client: &Client, scope: Scope, tenancy: &Tenancy, lease_namespace: Option<&str>) -> Vec<Failure> {
    let mut failures = Vec::new();
    let mut check = |call: &str, r: Result<(), kube::Error>| {
        if let Err(e) = r {
            failures.push(failure(call, &e));
        }
    };
    let tenants = tenancy.tenants();
    let conn_ar = api_resource("Connection", "connections");
    let prov_ar = api_resource("Provider", "providers");
    let cp_ar = api_resource("ClusterProvider", "clusterproviders");
    #[allow(clippy::type_complexity)]
    let (conns_watch, provs_watch, secrets_watch, config_maps_watch): (
        Api<DynamicObject>,
        Api<DynamicObject>,
        Api<Secret>,
        Api<ConfigMap>,
    ) = match scope {
        Scope::AllNamespaces => (
            Api::all_with(client.clone(), &conn_ar),
            Api::all_with(client.clone(), &prov_ar),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
        Scope::OneNamespace => (
            Api::namespaced_with(client.clone(), tenants, &conn_ar),
            Api::namespaced_with(client.clone(), tenants, &prov_ar),
            Api::namespaced(client.clone(), tenants),
            Api::namespaced(client.clone(), tenants),
        ),
    };
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), tenants);
    let conns: Api<DynamicObject> = Api::namespaced_with(client.clone(), tenants, &conn_ar);
    let provs: Api<DynamicObject> = Api::namespaced_with(client.clone(), tenants, &prov_ar);
    let cps: Api<DynamicObject> = Api::all_with(client.clone(), &cp_ar);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), tenants);
    let platform_secrets: Api<Secret> = Api::namespaced(client.clone(), tenancy.platform());
    let wp = WatchParams::default().timeout(1);
    let lp = ListParams::default();
    let ssa = PatchParams::apply("connection-operator").force();

    // The controller's watches (kube-runtime watcher: list, then watch) and the metadata-only
    // Secret watch.
    check("list connections", conns_watch.list(&lp).await.map(drop));
    check("watch connections", conns_watch.watch(&wp, "0").await.map(drop));
    check("list providers", provs_watch.list(&lp).await.map(drop));
    check("watch providers", provs_watch.watch(&wp, "0").await.map(drop));
    check("list clusterproviders", cps.list(&lp).await.map(drop));
    check("watch clusterproviders", cps.watch(&wp, "0").await.map(drop));
    check("list secret metadata", secrets_watch.list_metadata(&lp).await.map(drop));
    check("watch secret metadata", secrets_watch.watch_metadata(&wp, "0").await.map(drop));
    // The metadata-only ConfigMap watch of shared settings (metadataFrom/configFrom).
    check("list configmap metadata", config_maps_watch.list_metadata(&lp).await.map(drop));
    check("watch configmap metadata", config_maps_watch.watch_metadata(&wp, "0").await.map(drop));
    // Reconcile: dereference the provider (on a watch-cache miss) and read its credentials.
    check("get provider", provs.get("nango").await.map(drop));
    check("get clusterprovider", cps.get(&tenancy.cluster_provider).await.map(drop));
    check("get secret", secrets.get("nango-credentials").await.map(drop));
    check("get clusterprovider secret", platform_secrets.get("datagrid-credentials").await.map(drop));
    // A referenced ConfigMap of shared settings, read when its resourceVersion changed.
    check("get configmap", config_maps.get("tenant-defaults").await.map(drop));
    // The cleanup finalizer (deletionPolicy Delete) by merge patch, added and released.
    let finalizers = |list: Value| json!({"metadata": {"finalizers": list}});
    check(
        "add connection finalizer",
        conns
            .patch(
                "acme-slack",
                &PatchParams::default(),
                &Patch::Merge(&finalizers(json!(["connection-operator.dev/cleanup"]))),
            )
            .await
            .map(drop),
    );
    check(
        "release connection finalizer",
        conns.patch("acme-slack", &PatchParams::default(), &Patch::Merge(&finalizers(json!([])))).await.map(drop),
    );
    // Status by server-side apply.
    let status = |kind: &str, name: &str| json!({"apiVersion": "connection-operator.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "status": {"observedGeneration": 1}});
    check(
        "apply connection status",
        conns
            .patch_status("acme-salesforce", &ssa, &Patch::Apply(status("Connection", "acme-salesforce")))
            .await
            .map(drop),
    );
    check(
        "apply provider status",
        provs.patch_status("nango", &ssa, &Patch::Apply(status("Provider", "nango"))).await.map(drop),
    );
    check(
        "apply clusterprovider status",
        cps.patch_status(
            &tenancy.cluster_provider,
            &ssa,
            &Patch::Apply(status("ClusterProvider", &tenancy.cluster_provider)),
        )
        .await
        .map(drop),
    );
    // Events through kube-runtime's Recorder: the first is created, a repeat is patched.
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: "connection-operator".into(), instance: Some("replay".into()) },
    );
    let reference = ObjectReference {
        api_version: Some("connection-operator.dev/v1alpha1".into()),
        kind: Some("Connection".into()),
        name: Some("acme-salesforce".into()),
        namespace: Some(tenants.into()),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Normal,
        reason: "Synced".into(),
        note: Some("in sync".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    check("create event", recorder.publish(&event, &reference).await);
    check("patch event", recorder.publish(&event, &reference).await);
    // Leader election through kube-lease-manager: build (get, create) and acquire (patch).
    if let Some(namespace) = lease_namespace {
        let acquired = async {
            let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), LEASE)
                .with_namespace(namespace)
                .with_duration(15)
                .with_grace(5)
                .build()
                .await?;
            let leading = manager.changed().await?;
            manager.release().await?;
            Ok::<bool, kube_lease_manager::LeaseManagerError>(leading)
        };
        let call = "acquire lease";
        match tokio::time::timeout(Duration::from_secs(120), acquired).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                failures.push(Failure { call: call.into(), forbidden: false, message: "not leading".into() })
            }
            Ok(Err(kube_lease_manager::LeaseManagerError::KubeError(e))) => failures.push(failure(call, &e)),
            Ok(Err(e)) => failures.push(Failure { call: call.into(), forbidden: false, message: e.to_string() }),
            Err(_) => failures.push(Failure { call: call.into(), forbidden: false, message: "timed out".into() }),
        }
    }
    failures
}

/// The release's Roles and ClusterRoles for `scope`, as the server holds them.
pub fn release_roles(release: &Release, scope: Scope, tenancy: &Tenancy) -> Vec<Value> {
    let mut targets: Vec<Vec<String>> = Vec::new();
    // The Lease Role exists only with leader election.
    let lease_role = format!("{}-leader-election", release.fullname);
    if release.exists(&["role", &lease_role, "--namespace", release.namespace()]) {
        targets.push(vec!["role".into(), lease_role, "--namespace".into(), release.namespace().into()]);
    }
    match scope {
        Scope::AllNamespaces => targets.push(vec!["clusterrole".into(), release.fullname.clone()]),
        Scope::OneNamespace => {
            targets.push(vec!["clusterrole".into(), format!("{}-clusterproviders", release.fullname)]);
            targets.push(vec!["role".into(), release.fullname.clone(), "--namespace".into(), tenancy.tenants().into()]);
            targets.push(vec![
                "role".into(),
                format!("{}-secrets", release.fullname),
                "--namespace".into(),
                tenancy.platform().into(),
            ]);
        }
    }
    targets.iter().map(|t| release.get(&t.iter().map(String::as_str).collect::<Vec<_>>())).collect()
}

/// Every (verb, group, resource) a role grants.
pub fn grants(role: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for rule in role["rules"].as_array().expect("rules") {
        for group in rule["apiGroups"].as_array().expect("apiGroups") {
            for resource in rule["resources"].as_array().expect("resources") {
                for verb in rule["verbs"].as_array().expect("verbs") {
                    out.push((
                        verb.as_str().unwrap().to_string(),
                        group.as_str().unwrap().to_string(),
                        resource.as_str().unwrap().to_string(),
                    ));
                }
            }
        }
    }
    out
}

/// Replace a Role or ClusterRole (JSON, without resourceVersion) as the admin.
pub async fn replace_role(admin: &Client, role: &Value) {
    let kind = role["kind"].as_str().expect("kind");
    let gvk = GroupVersionKind::gvk("rbac.authorization.k8s.io", "v1", kind);
    let name = role["metadata"]["name"].as_str().expect("name");
    let api: Api<DynamicObject> = match role["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(admin.clone(), ns, &ApiResource::from_gvk_with_plural(&gvk, "roles")),
        None => Api::all_with(admin.clone(), &ApiResource::from_gvk_with_plural(&gvk, "clusterroles")),
    };
    let mut obj = role.clone();
    obj["metadata"].as_object_mut().expect("metadata").remove("resourceVersion");
    let obj: DynamicObject = serde_json::from_value(obj).expect("role decodes");
    api.replace(name, &PostParams::default(), &obj).await.unwrap_or_else(|e| panic!("replace {name}: {e}"));
}

/// Whether the real authorizer lets `user` do `verb` on `group`/`resource` (with its
/// subresource) in `namespace` (None: cluster-wide), asked with a SubjectAccessReview.
pub async fn allowed(
    admin: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r.to_string(), Some(s.to_string())),
        None => (resource.to_string(), None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            groups: Some(vec!["system:serviceaccounts".into(), "system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource),
                subresource,
                namespace: namespace.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview");
    answer.status.is_some_and(|s| s.allowed)
}

/// Wait until the authorizer's answer for each of `grants` (in `namespace`) is `expected`:
/// RBAC reads Roles through an informer, so a replaced Role takes effect a moment later.
pub async fn await_authorizer(
    admin: &Client,
    user: &str,
    grants: &[(String, String, String)],
    namespace: Option<&str>,
    expected: bool,
) {
    for (verb, group, resource) in grants {
        connection_testkit::wait::eventually(
            &format!("the authorizer to answer {expected} for {verb} {group}/{resource}"),
            || async { (allowed(admin, user, verb, group, resource, namespace).await == expected).then_some(()) },
        )
        .await;
    }
}

/// Without one verb of one rule, some call of [`replay`] must fail with 403 (and no call
/// may fail otherwise); with the chart's rules back, none fails.
pub async fn assert_every_verb_is_needed(
    release: &Release<'_>,
    tenancy: &Tenancy,
    client: &Client,
    user: &str,
    scope: Scope,
) {
    let admin = release.cluster.client().await;
    let leases: Api<Lease> = Api::namespaced(admin.clone(), release.namespace());
    for role in release_roles(release, scope, tenancy) {
        let namespace = role["metadata"]["namespace"].as_str().map(str::to_string);
        let rules = role["rules"].as_array().expect("rules").clone();
        for (i, rule) in rules.iter().enumerate() {
            for verb in rule["verbs"].as_array().expect("verbs") {
                let mut reduced = role.clone();
                let remaining: Vec<&Value> = rule["verbs"].as_array().unwrap().iter().filter(|v| *v != verb).collect();
                let mut new_rules = rules.clone();
                if remaining.is_empty() {
                    new_rules.remove(i);
                } else {
                    new_rules[i]["verbs"] = json!(remaining);
                }
                reduced["rules"] = json!(new_rules);
                let removed: Vec<_> =
                    grants(&json!({"rules": [rule]})).into_iter().filter(|g| g.0 == verb.as_str().unwrap()).collect();
                replace_role(&admin, &reduced).await;
                await_authorizer(&admin, user, &removed, namespace.as_deref(), false).await;
                // A first start: the operator creates its Lease when there is none.
                if let Err(e) = leases.delete(LEASE, &Default::default()).await {
                    assert!(matches!(&e, kube::Error::Api(s) if s.code == 404), "delete the Lease: {e}");
                }
                let failures = replay(client, scope, tenancy, Some(release.namespace())).await;
                let what = format!("{verb} on {} in {}", rule["resources"], role["metadata"]["name"]);
                assert!(!failures.is_empty(), "the operator needs {what}, yet every call succeeded without it");
                assert!(
                    failures.iter().all(|f| f.forbidden),
                    "only 403s expected without {what}:\n{}",
                    describe(&failures)
                );
                // Put the role back as the chart rendered it.
                replace_role(&admin, &role).await;
                await_authorizer(&admin, user, &removed, namespace.as_deref(), true).await;
            }
        }
    }
    let failures = replay(client, scope, tenancy, Some(release.namespace())).await;
    assert!(failures.is_empty(), "after restoring the chart's RBAC:\n{}", describe(&failures));
}
