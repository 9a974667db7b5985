//! Provider errors, classified once, here, so that no other code matches on statuses or
//! messages: the controller maps each class to a condition reason and a requeue.
//!
//! Messages come from the provider's own error body and are kept stable (no request ids):
//! an unchanged failure must not rewrite status. Tokens never appear in them.

use std::time::SystemTime;

/// A failed provider call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The request cannot succeed as is (400/422 validation, a bad `baseUrl`): do not retry
    /// until something changes. `status` is 0 when the request could not even be built.
    #[error("the provider rejected the request ({status}): {message}")]
    Terminal { status: u16, message: String },
    /// Worth retrying with backoff: 5xx, 408, 409, timeouts, connection errors.
    #[error("the provider is unavailable: {message}")]
    Retryable { status: Option<u16>, message: String },
    /// The provider account is rate limited; nothing is sent to it before `retry_at`.
    #[error("rate limited by the provider; retrying at {}", httpdate::fmt_http_date(*retry_at))]
    RateLimited { retry_at: SystemTime },
    /// The connection does not exist upstream (or is not visible to this token).
    #[error("the connection was not found upstream: {message}")]
    NotFound { message: String },
    /// The token was refused (401) or lacks permission (403); `status` 0: the token cannot
    /// even be sent.
    #[error("the provider refused the credentials ({status}): {message}")]
    Unauthorized { status: u16, message: String },
}

impl ProviderError {
    /// The `Ready` condition reason for this failure (docs/controller.md, "Reconcile").
    pub fn reason(&self) -> crate::api::conditions::Reason {
        use crate::api::conditions::Reason;
        match self {
            ProviderError::Terminal { .. } => Reason::InvalidSpec,
            ProviderError::Retryable { .. } => Reason::UpstreamUnavailable,
            ProviderError::RateLimited { .. } => Reason::RateLimited,
            ProviderError::NotFound { .. } => Reason::UpstreamNotFound,
            ProviderError::Unauthorized { .. } => Reason::Unauthorized,
        }
    }
}

/// Longest provider message kept, so a verbose body cannot bloat status and events.
pub(crate) const MAX_MESSAGE: usize = 300;

pub(crate) fn truncate(message: &str) -> String {
    if message.len() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// Classify a non-success HTTP status (429 is handled by the caller, which must also block
/// the account).
pub(crate) fn classify(status: u16, message: String) -> ProviderError {
    match status {
        401 | 403 => ProviderError::Unauthorized { status, message },
        404 => ProviderError::NotFound { message },
        // 408 and 409 are transient, as Datagrid's generated SDKs treat them (docs/providers.md),
        // as is 5xx.
        408 | 409 | 500..=599 => ProviderError::Retryable { status: Some(status), message },
        _ => ProviderError::Terminal { status, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_classes() {
        assert!(matches!(classify(401, "m".into()), ProviderError::Unauthorized { status: 401, .. }));
        assert!(matches!(classify(403, "m".into()), ProviderError::Unauthorized { status: 403, .. }));
        assert!(matches!(classify(404, "m".into()), ProviderError::NotFound { .. }));
        for s in [408, 409, 500, 502, 503] {
            assert!(matches!(classify(s, "m".into()), ProviderError::Retryable { .. }), "{s}");
        }
        for s in [400, 415, 422, 424] {
            assert!(matches!(classify(s, "m".into()), ProviderError::Terminal { .. }), "{s}");
        }
    }

    #[test]
    fn classes_map_to_ready_reasons() {
        use crate::api::conditions::Reason;
        assert_eq!(classify(422, "m".into()).reason(), Reason::InvalidSpec);
        assert_eq!(classify(503, "m".into()).reason(), Reason::UpstreamUnavailable);
        assert_eq!(classify(404, "m".into()).reason(), Reason::UpstreamNotFound);
        assert_eq!(classify(403, "m".into()).reason(), Reason::Unauthorized);
        assert_eq!(ProviderError::RateLimited { retry_at: SystemTime::UNIX_EPOCH }.reason(), Reason::RateLimited);
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(400);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_MESSAGE + "…".len());
        assert!(cut.ends_with('…'));
    }
}
