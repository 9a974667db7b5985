//! Which shard owns a provider account (`--shards N`): pure, no I/O.
//!
//! With N shards, N processes each hold one shard's Lease and reconcile only the Connections
//! whose account falls in their shard, so every account's rate budget is still paced by one
//! process. The assignment must come out the same in every process and every release:
//!
//! - The hashed key is the account without its token: type, normalised base URL,
//!   workspace and teamspace ([`shard_key`]). [`crate::api::AccountKey`] also carries the
//!   token's fingerprint, but that is a keyed hash whose key is random per process, so two
//!   processes would disagree. Accounts that differ only by token therefore share a shard,
//!   which keeps each of them on one process.
//! - The hash is FNV-1a 64 ([`fnv1a`]), fixed by its definition; `std`'s `DefaultHasher` is
//!   allowed to change between Rust releases, which would move accounts on an upgrade.
//! - The label [`SHARD_LABEL`] on a Provider or ClusterProvider pins its account. Several
//!   Providers may name one account: the lowest valid label among them wins
//!   ([`assign`]), so they cannot split it across shards. A label that is not an integer in
//!   `0..N` is ignored (the hash decides) and reported ([`LabelError`]).

use std::fmt;

/// The label that pins a Provider's or ClusterProvider's account to a shard: `"0"` to
/// `"N-1"`.
pub const SHARD_LABEL: &str = "connection-operator.dev/shard";

/// This process's shard: `index` of `count` (`count` ≥ 2; one shard is no sharding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// FNV-1a, 64 bits (the published offset basis and prime).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The account a Provider names, as sharding sees it (no token; see the module docs):
/// `type|normalised baseUrl|workspace|teamspace`.
pub fn shard_key(config: &crate::api::ProviderConfig) -> String {
    format!(
        "{}|{}|{}|{}",
        config.type_.as_str(),
        crate::api::normalized_base_url(&config.base_url),
        config.workspace_id.as_deref().unwrap_or(""),
        config.teamspace_id.as_deref().unwrap_or(""),
    )
}

/// Why a shard label is ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LabelError {
    /// Not a decimal integer.
    NotANumber(String),
    /// A shard that does not exist with this many shards.
    OutOfRange { value: u32, shards: u32 },
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::NotANumber(value) => {
                write!(f, "label {SHARD_LABEL}={value:?} is not a shard number; the account is placed by its hash")
            }
            LabelError::OutOfRange { value, shards } => write!(
                f,
                "label {SHARD_LABEL}={value} names no shard (there are {shards}: 0 to {}); the account is placed by \
                 its hash",
                shards - 1
            ),
        }
    }
}

/// The shard a label names: `Ok(None)` without a label.
pub fn parse_label(value: Option<&str>, shards: u32) -> Result<Option<u32>, LabelError> {
    let Some(value) = value else { return Ok(None) };
    let index: u32 = value.trim().parse().map_err(|_| LabelError::NotANumber(value.to_string()))?;
    if index >= shards {
        return Err(LabelError::OutOfRange { value: index, shards });
    }
    Ok(Some(index))
}

/// The shard of `account` (a [`shard_key`]) with `label` (already parsed) over `shards`.
pub fn shard_of(account: &str, label: Option<u32>, shards: u32) -> u32 {
    let shards = shards.max(1);
    match label {
        Some(index) if index < shards => index,
        _ => (fnv1a(account.as_bytes()) % u64::from(shards)) as u32,
    }
}

