//! Ownership-aware plan: (spec, managed keys, upstream) -> minimal provider calls. Pure.
