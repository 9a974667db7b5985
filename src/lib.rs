//! connection-operator: reconciles connections at SaaS integration providers
//! (Nango, Mielto, Are.na, Datagrid) from `Connection` custom resources.
//!
//! Module map (ARCHITECTURE.md, "Code map"):
//! - `api`: the CRD types.
//! - `desired`: a Connection's desired state with its shared settings (`metadataFrom`,
//!   `configFrom`) merged in. Pure.
//! - `diff`: the pure, ownership-aware plan engine.
//! - `resolve`: what a plan depends on (desired state, provider account, credentials),
//!   resolved the same way by the controller and by `plan`/`import`.
//! - `providers`: one client per provider behind one trait, sharing an HTTP layer.
//! - `controller`: the reconcile loop, status building and error policy.
//! - `metrics`, `telemetry`, `admin`: Prometheus metrics, logging, `/metrics` `/healthz`
//!   `/readyz`.

pub mod admin;
pub mod api;
pub mod controller;
pub mod desired;
pub mod diff;
pub mod import;
pub mod metrics;
pub mod plan;
pub mod providers;
pub mod resolve;
pub mod telemetry;
