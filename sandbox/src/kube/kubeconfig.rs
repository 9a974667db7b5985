//! The kubeconfig written for clients of the emulator: plain HTTP server, a user with a
//! bearer token, one context set as current.

use std::net::SocketAddr;
use std::path::Path;

use rand::Rng;

/// A random token: any bearer token is accepted today, but clients should already send one
/// so RBAC can later be enforced per token.
pub fn new_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let tail: String = (0..32).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("sandbox-{tail}")
}

pub fn render(addr: SocketAddr, token: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: http://{addr}
users:
- name: sandbox-admin
  user:
    token: {token}
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: sandbox-admin
    namespace: default
current-context: sandbox
preferences: {{}}
"
    )
}

/// Write the kubeconfig readable only by its owner (it holds a credential).
pub fn write(path: &Path, addr: SocketAddr, token: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, render(addr, token))?;
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
    fn renders_valid_yaml_with_current_context() {
        let text = render("127.0.0.1:6443".parse().unwrap(), "t0k");
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(v["current-context"].as_str(), Some("sandbox"));
        assert_eq!(v["clusters"][0]["cluster"]["server"].as_str(), Some("http://127.0.0.1:6443"));
        assert_eq!(v["users"][0]["user"]["token"].as_str(), Some("t0k"));
    }
}
