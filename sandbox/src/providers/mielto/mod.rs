//! Mielto emulator (REFERENCE.md §2, `openapi/mielto.yaml`).

pub mod model;
pub mod validation;
