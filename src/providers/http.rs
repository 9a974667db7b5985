//! The HTTP layer shared by the four provider clients: bearer authentication, timeouts,
//! pacing and the account-wide block after a 429, rate-limit header parsing and error
//! classification. Each provider supplies a [`Dialect`] for what differs: where its error
//! message is and how its 429 says when to come back.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use rand::Rng;
use serde_json::Value;

use super::Token;
use super::error::{ProviderError, classify, truncate};
use super::pacing::{AccountPacer, Admission, RateLimitHeaders};

/// Per-provider parsing rules.
pub(crate) trait Dialect: Send + Sync {
    /// Provider name for logs.
    fn name(&self) -> &'static str;
    /// The human message of an error body, if it has one.
    fn error_message(&self, status: u16, body: &Value) -> Option<String>;
    /// When a 429 says to come back, from its headers and body.
    fn retry_at(&self, headers: &HeaderMap, body: &Value, now: SystemTime) -> Option<SystemTime>;
    /// The length of the rate-limit window when the response does not say.
    fn default_window(&self) -> Option<Duration>;
}

/// Fallback block after a 429 that names no retry time: one documented window.
pub(crate) const DEFAULT_BLOCK: Duration = Duration::from_secs(60);
/// Shortest block after a 429, whatever the hints say.
pub(crate) const MIN_BLOCK: Duration = Duration::from_secs(1);
/// Up to this much jitter is added to a block, so that many controllers (or requeued
/// Connections) do not all return at the same instant and collect another 429 together.
const MAX_BLOCK_JITTER_MS: u64 = 250;

/// One request to send.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// Pacing bucket: `""` for providers limited per account; Datagrid passes method and
    /// templated path, as its limits are per path and method (docs/providers.md, Datagrid).
    pub bucket: &'a str,
    /// Path segments below the base URL, each percent-encoded on its own (ids may hold `/`).
    pub segments: &'a [&'a str],
    pub query: &'a [(&'a str, &'a str)],
    pub body: Option<Value>,
}

