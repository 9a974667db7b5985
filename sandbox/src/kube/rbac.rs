//! RBAC enforcement for ServiceAccount tokens, as kube-apiserver's RBAC authorizer does it
//! (k8s.io/kubernetes `plugin/pkg/auth/authorizer/rbac`, `pkg/apis/rbac/v1/evaluation_helpers.go`).
//!
//! Off by default, so every existing client keeps working. `PUT /_sandbox/rbac
//! {"enforce": true}` turns it on; `POST /_sandbox/tokens {"serviceAccount": "ns/name"}` mints
//! a bearer token for a ServiceAccount. With enforcement on:
//! - the admin token (the one in the emulator's kubeconfig) is always allowed, as a
//!   `system:masters` member is;
//! - a request with no credentials at all is allowed too: the emulator serves plain HTTP on
//!   loopback, which is kube-apiserver's former insecure port (`--insecure-port`, no
//!   authentication or authorization), and client-go (kubectl, Helm) sends no bearer token
//!   over plain HTTP, so the admin's kubectl arrives without one;
//! - a minted token authenticates as `system:serviceaccount:ns:name` (groups
//!   `system:serviceaccounts`, `system:serviceaccounts:ns`, `system:authenticated`) while its
//!   ServiceAccount exists, and each request is checked against the stored Roles,
//!   ClusterRoles, RoleBindings and ClusterRoleBindings;
//! - any other token is 401 Unauthorized (authentication fails before RBAC).
//!
//! The decision is a pure function of the request attributes and a [`Policy`] snapshot, so it
//! is unit-tested without a server. Tokens are never logged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::Value;

use super::api_error::{ApiError, GroupResource};
use super::kubeconfig;
use super::store::Store;

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What a request does, in RBAC terms (`authorizer.Attributes` of a resource request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// An authenticated ServiceAccount (`user.Info`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ServiceAccountUser {
    namespace: String,
    name: String,
}

impl ServiceAccountUser {
    /// `serviceaccount.MakeUsername`.
    fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// `serviceaccount.MakeGroupNames` plus the group every authenticated user has.
    fn groups(&self) -> [String; 3] {
        [
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{}", self.namespace),
            "system:authenticated".into(),
        ]
    }
}

/// The RBAC objects a decision reads: bindings by namespace, roles by (namespace, name).
#[derive(Default, Debug)]
struct Policy {
    cluster_role_bindings: Vec<Value>,
    role_bindings: Vec<Value>,
    cluster_roles: HashMap<String, Value>,
    roles: HashMap<(String, String), Value>,
}

impl Policy {
    /// The RBAC objects relevant to a request in `namespace` (cluster-scoped ones always).
    fn from_store(store: &Store, namespace: Option<&str>) -> Self {
        let name = |v: &Value| v["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut p = Policy {
            cluster_role_bindings: store
                .list(RBAC_GROUP, "clusterrolebindings", None)
                .map(|(_, v)| v.clone())
                .collect(),
            cluster_roles: store.list(RBAC_GROUP, "clusterroles", None).map(|(_, v)| (name(v), v.clone())).collect(),
            ..Default::default()
        };
        if let Some(ns) = namespace {
            p.role_bindings = store.list(RBAC_GROUP, "rolebindings", Some(ns)).map(|(_, v)| v.clone()).collect();
            p.roles = store
                .list(RBAC_GROUP, "roles", Some(ns))
                .map(|(_, v)| ((ns.to_string(), name(v)), v.clone()))
                .collect();
        }
        p
    }

    /// Whether some rule bound to `user` allows `req` (`RBACAuthorizer.Authorize`: cluster
    /// role bindings first, then the role bindings of the request's namespace).
    fn allows(&self, user: &ServiceAccountUser, req: &Request<'_>) -> bool {
        let cluster = self
            .cluster_role_bindings
            .iter()
            .filter(|b| binding_applies(b, user, ""))
            .filter_map(|b| self.role_for(b, None))
            .any(|role| role_allows(role, req));
        if cluster {
            return true;
        }
        let Some(ns) = req.namespace else { return false };
        self.role_bindings
            .iter()
            .filter(|b| b["metadata"]["namespace"].as_str() == Some(ns) && binding_applies(b, user, ns))
            .filter_map(|b| self.role_for(b, Some(ns)))
            .any(|role| role_allows(role, req))
    }

