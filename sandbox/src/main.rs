//! The `connection-sandbox` command line (see docs/interfaces.md).
//! Each subcommand binds its address, prints one line `listening on http://ADDR` once ready,
//! and serves until SIGINT/SIGTERM.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "connection-sandbox", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Kubernetes API emulator and write a kubeconfig for it.
    Kube {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Where to write a kubeconfig (with a bearer token) pointing at the emulator.
        #[arg(long)]
        kubeconfig: PathBuf,
    },
    /// Serve a fault-injecting, journaling proxy (the emulator's /_sandbox/ admin API) in front
    /// of the API server of a kubeconfig, and write a kubeconfig for the proxy.
    KubeProxy {
        /// Kubeconfig of the API server to proxy (current context: server, CA, client
        /// certificate or token).
        #[arg(long)]
        upstream_kubeconfig: PathBuf,
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
        /// Where to write a kubeconfig (no credentials) pointing at the proxy.
        #[arg(long)]
        kubeconfig: PathBuf,
    },
    /// Serve the four provider emulators under /nango, /mielto, /arena and /datagrid/v1.
    Providers {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Kube { addr, kubeconfig } => connection_sandbox::kube::run(addr, &kubeconfig).await,
        Command::KubeProxy { upstream_kubeconfig, addr, kubeconfig } => {
            Ok(connection_sandbox::kube_proxy::run(&upstream_kubeconfig, addr, &kubeconfig).await?)
        }
        Command::Providers { addr } => connection_sandbox::providers::run(addr).await,
    }
}
