//! Fault injection for Kubernetes API paths (`PUT /_sandbox/faults`), in the same shape as
//! the provider emulators' (INTERFACES.md), plus `probability` for random failure rates.

use std::sync::Mutex;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// HTTP method (case-insensitive); absent matches any.
    #[serde(default)]
    pub method: Option<String>,
    /// Request path: exact, or a prefix when it ends with `*` (`*` alone: every path).
    pub path: String,
    /// Status to answer with (a Kubernetes `Status` body); absent: only `latencyMs` applies.
    #[serde(default)]
    pub status: Option<u16>,
    /// How many matching requests it applies to: default 1, or unlimited with `probability`.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Chance (0..=1) that a matching request is affected; absent: always.
    #[serde(default)]
    pub probability: Option<f64>,
    /// `Retry-After` header on the injected answer (seconds or HTTP date).
    #[serde(default)]
    pub retry_after: Option<Value>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultError {
    #[error("status {0} is not an HTTP status code (100..=599)")]
    BadStatus(u16),
    #[error("count must be at least 1")]
    ZeroCount,
    #[error("probability must be between 0 and 1")]
    BadProbability,
    #[error("a fault needs status or latencyMs")]
    DoesNothing,
    #[error("path must start with '/' or be '*'")]
    BadPath,
}

impl Fault {
    pub fn validate(&self) -> Result<(), FaultError> {
        if let Some(s) = self.status
            && !(100..=599).contains(&s) {
                return Err(FaultError::BadStatus(s));
            }
        if self.count == Some(0) {
            return Err(FaultError::ZeroCount);
        }
        if self.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err(FaultError::BadProbability);
        }
        if self.status.is_none() && self.latency_ms.is_none() {
            return Err(FaultError::DoesNothing);
        }
        if !(self.path.starts_with('/') || self.path == "*") {
            return Err(FaultError::BadPath);
        }
        Ok(())
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self.method.as_deref().is_none_or(|m| m == "*" || m.eq_ignore_ascii_case(method));
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.path == path,
        };
        method_ok && path_ok
    }

    pub fn retry_after_header(&self) -> Option<String> {
        match &self.retry_after {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Debug, Serialize)]
struct Queued {
    #[serde(flatten)]
    fault: Fault,
    /// None: unlimited.
    remaining: Option<u32>,
}

#[derive(Default)]
pub struct Faults {
    queue: Mutex<Vec<Queued>>,
}

impl Faults {
    pub fn push(&self, fault: Fault) {
        let remaining = match (fault.count, fault.probability) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(1),
        };
        self.lock().push(Queued { fault, remaining });
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn snapshot(&self) -> Value {
        serde_json::to_value(&*self.lock()).unwrap_or(Value::Null)
    }

    /// The fault that applies to this request, if any (taking one of its uses).
    pub fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut queue = self.lock();
        let mut rng = rand::rng();
        let index = queue
            .iter()
            .position(|q| q.fault.matches(method, path) && q.fault.probability.is_none_or(|p| rng.random_bool(p)))?;
        let fault = queue[index].fault.clone();
        if let Some(n) = queue[index].remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                queue.remove(index);
            }
        }
        Some(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(json: &str) -> Fault {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn counted_faults_run_out() {
        let f = Faults::default();
        f.push(fault(r#"{"method": "GET", "path": "/api/v1/*", "status": 503, "count": 2}"#));
        assert!(f.take("POST", "/api/v1/namespaces").is_none());
        assert_eq!(f.take("get", "/api/v1/namespaces").unwrap().status, Some(503));
        assert!(f.take("GET", "/api/v1/x").is_some());
        assert!(f.take("GET", "/api/v1/x").is_none());
    }

    #[test]
    fn probability_zero_never_fires_and_is_unlimited() {
        let f = Faults::default();
        f.push(fault(r#"{"path": "*", "status": 500, "probability": 0.0}"#));
        assert!((0..50).all(|_| f.take("GET", "/x").is_none()));
        f.clear();
        f.push(fault(r#"{"path": "*", "status": 500, "probability": 1.0}"#));
        assert!((0..50).all(|_| f.take("GET", "/x").is_some()));
    }

    #[test]
    fn validation() {
        assert_eq!(fault(r#"{"path": "x", "status": 500}"#).validate(), Err(FaultError::BadPath));
        assert_eq!(fault(r#"{"path": "*"}"#).validate(), Err(FaultError::DoesNothing));
        assert_eq!(fault(r#"{"path": "*", "status": 500, "probability": 2}"#).validate(), Err(FaultError::BadProbability));
    }
}
