//! Where the test tools are: `scripts/bootstrap` builds kubectl, helm, etcd,
//! kube-apiserver and kube-controller-manager from the pinned Go modules in `toolchain/`
//! and links them into `.tools/bin/` (or the directory `CONNECTION_OPERATOR_TOOLS_BIN`
//! names, for another Kubernetes release: `scripts/test-kubernetes`).

use std::path::{Path, PathBuf};

/// The workspace root (holds `crds/`, `charts/`, `examples/`, `scripts/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit/ sits in the workspace root").to_path_buf()
}

/// A provider's own API description, e.g. `nango.yaml`, from `providers/openapi/` (origin
/// and licence in `providers/README.md`). Panics naming the path when it is missing.
pub fn provider_document(file: &str) -> PathBuf {
    let document = workspace_root().join("providers/openapi").join(file);
    assert!(document.is_file(), "provider API description {} is missing", document.display());
    document
}

/// The directory holding the built tools.
pub fn bin_dir() -> PathBuf {
    std::env::var_os("CONNECTION_OPERATOR_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/bin"))
}

/// A tool from [`bin_dir`]; panics with what to run when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/bootstrap (it builds the test tools into .tools/bin)",
        path.display()
    );
    path
}

/// The real kubectl, built from the pinned Kubernetes release.
pub fn kubectl() -> PathBuf {
    tool("kubectl")
}

/// The real helm CLI, built from its Go module.
pub fn helm() -> PathBuf {
    tool("helm")
}

/// `.tools/` (Prism lives in `.tools/node`), or `CONNECTION_OPERATOR_TOOLS`.
pub fn tools_dir() -> PathBuf {
    std::env::var_os("CONNECTION_OPERATOR_TOOLS").map(PathBuf::from).unwrap_or_else(|| workspace_root().join(".tools"))
}

/// The `control-plane` script (up / down).
pub fn control_plane_script() -> PathBuf {
    workspace_root().join("scripts/control-plane")
}
