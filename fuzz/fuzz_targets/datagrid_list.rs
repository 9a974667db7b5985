//! Datagrid's cursor-paged list (`datagrid::ListPages`, docs/providers.md, Datagrid): the rows
//! of every page, the `after` cursor (the last row's id) while `has_more`, and a listing
//! that ends whatever the pages say. The pages are served in a cycle, as a server that
//! ignores `after` would serve them.
//!
//! Input: page bodies (JSON text) separated by `---` lines.
#![no_main]

use std::collections::HashSet;

use connection_operator::diff::Upstream;
use connection_operator::providers::fuzzing::DatagridListPages;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let pages: Vec<Value> =
        fuzzing::pages(data).into_iter().map(|p| serde_json::from_slice(p).unwrap_or(Value::Null)).collect();
    let listed: HashSet<String> = pages
        .iter()
        .filter_map(|p| p.get("data")?.as_array())
        .flatten()
        .filter_map(|row| Some(row.get("id")?.as_str()?.to_string()))
        .collect();
    let mut list = DatagridListPages::default();
    // Each page that does not end the listing must move the cursor somewhere new.
    let bound = pages.len() + listed.len() + 1;
    let mut served = 0;
    for page in pages.iter().cycle() {
        served += 1;
        assert!(served <= bound, "the listing never ends: {served} pages served of {} distinct", pages.len());
        match list.take(page) {
            Ok(Some(cursor)) => {
                assert_eq!(page["has_more"], Value::Bool(true), "a cursor without has_more");
                let last = page["data"].as_array().and_then(|d| d.last()).and_then(|r| r["id"].as_str());
                assert_eq!(Some(cursor.as_str()), last, "the cursor is not the page's last id");
            }
            Ok(None) => break,
            Err(_) => return,
        }
    }
    for ((id, key), row) in list.rows() {
        assert!(key.is_none() && listed.contains(id), "a row that no page lists: {id:?}");
        assert!(matches!(row, Upstream::Datagrid { .. }));
    }
});
