//! The parsers of provider answers, reachable from the fuzz targets (fuzz/, built by
//! `cargo fuzz`, which sets `--cfg fuzzing`). Thin wrappers only: each calls the function
//! the client itself uses, so the fuzzers exercise the real code.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use serde_json::Value;

use super::ProviderError;
use super::http::{Dialect, interpret};
use super::listing::ListKey;
use crate::diff::Upstream;

pub use super::pacing::{Admission, MAX_PACING_WAIT, RateLimitHeaders};

/// The four providers, for choosing one in a fuzz input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Nango,
    Mielto,
    Arena,
    Datagrid,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::Nango, Provider::Mielto, Provider::Arena, Provider::Datagrid];

    fn dialect(self) -> &'static dyn Dialect {
        match self {
            Provider::Nango => &super::nango::NangoDialect,
            Provider::Mielto => &super::mielto::MieltoDialect,
            Provider::Arena => &super::arena::ArenaDialect,
            Provider::Datagrid => &super::datagrid::DatagridDialect,
        }
    }

    /// An answer as `Http::send` reads it: the 2xx body, or the classified failure (a 429's
    /// `retry_at` before jitter).
    pub fn interpret(
        self,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Value, ProviderError> {
        interpret(self.dialect(), status, headers, body, now)
    }

    /// The rate-limit headers of an answer as the client hands them to its pacer.
    pub fn rate_limit_headers(self, headers: &HeaderMap, now: SystemTime) -> RateLimitHeaders {
        super::http::rate_limit_headers(headers, now, self.dialect().default_window())
    }

    /// A connection read (`GET`) as the client turns it into the plan's upstream state.
    pub fn connection(self, body: &Value) -> Result<Upstream, ProviderError> {
        match self {
            Provider::Nango => super::nango::connection(body),
            Provider::Mielto => super::mielto::connection(body),
            Provider::Arena => super::arena::connection(body),
            Provider::Datagrid => super::datagrid::connection(body),
        }
    }
}

/// Nango's offset-paged list (`ListPages` of nango.rs) with a page size of the caller's.
pub struct NangoListPages(super::nango::ListPages);

impl NangoListPages {
    pub fn new(page_size: usize) -> Self {
        NangoListPages(super::nango::ListPages::new(page_size))
    }

    /// `Ok(true)`: the next page is to be read.
    pub fn take(&mut self, body: &Value) -> Result<bool, ProviderError> {
        self.0.take(body)
    }

    pub fn rows(&self) -> &HashMap<ListKey, Upstream> {
        &self.0.rows
    }
}

/// Datagrid's cursor-paged list (`ListPages` of datagrid.rs).
#[derive(Default)]
pub struct DatagridListPages(super::datagrid::ListPages);

impl DatagridListPages {
    /// `Ok(Some(cursor))`: the page after `cursor` is to be read.
    pub fn take(&mut self, body: &Value) -> Result<Option<String>, ProviderError> {
        self.0.take(body)
    }

    pub fn rows(&self) -> &HashMap<ListKey, Upstream> {
        &self.0.rows
    }
}

/// The shortest block after a 429 and the one when it names no time (`Http::send`).
pub const MIN_BLOCK: Duration = super::http::MIN_BLOCK;
pub const DEFAULT_BLOCK: Duration = super::http::DEFAULT_BLOCK;
/// Longest provider message kept in an error.
pub const MAX_MESSAGE: usize = super::error::MAX_MESSAGE;
