//! Every provider's answer parsing (`http::interpret`): status, error envelopes, 429 hints
//! (`Retry-After` seconds or date, `retry-after-ms`, `X-RateLimit-Reset`, Are.na's body
//! `error.retry_after`) and 2xx bodies, each input read by all four providers.
//!
//! Input: `STATUS\nname: value\n...\n\nBODY` (fuzzing::Response).
#![no_main]

use connection_operator::providers::ProviderError;
use connection_operator::providers::fuzzing::{DEFAULT_BLOCK, MAX_MESSAGE, MIN_BLOCK, Provider};
use fuzzing::{Response, now};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let response = Response::parse(data);
    let now = now();
    let parsed: Option<Value> = serde_json::from_slice(response.body).ok();
    for provider in Provider::ALL {
        let got = provider.interpret(response.status, &response.headers, response.body, now);
        match response.status {
            200..=299 => match (&got, response.body.is_empty(), &parsed) {
                (Ok(Value::Null), true, _) => {}
                (Ok(body), false, Some(json)) if body == json && !json.is_null() => {}
                // `null` is JSON, but the client cannot tell it from a body that is not.
                (Err(ProviderError::Retryable { status: Some(s), .. }), false, None | Some(Value::Null))
                    if *s == response.status => {}
                _ => panic!("{provider:?}: 2xx answer {:?} read as {got:?}", String::from_utf8_lossy(response.body)),
            },
            429 => match got {
                Err(ProviderError::RateLimited { retry_at }) => {
                    assert!(retry_at >= now + MIN_BLOCK, "{provider:?}: a 429 blocks for less than {MIN_BLOCK:?}");
                    // Whatever the hints say, the account is not blocked for ever: at most
                    // the longest hint the client honours (a day) past the floor rounding.
                    let longest = now + std::time::Duration::from_secs(86_400 + 2);
                    assert!(retry_at <= longest.max(now + DEFAULT_BLOCK), "{provider:?}: blocked until {retry_at:?}");
                }
                other => panic!("{provider:?}: a 429 read as {other:?}"),
            },
            status => {
                let err = got.expect_err("a non-2xx answer is an error");
                let message = match &err {
                    ProviderError::Unauthorized { status: s, message } => {
                        assert!(matches!(status, 401 | 403) && *s == status);
                        message
                    }
                    ProviderError::NotFound { message } => {
                        assert_eq!(status, 404);
                        message
                    }
                    ProviderError::Retryable { status: s, message } => {
                        assert!(matches!(status, 408 | 409 | 500..=599) && *s == Some(status));
                        message
                    }
                    ProviderError::Terminal { status: s, message } => {
                        assert!(*s == status && !matches!(status, 401 | 403 | 404 | 408 | 409 | 429 | 500..=599));
                        message
                    }
                    ProviderError::RateLimited { .. } => panic!("{provider:?}: HTTP {status} read as a rate limit"),
                };
                // The message goes to status and Events: bounded, and never empty.
                assert!(!message.is_empty(), "{provider:?}: empty message for {err:?}");
                assert!(
                    message.len() <= MAX_MESSAGE + '…'.len_utf8(),
                    "{provider:?}: message of {} bytes",
                    message.len()
                );
            }
        }
    }
});
