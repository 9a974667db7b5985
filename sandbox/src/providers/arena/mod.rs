//! Are.na v3 emulator (REFERENCE.md §3, `openapi/arena.json`).

pub mod errors;
pub mod metadata;
pub mod model;
