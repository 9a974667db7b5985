//! CRD types: `Connection`, `Provider`, `ClusterProvider` (group `connection-operator.dev`).
