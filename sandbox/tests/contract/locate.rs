//! Where the contract tier finds its inputs: the Prism binary installed by
//! `scripts/bootstrap` and the providers' official OpenAPI documents.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of the `sandbox` package).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the sandbox package sits inside the workspace").to_path_buf()
}

/// `.tools/node/node_modules/.bin/prism`, under `CONNECTION_OPERATOR_TOOLS` if set, else under
/// `<workspace root>/.tools` (the layout `scripts/bootstrap` creates).
pub fn prism_bin() -> PathBuf {
    let tools = std::env::var_os("CONNECTION_OPERATOR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools"));
    let prism = tools.join("node/node_modules/.bin/prism");
    assert!(
        prism.exists(),
        "Prism is not installed at {}: run scripts/bootstrap (it installs @stoplight/prism-cli \
         into .tools/, or set CONNECTION_OPERATOR_TOOLS to a folder laid out the same way)",
        prism.display()
    );
    prism
}

/// `scripts/contract/until-stdin-closes`, which ends a child when the test process goes away
/// (see `process::Logged`).
pub fn stdin_guard() -> PathBuf {
    workspace_root().join("scripts/contract/until-stdin-closes")
}

/// The provider's own API description `file` (e.g. `nango.yaml`), kept in the repository
/// (`providers/openapi/`; origin and licence in `providers/README.md`).
pub fn official_document(file: &str) -> PathBuf {
    connection_testkit::tools::provider_document(file)
}
