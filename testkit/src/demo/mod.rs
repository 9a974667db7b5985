//! The local demo (`cargo run --example demo`), here so that the end-to-end tier runs the
//! very code a newcomer runs: [`stack`] starts the whole system on loopback (a Kubernetes
//! API, the provider sandboxes, kubectl, the operator binary), [`app`] is the demo's flow,
//! [`table`] its live table, [`kubectl`] how it finds and runs kubectl on any machine.

pub mod app;
pub mod kubectl;
pub mod stack;
pub mod table;
