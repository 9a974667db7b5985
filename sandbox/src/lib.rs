//! connection-sandbox: local stand-ins for the Kubernetes API (`kube`) and the four
//! provider APIs (`providers`), used by the tests and the demo; and `kube_proxy`, which puts
//! the emulator's test hooks (journal, faults, watch drop and expiry) in front of a real API
//! server. No real provider is reachable from the machines this project is built on, so
//! these emulators are the truth the operator is tested against: they must be as strict as
//! the real thing.

pub mod faults;
pub mod kube;
pub mod kube_proxy;
pub mod providers;
