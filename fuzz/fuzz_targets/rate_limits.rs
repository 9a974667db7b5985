//! The `X-RateLimit-*` headers of a sequence of answers (`http::rate_limit_headers`) fed to
//! an account's pacer, as `Http::send` does, with requests admitted in between.
//!
//! Input: answers separated by blank lines; in each, `name: value` header lines and `+N`
//! lines that move the clock N milliseconds on. The first line of the input picks the
//! provider (its documented window differs) and the account's `rateLimit` as
//! `PROVIDER RPM BURST`; anything unreadable there falls back to Nango at 60/min, burst 5.
#![no_main]

use std::time::{Duration, Instant};

use connection_operator::api::RateLimitSpec;
use connection_operator::providers::AccountPacer;
use connection_operator::providers::fuzzing::{Admission, MAX_PACING_WAIT, Provider};
use fuzzing::{headers, now};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let first = lines.next().and_then(|l| std::str::from_utf8(l).ok()).unwrap_or("");
    let mut words = first.split_whitespace();
    let provider = match words.next() {
        Some("mielto") => Provider::Mielto,
        Some("arena") => Provider::Arena,
        Some("datagrid") => Provider::Datagrid,
        _ => Provider::Nango,
    };
    let requests_per_minute = words.next().and_then(|w| w.parse().ok()).unwrap_or(60);
    let burst = words.next().and_then(|w| w.parse().ok()).unwrap_or(5);
    let pacer = AccountPacer::new(RateLimitSpec { requests_per_minute, burst });

    let (start, wall0) = (Instant::now(), now());
    let mut elapsed = Duration::ZERO;
    let mut answer: Vec<&[u8]> = Vec::new();
    let mut answers = 0;
    for line in lines.chain(std::iter::once(&b""[..])) {
        if let Some(ms) = line.strip_prefix(b"+").and_then(|n| std::str::from_utf8(n).ok()?.trim().parse::<u32>().ok())
        {
            elapsed += Duration::from_millis(u64::from(ms));
            continue;
        }
        if !line.is_empty() {
            answer.push(line);
            continue;
        }
        if answers >= 64 {
            break;
        }
        answers += 1;
        let (instant, wall) = (start + elapsed, wall0 + elapsed);
        // A request is admitted, answered with these headers, and finishes (Http::send).
        let admitted = match pacer.admit("", instant, wall) {
            Admission::After(wait) => {
                assert!(wait <= MAX_PACING_WAIT, "a request waits {wait:?}");
                true
            }
            Admission::RateLimited(until) => {
                assert!(until > wall, "refused until {until:?}, which is not later than now");
                false
            }
        };
        if admitted {
            let limits = provider.rate_limit_headers(&headers(answer.drain(..)), wall);
            pacer.record_headers("", limits, instant, wall);
            pacer.finished("");
        }
        answer.clear();
        if let Some(at) = pacer.available_at("", 2.0, instant, wall) {
            assert!(at > wall, "available at {at:?}, which is not later than now");
        }
        if let Some(until) = pacer.blocked("", wall) {
            assert!(until > wall);
        }
        // What Provider.status.rateLimit shows.
        let _ = pacer.snapshot().to_status();
    }
});
