//! Are.na's two error bodies (docs/providers.md, Are.na, `openapi/arena.json`): the generic `Error`
//! envelope `{"error","code","details":{"message","errors"?}}` used for 400, 401, 403, 404,
//! 408 and 422, and the distinct `RateLimitError` body of a 429.

use serde_json::{Value, json};

/// The tiers of `UserTier` with their documented per-minute limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Unauthenticated requests.
    Guest,
    /// Authenticated requests: the sandbox's accounts are all free accounts (the default tier
    /// of a new account).
    Free,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Guest => "guest",
            Tier::Free => "free",
        }
    }

    /// "Rate limits are enforced per-minute based on your tier" (arena.json `info`).
    pub fn per_minute(self) -> u32 {
        match self {
            Tier::Guest => 30,
            Tier::Free => 120,
        }
    }
}

/// The generic envelope. `error` is the HTTP reason phrase, as in every documented example
/// ("Not Found", "Forbidden", "Bad Request", "Unprocessable Entity").
pub fn envelope(status: u16, message: &str, errors: &[String]) -> Value {
    let reason = http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let mut details = json!({ "message": message });
    if !errors.is_empty() {
        details["errors"] = json!(errors);
    }
    json!({ "error": reason, "code": status, "details": details })
}

/// 401 for a PUT without a bearer token, or any request with a token the server does not know.
pub fn unauthorized(token_presented: bool) -> Value {
    let message = if token_presented {
        "The access token is invalid."
    } else {
        "Authentication is required to access this resource."
    };
    envelope(401, message, &[])
}

/// 403 for a write with a read-scoped token: the documented `ForbiddenResponse` example.
pub fn forbidden() -> Value {
    envelope(403, "You do not have permission to access this resource.", &[])
}

/// 404 for an unknown connection id: the message of the documented generic example.
pub fn not_found() -> Value {
    envelope(404, "The resource you are looking for does not exist.", &[])
}

/// 400 for an `{id}` that is not an integer (parameter validation against the OpenAPI file).
pub fn invalid_id(raw: &str) -> Value {
    envelope(400, "Invalid request parameters", &[format!("id must be an integer, got {raw:?}")])
}

/// "N minute(s)" for `limit_window`, from the configured window in seconds.
fn window_words(window_seconds: f64) -> String {
    if window_seconds == 60.0 {
        "1 minute".to_string()
    } else if window_seconds.fract() == 0.0 && window_seconds % 60.0 == 0.0 {
        format!("{} minutes", window_seconds / 60.0)
    } else {
        format!("{window_seconds} seconds")
    }
}

/// The `RateLimitError` body: every required property (`type, message, tier, limit,
/// retry_after, suggestions`) plus the documented optional ones.
pub fn rate_limited(tier: Tier, limit: u32, window_seconds: f64, retry_after: u64) -> Value {
    let t = tier.name();
    let per =
        if window_seconds == 60.0 { "per minute".to_string() } else { format!("per {}", window_words(window_seconds)) };
    let (current, recommended, suggestions) = match tier {
        Tier::Guest => (
            "Guest (30 req/min)",
            "Free Account (120 req/min)",
            vec![
                "Sign up for a free account to get 120 requests per minute",
                "Implement exponential backoff with jitter",
                "Cache responses when possible to reduce API calls",
                "Consider batch requests if available",
            ],
        ),
        Tier::Free => (
            "Free (120 req/min)",
            "Premium (300 req/min)",
            vec![
                "Upgrade to Premium to get 300 requests per minute",
                "Implement exponential backoff with jitter",
                "Cache responses when possible to reduce API calls",
                "Consider batch requests if available",
            ],
        ),
    };
    json!({
        "error": {
            "type": "rate_limit_exceeded",
            "message": format!("Rate limit of {limit} requests {per} exceeded for {t} tier. Try again later."),
            "tier": t,
            "limit": limit,
            "limit_window": window_words(window_seconds),
            "retry_after": retry_after,
            "current_status": {
                "tier": t,
                "limits": { "guest": 30, "free": 120, "premium": 300, "supporter": 600 },
                "upgrade_path": {
                    "current": current,
                    "recommended": recommended,
                    "benefits": ["Higher rate limit", "Persistent authentication", "API access"],
                    "action": "Upgrade at https://are.na/settings/billing"
                }
            },
            "suggestions": suggestions,
            "headers_note": "Check 'X-RateLimit-*' headers on successful requests for current usage"
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_documented_examples() {
        assert_eq!(
            forbidden(),
            json!({"error": "Forbidden", "code": 403,
                   "details": {"message": "You do not have permission to access this resource."}})
        );
        assert_eq!(
            envelope(400, "body is required", &[]),
            json!({"error": "Bad Request", "code": 400, "details": {"message": "body is required"}})
        );
        assert_eq!(envelope(422, "m", &["e".into()])["details"]["errors"], json!(["e"]));
        assert_eq!(not_found()["error"], "Not Found");
    }

    #[test]
    fn rate_limit_body_has_every_required_field() {
        let b = rate_limited(Tier::Guest, 30, 60.0, 12);
        let e = &b["error"];
        for k in ["type", "message", "tier", "limit", "retry_after", "suggestions"] {
            assert!(e.get(k).is_some(), "{k}");
        }
        assert_eq!(e["message"], "Rate limit of 30 requests per minute exceeded for guest tier. Try again later.");
        assert_eq!(e["limit_window"], "1 minute");
        let b = rate_limited(Tier::Free, 2, 0.5, 1);
        assert_eq!(b["error"]["limit_window"], "0.5 seconds");
        assert_eq!(b["error"]["tier"], "free");
    }
}
