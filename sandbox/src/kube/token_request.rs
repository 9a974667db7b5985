//! `POST .../serviceaccounts/{name}/token` (TokenRequest, `kubectl create token`): a token
//! for a ServiceAccount, the same request on the emulator and on kube-apiserver. The
//! emulator's tokens are opaque (kube-apiserver's are signed JWTs); the RBAC layer knows
//! them as `system:serviceaccount:<ns>:<name>` (enforced once `/_sandbox/rbac` turns RBAC
//! on). Expiry is reported but not enforced.

use serde_json::{Value, json};

use super::api_error::{ApiError, GroupKind, GroupResource};
use super::field_error::FieldError;
use super::object_meta::now_rfc3339;
use super::rbac::Rbac;

/// kube-apiserver's default audience (its `--service-account-issuer` on the test control
/// plane), reported when the request names none.
const DEFAULT_AUDIENCE: &str = "https://kubernetes.default.svc.cluster.local";

/// `serviceaccount` exists (the caller looked it up); `body` is the TokenRequest sent.
pub fn create(
    rbac: &Rbac,
    namespace: &str,
    name: &str,
    service_account: Option<&Value>,
    body: &Value,
) -> Result<Value, ApiError> {
    if service_account.is_none() {
        return Err(ApiError::NotFound {
            resource: GroupResource { group: String::new(), resource: "serviceaccounts".into() },
            name: name.into(),
        });
    }
    let spec = &body["spec"];
    let expiration = spec["expirationSeconds"].as_i64().unwrap_or(3600);
    // ValidateTokenRequest.
    let invalid = |detail: &str| {
        ApiError::invalid(
            GroupKind { group: "authentication.k8s.io".into(), kind: "TokenRequest".into() },
            "",
            vec![FieldError::invalid("spec.expirationSeconds", &json!(expiration), detail)],
        )
    };
    if expiration < 600 {
        return Err(invalid("may not specify a duration less than 10 minutes"));
    }
    if expiration > 1 << 32 {
        return Err(invalid("may not specify a duration larger than 2^32 seconds"));
    }
    let audiences = match spec["audiences"].as_array() {
        Some(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => json!([DEFAULT_AUDIENCE]),
    };
    let now = chrono::Utc::now();
    let expires = (now + chrono::Duration::seconds(expiration)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": now_rfc3339()},
        "spec": {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": spec.get("boundObjectRef").cloned().unwrap_or(Value::Null)},
        "status": {"token": rbac.mint(namespace, name), "expirationTimestamp": expires},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_a_token_the_rbac_layer_knows_and_checks_the_duration() {
        let rbac = Rbac::default();
        let sa = json!({"metadata": {"name": "robot"}});
        let answer = create(&rbac, "ns", "robot", Some(&sa), &json!({"spec": {}})).unwrap();
        assert_eq!(answer["spec"]["expirationSeconds"], 3600);
        assert_eq!(answer["spec"]["audiences"], json!([DEFAULT_AUDIENCE]));
        assert!(answer["status"]["token"].as_str().is_some_and(|t| t.len() > 16));
        let short = create(&rbac, "ns", "robot", Some(&sa), &json!({"spec": {"expirationSeconds": 60}})).unwrap_err();
        assert_eq!(
            short.to_string(),
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        );
        let missing = create(&rbac, "ns", "nobody", None, &json!({})).unwrap_err();
        assert_eq!(missing.to_string(), "serviceaccounts \"nobody\" not found");
    }
}
