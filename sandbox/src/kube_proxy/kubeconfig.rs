//! The kubeconfig the proxy writes for its clients: its plain-HTTP address and no user
//! credentials (a request without `Authorization` is sent upstream as the proxy's own
//! identity; a client that should act as someone else adds its own bearer token).

use std::net::SocketAddr;
use std::path::Path;

pub fn render(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-proxy
  cluster:
    server: http://{addr}
users:
- name: kube-proxy
  user: {{}}
contexts:
- name: kube-proxy
  context:
    cluster: kube-proxy
    user: kube-proxy
    namespace: default
current-context: kube-proxy
preferences: {{}}
"
    )
}

/// Write it readable only by its owner: anyone who can reach the address acts as the
/// upstream identity, so the file is as good as a credential.
pub fn write(path: &Path, addr: SocketAddr) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(addr))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_the_proxy_without_credentials() {
        let v: serde_yaml::Value = serde_yaml::from_str(&render("127.0.0.1:7000".parse().unwrap())).unwrap();
        assert_eq!(v["clusters"][0]["cluster"]["server"].as_str(), Some("http://127.0.0.1:7000"));
        assert_eq!(v["current-context"].as_str(), Some("kube-proxy"));
        assert!(v["users"][0]["user"].as_mapping().is_some_and(|m| m.is_empty()));
    }
}
