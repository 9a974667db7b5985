//! The demo's live table: one row per Connection state change, in the columns of
//! `kubectl get connections -w` plus the namespace. Pure: the demo feeds it Connections and
//! prints what it returns.
#![allow(dead_code, reason = "the tests use part of it")]

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
    /// Whether the status describes the current spec (observedGeneration == generation).
    pub current: bool,
}

impl Row {
    pub fn of(conn: &Connection) -> Row {
        let status = conn.status.as_ref();
        let ready = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
        let current = match (status.and_then(|s| s.observed_generation), conn.metadata.generation) {
            (Some(observed), Some(generation)) => observed >= generation,
            _ => false,
        };
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

/// The last row printed per Connection; yields the rows that changed.
#[derive(Default)]
pub struct LiveTable {
    shown: BTreeMap<(String, String), Row>,
}

impl LiveTable {
    /// Update from a full listing; returns the lines to print (changed or new rows, and
    /// deletions), in a stable order.
    pub fn update(&mut self, connections: &[Connection]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut seen = BTreeMap::new();
        for conn in connections {
            let row = Row::of(conn);
            seen.insert((row.namespace.clone(), row.name.clone()), row);
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

    /// Every Connection is Ready for its current generation (and there is at least one).
    pub fn all_ready(&self) -> bool {
        !self.shown.is_empty() && self.shown.values().all(Row::is_ready)
    }
}
