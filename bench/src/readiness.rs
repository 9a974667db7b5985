//! Which Connections are Ready for their current spec, fed from a watch (pure).
//!
//! A Connection counts as converged when its `Ready` condition is `True` and
//! `status.observedGeneration` equals `metadata.generation` (the Kubernetes convention for
//! "status describes the current spec"), so a Ready left over from an older spec does not count.

use std::collections::HashMap;

use serde_json::Value;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct State {
    generation: i64,
    converged: bool,
}

#[derive(Debug, Default)]
pub struct Tracker {
    objects: HashMap<String, State>,
}

impl Tracker {
    /// Record the latest version of a Connection (from a list item or a watch event object).
    pub fn observe(&mut self, object: &Value) {
        let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str) else {
            return;
        };
        let generation = object.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        let observed = object.pointer("/status/observedGeneration").and_then(Value::as_i64);
        let ready = object
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let converged = ready && observed == Some(generation);
        self.objects.insert(name.to_owned(), State { generation, converged });
    }

    pub fn forget(&mut self, object: &Value) {
        if let Some(name) = object.pointer("/metadata/name").and_then(Value::as_str) {
            self.objects.remove(name);
        }
    }

    /// Whether `name` is converged at generation `at_least` or later.
    pub fn converged(&self, name: &str, at_least: i64) -> bool {
        self.objects.get(name).is_some_and(|s| s.converged && s.generation >= at_least)
    }

    /// How many of `wanted` (name, minimum generation) are converged.
    pub fn count_converged<'a>(&self, wanted: impl IntoIterator<Item = (&'a str, i64)>) -> usize {
        wanted.into_iter().filter(|(name, generation)| self.converged(name, *generation)).count()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conn(name: &str, generation: i64, observed: Option<i64>, ready: &str) -> Value {
        json!({
            "metadata": {"name": name, "generation": generation},
            "status": {"observedGeneration": observed, "conditions": [{"type": "Ready", "status": ready}]},
        })
    }

    #[test]
    fn ready_for_an_older_generation_does_not_count() {
        let mut t = Tracker::default();
        t.observe(&conn("a", 1, Some(1), "True"));
        assert!(t.converged("a", 1));
        t.observe(&conn("a", 2, Some(1), "True"));
        assert!(!t.converged("a", 1), "status describes generation 1, spec is 2");
        t.observe(&conn("a", 2, Some(2), "True"));
        assert!(t.converged("a", 2));
        assert!(!t.converged("a", 3));
    }

    #[test]
    fn not_ready_unknown_and_deleted_do_not_count() {
        let mut t = Tracker::default();
        t.observe(&conn("a", 1, Some(1), "False"));
        t.observe(&conn("b", 1, Some(1), "True"));
        t.observe(&json!({"metadata": {"name": "c", "generation": 1}}));
        assert_eq!(t.count_converged([("a", 1), ("b", 1), ("c", 1), ("d", 1)]), 1);
        t.forget(&conn("b", 1, Some(1), "True"));
        assert_eq!(t.count_converged([("b", 1)]), 0);
    }
}
