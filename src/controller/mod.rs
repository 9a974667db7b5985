//! The reconcile loop, status building, error policy and finalizer handling.
