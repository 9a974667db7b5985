//! The `connection-sandbox` command line (see ../shared/design/INTERFACES.md).

fn main() {
    eprintln!("connection-sandbox: no subcommands yet");
    std::process::exit(2);
}
