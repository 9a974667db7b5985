//! What the proxy's HTTP edge and its admin API share: the upstream, the request journal,
//! the fault queue and the open watches. It sits below both so neither imports the other.

use super::journal::Journal;
use super::upstream::Upstream;
use super::watches::Watches;
use crate::faults::Faults;

pub struct Proxy {
    pub upstream: Upstream,
    pub journal: Journal,
    pub faults: Faults,
    pub watches: Watches,
}

impl Proxy {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream, journal: Journal::default(), faults: Faults::default(), watches: Watches::default() }
    }
}
