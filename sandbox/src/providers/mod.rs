//! Stateful emulators of the Nango, Mielto, Are.na and Datagrid APIs
//! (see ../shared/providers/REFERENCE.md), served on one port under path prefixes.

pub mod arena;
pub mod mielto;

use std::net::SocketAddr;

/// Bind `addr`, print `listening on http://ADDR`, serve until SIGINT/SIGTERM.
pub async fn run(addr: SocketAddr) -> anyhow::Result<()> {
    let _ = addr;
    anyhow::bail!("the provider emulators are not built yet")
}
