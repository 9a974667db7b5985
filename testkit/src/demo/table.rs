//! The demo's live table: one row per Connection state change, in the columns of
//! `kubectl get connections -w` plus the namespace. Pure: the demo feeds it Connections and
//! prints what it returns.

use std::collections::BTreeMap;

use connection_operator::api::Connection;
use connection_operator::api::conditions::READY;
use kube::ResourceExt;

/// What a row shows; a new row is printed only when this changes for a Connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub provider: String,
    pub connection_id: String,
    /// `True`, `False`, `Unknown`, or empty before the operator has written status.
    pub ready: String,
    pub reason: String,
    /// Whether the status describes the current spec (observedGeneration == generation)
    /// and, when a reconcile was requested, comes from a reconcile that handled it.
    pub current: bool,
}

impl Row {
    /// The row of `conn`; `requested` is the `reconcile-requested-at` value the status must
    /// have handled to count as current (the demo stamps one per run, so that against a
    /// cluster that kept the Connections of an earlier run, their old Ready status does not
    /// pass for this run's).
    pub fn of(conn: &Connection, requested: Option<&str>) -> Row {
        let status = conn.status.as_ref();
        let ready = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
        let generation_current = match (status.and_then(|s| s.observed_generation), conn.metadata.generation) {
            (Some(observed), Some(generation)) => observed >= generation,
            _ => false,
        };
        let handled = status.and_then(|s| s.last_handled_reconcile_at.as_deref());
        let current = generation_current && requested.is_none_or(|r| handled == Some(r));
        let connection_id = conn.spec.connection_id.clone();
        Row {
            namespace: conn.namespace().unwrap_or_default(),
            name: conn.name_any(),
            provider: conn.spec.provider_ref.name.clone(),
            connection_id,
            ready: ready.map(|c| c.status.clone()).unwrap_or_default(),
            reason: ready.map(|c| c.reason.clone()).unwrap_or_default(),
            current,
        }
    }

    /// Ready=True for the current generation.
    pub fn is_ready(&self) -> bool {
        self.ready == "True" && self.current
    }
}

pub const HEADER: [&str; 6] = ["NAMESPACE", "NAME", "PROVIDER", "CONNECTION", "READY", "REASON"];
const WIDTHS: [usize; 6] = [10, 20, 10, 18, 6, 0];

/// One line, aligned like kubectl's tables (the last column is not padded).
pub fn render(cells: [&str; 6]) -> String {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(WIDTHS) {
        line.push_str(cell);
        let pad = width.saturating_sub(cell.chars().count()) + 3;
        if width > 0 {
            line.push_str(&" ".repeat(pad));
        }
    }
    line.trim_end().to_string()
}

pub fn render_row(row: &Row) -> String {
    let ready = if row.ready.is_empty() { "-" } else { &row.ready };
    // A status for an older generation is shown but marked as pending the new one.
    let reason = match (row.reason.is_empty(), row.current) {
        (true, _) => "Pending".to_string(),
        (false, true) => row.reason.clone(),
        (false, false) => format!("{} (updating)", row.reason),
    };
    render([&row.namespace, &row.name, &row.provider, &row.connection_id, ready, &reason])
}

/// (namespace, name) of a Connection.
pub type Key = (String, String);

/// The last row printed per Connection; yields the rows that changed.
#[derive(Default)]
pub struct LiveTable {
    shown: BTreeMap<Key, Row>,
    /// The Connections whose readiness the table waits for (empty: every one shown).
    expected: Vec<Key>,
    /// The `reconcile-requested-at` value the expected ones must have handled.
    requested: Option<String>,
}

impl LiveTable {
    /// A table that is ready once every `expected` Connection is Ready for its current
    /// generation and has handled the reconcile `requested` (other Connections are shown
    /// but not waited for).
    pub fn expecting(expected: Vec<Key>, requested: Option<String>) -> Self {
        LiveTable { shown: BTreeMap::new(), expected, requested }
    }

    /// Update from a full listing; returns the lines to print (changed or new rows, and
    /// deletions), in a stable order.
    pub fn update(&mut self, connections: &[Connection]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut seen = BTreeMap::new();
        for conn in connections {
            let key = (conn.namespace().unwrap_or_default(), conn.name_any());
            let requested = self.requested.as_deref().filter(|_| self.expected.contains(&key));
            seen.insert(key, Row::of(conn, requested));
        }
        for (key, row) in &seen {
            if self.shown.get(key) != Some(row) {
                lines.push(render_row(row));
            }
        }
        for (key, row) in &self.shown {
            if !seen.contains_key(key) {
                lines.push(render([&row.namespace, &row.name, &row.provider, &row.connection_id, "-", "Deleted"]));
            }
        }
        self.shown = seen;
        lines
    }

    pub fn rows(&self) -> impl Iterator<Item = &Row> {
        self.shown.values()
    }

    /// Every expected Connection (without expectations: every one shown, and there is at
    /// least one) is Ready for its current generation.
    pub fn all_ready(&self) -> bool {
        if self.expected.is_empty() {
            return !self.shown.is_empty() && self.shown.values().all(Row::is_ready);
        }
        self.expected.iter().all(|key| self.shown.get(key).is_some_and(Row::is_ready))
    }

    /// What is not Ready yet, as `namespace/name (why)`.
    pub fn pending(&self) -> Vec<String> {
        let describe = |row: &Row| match row.ready.as_str() {
            "" => format!("{}/{} (no status yet)", row.namespace, row.name),
            // Ready, but for an older spec or before this run's reconcile request.
            "True" => format!("{}/{} (Ready=True {} (updating))", row.namespace, row.name, row.reason),
            ready => format!("{}/{} (Ready={ready} {})", row.namespace, row.name, row.reason),
        };
        if self.expected.is_empty() {
            return self.shown.values().filter(|r| !r.is_ready()).map(describe).collect();
        }
        self.expected
            .iter()
            .filter_map(|key| match self.shown.get(key) {
                None => Some(format!("{}/{} (not created)", key.0, key.1)),
                Some(row) if !row.is_ready() => Some(describe(row)),
                Some(_) => None,
            })
            .collect()
    }
}