/// Told of every request actually sent (not of those the pacer refused): provider name,
/// method, HTTP status (`None`: no answer) and duration. The controller counts them in its
/// metrics, so a batched write or a list page counts once, as the provider sees it.
pub type RequestObserver = Arc<dyn Fn(&'static str, &Method, Option<u16>, Duration) + Send + Sync>;

/// An authenticated, paced HTTP client for one provider account.
pub(crate) struct Http {
    client: reqwest::Client,
    base: url::Url,
    token: Token,
    timeout: Duration,
    pacer: Arc<AccountPacer>,
    headers: HeaderMap,
    /// `X-API-Key` instead of `Authorization: Bearer` (Mielto's `auth: ApiKey`).
    api_key_header: bool,
    dialect: Box<dyn Dialect>,
    observer: Option<RequestObserver>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written so the token can never reach a log line through `{:?}`.
        f.debug_struct("Http")
            .field("provider", &self.dialect.name())
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(
        client: reqwest::Client,
        base: &str,
        token: Token,
        timeout: Duration,
        pacer: Arc<AccountPacer>,
        dialect: Box<dyn Dialect>,
    ) -> Result<Self, ProviderError> {
        let base = url::Url::parse(base)
            .map_err(|e| ProviderError::Terminal { status: 0, message: format!("invalid baseUrl: {e}") })?;
        if base.cannot_be_a_base() {
            return Err(ProviderError::Terminal { status: 0, message: "invalid baseUrl: not a base URL".into() });
        }
        Ok(Http {
            client,
            base,
            token,
            timeout,
            pacer,
            headers: HeaderMap::new(),
            api_key_header: false,
            dialect,
            observer: None,
        })
    }

    /// Report every request sent to `observer`.
    pub(crate) fn with_observer(mut self, observer: Option<RequestObserver>) -> Self {
        self.observer = observer;
        self
    }

    fn observed(&self, method: &Method, status: Option<u16>, started: Instant) {
        if let Some(observer) = &self.observer {
            observer(self.dialect.name(), method, status, started.elapsed());
        }
    }

    /// Send the token as `X-API-Key: <token>` and no `Authorization` header.
    pub(crate) fn with_api_key_header(mut self) -> Self {
        self.api_key_header = true;
        self
    }

    /// Add a header sent with every request (`X-Workspace-Id`, `Datagrid-Teamspace`).
    pub(crate) fn with_header(mut self, name: &'static str, value: &str) -> Result<Self, ProviderError> {
        let value = HeaderValue::from_str(value).map_err(|_| ProviderError::Terminal {
            status: 0,
            message: format!("{name} holds characters not allowed in a header"),
        })?;
        self.headers.insert(HeaderName::from_static(name), value);
        Ok(self)
    }

    fn url(&self, call: &Call<'_>) -> url::Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("checked in new: a base URL");
            path.pop_if_empty();
            for segment in call.segments {
                path.push(segment);
            }
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query);
        }
        url
    }

    /// Send `call` and return the JSON body of a 2xx answer (`null` when empty).
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Value, ProviderError> {
        // Once admitted, whatever happens to the request (answer, error, cancellation while
        // waiting or sending), it stops counting as in flight when this guard drops.
        let _in_flight = match self.pacer.admit(call.bucket, Instant::now(), SystemTime::now()) {
            Admission::RateLimited(retry_at) => return Err(ProviderError::RateLimited { retry_at }),
            Admission::After(wait) => {
                let guard = InFlight { pacer: &self.pacer, bucket: call.bucket };
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                    // A 429 seen by another request while this one waited blocks it too.
                    if let Some(retry_at) = self.pacer.blocked(call.bucket, SystemTime::now()) {
                        return Err(ProviderError::RateLimited { retry_at });
                    }
                }
                guard
            }
        };

        let url = self.url(&call);
        let mut request = self
            .client
            .request(call.method.clone(), url.clone())
            .timeout(self.timeout)
            .headers(self.headers.clone())
            .header(header::ACCEPT, "application/json");
        request = if self.api_key_header {
            request.header(HeaderName::from_static("x-api-key"), self.api_key()?)
        } else {
            request.header(header::AUTHORIZATION, self.authorization()?)
        };
        if let Some(body) = &call.body {
            request = request.header(header::CONTENT_TYPE, "application/json").body(body.to_string());
        }

        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.observed(&call.method, None, started);
                return Err(network_error(&e));
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let limits = rate_limit_headers(&headers, SystemTime::now(), self.dialect.default_window());
        self.pacer.record_headers(call.bucket, limits, Instant::now(), SystemTime::now());
        let bytes = response.bytes().await.map_err(|e| network_error(&e));
        self.observed(&call.method, Some(status), started);
        let bytes = bytes?;
        tracing::debug!(provider = self.dialect.name(), method = %call.method, path = url.path(), status, "provider request");
        match interpret(self.dialect.as_ref(), status, &headers, &bytes, SystemTime::now()) {
            Err(ProviderError::RateLimited { retry_at }) => {
                let retry_at = retry_at + Duration::from_millis(rand::rng().random_range(0..=MAX_BLOCK_JITTER_MS));
                self.pacer.block_until(retry_at);
                tracing::info!(provider = self.dialect.name(), retry_at = %httpdate::fmt_http_date(retry_at), "rate limited; account blocked");
                Err(ProviderError::RateLimited { retry_at })
            }
            other => other,
        }
    }

    /// `Bearer <token>`, marked sensitive so that HTTP-level tracing never prints it.
    fn authorization(&self) -> Result<HeaderValue, ProviderError> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.token.expose())).map_err(|_| {
            ProviderError::Unauthorized {
                status: 0,
                message: "the token holds characters not allowed in an HTTP header".into(),
            }
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// The bare token for `X-API-Key`, marked sensitive like the Authorization header.
    fn api_key(&self) -> Result<HeaderValue, ProviderError> {
        let mut value = HeaderValue::from_str(self.token.expose()).map_err(|_| ProviderError::Unauthorized {
            status: 0,
            message: "the token holds characters not allowed in an HTTP header".into(),
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// What an answer says, from its status, headers and body alone: the JSON body of a 2xx
/// (`null` when empty), or the classified failure. A 429 is `RateLimited` at the time its
/// hints give (at least [`MIN_BLOCK`] from `now`), before the caller adds jitter and blocks
/// the account. Pure, so that every provider's answers can be fuzzed (fuzz/).
pub(crate) fn interpret(
    dialect: &dyn Dialect,
    status: u16,
    headers: &HeaderMap,
    bytes: &[u8],
    now: SystemTime,
) -> Result<Value, ProviderError> {
    let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(bytes).unwrap_or(Value::Null) };
    if (200..300).contains(&status) {
        if !bytes.is_empty() && body.is_null() {
            return Err(ProviderError::Retryable {
                status: Some(status),
                message: "the provider answered with a body that is not JSON".into(),
            });
        }
        return Ok(body);
    }
    if status == 429 {
        // A hint of "now" (Nango's floored `Retry-After: 0` with a reset in the current
        // second) still blocks briefly; no hint at all blocks for a whole window.
        let retry_at = match dialect.retry_at(headers, &body, now) {
            Some(at) => at.max(now + MIN_BLOCK),
            None => now + DEFAULT_BLOCK,
        };
        return Err(ProviderError::RateLimited { retry_at });
    }
    // A blank message (`"message": ""`) says nothing: the status is said instead.
    let message = dialect
        .error_message(status, &body)
        .filter(|m| !m.trim().is_empty())
        .map(|m| truncate(&m))
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err(classify(status, message))
}

/// The `X-RateLimit-*` headers of an answer; `default_window` when it names no window.
pub(crate) fn rate_limit_headers(
    headers: &HeaderMap,
    now: SystemTime,
    default_window: Option<Duration>,
) -> RateLimitHeaders {
    RateLimitHeaders {
        limit: header_u64(headers, "x-ratelimit-limit"),
        remaining: header_u64(headers, "x-ratelimit-remaining"),
        reset: rate_limit_reset(headers, now),
        window: header_str(headers, "x-ratelimit-window")
            .and_then(|w| w.parse::<f64>().ok())
            .filter(|w| w.is_finite() && *w > 0.0)
            // A window past the clock's range would panic; longer than a day means nothing
            // to the pacer either (the same cap as every hint).
            .map(|w| Duration::from_secs_f64(w.min(MAX_HINT.as_secs_f64())))
            .or(default_window),
    }
}

/// Connection failures and timeouts are transient. The message names the kind of failure
/// only: reqwest's own text would carry the URL and changing details.
fn network_error(e: &reqwest::Error) -> ProviderError {
    let message = if e.is_timeout() {
        "the request timed out"
    } else if e.is_connect() {
        "cannot connect to the provider"
    } else {
        "the connection to the provider failed"
    };
    ProviderError::Retryable { status: None, message: message.into() }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.parse().ok())
}

/// Longest wait any provider hint is honoured for: a bogus or hostile header (a far-future
/// date, a reset years away) must not park the account for longer than a day.
pub(crate) const MAX_HINT: Duration = Duration::from_secs(86_400);

/// `at`, but never past [`MAX_HINT`] from `now`.
fn capped(at: SystemTime, now: SystemTime) -> SystemTime {
    at.min(now + MAX_HINT)
}

/// `now` plus `seconds` (finite and not negative), at most [`MAX_HINT`] on.
pub(crate) fn after_seconds(seconds: f64, now: SystemTime) -> Option<SystemTime> {
    (seconds.is_finite() && seconds >= 0.0).then(|| now + Duration::from_secs_f64(seconds.min(MAX_HINT.as_secs_f64())))
}

/// `Retry-After`: delay-seconds (fractions tolerated) or an HTTP date (RFC 9110 §10.2.3).
/// `None` when absent or unparsable; `Some(now)` for `0`; at most [`MAX_HINT`] on.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let value = header_str(headers, "retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return after_seconds(seconds, now);
    }
    httpdate::parse_http_date(value).ok().map(|at| capped(at, now))
}

/// `retry-after-ms` (Stainless SDKs, docs/providers.md, Datagrid).
pub(crate) fn retry_after_ms(headers: &HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let ms: f64 = header_str(headers, "retry-after-ms")?.parse().ok()?;
    after_seconds(ms / 1000.0, now)
}

/// `X-RateLimit-Reset`, documented as unix seconds; a small number is read as a delay in
/// seconds, so a provider that sends a delta cannot make us hammer it. At most
/// [`MAX_HINT`] on, whatever the number (one past the clock's range included).
pub(crate) fn rate_limit_reset(headers: &HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let value = header_u64(headers, "x-ratelimit-reset")?;
    Some(if value < 1_000_000_000 {
        now + Duration::from_secs(value.min(MAX_HINT.as_secs()))
    } else {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(value)).map_or(now + MAX_HINT, |at| capped(at, now))
    })
}

