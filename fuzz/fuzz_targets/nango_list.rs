//! Nango's offset-paged list (`nango::ListPages`, docs/providers.md, Nango): the rows of
//! every page, and a listing that ends whatever the pages say. The pages are served in a
//! cycle, as a server that ignores `page` would serve them.
//!
//! Input: page bodies (JSON text) separated by `---` lines. Pages hold 2 rows here (1000
//! in the client), so that full pages are within the fuzzer's reach.
#![no_main]

use std::collections::HashSet;

use connection_operator::diff::Upstream;
use connection_operator::providers::fuzzing::NangoListPages;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const PAGE_SIZE: usize = 2;

fuzz_target!(|data: &[u8]| {
    let pages: Vec<Value> =
        fuzzing::pages(data).into_iter().map(|p| serde_json::from_slice(p).unwrap_or(Value::Null)).collect();
    // Every row a page holds: what the rows of the listing may be.
    let listed: HashSet<(String, Option<String>)> = pages
        .iter()
        .filter_map(|p| p.get("connections")?.as_array())
        .flatten()
        .filter_map(|row| {
            Some((
                row.get("connection_id")?.as_str()?.to_string(),
                Some(row.get("provider_config_key")?.as_str()?.to_string()),
            ))
        })
        .collect();
    let mut list = NangoListPages::new(PAGE_SIZE);
    // Each page that does not end the listing must bring a row not seen before.
    let bound = pages.len() + listed.len() + 1;
    let mut served = 0;
    for page in pages.iter().cycle() {
        served += 1;
        assert!(served <= bound, "the listing never ends: {served} pages served of {} distinct", pages.len());
        match list.take(page) {
            Ok(true) => {
                let rows = page["connections"].as_array().expect("a page read holds connections");
                assert!(rows.len() >= PAGE_SIZE, "a short page does not end the listing");
            }
            Ok(false) => break,
            Err(_) => return,
        }
    }
    for (key, row) in list.rows() {
        assert!(listed.contains(key), "a row that no page lists: {key:?}");
        assert!(matches!(row, Upstream::Nango { .. }));
    }
});
