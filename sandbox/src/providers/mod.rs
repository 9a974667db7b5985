//! Stateful emulators of the Nango, Mielto, Are.na and Datagrid APIs (see ../shared/providers/REFERENCE.md).