/// Marks a request admitted by the pacer as finished when dropped.
struct InFlight<'a> {
    pacer: &'a AccountPacer,
    bucket: &'a str,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.pacer.finished(self.bucket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(&headers(&[("retry-after", "7")]), now), Some(now + Duration::from_secs(7)));
        assert_eq!(retry_after(&headers(&[("retry-after", "0")]), now), Some(now));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(retry_after(&headers(&[("retry-after", &date)]), now), Some(now + Duration::from_secs(90)));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "-1")]), now), None);
        assert_eq!(retry_after(&headers(&[]), now), None);
        assert_eq!(
            retry_after_ms(&headers(&[("retry-after-ms", "1500")]), now),
            Some(now + Duration::from_millis(1500))
        );
    }

    #[test]
    fn reset_is_unix_seconds_or_a_small_delay() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            rate_limit_reset(&headers(&[("x-ratelimit-reset", "1700000042")]), now),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_042))
        );
        assert_eq!(
            rate_limit_reset(&headers(&[("x-ratelimit-reset", "42")]), now),
            Some(now + Duration::from_secs(42))
        );
    }

    /// Found by the `rate_limits` fuzz target (docs/fuzzing.md): `X-RateLimit-Window: 1e300`
    /// panicked (a float past `Duration`'s range).
    #[test]
    fn a_huge_rate_limit_window_is_capped_at_a_day() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for (window, want) in
            [("1e300", Some(MAX_HINT)), ("90000", Some(MAX_HINT)), ("60", Some(Duration::from_secs(60)))]
        {
            let read = rate_limit_headers(&headers(&[("x-ratelimit-window", window)]), now, None);
            assert_eq!(read.window, want, "{window}");
        }
    }

    /// Found by the `response` fuzz target (docs/fuzzing.md): a 429 with
    /// `X-RateLimit-Reset: 1700000` (read as a delay) blocked the account for 20 days; a
    /// reset past the clock's range panicked.
    #[test]
    fn every_hint_is_capped_at_a_day() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let day = now + MAX_HINT;
        for reset in ["1700000", "999999999", "4000000000", "18446744073709551615"] {
            assert_eq!(rate_limit_reset(&headers(&[("x-ratelimit-reset", reset)]), now), Some(day), "{reset}");
        }
        let far = httpdate::fmt_http_date(now + Duration::from_secs(10 * 86_400));
        assert_eq!(retry_after(&headers(&[("retry-after", &far)]), now), Some(day));
        assert_eq!(retry_after(&headers(&[("retry-after", "1e300")]), now), Some(day));
        assert_eq!(retry_after_ms(&headers(&[("retry-after-ms", "1e300")]), now), Some(day));
        let limited = |dialect: &dyn Dialect, pairs: &[(&'static str, &str)]| match interpret(
            dialect,
            429,
            &headers(pairs),
            b"",
            now,
        ) {
            Err(ProviderError::RateLimited { retry_at }) => retry_at,
            other => panic!("{other:?}"),
        };
        let nango = super::super::nango::NangoDialect;
        let at = limited(&nango, &[("retry-after", "0"), ("x-ratelimit-reset", "1700000")]);
        assert!(at <= day + Duration::from_secs(1), "{at:?}");
        let datagrid = super::super::datagrid::DatagridDialect;
        assert_eq!(limited(&datagrid, &[("x-ratelimit-reset", "18446744073709551615")]), day);
    }

    /// Found by the `response` fuzz target: a 500 with `{"error": {"code": ""}}` made an
    /// error whose message (status condition, Event) was empty.
    #[test]
    fn a_blank_provider_message_reads_as_the_status() {
        let now = SystemTime::UNIX_EPOCH;
        let nango = super::super::nango::NangoDialect;
        let arena = super::super::arena::ArenaDialect;
        for (dialect, status, body) in [
            (&nango as &dyn Dialect, 500, &br#"{"error":{"code":""}}"#[..]),
            (&nango, 400, br#"{"error":{"message":"  "}}"#),
            (&arena, 404, br#"{"details":{"message":""}}"#),
        ] {
            let err = interpret(dialect, status, &HeaderMap::new(), body, now).unwrap_err();
            assert_eq!(err, classify(status, format!("HTTP {status}")), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn authorization_is_sensitive_and_a_bad_token_is_not_echoed() {
        let pacer = || Arc::new(AccountPacer::new(crate::api::RateLimitSpec { requests_per_minute: 60, burst: 1 }));
        let http = |token: &str| {
            Http::new(
                reqwest::Client::new(),
                "http://127.0.0.1:1/x",
                Token::new(token),
                Duration::from_secs(1),
                pacer(),
                Box::new(super::super::nango::NangoDialect),
            )
            .unwrap()
        };
        assert!(http("good").authorization().unwrap().is_sensitive());
        let err = http("line1\nsecret-part").authorization().unwrap_err();
        assert!(matches!(err, ProviderError::Unauthorized { status: 0, .. }));
        assert!(!format!("{err:?}").contains("secret-part"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let pacer = Arc::new(AccountPacer::new(crate::api::RateLimitSpec { requests_per_minute: 60, burst: 1 }));
        let http = Http::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1/nango",
            Token::new("s3cr3t-token"),
            Duration::from_secs(1),
            pacer,
            Box::new(super::super::nango::NangoDialect),
        )
        .unwrap();
        let shown = format!("{http:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("nango"));
    }
}
