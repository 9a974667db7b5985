//! What kube-apiserver's Service registry does that clients see: defaults (`type`,
//! `sessionAffinity`, `internalTrafficPolicy`, port `protocol` and `targetPort`), owned by
//! the writer, and, after field ownership is recorded, a cluster IP allocated from the
//! service CIDR (10.96.0.0/12, kubeadm's default) and the IP family fields, kept across
//! updates that omit them (`patchAllocatedValues`). No proxying happens; the address is
//! only recorded.

use serde_json::{Value, json};

/// Apply the Service defaults of its decoder (`SetDefaults_Service`): owned by the writer.
pub fn default_service(obj: &mut Value) {
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    if spec["type"].as_str().is_none_or(str::is_empty) {
        spec["type"] = json!("ClusterIP");
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
            if p["targetPort"].is_null() && !p["port"].is_null() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
    if spec["type"] != "ExternalName" && spec["internalTrafficPolicy"].is_null() {
        spec["internalTrafficPolicy"] = json!("Cluster");
    }
}

/// What the Service registry allocates after admission (`BeforeCreate`/`patchAllocatedValues`),
/// which therefore belongs to no field manager: the cluster IP (from `next_ip`) and the IP
/// family fields, kept across updates that leave them out.
pub fn allocate(obj: &mut Value, old: Option<&Value>, next_ip: impl FnOnce() -> String) {
    if obj["status"].is_null() {
        obj["status"] = json!({"loadBalancer": {}});
    }
    let spec = &mut obj["spec"];
    if !spec.is_object() || spec["type"] == "ExternalName" {
        return;
    }
    if let Some(old) = old {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if spec[f].is_null() && !old["spec"][f].is_null() {
                spec[f] = old["spec"][f].clone();
            }
        }
    }
    if spec["clusterIP"].as_str().is_none_or(str::is_empty) {
        spec["clusterIP"] = json!(next_ip());
    }
    if spec["clusterIPs"].is_null() {
        spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
    }
    if spec["ipFamilies"].is_null() {
        spec["ipFamilies"] = json!(["IPv4"]);
    }
    if spec["ipFamilyPolicy"].is_null() {
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
}

/// The n-th address of 10.96.0.0/12 after 10.96.0.1 (which belongs to `kubernetes`).
pub fn cluster_ip(n: u64) -> String {
    let offset = 2 + n % ((1 << 20) - 3);
    let base: u32 = (10 << 24) | (96 << 16);
    let ip = base + offset as u32;
    format!("{}.{}.{}.{}", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_keeps_the_allocated_ip() {
        let mut svc = json!({"spec": {"ports": [{"port": 80}]}});
        default_service(&mut svc);
        assert!(svc["spec"]["clusterIP"].is_null(), "allocation comes after the defaults");
        assert_eq!(svc["spec"]["ports"][0], json!({"port": 80, "protocol": "TCP", "targetPort": 80}));
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["internalTrafficPolicy"], "Cluster");
        allocate(&mut svc, None, || cluster_ip(0));
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.2");
        assert_eq!(svc["spec"]["clusterIPs"], json!(["10.96.0.2"]));
        let mut update = json!({"spec": {"ports": [{"port": 81}]}});
        default_service(&mut update);
        allocate(&mut update, Some(&svc), || unreachable!("no new allocation"));
        assert_eq!(update["spec"]["clusterIP"], "10.96.0.2");
        let mut headless = json!({"spec": {"clusterIP": "None"}});
        default_service(&mut headless);
        allocate(&mut headless, None, || unreachable!());
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(cluster_ip(300), "10.96.1.46");
    }
}
