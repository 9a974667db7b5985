//! The test kit: what the test tiers of this workspace stand on, in one place.
//!
//! - [`tools`]: where `scripts/bootstrap` put kubectl, helm, etcd and the control-plane
//!   binaries.
//! - [`control_plane`]: the REAL kube-apiserver + etcd + kube-controller-manager, started
//!   by `scripts/control-plane` (the same script a developer runs by hand): one shared by
//!   the whole test run, or a dedicated one for a test that needs the cluster to itself.
//! - [`cluster`]: a Kubernetes API to test against (the real control plane or the
//!   emulator), with a namespace per test, the CRDs installed once, kubectl and a kube-rs
//!   client.
//! - [`instrumented`]: the API behind a journal and fault injection (the emulator's own
//!   admin API, or a kube-proxy in front of the real control plane).
//! - [`etcd`]: a real control plane's etcd, to compact its history as kube-apiserver would.
//! - [`kubectl`]: running the real kubectl.
//! - [`wait`]: polling with a generous bound (tests assert states, never durations).

pub mod cluster;
pub mod control_plane;
pub mod etcd;
pub mod instrumented;
pub mod kubectl;
pub mod tools;
pub mod wait;

pub use cluster::{Backend, Cluster, TestNamespace};
pub use control_plane::ControlPlane;
pub use instrumented::Instrumented;
pub use kubectl::{Kubectl, Output};
