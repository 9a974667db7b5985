//! The proxy's request journal: every Kubernetes API request it received (admin ones
//! excluded), oldest first, in the Kubernetes emulator's entry shape (`method`, `path`,
//! `query`, `userAgent`, `at`), so a test counting Kubernetes requests reads the same journal
//! whether it runs against the emulator or against the proxy in front of a real API server.

use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};

#[derive(Default)]
pub struct Journal {
    entries: Mutex<Vec<Value>>,
}

impl Journal {
    /// Record a request at its arrival, before any fault or the upstream answers it.
    pub fn record(&self, method: &str, path: &str, query: &str, user_agent: &str) {
        let at =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let entry = json!({"method": method, "path": path, "query": query, "userAgent": user_agent, "at": (at * 1000.0).round() / 1000.0});
        self.lock().push(entry);
    }

    pub fn snapshot(&self) -> Value {
        Value::Array(self.lock().clone())
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Entries are pushed whole, so a lock poisoned by a panicking reader holds consistent data.
    fn lock(&self) -> MutexGuard<'_, Vec<Value>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
