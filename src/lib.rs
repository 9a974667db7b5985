//! connection-operator: reconciles connections at SaaS integration providers
//! (Nango, Mielto, Are.na, Datagrid) from `Connection` custom resources.
//!
//! Module map (see ../shared/design/DESIGN.md, "Repository layout"):
//! - `api`: the CRD types.
//! - `diff`: the pure, ownership-aware plan engine.
//! - `providers`: one client per provider behind one trait, sharing an HTTP layer.
//! - `controller`: the reconcile loop, status building and error policy.

pub mod api;
pub mod controller;
pub mod diff;
pub mod providers;
