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
//! - [`kubectl`]: running the real kubectl; [`helm`]: the real helm CLI; [`manifests`]:
//!   Provider, Secret and Connection manifests for tests that change the cluster with kubectl.
//! - [`http`]: raw HTTP(S) to an API server as a kubeconfig's identity.
//! - [`service_account`]: acting as a ServiceAccount (TokenRequest token, kubeconfig);
//!   [`api_calls`]: a client that records every call and the server's answer.
//! - [`providers`]: the provider emulators in-process, with their admin API as helpers.
//! - [`prism`]: Prism checking traffic against a provider's official API description.
//! - [`operator_log`]: reading the operator binary's text log.
//! - [`wait`]: polling with a generous bound (tests assert states, never durations).
//!
//! With the feature `operator` (the operator's own tiers and its demo turn it on):
//! - [`operator_env`]: the operator in-process (`controller::run`) on a test namespace with
//!   a Secret and Provider per provider type; [`log_capture`]: its log output.
//! - [`demo`]: the local demo's stack and flow, shared by `examples/demo.rs` and the
//!   end-to-end tier.

mod admin_api;
pub mod api_calls;
pub mod cluster;
pub mod control_plane;
#[cfg(feature = "operator")]
pub mod demo;
pub mod etcd;
pub mod helm;
pub mod http;
pub mod instrumented;
pub mod kubectl;
#[cfg(feature = "operator")]
pub mod log_capture;
pub mod manifests;
#[cfg(feature = "operator")]
pub mod operator_env;
pub mod operator_log;
pub mod prism;
pub mod providers;
pub mod service_account;
pub mod tools;
pub mod wait;

pub use api_calls::{ApiCall, ApiCalls};
pub use cluster::{Backend, Cluster, TestNamespace};
pub use control_plane::ControlPlane;
pub use helm::Helm;
pub use instrumented::Instrumented;
pub use kubectl::{Kubectl, Output};
pub use service_account::ServiceAccountCredentials;