/// The shard of the account `key`, given the shard labels of every Provider and
/// ClusterProvider (`providers`: their shard key and label value). The lowest valid label
/// among the Providers of this account wins; invalid ones are ignored.
pub fn assign<'a>(key: &str, providers: impl IntoIterator<Item = (&'a str, Option<&'a str>)>, shards: u32) -> u32 {
    let label = providers
        .into_iter()
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, label)| parse_label(label, shards).ok().flatten())
        .min();
    shard_of(key, label, shards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // From the FNV reference test suite (Fowler, Noll, Vo).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn an_account_keeps_its_shard() {
        // Fixed vectors, computed apart from this code (FNV-1a 64 in a few lines of Python): a
        // change here moves accounts between shards on an upgrade.
        assert_eq!(fnv1a(b"nango|https://api.nango.dev||"), 0xbc8d_60e5_3d18_bd21);
        let vectors = [
            ("nango|https://api.nango.dev||", [0, 1, 1, 1]),
            ("datagrid|https://api.datagrid.com/v1||team-1", [0, 0, 2, 0]),
            ("mielto|https://api.mielto.com|ws-9|", [0, 1, 1, 1]),
        ];
        for (key, expected) in vectors {
            let got = [1, 2, 3, 4].map(|n| shard_of(key, None, n));
            assert_eq!(got, expected, "{key}");
        }
    }

    #[test]
    fn accounts_spread_over_the_shards() {
        for shards in [2u32, 3, 4, 8] {
            let mut counts = vec![0u32; shards as usize];
            let accounts = 4_000;
            for i in 0..accounts {
                let key = format!("nango|https://tenant-{i}.example.com||");
                counts[shard_of(&key, None, shards) as usize] += 1;
            }
            let fair = accounts / shards;
            for (shard, count) in counts.iter().enumerate() {
                // Within 15% of an even share: a hash that favoured a shard would fail this.
                assert!(
                    count.abs_diff(fair) * 100 <= fair * 15,
                    "{shards} shards: shard {shard} got {count} of {accounts}"
                );
            }
        }
    }

    #[test]
    fn a_label_pins_the_account() {
        let key = "nango|https://api.nango.dev||";
        let hashed = shard_of(key, None, 4);
        let other = (hashed + 1) % 4;
        assert_eq!(shard_of(key, Some(other), 4), other);
        assert_eq!(parse_label(Some("3"), 4), Ok(Some(3)));
        assert_eq!(parse_label(Some(" 1 "), 4), Ok(Some(1)));
        assert_eq!(parse_label(None, 4), Ok(None));
    }

    #[test]
    fn a_bad_label_is_reported_and_the_hash_decides() {
        assert_eq!(parse_label(Some("4"), 4), Err(LabelError::OutOfRange { value: 4, shards: 4 }));
        assert_eq!(parse_label(Some("-1"), 4), Err(LabelError::NotANumber("-1".into())));
        assert_eq!(parse_label(Some("zero"), 4), Err(LabelError::NotANumber("zero".into())));
        let message = LabelError::OutOfRange { value: 4, shards: 4 }.to_string();
        assert!(message.contains("0 to 3"), "{message}");
        let key = "nango|https://api.nango.dev||";
        assert_eq!(assign(key, [(key, Some("4"))], 4), shard_of(key, None, 4));
    }

    #[test]
    fn providers_of_one_account_agree_on_the_lowest_label() {
        let key = "nango|https://api.nango.dev||";
        let other = "nango|https://other.example.com||";
        let providers = [(key, Some("3")), (key, None), (key, Some("1")), (other, Some("0")), (key, Some("9"))];
        assert_eq!(assign(key, providers, 4), 1, "the lowest valid label of this account");
        assert_eq!(assign(other, providers, 4), 0);
        assert_eq!(assign(key, [(key, None)], 4), shard_of(key, None, 4), "no label: the hash");
        assert_eq!(assign(key, [(other, Some("2"))], 4), shard_of(key, None, 4), "another account's label");
    }

    #[test]
    fn the_shard_key_ignores_the_token_and_the_way_the_url_is_written() {
        use crate::api::{ProviderConfig, ProviderSpec};
        let spec = |url: &str, secret: &str| -> ProviderSpec {
            serde_json::from_value(serde_json::json!({
                "type": "nango", "baseUrl": url, "credentialsRef": {"name": secret, "key": "token"}
            }))
            .expect("a ProviderSpec")
        };
        let a = ProviderConfig::from_provider(&spec("https://API.nango.dev/", "a"), "ns");
        let b = ProviderConfig::from_provider(&spec("https://api.nango.dev", "b"), "other");
        assert_eq!(shard_key(&a), shard_key(&b));
        assert_eq!(shard_key(&a), "nango|https://api.nango.dev||");
    }
}
