//! Fault injection shared by the provider emulators and the Kubernetes emulator
//! (`PUT /_sandbox/faults` on either, docs/interfaces.md): queued rules that make the next
//! matching requests fail in a chosen way (a status, a raw body, latency, a `Retry-After`,
//! or an abrupt connection reset), optionally at random (`probability`), so retry and
//! backoff paths can be tested against a real socket.

use std::sync::Mutex;

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// One fault, as sent to `PUT <prefix>/_sandbox/faults` (a single object or an array).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// HTTP method to match (case-insensitive); absent or null matches any method.
    #[serde(default)]
    pub method: Option<String>,
    /// Path relative to the provider prefix. Exact match, or a prefix match when it ends
    /// with `*` (`/connections/*`, or `*` alone for every path).
    pub path: String,
    /// Status to answer with. Absent: no injected answer (useful with `latencyMs` alone, which
    /// then only delays the real answer).
    #[serde(default)]
    pub status: Option<u16>,
    /// How many matching requests this fault applies to; default 1, or unlimited (until
    /// `DELETE`) when `probability` is given.
    #[serde(default)]
    pub count: Option<u32>,
    /// Chance (0..=1) that a matching request is affected, for random failure rates;
    /// absent: every matching request.
    #[serde(default)]
    pub probability: Option<f64>,
    /// Delay before answering (or before resetting, or before the real answer).
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Value of the `Retry-After` header on the injected answer: seconds or an HTTP date.
    #[serde(default)]
    pub retry_after: Option<Value>,
    /// Close the TCP connection abruptly (RST) without any response.
    #[serde(default)]
    pub reset: bool,
    /// Raw response body (sent as-is with `Content-Type: application/json`, so malformed
    /// JSON can be served). Absent: the provider's own error body for `status`.
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Error, PartialEq)]
pub enum FaultError {
    #[error("status {0} is not an HTTP status code (100..=599)")]
    BadStatus(u16),
    #[error("count must be at least 1")]
    ZeroCount,
    #[error("probability must be between 0 and 1")]
    BadProbability,
    #[error("a fault needs at least one of status, reset or latencyMs")]
    DoesNothing,
    #[error("retryAfter must be a non-negative number of seconds or a string")]
    BadRetryAfter,
    #[error("path must start with '/' or be '*'")]
    BadPath,
}

/// Why a `PUT /_sandbox/faults` body was refused.
#[derive(Debug, Error)]
pub enum FaultsBodyError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(#[from] FaultError),
}

/// Parse and validate a `PUT /_sandbox/faults` body: one fault object or an array of them.
/// Nothing is queued unless every fault is valid.
pub fn parse_body(body: &[u8]) -> Result<Vec<Fault>, FaultsBodyError> {
    let faults = match serde_json::from_slice::<Value>(body)? {
        Value::Array(items) => items.into_iter().map(serde_json::from_value).collect::<Result<Vec<Fault>, _>>()?,
        one => vec![serde_json::from_value(one)?],
    };
    for fault in &faults {
        fault.validate()?;
    }
    Ok(faults)
}

impl Fault {
    pub fn validate(&self) -> Result<(), FaultError> {
        if let Some(status) = self.status
            && !(100..=599).contains(&status)
        {
            return Err(FaultError::BadStatus(status));
        }
        if self.count == Some(0) {
            return Err(FaultError::ZeroCount);
        }
        if self.probability.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err(FaultError::BadProbability);
        }
        if self.status.is_none() && !self.reset && self.latency_ms.is_none() {
            return Err(FaultError::DoesNothing);
        }
        match &self.retry_after {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v >= 0.0) => {}
            Some(_) => return Err(FaultError::BadRetryAfter),
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

    /// The `Retry-After` header value, if any.
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

/// The queue of faults of one provider. The first queued fault that matches a request
/// applies to it and loses one of its remaining uses.
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

    /// The queued faults with their remaining uses, for `GET /_sandbox/faults`.
    pub fn snapshot(&self) -> Value {
        serde_json::to_value(&*self.lock()).unwrap_or(Value::Null)
    }

    /// Take one use of the first fault that matches this request (and, with a
    /// `probability`, wins its draw).
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

    fn fault(json: Value) -> Fault {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn matches_exact_and_prefix_paths_and_counts_down() {
        let faults = Faults::default();
        faults.push(fault(serde_json::json!({"method": "patch", "path": "/connections/*", "status": 503, "count": 2})));
        assert!(faults.take("GET", "/connections/a").is_none());
        assert!(faults.take("PATCH", "/other").is_none());
        assert_eq!(faults.take("PATCH", "/connections/a").unwrap().status, Some(503));
        assert!(faults.take("PATCH", "/connections/b").is_some());
        assert!(faults.take("PATCH", "/connections/c").is_none());
    }

    #[test]
    fn first_matching_fault_wins_in_queue_order() {
        let faults = Faults::default();
        faults.push(fault(serde_json::json!({"path": "/x", "status": 500})));
        faults.push(fault(serde_json::json!({"path": "/x", "status": 502})));
        assert_eq!(faults.take("GET", "/x").unwrap().status, Some(500));
        assert_eq!(faults.take("GET", "/x").unwrap().status, Some(502));
        assert!(faults.take("GET", "/x").is_none());
    }

    #[test]
    fn probability_faults_are_random_and_unlimited() {
        let faults = Faults::default();
        faults.push(fault(serde_json::json!({"path": "*", "status": 500, "probability": 0.0})));
        assert!((0..50).all(|_| faults.take("GET", "/x").is_none()));
        faults.clear();
        faults.push(fault(serde_json::json!({"method": "*", "path": "*", "status": 500, "probability": 1.0})));
        assert!((0..50).all(|_| faults.take("GET", "/x").is_some()));
        assert_eq!(
            fault(serde_json::json!({"path": "*", "status": 500, "probability": 2})).validate(),
            Err(FaultError::BadProbability)
        );
    }

    #[test]
    fn rejects_faults_that_cannot_apply() {
        assert_eq!(fault(serde_json::json!({"path": "/x"})).validate(), Err(FaultError::DoesNothing));
        assert_eq!(fault(serde_json::json!({"path": "/x", "status": 42})).validate(), Err(FaultError::BadStatus(42)));
        assert_eq!(
            fault(serde_json::json!({"path": "/x", "status": 500, "count": 0})).validate(),
            Err(FaultError::ZeroCount)
        );
        assert_eq!(fault(serde_json::json!({"path": "x", "reset": true})).validate(), Err(FaultError::BadPath));
        assert!(serde_json::from_value::<Fault>(serde_json::json!({"path": "/x", "statuss": 1})).is_err());
    }
}
