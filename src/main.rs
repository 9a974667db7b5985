//! The `connection-operator` command line (see ../shared/design/INTERFACES.md).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "connection-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the version.
    Version,
}

fn main() {
    match Cli::parse().command {
        Command::Version => println!("connection-operator {}", env!("CARGO_PKG_VERSION")),
    }
}
