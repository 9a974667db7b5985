//! The Kubernetes API emulator (see ../shared/design/KUBE-EMULATOR.md).

pub mod crd;
pub mod field_error;
pub mod patch;

use std::{net::SocketAddr, path::Path};

/// Bind `addr`, write a kubeconfig for it to `kubeconfig`, print `listening on http://ADDR`,
/// serve until SIGINT/SIGTERM.
pub async fn run(addr: SocketAddr, kubeconfig: &Path) -> anyhow::Result<()> {
    let _ = (addr, kubeconfig);
    anyhow::bail!("the Kubernetes API emulator is not built yet")
}
