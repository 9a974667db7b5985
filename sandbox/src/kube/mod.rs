//! The Kubernetes API emulator (see ../shared/design/KUBE-EMULATOR.md).
