//! connection-operator: reconciles connections at SaaS integration providers
//! (Nango, Mielto, Are.na, Datagrid) from `Connection` custom resources.
//!
//! Module map (ARCHITECTURE.md, "Code map"):
//! - `api`: the CRD types.
//! - `diff`: the pure, ownership-aware plan engine.
//! - `providers`: one client per provider behind one trait, sharing an HTTP layer.
//! - `controller`: the reconcile loop, status building and error policy.
//! - `metrics`, `telemetry`, `admin`: Prometheus metrics, logging, `/metrics` `/healthz`
//!   `/readyz`.

pub mod admin;
pub mod api;
pub mod controller;
pub mod diff;
pub mod metrics;
pub mod providers;
pub mod telemetry;
