//! The provider emulators' fault queue is the sandbox-wide one (shared with the Kubernetes
//! emulator); see `crate::faults`.

pub use crate::faults::{Fault, FaultError, Faults};