    /// The role a binding refers to; a ClusterRoleBinding may only refer to a ClusterRole.
    fn role_for(&self, binding: &Value, namespace: Option<&str>) -> Option<&Value> {
        let role_ref = &binding["roleRef"];
        if role_ref["apiGroup"].as_str() != Some(RBAC_GROUP) {
            return None;
        }
        let name = role_ref["name"].as_str()?;
        match (role_ref["kind"].as_str()?, namespace) {
            ("ClusterRole", _) => self.cluster_roles.get(name),
            ("Role", Some(ns)) => self.roles.get(&(ns.to_string(), name.to_string())),
            _ => None,
        }
    }
}

/// `appliesToUser`: a subject naming the user, one of its groups, or its ServiceAccount (the
/// subject's namespace defaults to the binding's own).
fn binding_applies(binding: &Value, user: &ServiceAccountUser, binding_namespace: &str) -> bool {
    let username = user.username();
    let groups = user.groups();
    binding["subjects"].as_array().into_iter().flatten().any(|s| {
        let name = s["name"].as_str().unwrap_or_default();
        match s["kind"].as_str() {
            Some("User") => name == username,
            Some("Group") => groups.iter().any(|g| g == name),
            Some("ServiceAccount") => {
                let ns = s["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(binding_namespace);
                !ns.is_empty() && ns == user.namespace && name == user.name
            }
            _ => false,
        }
    })
}

fn role_allows(role: &Value, req: &Request<'_>) -> bool {
    role["rules"].as_array().into_iter().flatten().any(|rule| rule_allows(rule, req))
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

/// `RuleAllows` for a resource request: verb, API group, resource (with `*/subresource` and
/// `resource/subresource` forms) and resourceNames must all match. A rule with
/// resourceNames never matches a request without a name (create, list, watch).
fn rule_allows(rule: &Value, req: &Request<'_>) -> bool {
    let verb_ok = strings(&rule["verbs"]).any(|v| v == "*" || v == req.verb);
    let group_ok = strings(&rule["apiGroups"]).any(|g| g == "*" || g == req.group);
    let combined = match req.subresource {
        Some(sub) => format!("{}/{sub}", req.resource),
        None => req.resource.to_string(),
    };
    let resource_ok = strings(&rule["resources"])
        .any(|r| r == "*" || r == combined || req.subresource.is_some_and(|sub| r.strip_prefix("*/") == Some(sub)));
    let mut names = strings(&rule["resourceNames"]).peekable();
    let name_ok = names.peek().is_none() || req.name.is_some_and(|n| names.any(|r| r == n));
    verb_ok && group_ok && resource_ok && name_ok
}

/// `responsewriters.forbiddenMessage` wrapped in `apierrors.NewForbidden`.
fn forbidden(user: &ServiceAccountUser, req: &Request<'_>) -> ApiError {
    let resource = match req.subresource {
        Some(sub) => format!("{}/{sub}", req.resource),
        None => req.resource.to_string(),
    };
    let who = format!(
        "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\"",
        user.username(),
        req.verb,
        req.group
    );
    let reason = match req.namespace {
        Some(ns) => format!("{who} in the namespace \"{ns}\""),
        None => format!("{who} at the cluster scope"),
    };
    let gr = GroupResource { group: req.group.to_string(), resource: req.resource.to_string() };
    let name = req.name.unwrap_or_default().to_string();
    let message = if name.is_empty() {
        format!("{gr} is forbidden: {reason}")
    } else {
        format!("{gr} \"{name}\" is forbidden: {reason}")
    };
    ApiError::Forbidden { resource: gr, name, message }
}

/// Enforcement switch and token table, shared by the request path and the admin API.
#[derive(Default)]
pub struct Rbac {
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    enforce: bool,
    admin_token: Option<String>,
    /// Minted token → ServiceAccount. A BTreeMap keeps snapshots ordered.
    tokens: BTreeMap<String, ServiceAccountUser>,
    /// Every request refused with 403, oldest first (kube-apiserver's audit log would show
    /// them), so a test can assert that a client ran without a single denial.
    denials: Vec<Value>,
    /// What ServiceAccounts were allowed to do: (user, verb, group, resource) without
    /// namespaces or names, so a test can check that every granted rule was used.
    allowed: std::collections::BTreeSet<(String, String, String, String)>,
}

/// Outcome of authenticating a bearer token.
enum Identity {
    Admin,
    ServiceAccount(ServiceAccountUser),
}

impl Rbac {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The token of the emulator's kubeconfig: always allowed.
    pub fn set_admin_token(&self, token: &str) {
        self.state().admin_token = Some(token.to_string());
    }

    pub fn set_enforce(&self, enforce: bool) {
        self.state().enforce = enforce;
    }

    pub fn enforcing(&self) -> bool {
        self.state().enforce
    }

    /// `{"enforce": bool, "denials": [{"user", "verb", "group", "resource", "namespace",
    /// "name"}], "allowed": [{"user", "verb", "group", "resource"}]}`.
    pub fn snapshot(&self) -> Value {
        let s = self.state();
        let allowed: Vec<Value> = s
            .allowed
            .iter()
            .map(|(user, verb, group, resource)| serde_json::json!({"user": user, "verb": verb, "group": group, "resource": resource}))
            .collect();
        serde_json::json!({"enforce": s.enforce, "denials": s.denials, "allowed": allowed})
    }

    /// Mint a token for `namespace/name`; the ServiceAccount need not exist yet (it must
    /// when the token is used).
    pub fn mint(&self, namespace: &str, name: &str) -> String {
        let token = kubeconfig::new_token();
        self.state()
            .tokens
            .insert(token.clone(), ServiceAccountUser { namespace: namespace.into(), name: name.into() });
        token
    }

    fn identify(&self, token: Option<&str>) -> Option<Identity> {
        let s = self.state();
        let Some(token) = token else { return Some(Identity::Admin) };
        if s.admin_token.as_deref() == Some(token) {
            return Some(Identity::Admin);
        }
        s.tokens.get(token).cloned().map(Identity::ServiceAccount)
    }

    /// Authenticate and authorize one resource request against the objects in `store`.
    pub fn authorize(&self, store: &Store, token: Option<&str>, req: &Request<'_>) -> Result<(), ApiError> {
        if !self.enforcing() {
            return Ok(());
        }
        let user = match self.identify(token) {
            Some(Identity::Admin) => return Ok(()),
            Some(Identity::ServiceAccount(u)) => u,
            None => return Err(ApiError::Unauthorized),
        };
        // Service account tokens are only valid while their ServiceAccount exists
        // (the token authenticator looks it up).
        let sa_key = super::store::Key {
            group: String::new(),
            plural: "serviceaccounts".into(),
            namespace: user.namespace.clone(),
            name: user.name.clone(),
        };
        if store.get(&sa_key).is_none() {
            return Err(ApiError::Unauthorized);
        }
        let resource = match req.subresource {
            Some(sub) => format!("{}/{sub}", req.resource),
            None => req.resource.to_string(),
        };
        if Policy::from_store(store, req.namespace).allows(&user, req) {
            self.state().allowed.insert((user.username(), req.verb.to_string(), req.group.to_string(), resource));
            Ok(())
        } else {
            tracing::debug!(user = %user.username(), verb = req.verb, resource = req.resource, "rbac: forbidden");
            self.state().denials.push(serde_json::json!({
                "user": user.username(), "verb": req.verb, "group": req.group, "resource": resource,
                "namespace": req.namespace, "name": req.name,
            }));
            Err(forbidden(&user, req))
        }
    }
}

/// Parse `ns/name` of `POST /_sandbox/tokens`.
pub fn parse_service_account(s: &str) -> Option<(&str, &str)> {
    let (ns, name) = s.split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then_some((ns, name))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> ServiceAccountUser {
        ServiceAccountUser { namespace: "ops".into(), name: "op".into() }
    }

    fn req<'a>(
        verb: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
        ns: Option<&'a str>,
        name: Option<&'a str>,
    ) -> Request<'a> {
        Request { verb, group: "connection-operator.dev", resource, subresource: sub, namespace: ns, name }
    }

    fn sa_subject() -> Value {
        json!({"kind": "ServiceAccount", "name": "op", "namespace": "ops"})
    }

    fn cluster_policy(rules: Value, subject: Value) -> Policy {
        let mut p = Policy::default();
        p.cluster_roles.insert("r".into(), json!({"metadata": {"name": "r"}, "rules": rules}));
        p.cluster_role_bindings.push(json!({
            "metadata": {"name": "b"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "r"},
            "subjects": [subject]
        }));
        p
    }

    #[test]
    fn verbs_groups_and_resources_must_all_match() {
        let p = cluster_policy(
            json!([{"apiGroups": ["connection-operator.dev"], "resources": ["connections"], "verbs": ["get", "list"]}]),
            sa_subject(),
        );
        assert!(p.allows(&user(), &req("list", "connections", None, None, None)));
        assert!(p.allows(&user(), &req("get", "connections", None, Some("t"), Some("c"))));
        assert!(!p.allows(&user(), &req("watch", "connections", None, None, None)));
        assert!(!p.allows(&user(), &req("list", "providers", None, None, None)));
        let other_group = Request { group: "", ..req("list", "connections", None, None, None) };
        assert!(!p.allows(&user(), &other_group));
    }

    #[test]
    fn subresources_need_their_own_rule() {
        let p = cluster_policy(
            json!([{"apiGroups": ["connection-operator.dev"], "resources": ["connections"], "verbs": ["patch"]}]),
            sa_subject(),
        );
        assert!(p.allows(&user(), &req("patch", "connections", None, Some("t"), Some("c"))));
        assert!(!p.allows(&user(), &req("patch", "connections", Some("status"), Some("t"), Some("c"))));
        let p =
            cluster_policy(json!([{"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["patch"]}]), sa_subject());
        assert!(p.allows(&user(), &req("patch", "connections", Some("status"), Some("t"), Some("c"))));
        assert!(!p.allows(&user(), &req("patch", "connections", None, Some("t"), Some("c"))));
    }

    #[test]
    fn resource_names_restrict_named_requests_only() {
        let p = cluster_policy(
            json!([{"apiGroups": ["connection-operator.dev"], "resources": ["connections"], "resourceNames": ["a"], "verbs": ["get", "list", "create"]}]),
            sa_subject(),
        );
        assert!(p.allows(&user(), &req("get", "connections", None, Some("t"), Some("a"))));
        assert!(!p.allows(&user(), &req("get", "connections", None, Some("t"), Some("b"))));
        // A list or create carries no name, so a rule with resourceNames never allows it.
        assert!(!p.allows(&user(), &req("list", "connections", None, Some("t"), None)));
        assert!(!p.allows(&user(), &req("create", "connections", None, Some("t"), None)));
    }

    #[test]
    fn role_bindings_grant_only_in_their_namespace() {
        let mut p = Policy::default();
        let rules =
            json!([{"apiGroups": ["connection-operator.dev"], "resources": ["connections"], "verbs": ["list"]}]);
        p.roles.insert(("t".into(), "r".into()), json!({"metadata": {"name": "r", "namespace": "t"}, "rules": rules}));
        p.role_bindings.push(json!({
            "metadata": {"name": "b", "namespace": "t"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "r"},
            "subjects": [sa_subject()]
        }));
        assert!(p.allows(&user(), &req("list", "connections", None, Some("t"), None)));
        assert!(!p.allows(&user(), &req("list", "connections", None, Some("u"), None)));
        assert!(!p.allows(&user(), &req("list", "connections", None, None, None)), "a Role never grants cluster scope");
    }

    #[test]
    fn subjects_match_by_service_account_user_or_group() {
        let rules = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
        let r = req("delete", "connections", None, Some("t"), Some("c"));
        for (subject, expect) in [
            (sa_subject(), true),
            (json!({"kind": "ServiceAccount", "name": "op", "namespace": "other"}), false),
            (json!({"kind": "ServiceAccount", "name": "other", "namespace": "ops"}), false),
            // A ClusterRoleBinding has no namespace to default an SA subject's to.
            (json!({"kind": "ServiceAccount", "name": "op"}), false),
            (json!({"kind": "User", "apiGroup": RBAC_GROUP, "name": "system:serviceaccount:ops:op"}), true),
            (json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:serviceaccounts:ops"}), true),
            (json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:serviceaccounts:other"}), false),
            (json!({"kind": "Group", "apiGroup": RBAC_GROUP, "name": "system:authenticated"}), true),
        ] {
            assert_eq!(cluster_policy(rules.clone(), subject.clone()).allows(&user(), &r), expect, "{subject}");
        }
    }

    #[test]
    fn service_account_subject_defaults_to_the_role_binding_namespace() {
        let mut p = Policy::default();
        p.cluster_roles
            .insert("r".into(), json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}));
        p.role_bindings.push(json!({
            "metadata": {"name": "b", "namespace": "ops"},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "op"}]
        }));
        let get = |ns| Request {
            verb: "get",
            group: "",
            resource: "secrets",
            subresource: None,
            namespace: Some(ns),
            name: Some("s"),
        };
        assert!(p.allows(&user(), &get("ops")));
        assert!(!p.allows(&user(), &get("t")));
    }

    #[test]
    fn dangling_role_refs_grant_nothing() {
        let mut p = cluster_policy(json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]), sa_subject());
        p.cluster_role_bindings[0]["roleRef"]["name"] = json!("missing");
        assert!(!p.allows(&user(), &req("get", "connections", None, Some("t"), Some("c"))));
        // A ClusterRoleBinding cannot refer to a Role.
        let mut p = Policy::default();
        p.roles.insert(
            ("t".into(), "r".into()),
            json!({"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        );
        p.cluster_role_bindings.push(
            json!({"roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": "r"}, "subjects": [sa_subject()]}),
        );
        assert!(!p.allows(&user(), &req("get", "connections", None, Some("t"), Some("c"))));
    }

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let e = forbidden(&user(), &req("list", "connections", None, None, None));
        assert_eq!(
            e.to_string(),
            "connections.connection-operator.dev is forbidden: User \"system:serviceaccount:ops:op\" cannot list resource \"connections\" in API group \"connection-operator.dev\" at the cluster scope"
        );
        let e = forbidden(&user(), &req("patch", "connections", Some("status"), Some("t"), Some("c")));
        assert_eq!(
            e.to_string(),
            "connections.connection-operator.dev \"c\" is forbidden: User \"system:serviceaccount:ops:op\" cannot patch resource \"connections/status\" in API group \"connection-operator.dev\" in the namespace \"t\""
        );
        let s = e.status();
        assert_eq!(s["code"], 403);
        assert_eq!(s["reason"], "Forbidden");
        assert_eq!(s["details"], json!({"name": "c", "group": "connection-operator.dev", "kind": "connections"}));
        let core = Request {
            verb: "get",
            group: "",
            resource: "secrets",
            subresource: None,
            namespace: Some("t"),
            name: Some("s"),
        };
        assert_eq!(
            forbidden(&user(), &core).to_string(),
            "secrets \"s\" is forbidden: User \"system:serviceaccount:ops:op\" cannot get resource \"secrets\" in API group \"\" in the namespace \"t\""
        );
    }

    #[test]
    fn service_account_names_parse_as_namespace_slash_name() {
        assert_eq!(parse_service_account("ops/op"), Some(("ops", "op")));
        for bad in ["op", "/op", "ops/", "a/b/c"] {
            assert_eq!(parse_service_account(bad), None, "{bad}");
        }
    }
}
