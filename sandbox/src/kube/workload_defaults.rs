//! The defaults kube-apiserver's decoder sets on a Deployment (`SetObjectDefaults_Deployment`
//! of k8s.io/kubernetes 1.37: `SetDefaults_Deployment`, `SetDefaults_PodSpec`,
//! `SetDefaults_Container`, volume sources, probes, the `+default` markers). They are set
//! before field ownership is computed, so the writer owns them (`f:replicas`,
//! `f:imagePullPolicy`, ... in its managedFields entry), and a later apply that leaves them
//! out does not remove them.

use serde_json::{Map, Value, json};

/// Default a Deployment in place.
pub fn default_deployment(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    set_if_absent(spec, "replicas", json!(1));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(strategy) = strategy.as_object_mut() {
        if strategy.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            strategy.insert("type".into(), json!("RollingUpdate"));
        }
        if strategy["type"] == "RollingUpdate" {
            let rolling = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(rolling) = rolling.as_object_mut() {
                set_if_absent(rolling, "maxUnavailable", json!("25%"));
                set_if_absent(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    set_if_absent(spec, "revisionHistoryLimit", json!(10));
    set_if_absent(spec, "progressDeadlineSeconds", json!(600));
    if let Some(pod) = spec.get_mut("template").and_then(|t| t.get_mut("spec")).and_then(Value::as_object_mut) {
        default_pod_spec(pod);
    }
}

/// A field that is absent or null gets `value` (Go's nil pointer / empty value check).
fn set_if_absent(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.into(), value);
    }
}

/// A string field that is absent or empty gets `value`.
fn set_if_empty(map: &mut Map<String, Value>, key: &str, value: &str) {
    if map.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
        map.insert(key.into(), json!(value));
    }
}

fn default_pod_spec(pod: &mut Map<String, Value>) {
    // serviceAccountName and its deprecated alias are kept in sync, the new name winning.
    let name = pod.get("serviceAccountName").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let alias = pod.get("serviceAccount").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    if let Some(account) = name.or(alias) {
        pod.insert("serviceAccountName".into(), json!(account));
        pod.insert("serviceAccount".into(), json!(account));
    }
    set_if_empty(pod, "dnsPolicy", "ClusterFirst");
    set_if_empty(pod, "restartPolicy", "Always");
    set_if_absent(pod, "securityContext", json!({}));
    set_if_absent(pod, "terminationGracePeriodSeconds", json!(30));
    set_if_empty(pod, "schedulerName", "default-scheduler");
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(containers) = pod.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                default_container(c);
            }
        }
    }
    if let Some(volumes) = pod.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in volumes.iter_mut().filter_map(Value::as_object_mut) {
            default_volume(v);
        }
    }
}

/// `ParseImageName`'s tag: none and no digest means `latest`.
fn image_tag(image: &str) -> &str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) => tag,
        None if digest.is_some() => "",
        None => "latest",
    }
}

fn default_container(c: &mut Map<String, Value>) {
    if c.get("imagePullPolicy").and_then(Value::as_str).is_none_or(str::is_empty) {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image) == "latest" { "Always" } else { "IfNotPresent" };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    set_if_empty(c, "terminationMessagePath", "/dev/termination-log");
    set_if_empty(c, "terminationMessagePolicy", "File");
    // ResourceRequirements is a struct, not a pointer: it is always there.
    set_if_absent(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_if_empty(p, "protocol", "TCP");
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env.iter_mut() {
            if let Some(field_ref) = e.pointer_mut("/valueFrom/fieldRef").and_then(Value::as_object_mut) {
                set_if_empty(field_ref, "apiVersion", "v1");
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            for (field, value) in
                [("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)]
            {
                if p.get(field).and_then(Value::as_i64).unwrap_or(0) == 0 {
                    p.insert(field.into(), json!(value));
                }
            }
            default_http_get(p.get_mut("httpGet"));
        }
    }
    for hook in ["postStart", "preStop"] {
        default_http_get(c.get_mut("lifecycle").and_then(|l| l.get_mut(hook)).and_then(|h| h.get_mut("httpGet")));
    }
}

fn default_http_get(action: Option<&mut Value>) {
    if let Some(a) = action.and_then(Value::as_object_mut) {
        set_if_empty(a, "path", "/");
        set_if_empty(a, "scheme", "HTTP");
    }
}

const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

fn default_volume(v: &mut Map<String, Value>) {
    if !VOLUME_SOURCES.iter().any(|s| v.get(*s).is_some_and(|x| !x.is_null())) {
        v.insert("emptyDir".into(), json!({}));
    }
    // 0644, as kube-apiserver stores it (decimal).
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
            set_if_absent(s, "defaultMode", json!(420));
        }
    }
    if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
        set_if_absent(h, "type", json!(""));
    }
    if let Some(sources) = v.get_mut("projected").and_then(|p| p.get_mut("sources")).and_then(Value::as_array_mut) {
        for s in sources.iter_mut() {
            if let Some(token) = s.get_mut("serviceAccountToken").and_then(Value::as_object_mut) {
                set_if_absent(token, "expirationSeconds", json!(3600));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_deployment_gets_kube_apiservers_defaults() {
        // What kube-apiserver 1.37.2 answered to the same create.
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}]}}}});
        default_deployment(&mut d);
        assert_eq!(
            d["spec"],
            json!({
                "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {
                    "containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "imagePullPolicy": "Always", "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File", "resources": {}}],
                    "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
                    "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}},
                "replicas": 1,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            })
        );
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_tag("registry.example.com/web:1"), "1");
        assert_eq!(image_tag("registry.example.com:5000/web"), "latest");
        assert_eq!(image_tag("web@sha256:abc"), "");
        assert_eq!(image_tag("web:latest"), "latest");
    }

    #[test]
    fn explicit_values_stay_and_volumes_get_their_modes() {
        let mut d = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "template": {"spec": {
            "serviceAccount": "old", "containers": [],
            "volumes": [{"name": "a"}, {"name": "b", "configMap": {"name": "x"}}, {"name": "c", "secret": {"secretName": "s", "defaultMode": 256}}]}}}});
        default_deployment(&mut d);
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!((pod["serviceAccountName"].as_str(), pod["serviceAccount"].as_str()), (Some("old"), Some("old")));
        assert_eq!(pod["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(pod["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(pod["volumes"][2]["secret"]["defaultMode"], 256);
    }
}
