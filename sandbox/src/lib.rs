//! connection-sandbox: local stand-ins for the Kubernetes API (`kube`) and the four
//! provider APIs (`providers`), used by the tests and the demo. No real API server or
//! provider is reachable from the machines this project is built on, so these emulators
//! are the truth the operator is tested against: they must be as strict as the real thing.

pub mod faults;
pub mod kube;
pub mod providers;
