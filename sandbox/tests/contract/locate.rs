//! Where the contract tier finds its inputs: the Prism binary installed by
//! `scripts/bootstrap` and the providers' official OpenAPI documents.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of the `sandbox` package).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the sandbox package sits inside the workspace")
        .to_path_buf()
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

/// The official document `file` (e.g. `nango.yaml`) from `shared/providers/openapi/`.
///
/// The documents live beside the repository (`<root>/../shared/providers/openapi`, the path the
/// design documents use), never inside it, so that nobody edits them by accident. A checkout in
/// a nested worktree (`<parent>/wt/<name>`) finds them one level further up, hence the walk up
/// the ancestors. `CONNECTION_OPERATOR_PROVIDER_DOCS` overrides the search.
pub fn official_document(file: &str) -> PathBuf {
    let dir = match std::env::var_os("CONNECTION_OPERATOR_PROVIDER_DOCS") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root()
            .ancestors()
            .map(|a| a.join("shared/providers/openapi"))
            .find(|candidate| candidate.is_dir())
            .unwrap_or_else(|| {
                panic!(
                    "no shared/providers/openapi folder beside {} or any of its ancestors; set \
                     CONNECTION_OPERATOR_PROVIDER_DOCS to the folder holding the official documents",
                    workspace_root().display()
                )
            }),
    };
    let document = dir.join(file);
    assert!(
        document.is_file(),
        "official document {} is missing",
        document.display()
    );
    document
}
