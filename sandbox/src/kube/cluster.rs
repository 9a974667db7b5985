//! The in-memory cluster: the objects and the resource types being served. The REST verbs
//! (`rest`) and the lifecycle controllers (`lifecycle`, which `rest` calls after writes)
//! both work on it, so it sits below them.

use super::resources::Registry;
use super::store::Store;

/// Everything the API server holds: the objects and the resource types being served.
pub struct Cluster {
    pub store: Store,
    pub registry: Registry,
}
